"""Presets: named configurations, each a few fields of the stages it concerns.

    config = muzero_jax.presets.cartpole(seed=3)          # fields by name
    config = muzero_jax.presets.minatar(env=dict(id="gymnax/Asterix-MinAtar"))

Every preset takes the same overrides as `Config.replace`. Given another env than
its own, a preset takes that env's solve return (`solve_return_for`), not its own.
"""

from __future__ import annotations

import importlib

from muzero_jax.config import MODES, Config, ConfigError


def cartpole(**overrides) -> Config:
    """CartPole-v1: small MLP, Gumbel search, 50-step value targets, a target network.

    Many small iterations (16 envs x 25 steps, then 25 updates) beat few large ones on
    2 CPU cores; 50-step targets carry the cost of a slowly drifting cart back far
    enough; a target network copied every 100 updates halved the median env steps to
    solve over uniform replay with stored values (benchmarks/ablation.py).
    """
    base = Config().replace(
        env=dict(id="jax/CartPole-v1"),
        acting=dict(num_envs=16, rollout_length=25),
        network=dict(value_support_size=20,  # h^-1(20) = 422 > 1 / (1 - 0.997) = 333
                     reward_support_size=2),
        search=dict(policy="gumbel", num_simulations=16),
        loss=dict(td_steps=50),
        replay=dict(capacity=50_000, min_size=1_600),
        learner=dict(batch_size=256, updates_per_iteration=25, learning_rate=1e-3,
                     target_update_period=100),
        # solve_return: a margin over 475 for the 100-episode confirmation
        run=dict(total_env_steps=250_000, eval_every=5, solve_return=490.0),
    )
    return for_env(base, overrides)


def atari_paper(**overrides) -> Config:
    """Atari as in the paper (Appendices B, E-G), for a GPU or TPU; Breakout by default.

    96x96 RGB frames with 32 frames and actions of history, the paper's ResNet (a
    16-block dynamics tower, heads without a prediction tower), 50 PUCT simulations
    with tree-wide min-max Q, n = 10, K = 5, 601-atom supports, prioritised replay
    with alpha = beta = 1, batch 1024 at 0.1 samples per state, SGD with momentum at
    0.05 decayed by 0.1 every 350k steps, L2 1e-4, 27,000-step episodes, no reward
    clipping. docs/minatar-atari.md, "`atari_paper` against the paper", lists what one
    accelerator cannot match.
    """
    base = Config().replace(
        env=dict(id="ALE/Breakout-v5", sticky_action_probability=0.25,
                 max_episode_steps=27_000, frame_size=(96, 96), history_length=32),
        acting=dict(num_envs=128, rollout_length=80,  # 10,240 steps an update: 0.1 samples
                    # T = 1, then 0.5 and 0.25 after 500k and 750k of 1M updates
                    temperature_schedule=((0.5, 0.5), (0.75, 0.25))),
        network=dict(kind="resnet", hidden_size=256, prediction_blocks=0),
        loss=dict(td_steps=10),
        replay=dict(capacity=1_000_000, min_size=50_000, priority_alpha=1.0),
        learner=dict(batch_size=1024, updates_per_iteration=1, optimizer="sgd",
                     learning_rate=0.05, lr_decay="exponential", lr_decay_steps=350_000,
                     max_grad_norm=None),
        run=dict(total_env_steps=1_000_000 * 10_240,  # 1M updates, as the paper
                 eval_every=100, eval_episodes=8, solve_return=None, final_eval_episodes=32,
                 log_every=10),
    )
    return for_env(base, overrides)


def atari_tiny(**overrides) -> Config:
    """Atari small enough for a CPU smoke run: the same pipeline, scaled down.

    84x84 grayscale frames, 4 frames of history, a 16-channel ResNet with one block per
    stage, 8 Gumbel simulations, episodes cut at 1,000 steps (an untrained agent that
    never presses FIRE then ends its evaluation in seconds).
    """
    base = atari_paper().replace(
        env=dict(max_episode_steps=1_000, frame_size=(84, 84), grayscale=True,
                 history_length=4),
        acting=dict(num_envs=8, rollout_length=25),
        network=dict(resnet_channels=16, representation_blocks=(1, 1, 1), dynamics_blocks=1,
                     prediction_blocks=1, head_channels=4, hidden_size=32),
        search=dict(policy="gumbel", num_simulations=8, max_num_considered_actions=4),
        loss=dict(td_steps=5, unroll_steps=3),
        replay=dict(capacity=8_000, min_size=400),
        learner=dict(batch_size=32, updates_per_iteration=4, optimizer="adam",
                     learning_rate=1e-3, lr_decay_steps=None, max_grad_norm=5.0),
        run=dict(total_env_steps=2_000, eval_every=0, eval_episodes=4, final_eval_episodes=4,
                 log_every=5),
    )
    return for_env(base, overrides)


def sample_efficient(**overrides) -> Config:
    """CartPole-v1 in few env steps: 128 samples per state, prioritised, partial Reanalyze.

    Each iteration collects 200 steps and trains 100 batches of 256 on them; a quarter
    of every batch gets fresh values (latest parameters) and 80% of that quarter fresh
    search policies. Half-scale Gumbel noise while acting lengthens self-play episodes
    enough to show the drifting cart. Q gaps under one step's reward are not stretched to
    [0, 1] (`q_min_range` 1.0, as `reanalyze`: with two actions min-max rescaling makes
    every gap 0 against 1): median env steps to a confirmed solve 5,800 instead of 9,700
    over seeds 0-9. Not the paper's Reanalyze: that is `reanalyze`.
    """
    base = cartpole().replace(
        acting=dict(num_envs=8, rollout_length=25),
        search=dict(gumbel_scale=0.5, q_min_range=1.0),
        replay=dict(min_size=400, priority_alpha=1.0, priority_beta=0.4,
                    priority_beta_anneal_steps=2_000, reanalyze_fraction=0.25),
        learner=dict(updates_per_iteration=100, target_update_period=0),
        run=dict(eval_every=1, total_env_steps=30_000),
    )
    return for_env(base, overrides)


def muzero_reanalyze(**overrides) -> Config:
    """MuZero Reanalyze (paper, Appendix H) on CartPole-v1: `--preset reanalyze`.

    As the paper: every value target bootstraps from the target network, 80% of every
    batch trains on fresh search policies, value loss weight 0.25, n = 5. Not the
    paper's: Gumbel search with Q gaps under one step's reward not stretched to [0, 1]
    (`q_min_range` 1.0: with two actions min-max rescaling makes every gap 0 against 1),
    the target network an average of recent parameters (`target_ema` 0.95), and 128
    samples per state (a 6,000-step budget needs a thousand or more updates).
    """
    base = cartpole().replace(
        acting=dict(num_envs=8, rollout_length=25),
        search=dict(policy="gumbel", q_min_range=1.0),
        loss=dict(td_steps=5, value_loss_weight=0.25),
        replay=dict(min_size=800, reanalyze_fraction=1.0),
        learner=dict(updates_per_iteration=100, target_update_period=0, target_ema=0.95),
        run=dict(eval_every=1, total_env_steps=30_000),
    )
    return for_env(base, overrides)


def classic(**overrides) -> Config:
    """Small vector envs with |reward| <= 1 a step (classic control), host or jitted.

    `Acrobot-v1` (Gymnasium's numpy env) by default; `gymnax/Acrobot-v1`,
    `CartPole-v1`, `MountainCar-v0` and the like take the same settings. Acrobot pays -1
    a step until the tip swings up, which uniformly random actions do in 2% of episodes:
    runs of one action (repeat probability 0.75, falling with the temperature) reach it
    in ~45% from the first iteration; discount 0.99, n = 50 and 50 PUCT simulations
    were each needed on gymnax/Acrobot-v1 seed 0. Host envs learn beside the next
    rollout and evaluate every 40 iterations (a 500-step evaluation costs 10-15).
    Any env it was not tuned on (`tuned_for`) takes its time limit, discount, budget and
    supports from the env in the experiment scripts (`envs.fit_to_env`).
    """
    base = cartpole().replace(
        env=dict(id="Acrobot-v1"),
        network=dict(value_support_size=10,  # h^-1(10) = 117 > 1 / (1 - 0.99) = 100
                     reward_support_size=1),
        search=dict(policy="muzero", num_simulations=50),
        acting=dict(temperature_schedule=((0.4, 0.5), (0.7, 0.25)),
                    exploration_repeat_probability=0.75),
        loss=dict(discount=0.99, td_steps=50),
        learner=dict(updates_per_iteration=50),
        run=dict(act_while_learning=True, total_env_steps=250_000, eval_every=40,
                 solve_return=solve_return_for("Acrobot-v1")),
    )
    return for_env(base, overrides)


def minatar(**overrides) -> Config:
    """MinAtar (gymnax's `gymnax/<Game>-MinAtar`, 10x10xC planes), Breakout by default.

    Sized for an hour of a 2-core CPU: h sees the planes as a board (a 3x3 conv stem of
    16 channels and one residual block at 10x10, then a dense layer into a flat latent:
    `conv_mlp`), g and f are MLPs of 128 (the whole board ResNet, sized here, is
    `--network.kind board`, for an accelerator: on a CPU its learner step costs ~15x);
    4 samples per env step, 16 Gumbel simulations. Rewards are 0 or 1: discount 0.99,
    value support 10 (holds 117), reward support 1. Of EfficientZero's additions it takes
    the off-policy correction (n = 10 loses a step per 10,000 env steps of a sample's
    age), the one that helped on Breakout and SpaceInvaders over 3 seeds
    (docs/efficientzero.md). Evaluation is greedy on gymnax's port with MinAtar's sticky
    actions (0.1) put back, with gymnax's time limits.
    """
    base = Config().replace(
        env=dict(id="gymnax/Breakout-MinAtar"),
        acting=dict(num_envs=32, rollout_length=16),
        network=dict(kind="conv_mlp", hidden_size=128, latent_size=128, resnet_channels=16,
                     representation_blocks=(1, 0, 0), dynamics_blocks=1, prediction_blocks=0,
                     head_channels=4, action_embedding_size=8,
                     value_support_size=10, reward_support_size=1),
        search=dict(policy="gumbel", num_simulations=16, max_num_considered_actions=4),
        loss=dict(discount=0.99, td_steps=10, off_policy_correction_steps=10_000),
        replay=dict(capacity=100_000, min_size=2_000),
        learner=dict(batch_size=128, updates_per_iteration=16, learning_rate=1e-3,
                     target_update_period=200),
        # 2M env steps took 41 minutes of a quiet 2-core AMD EPYC (Breakout, seed 0, without
        # the off-policy correction, which costs no time)
        run=dict(total_env_steps=2_000_000,
                 eval_every=20, solve_return=None, log_every=10),
    )
    return for_env(base, overrides)


def control(**overrides) -> Config:
    """Box-action control (Sampled MuZero), `gymnax/Pendulum-v1` by default; the preset
    for every Box-action env without --preset.

    16 actions sampled at every node (`search.sampled_actions`) from a tanh-squashed
    Gaussian policy (`muzero_jax.sampled`), a quarter of the root's drawn uniformly over
    the box while training (`dirichlet_fraction`), searched by Gumbel MuZero with 16
    simulations. Supports hold Pendulum's rewards (down to -16.3 a step: reward support
    4 holds 24, value support 41 holds 16.3 / (1 - 0.99) = 1,627). The comparisons
    behind it (updates per iteration, uniform root samples, PUCT) are in
    docs/why-presets.md. Any env it was not tuned on (`tuned_for`) takes its time limit,
    discount, budget and supports from the env in the experiment scripts
    (`envs.fit_to_env`).
    """
    base = Config().replace(
        env=dict(id="gymnax/Pendulum-v1"),
        acting=dict(num_envs=16, rollout_length=25),
        network=dict(value_support_size=41, reward_support_size=4),
        search=dict(policy="gumbel", num_simulations=16, sampled_actions=16,
                    max_num_considered_actions=16),
        loss=dict(discount=0.99, td_steps=10),
        replay=dict(capacity=50_000, min_size=1_600),
        learner=dict(batch_size=256, updates_per_iteration=50, learning_rate=1e-3,
                     target_update_period=100),
        run=dict(total_env_steps=50_000, eval_every=10, solve_return=None),
    )
    return for_env(base, overrides)


# --- board games (pgx; experiments/board.py) ------------------------------------------

# Dirichlet alpha by game: AlphaZero's 0.3 (chess) and 0.03 (Go), about 10 / the typical
# number of legal moves elsewhere.
DIRICHLET_ALPHA = {"tic_tac_toe": 1.0, "connect_four": 1.0, "othello": 0.5,
                   "go_9x9": 0.1, "go_19x19": 0.03, "chess": 0.3}
BOARD_GAMES = tuple(DIRICHLET_ALPHA)


def board(game: str = "tic_tac_toe", mode: str = "muzero", **overrides) -> Config:
    """A two-player pgx game (`pgx/<game>`) in MuZero or AlphaZero mode, sized for a CPU.

    Value targets are game outcomes (discount 1, n = 1); search backs up with discount
    -1; the first `sample_moves` moves are sampled from the search, later ones its best.
    PUCT with Dirichlet noise, as AlphaZero: Gumbel search with a sharp prior replayed
    one game over and over on tic-tac-toe. Tic-tac-toe takes a random move in a quarter
    of self-play's plies and random first two plies, so that replay holds the positions
    a perfect opponent reaches. AlphaZero mode learns only h and f (K = 0).
    """
    if game not in DIRICHLET_ALPHA:
        raise ConfigError(f"game={game!r}: expected one of {list(DIRICHLET_ALPHA)}")
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: expected 'muzero' or 'alphazero'")
    small = game in ("tic_tac_toe", "connect_four")  # MLPs: ~15x cheaper on a CPU
    ttt = game == "tic_tac_toe"
    base = Config().replace(
        env=dict(id=f"pgx/{game}"),
        acting=dict(num_envs=32, rollout_length=16,
                    sample_moves={"tic_tac_toe": 4, "connect_four": 10}.get(game, 30),
                    exploration_epsilon=0.25 if ttt else 0.0,
                    random_opening_plies=2 if ttt else 0),
        network=dict(kind="mlp" if small else "board", resnet_channels=32,
                     representation_blocks=(2, 0, 0), dynamics_blocks=2, prediction_blocks=1,
                     head_channels=4, value_support_size=2, reward_support_size=2),
        search=dict(mode=mode, policy="muzero", num_simulations=32,
                    dirichlet_alpha=DIRICHLET_ALPHA[game]),
        loss=dict(discount=1.0, td_steps=1, unroll_steps=0 if mode == "alphazero" else 5),
        replay=dict(capacity=32 * 400, min_size=32 * 32),
        learner=dict(batch_size=128, updates_per_iteration=8, learning_rate=1e-3),
        run=dict(total_env_steps=100_000, eval_every=0, solve_return=None, log_every=10),
    )
    if (game, mode) == ("tic_tac_toe", "muzero"):
        # The model has the game to learn as well: 4x the updates per ply, 8x the plies.
        base = base.replace(updates_per_iteration=32, total_env_steps=800_000)
    if game == "connect_four":
        # Half an hour of a 2-core CPU: a 3x3 conv stem as h (one-move tactics), outcomes
        # on their own atoms, and in MuZero mode a reward label for a move not played.
        base = base.replace(
            network=dict(kind="conv_mlp", hidden_size=256, latent_size=128,
                         representation_blocks=(0, 0, 0), support_squash="identity",
                         value_support_size=1, reward_support_size=1),
            acting=dict(exploration_epsilon=0.25, random_opening_plies=2),
            loss=dict(counterfactual_rewards=mode == "muzero"),
            replay=dict(capacity=100_000),
            learner=dict(updates_per_iteration=32), run=dict(total_env_steps=512_000))
    return for_env(base, overrides)


def _board_preset(game: str):
    def preset(**overrides) -> Config:
        return board(game, **overrides)

    preset.__name__ = game
    preset.__doc__ = (f"pgx/{game}, two players, MuZero mode (experiments/board.py --mode "
                      f"alphazero for AlphaZero); see `board`.")
    return preset


BOARD_PRESETS = {game: _board_preset(game) for game in BOARD_GAMES}

# --- games with chance (pgx; Stochastic MuZero) ---------------------------------------


def play_2048(**overrides) -> Config:
    """pgx/2048 with Stochastic MuZero, sized for an hour of a 2-core CPU (`--preset 2048`).

    One player; the reward is the step's merged tiles. After each slide a 2 (90%) or a
    4 lands on a random empty cell, up to 30 outcomes; 8 chance codes (the encoder
    settles on a handful whatever C is; on seed 0, 8 learned sooner than 32 or 4),
    searched by 24 stochastic simulations (each expands a decision or a chance node, so
    about 12 plies deep in all). Discount 0.999 and n = 10 as the paper's 2048. The
    model has to learn the slide before its search can prefer a move: h is a 3x3 conv
    stem over the 4x4 board, the reward loss weighs 4, and self-play labels one
    unplayed move's reward at every position (docs/stochastic.md has the comparisons).
    `--network.chance_outcomes 0 --search.policy muzero` is plain MuZero with everything
    else the same.
    """
    base = Config().replace(
        env=dict(id="pgx/2048"),
        acting=dict(num_envs=32, rollout_length=16),
        network=dict(kind="conv_mlp", resnet_channels=16, representation_blocks=(1, 0, 0),
                     hidden_size=128, latent_size=128, chance_outcomes=8,
                     value_support_size=200,  # h^-1(200) = 40,400
                     reward_support_size=80),  # h^-1(80) = 6,560: two 2048 merges and more
        search=dict(policy="stochastic", num_simulations=24),
        # No commitment term: with weight 1 the encoder settled on one code for every
        # observation within 100k env steps (chance loss 0.000 on seeds 0-2), so the
        # chance nodes carried nothing; docs/stochastic.md has the runs.
        loss=dict(discount=0.999, td_steps=10, unroll_steps=5, commitment_loss_weight=0.0,
                  reward_loss_weight=4.0, counterfactual_rewards=True),
        replay=dict(capacity=100_000, min_size=2_000),
        learner=dict(batch_size=128, updates_per_iteration=16, learning_rate=1e-3,
                     target_update_period=200),
        # 2M env steps took 39-45 minutes (seeds 0-2) on one core while another run held
        # the other; greedy evaluations are whole games of hundreds of searched moves, so few.
        run=dict(total_env_steps=2_000_000, eval_every=500, eval_episodes=8,
                 solve_return=None, log_every=10),
    )
    return for_env(base, overrides)


def play_2048_accelerator(**overrides) -> Config:
    """pgx/2048 with Stochastic MuZero for one GPU or TPU (`--preset 2048_accelerator`):
    `2048`'s settings with 256 envs, wider networks, 50 simulations and batch 1024."""
    base = play_2048().replace(
        acting=dict(num_envs=256, rollout_length=16),
        network=dict(hidden_size=256, latent_size=256, num_hidden_layers=3),
        search=dict(num_simulations=50),
        replay=dict(capacity=1_000_000, min_size=20_000),
        learner=dict(batch_size=1024, updates_per_iteration=8, learning_rate=1e-3),
        run=dict(total_env_steps=50_000_000, eval_every=50, eval_episodes=64),
    )
    return for_env(base, overrides)


def backgammon(**overrides) -> Config:
    """pgx/backgammon with Stochastic MuZero, for a CPU (`--preset backgammon`).

    Two players; values are game outcomes (+-1, 2 for a gammon, 3 for a backgammon,
    on their own atoms), searched with discount -1 at chance nodes, which follow each
    ply; 32 chance codes for the 21 rolls of two dice and the plies that roll none.
    Plies alternate: a turn's plies are separated by the other player's forced passes
    (`envs.pgx_env.PassingPgxEnv`).
    """
    base = Config().replace(
        env=dict(id="pgx/backgammon"),
        acting=dict(num_envs=32, rollout_length=16),
        network=dict(hidden_size=128, latent_size=128, chance_outcomes=32,
                     support_squash="identity", value_support_size=3, reward_support_size=3),
        search=dict(policy="stochastic", num_simulations=24, dirichlet_alpha=0.5),
        loss=dict(discount=1.0, td_steps=1, unroll_steps=5),
        replay=dict(capacity=100_000, min_size=2_000),
        learner=dict(batch_size=128, updates_per_iteration=16, learning_rate=1e-3),
        run=dict(total_env_steps=1_000_000, eval_every=0, solve_return=None, log_every=10),
    )
    return for_env(base, overrides)


STOCHASTIC_PRESETS = {"2048": play_2048, "2048_accelerator": play_2048_accelerator,
                      "backgammon": backgammon}

PRESETS = {"cartpole": cartpole, "classic": classic, "control": control,
           "sample_efficient": sample_efficient,
           "reanalyze": muzero_reanalyze, "minatar": minatar,
           "atari_tiny": atari_tiny, "atari_paper": atari_paper,
           **BOARD_PRESETS, **STOCHASTIC_PRESETS}


# --- an env's own solve return ------------------------------------------------------

# Early-stop bars: a margin over Gymnasium's reward_threshold (CartPole-v1 475, Acrobot-v1
# -100, MountainCar-v0 -110), since a periodic evaluation of 32 episodes can pass where the
# final one of 100 does not.
_SOLVE_RETURN = {"CartPole-v1": 490.0, "Acrobot-v1": -90.0, "MountainCar-v0": -100.0}

# The envs whose discount and budget the vector presets (cartpole, classic, control) were
# tuned on, by Gymnasium name (their jax/ and gymnax/ twins count too).
TUNED_ENVS = (*_SOLVE_RETURN, "Pendulum-v1")


def _gymnasium_name(env_id: str) -> str:
    return env_id.split("/", 1)[1] if env_id.startswith(("gymnax/", "jax/", "mjx/")) else env_id


def solve_return_for(env_id: str) -> float | None:
    """The early-stop bar for an env id: its own, never another env's. A margin over
    the reward_threshold for the envs of `_SOLVE_RETURN`, else the reward_threshold of
    its Gymnasium form (gymnax/, jax/ and mjx/ twins by name), else None (train the budget)."""
    name = _gymnasium_name(env_id)
    if name in _SOLVE_RETURN:
        return _SOLVE_RETURN[name]
    import gymnasium as gym

    if ":" in name:  # "module:EnvId": the module registers EnvId (gymnasium.make's form)
        module, name = name.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError:  # named as such when the env is made
            return None
    try:
        threshold = gym.spec(name).reward_threshold
    except (gym.error.Error, ValueError):  # not a Gymnasium id (a gymnax game, pgx, ...)
        return None
    return None if threshold is None else float(threshold)


def tuned_for(env_id: str) -> bool:
    """Whether the presets' discount was chosen for `env_id` (the envs of `TUNED_ENVS`,
    and the families with presets of their own: ALE/, pgx/, MinAtar); any other id takes
    the discount of its time limit (`envs.fit_to_env`)."""
    return (_gymnasium_name(env_id) in TUNED_ENVS or env_id.startswith(("ALE/", "pgx/"))
            or env_id.endswith("-MinAtar"))


def for_env(base: Config, overrides: dict) -> Config:
    """A preset's `base` with `overrides`; an env other than the preset's own gets its own
    solve return (`solve_return_for`), not the preset's, unless overrides give one."""
    config = base.replace(**overrides)
    run = overrides.get("run", {})
    # A whole RunConfig given in place of a dict gives its solve return too.
    given = "solve_return" in overrides or not isinstance(run, dict) or "solve_return" in run
    if config.env.id != base.env.id and not given:
        config = config.replace(solve_return=solve_return_for(config.env.id))
    return config
