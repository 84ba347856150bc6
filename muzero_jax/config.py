"""Configuration: one frozen dataclass, presets, and validation with clear errors.

Every field has the paper's default where the paper has one (SPEC.md) and a
comment saying what it means. Presets override a few fields with
`dataclasses.replace`; `validate` runs before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Literal

from muzero_jax import support


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


MODES = ("muzero", "alphazero")  # Config.mode: a learned model, or the real game in search


@dataclasses.dataclass(frozen=True)
class Config:
    # --- environment -------------------------------------------------------

    # jax/<name>, gymnax/<id>, ALE/<Game>-v5 or a gymnasium id (muzero_jax.envs: the rule
    # that maps an id to its env)
    env: str = "jax/CartPole-v1"
    max_episode_steps: int | None = None  # time limit (truncation); None: env's own
    max_abs_reward: float | None = None  # largest |reward| of a step; None: the env's, if known
    # gymnasium ids: envs in this process or in worker processes (gymnasium.make_vec)
    vector_mode: Literal["sync", "async"] = "sync"
    observation_shape: tuple[int, ...] | None = None  # None: take the env's; else checked
    num_envs: int = 16  # B: environments stepped in lock-step by self-play
    rollout_length: int = 50  # T: self-play steps per env per training iteration

    # --- networks: MLP sizes (for vector observations) ----------------------
    hidden_size: int = 64  # width of every MLP hidden layer (ResNet: of each head's)
    num_hidden_layers: int = 2  # hidden layers in each of h, g, f torsos
    latent_size: int = 64  # size of the hidden state s
    value_support_size: int = 300  # S: value atoms -S..S (paper: 300, 601 atoms)
    reward_support_size: int = 300  # S: reward atoms -S..S (paper: 300)
    # how scalars map onto both supports: "h", the paper's h(x) = sign(x)(sqrt(|x|+1)-1)
    # + 1e-3 x; "identity", the atoms are the values (outcomes in {-1, 0, 1}, S = 1: a win
    # is one atom, not h's 0.585 / 0.415 over a draw's and a win's)
    support_squash: Literal["h", "identity"] = "h"

    # --- networks: choice, and the ResNet for image observations ------------------
    # mlp: vector observations; resnet: images (downsampled, Atari); board: a ResNet that
    # keeps the board's size, for board games (muzero_jax.networks.BoardNetwork);
    # conv_mlp: board's h (resnet_channels, representation_blocks[0] blocks) into a flat
    # latent, MLP g and f (networks.ConvMLPNetwork: small boards on a CPU)
    network: Literal["mlp", "resnet", "board", "conv_mlp"] = "mlp"
    action_embedding_size: int = 16  # board: g sees the action as a learned embedding of this
    #   size broadcast over the board (chess's 4,672 one-hot planes would not scale)
    # channels of the hidden state and the towers on it (paper: 256); the first strided
    # conv of h has half as many (paper: 128)
    resnet_channels: int = 256
    # residual blocks of h after the first strided conv, after the second, after the
    # first average pool (paper: 2, 3, 3)
    representation_blocks: tuple[int, int, int] = (2, 3, 3)
    dynamics_blocks: int = 16  # residual blocks of g (paper: 16)
    prediction_blocks: int = 16  # residual blocks of f (paper: 16)
    # 1x1-conv channels in front of each head's dense layers (the heads' dense hidden
    # layer has hidden_size units)
    head_channels: int = 16

    # --- search (mctx) ---------------------------------------------------------
    # muzero: search the learned model (g, f); alphazero: search with the env's own step
    # (JAX envs; embedding = env state, illegal moves masked in the tree), learning only
    # h and f (unroll_steps must be 0)
    mode: Literal["muzero", "alphazero"] = "muzero"
    search: Literal["muzero", "gumbel"] = "muzero"  # mctx.muzero_policy or gumbel_muzero_policy
    num_simulations: int = 50  # paper: 50 Atari, 800 board games
    max_depth: int | None = None  # None: unbounded (num_simulations)
    pb_c_init: float = 1.25  # PUCT c1
    pb_c_base: float = 19652.0  # PUCT c2
    q_normalisation: Literal["tree_min_max", "parent_and_siblings"] = "tree_min_max"  # PUCT's
    #   Q in [0, 1]: min-max over the whole tree (paper) or over the node and its children
    #   (mctx's default)
    q_min_range: float = 1e-8  # the smallest max - min that the search's Q normalisation
    #   divides by (PUCT's min-max; Gumbel's rescaling of completed Q, in its choice of
    #   action and its policy target): Q differences smaller than it are not stretched to
    #   the whole of [0, 1] (EfficientZero floors it at 0.01); 1e-8 is mctx's and the
    #   paper's (none)
    # PUCT's ties between equal scores: "noise", mctx's selection (1e-7 * U(0, 1) added to
    #   every child's score, threefry random numbers for every tree at every step of every
    #   simulation: on a CPU most of a small search's cost); "index", the same score with
    #   ties to the lowest action index (no random numbers: Acrobot's 50-simulation search
    #   at batch 16 on a CPU, 7.0 ms a call instead of 9.6)
    tie_break: Literal["noise", "index"] = "noise"
    dirichlet_alpha: float = 0.25  # paper: 0.25 Atari, 0.3 chess, 0.03 Go
    dirichlet_fraction: float = 0.25  # root exploration noise share (muzero search)
    max_num_considered_actions: int = 16  # Gumbel: actions sampled at the root
    gumbel_scale: float = 1.0  # Gumbel: noise scale while training (0 at evaluation)
    temperature: float = 1.0  # visit-count temperature while training (muzero search)
    # acting temperature by training progress (env steps / total_env_steps): pairs
    # (progress threshold, temperature), thresholds increasing in (0, 1]; from each
    # threshold on, its temperature replaces `temperature`; () = off. Paper (Atari):
    # ((0.5, 0.5), (0.75, 0.25)), on the command line 0.5 0.5 0.75 0.25. Gumbel search
    # scales gumbel_scale by that temperature over `temperature`: argmax(logits + T
    # gumbel) ~ softmax(logits / T).
    temperature_schedule: tuple[tuple[float, float], ...] = ()
    # root noise share by training progress, likewise: pairs (progress threshold,
    # dirichlet_fraction), thresholds increasing in (0, 1]; () = `dirichlet_fraction`
    # throughout, as the paper. E.g. less noise once the prior has formed; on the
    # reanalyze preset it did not solve more seeds (README, "Issue 11", stop 25).
    dirichlet_schedule: tuple[tuple[float, float], ...] = ()
    # board games: act by the temperature for the first N moves of a game, then play the
    # most visited move (AlphaZero: 30 for chess and Go); None: the temperature throughout
    sample_moves: int | None = None
    exploration_repeat_probability: float = 0.0  # chance self-play repeats its last action
    #   instead of the search's while training: temporally extended exploration (runs of
    #   mean length 1 / (1 - p)); 0: off, as in the paper. temperature_schedule scales it
    #   down with the temperature.
    exploration_epsilon: float = 0.0  # chance a training step not repeated plays a random
    #   legal action instead of the search's (with repeats: runs of random actions, even
    #   once the search has settled on one); 0: off, as in the paper; scheduled likewise
    # the first N plies of every self-play game are uniformly random legal moves (JAX
    #   envs; never at evaluation): openings the agent's own play would not reach, with
    #   the rest of each game, and so its outcome, played by the search; 0: off
    random_opening_plies: int = 0
    # two-player JAX envs: the share of self-play games (the first round(share *
    #   num_envs) envs of the batch, first player in even ones, second in odd ones) in
    #   which one side is an opportunist instead of the search: it takes a win whenever
    #   a move wins at once, else plays a uniformly random legal move. Replay then holds
    #   the threats a weak player leaves, and the loss that follows when one is not
    #   blocked (README, "Board games"); never at evaluation; 0: off (self-play only)
    opportunist_games: float = 0.0
    # JAX envs, MuZero mode: self-play also tries one move it did not play at every
    #   position with the env's own step (a legal move whose reward differs from the
    #   played one's where there is one: a win not taken, a loss avoided), and replay
    #   keeps it with its reward; the learner adds a reward loss for it on g from each
    #   unrolled state (one more g per step, no f). The reward head then learns the
    #   wins its own play misses, which the search needs to find and block them
    #   (README, "Board games"); False: only the played moves' rewards, as the paper
    counterfactual_rewards: bool = False
    # board games: each learner sample seen under one of the board's symmetries, drawn
    # uniformly (EnvSpec.symmetries; muzero_jax.symmetry): AlphaGo Zero's augmentation,
    # off in the MuZero paper and AlphaZero
    augment_symmetries: bool = False

    # --- targets and loss --------------------------------------------------------
    discount: float = 0.997  # gamma
    td_steps: int = 10  # n in the n-step value target
    unroll_steps: int = 5  # K in the K-step unroll
    value_loss_weight: float = 1.0  # paper 1.0; 0.25 with Reanalyze
    reward_loss_weight: float = 1.0  # paper 1.0; more where rewards are rare (board games)
    weight_decay: float = 1e-4  # c in c * ||theta||^2, added to the loss

    # --- replay ----------------------------------------------------------------
    replay_capacity: int = 100_000  # positions held, over all envs (rounded to B)
    min_replay_size: int = 1_000  # positions collected before the first update

    # --- prioritised replay, Reanalyze, target network (SPEC.md) -------------------
    priority_alpha: float = 0.0  # P(i) ~ p_i^alpha; 0: uniform sampling (paper: 1)
    priority_beta: float = 1.0  # importance weight (N P(i))^-beta, normalised by the max
    priority_beta_anneal_steps: int = 0  # learner steps to anneal beta linearly to 1; 0: fixed
    priority_epsilon: float = 1e-3  # added to |v - z| so no position's priority is 0
    reanalyze_fraction: float = 0.0  # share of each batch given fresh targets (0: off)
    reanalyze_policy_fraction: float = 0.8  # of those, the share with fresh search policies
    target_update_period: int = 0  # copy params to the target network every N steps; 0: off
    target_ema: float = 0.0  # > 0: target <- ema target + (1 - ema) params every step instead

    # --- optimisation ------------------------------------------------------------
    batch_size: int = 256  # windows per update (paper: 1024 Atari)
    updates_per_iteration: int = 50  # learner steps after each self-play rollout
    # host envs: run each iteration's learner steps on a worker thread beside the next
    # rollout, whose searches then act with the parameters from before that update (one
    # iteration behind, as the paper's actors act with a recent network): on a CPU the
    # learner and the search each keep a core busy. False: strictly in turn. JAX envs
    # run one program in turn either way.
    act_while_learning: bool = False
    optimizer: Literal["adam", "sgd"] = "adam"  # paper: SGD with momentum
    learning_rate: float = 3e-3  # peak learning rate
    lr_warmup_steps: int = 0  # linear warm-up from 0 to the peak
    lr_decay_steps: int | None = None  # steps of the decay (see lr_decay); None: constant
    lr_decay: Literal["cosine", "exponential"] = "cosine"  # cosine: to lr_end_fraction of
    #   the peak at lr_decay_steps, then flat; exponential: peak * lr_end_fraction **
    #   (step / lr_decay_steps), the paper's (Atari: 0.05 * 0.1 ** (step / 350k))
    lr_end_fraction: float = 0.1  # lr as a share of the peak after lr_decay_steps
    momentum: float = 0.9  # SGD momentum
    max_grad_norm: float | None = 5.0  # global-norm clipping; None: off

    # --- Atari (ALE/<Game>-v5 ids; muzero_jax.envs.atari) ----------------------------
    frame_size: tuple[int, int] = (96, 96)  # (height, width) of a preprocessed frame
    grayscale: bool = False  # paper: RGB; grayscale is the cheaper DQN-style choice
    # H: the last H frames and H actions stacked as planes (paper: 32); 0: the
    # observation alone (vector envs); stored as single frames in replay
    history_length: int = 0
    frame_skip: int = 4  # emulator frames per agent step, max-pooled over the last two (v5: 4)
    # chance an env step repeats the previous action instead of the agent's (the agent's
    #   is what replay stores); None: the env's own definition, ALE v5's 0.25 and
    #   MinAtar's 0.1 (gymnax's MinAtar ports leave it out; we put it back), 0 elsewhere.
    #   Only ALE and gymnax envs repeat actions.
    sticky_action_probability: float | None = None
    full_action_space: bool = False  # all 18 actions, or the game's minimal set (v5: False)
    noop_max: int = 0  # up to this many no-ops after a reset (v5: 0; DQN papers: 30)
    terminal_on_life_loss: bool = False  # end episodes at a lost life (v5: False)

    # --- the run ------------------------------------------------------------------
    seed: int = 0  # PRNG seed: parameters, self-play, replay sampling, evaluation
    # data-parallel devices (muzero_jax.distributed): envs, search, replay streams and
    # each batch split over them, parameters replicated; num_envs and batch_size are
    # totals and must divide by it. 1: one device, as without a mesh; 0: every device
    # the processes see (jax.device_count())
    num_devices: int = 1
    total_env_steps: int = 200_000  # stop after this many env steps
    eval_every: int = 10  # iterations between greedy evaluations (0: never)
    eval_episodes: int = 32  # episodes per periodic (JAX env) evaluation
    # stop when an evaluation reaches it and a confirming evaluation (final_eval_episodes
    #   on the final evaluation's env) does too; None: train the whole budget
    solve_return: float | None = 475.0
    final_eval_episodes: int = 100  # episodes on the Gymnasium env at the end
    log_every: int = 5  # iterations between progress lines
    # several runs in one program (seeds, a sweep): "map" steps them one after another
    # inside the compiled iteration and skips those that are done (on a CPU, where the
    # learner is compute-bound and a vmap buys nothing); "vmap" steps them side by side
    # (accelerators); "auto": map on CPU, vmap elsewhere
    run_layout: Literal["auto", "map", "vmap"] = "auto"

    # --- checkpoints (when train is given a run directory) ------------------------
    checkpoint_every: int = 1_000  # updates between checkpoints (0: only at the end)
    checkpoint_keep: int = 3  # most recent checkpoints kept on disk
    checkpoint_replay: bool | None = None  # save the replay buffer; None: if under 1 GiB

    @property
    def window_length(self) -> int:
        """Positions a replay window spans: K + 1 unrolled plus n for bootstrapping."""
        return self.unroll_steps + self.td_steps + 1

    @property
    def use_target_network(self) -> bool:
        """Whether bootstrap values come from a (lagging) target network's value."""
        return self.target_update_period > 0 or self.target_ema > 0

    @property
    def num_reanalyzed(self) -> int:
        """Windows of each batch given fresh bootstrap values by Reanalyze."""
        return int(round(self.reanalyze_fraction * self.batch_size))

    @property
    def num_reanalyzed_policies(self) -> int:
        """Of those, windows whose policy targets come from a fresh search."""
        return int(round(self.reanalyze_policy_fraction * self.num_reanalyzed))

    @property
    def samples_per_state(self) -> float:
        """Replay ratio: windows trained on per env step collected (paper: 0.1; Reanalyze 2.0)."""
        return (self.batch_size * self.updates_per_iteration
                / (self.num_envs * self.rollout_length))

    @property
    def replay_length(self) -> int:
        """Steps held per environment stream."""
        return max(self.replay_capacity // self.num_envs, 1)


def _positive(cfg: Config, name: str) -> None:
    value = getattr(cfg, name)
    if not (isinstance(value, int) and not isinstance(value, bool)) or value < 1:
        raise ConfigError(f"{name}={value!r}: expected an integer >= 1")


@functools.cache
def _field_types() -> dict[str, object]:
    return typing.get_type_hints(Config)


def _type_fault(value, hint) -> tuple[str, object] | None:
    """(what was expected, the offending value) where `value` does not fit the field type
    `hint`, else None. Numbers, booleans and strings are checked, in tuples item by item;
    a tuple of the wrong shape is left to the field's own check (its message says what
    the items mean), as are Literal choices."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        faults = [_type_fault(value, a) for a in args if a is not type(None)]
        return None if None in faults else faults[0]
    if hint is bool:
        return None if isinstance(value, bool) else ("true or false", value)
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return None
        return "an integer", value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "a number", value
        # inf and nan pass comparisons such as `not value > 0` or `value < 0`, and
        # a run trained on them logs loss nan to the end of its budget.
        try:
            return None if math.isfinite(value) else ("a finite number", value)
        except OverflowError:  # an int beyond any float
            return "a finite number", value
    if hint is str:
        return None if isinstance(value, str) else ("a string", value)
    if origin is tuple and isinstance(value, (tuple, list)):
        if len(args) == 2 and args[1] is Ellipsis:
            items = [args[0]] * len(value)
        elif len(args) == len(value):
            items = list(args)
        else:
            return None
        for item, item_hint in zip(value, items, strict=True):
            fault = _type_fault(item, item_hint)
            if fault is not None:
                return fault
    return None


def validate_types(cfg: Config) -> None:
    """Raises `ConfigError` for a field whose value is not of its declared type: an int
    field given a float (config.json can hold 16.0), a float field given inf or nan, a
    bool field given 0 or 1. Every field, nested tuples included."""
    for field in dataclasses.fields(Config):
        value = getattr(cfg, field.name)
        fault = _type_fault(value, _field_types()[field.name])
        if fault is None:
            continue
        expected, offending = fault
        if offending is value:
            raise ConfigError(f"{field.name}={value!r}: expected {expected}")
        raise ConfigError(f"{field.name}={value!r}: {offending!r} is not {expected}")


def validate(cfg: Config, *, max_abs_reward: float | None = None,
             observation_shape: tuple[int, ...] | None = None,
             num_actions: int | None = None) -> Config:
    """Checks `cfg` (and its fit to an environment), raising `ConfigError`.

    Args:
      cfg: the configuration.
      max_abs_reward: the environment's largest |reward| per step, if known; the
        value support must then hold max_abs_reward / (1 - discount) and the
        reward support max_abs_reward.
      observation_shape: the environment's observation shape, if known.
      num_actions: the environment's number of actions, if known.

    Returns:
      `cfg` unchanged, so that calls can be chained.
    """
    validate_types(cfg)
    for name in ("num_envs", "rollout_length", "hidden_size", "num_hidden_layers",
                 "latent_size", "value_support_size", "reward_support_size",
                 "num_simulations", "td_steps", "replay_capacity",
                 "batch_size", "updates_per_iteration", "max_num_considered_actions",
                 "eval_episodes", "final_eval_episodes", "log_every", "checkpoint_keep"):
        _positive(cfg, name)
    if cfg.network not in ("mlp", "resnet", "board", "conv_mlp"):
        raise ConfigError(f"network={cfg.network!r}: expected 'mlp', 'resnet', 'board' or "
                          "'conv_mlp'")
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode!r}: expected 'muzero' or 'alphazero'")
    if cfg.mode == "alphazero":
        if cfg.unroll_steps != 0:
            raise ConfigError(f"unroll_steps={cfg.unroll_steps!r}: mode='alphazero' searches "
                              "with the env's own step and learns no dynamics; expected 0")
        if cfg.reanalyze_fraction > 0:
            raise ConfigError(f"reanalyze_fraction={cfg.reanalyze_fraction!r}: mode="
                              "'alphazero' searches env states, which replay does not keep; "
                              "expected 0")
        if cfg.counterfactual_rewards:
            raise ConfigError("counterfactual_rewards=True: mode='alphazero' learns no "
                              "dynamics, so no reward to label; expected False")
    elif not (isinstance(cfg.unroll_steps, int) and cfg.unroll_steps >= 1):
        raise ConfigError(f"unroll_steps={cfg.unroll_steps!r}: expected an integer >= 1 "
                          "(0 only with mode='alphazero')")
    if cfg.sample_moves is not None and cfg.sample_moves < 0:
        raise ConfigError(f"sample_moves={cfg.sample_moves!r}: expected an integer >= 0 or "
                          "None")
    if cfg.network == "board":
        for name in ("resnet_channels", "head_channels", "action_embedding_size"):
            _positive(cfg, name)
    if cfg.network == "conv_mlp":
        _positive(cfg, "resnet_channels")
        if not (isinstance(cfg.representation_blocks[0], int)
                and cfg.representation_blocks[0] >= 0):
            raise ConfigError(f"representation_blocks={cfg.representation_blocks!r}: "
                              "conv_mlp uses the first, expected an integer >= 0")
    if cfg.network == "resnet":
        for name in ("resnet_channels", "head_channels"):
            _positive(cfg, name)
        for name in ("dynamics_blocks", "prediction_blocks"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"{name}={getattr(cfg, name)!r}: expected an integer >= 0")
        if cfg.resnet_channels < 2:
            raise ConfigError(f"resnet_channels={cfg.resnet_channels!r}: expected >= 2 (the "
                              f"first strided conv has half as many)")
        blocks = cfg.representation_blocks
        if len(blocks) != 3 or any(not isinstance(b, int) or b < 0 for b in blocks):
            raise ConfigError(f"representation_blocks={blocks!r}: expected three integers >= 0")
    if (len(cfg.frame_size) != 2
            or any(not isinstance(x, int) or isinstance(x, bool) or x < 1
                   for x in cfg.frame_size)):
        raise ConfigError(f"frame_size={cfg.frame_size!r}: expected (height, width), two "
                          f"integers >= 1")
    if cfg.history_length < 0:
        raise ConfigError(f"history_length={cfg.history_length!r}: expected an integer >= 0")
    if (cfg.sticky_action_probability is not None
            and not 0.0 <= cfg.sticky_action_probability <= 1.0):
        raise ConfigError(f"sticky_action_probability={cfg.sticky_action_probability!r}: "
                          f"expected a value in [0, 1]")
    _positive(cfg, "frame_skip")
    if cfg.noop_max < 0:
        raise ConfigError(f"noop_max={cfg.noop_max!r}: expected an integer >= 0")
    if cfg.vector_mode not in ("sync", "async"):
        raise ConfigError(f"vector_mode={cfg.vector_mode!r}: expected 'sync' or 'async'")
    if cfg.max_abs_reward is not None and not cfg.max_abs_reward > 0:
        raise ConfigError(f"max_abs_reward={cfg.max_abs_reward!r}: expected a value > 0 or "
                          "None")
    if cfg.search not in ("muzero", "gumbel"):
        raise ConfigError(f"search={cfg.search!r}: expected 'muzero' or 'gumbel'")
    if cfg.support_squash not in support.SQUASHES:
        raise ConfigError(f"support_squash={cfg.support_squash!r}: expected one of "
                          f"{support.SQUASHES}")
    if cfg.q_normalisation not in ("tree_min_max", "parent_and_siblings"):
        raise ConfigError(f"q_normalisation={cfg.q_normalisation!r}: expected "
                          "'tree_min_max' or 'parent_and_siblings'")
    if cfg.tie_break not in ("noise", "index"):
        raise ConfigError(f"tie_break={cfg.tie_break!r}: expected 'noise' or 'index'")
    if cfg.run_layout not in ("auto", "map", "vmap"):
        raise ConfigError(f"run_layout={cfg.run_layout!r}: expected 'auto', 'map' or 'vmap'")
    if cfg.lr_decay not in ("cosine", "exponential"):
        raise ConfigError(f"lr_decay={cfg.lr_decay!r}: expected 'cosine' or 'exponential'")
    if cfg.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"optimizer={cfg.optimizer!r}: expected 'adam' or 'sgd'")
    if not 0.0 < cfg.discount <= 1.0:
        raise ConfigError(f"discount={cfg.discount!r}: expected 0 < discount <= 1")
    if not 0.0 <= cfg.exploration_repeat_probability < 1.0:
        raise ConfigError(
            f"exploration_repeat_probability={cfg.exploration_repeat_probability!r}: "
            "expected a value in [0, 1) (1 would never act on the search)")
    for name in ("dirichlet_fraction", "lr_end_fraction", "priority_beta", "exploration_epsilon",
                 "reanalyze_fraction", "reanalyze_policy_fraction", "opportunist_games"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}={value!r}: expected a value in [0, 1]")
    for name in ("learning_rate", "dirichlet_alpha", "pb_c_init", "pb_c_base", "q_min_range"):
        value = getattr(cfg, name)
        if not value > 0:
            raise ConfigError(f"{name}={value!r}: expected a value > 0")
    for name in ("weight_decay", "temperature", "gumbel_scale", "value_loss_weight",
                 "reward_loss_weight",
                 "random_opening_plies", "min_replay_size", "eval_every", "lr_warmup_steps",
                 "total_env_steps", "checkpoint_every", "priority_alpha",
                 "priority_beta_anneal_steps", "target_update_period"):
        value = getattr(cfg, name)
        if value < 0:
            raise ConfigError(f"{name}={value!r}: expected a value >= 0")
    if not cfg.priority_epsilon > 0:
        raise ConfigError(f"priority_epsilon={cfg.priority_epsilon!r}: expected a value > 0 "
                          "(a zero priority would never be sampled again)")
    if not 0.0 <= cfg.target_ema < 1.0:
        raise ConfigError(f"target_ema={cfg.target_ema!r}: expected a value in [0, 1)")
    if cfg.target_ema > 0 and cfg.target_update_period > 0:
        raise ConfigError(
            f"target_update_period={cfg.target_update_period} and target_ema="
            f"{cfg.target_ema}: expected one way to update the target network (set the "
            "other to 0)")
    _validate_schedule("temperature_schedule", cfg.temperature_schedule, "temperature",
                       upper=None)
    _validate_schedule("dirichlet_schedule", cfg.dirichlet_schedule, "dirichlet_fraction",
                       upper=1.0)
    if cfg.num_devices < 0:
        raise ConfigError(f"num_devices={cfg.num_devices!r}: expected an integer >= 0 "
                          "(0: every device)")
    if cfg.num_devices > 1:
        validate_divisible(cfg, cfg.num_devices)
    if cfg.max_grad_norm is not None and not cfg.max_grad_norm > 0:
        raise ConfigError(f"max_grad_norm={cfg.max_grad_norm!r}: expected > 0 or None")
    if cfg.max_depth is not None and cfg.max_depth < 1:
        raise ConfigError(f"max_depth={cfg.max_depth!r}: expected an integer >= 1 or None")
    if cfg.max_episode_steps is not None and cfg.max_episode_steps < 1:
        raise ConfigError(
            f"max_episode_steps={cfg.max_episode_steps!r}: expected an integer >= 1 or None")
    if cfg.lr_decay_steps is not None and cfg.lr_decay_steps < 1:
        raise ConfigError(f"lr_decay_steps={cfg.lr_decay_steps!r}: expected >= 1 or None")
    # A window needs W positions, plus the H - 1 before it for its history.
    needed = cfg.window_length + max(cfg.history_length, 1)
    if cfg.replay_length < needed:
        raise ConfigError(
            f"replay_capacity={cfg.replay_capacity}: holds {cfg.replay_length} steps per "
            f"env over num_envs={cfg.num_envs}; expected at least unroll_steps + "
            f"td_steps + max(history_length, 1) + 1 = {needed} per env, i.e. "
            f"replay_capacity >= {needed * cfg.num_envs}")
    if max_abs_reward is not None:
        reward_needed, value_needed = support.sizes_for(max_abs_reward, cfg.discount,
                                                        cfg.support_squash)
        reward_max = support.max_scalar(cfg.reward_support_size, squash=cfg.support_squash)
        if reward_max < max_abs_reward:
            raise ConfigError(
                f"reward_support_size={cfg.reward_support_size}: represents |reward| <= "
                f"{reward_max:.3g}, but the env's rewards reach {max_abs_reward:g}; expected "
                f"reward_support_size >= {reward_needed}")
        if cfg.discount < 1.0:
            value_bound = max_abs_reward / (1.0 - cfg.discount)
            value_max = support.max_scalar(cfg.value_support_size,
                                           squash=cfg.support_squash)
            if value_max < value_bound:
                raise ConfigError(
                    f"value_support_size={cfg.value_support_size}: represents |value| <= "
                    f"{value_max:.4g}, but returns reach max_abs_reward / (1 - discount) = "
                    f"{max_abs_reward:g} / (1 - {cfg.discount}) = {value_bound:.4g}; expected "
                    f"value_support_size >= {value_needed}")
    if observation_shape is not None and cfg.observation_shape is not None:
        if tuple(cfg.observation_shape) != tuple(observation_shape):
            raise ConfigError(
                f"observation_shape={tuple(cfg.observation_shape)}: the env {cfg.env!r} "
                f"observes shape {tuple(observation_shape)}; expected that shape (or None)")
    if (observation_shape is not None and cfg.network in ("resnet", "board", "conv_mlp")
            and len(observation_shape) != 3):
        raise ConfigError(
            f"network={cfg.network!r}: the env {cfg.env!r} observes shape "
            f"{tuple(observation_shape)}; expected images (height, width, channels), or "
            "network='mlp'")
    if num_actions is not None and cfg.search == "gumbel" and num_actions < 2:
        raise ConfigError(f"env {cfg.env!r} has {num_actions} action(s); expected >= 2")
    return cfg


def validate_divisible(cfg: Config, num_devices: int) -> None:
    """Raises `ConfigError` unless num_envs and batch_size (totals) divide by `num_devices`."""
    for name in ("num_envs", "batch_size"):
        value = getattr(cfg, name)
        if value % num_devices:
            below = value // num_devices * num_devices
            nearest = [v for v in (below, below + num_devices) if v > 0]
            raise ConfigError(
                f"{name}={value}: a total split over num_devices={num_devices} devices; "
                f"expected a multiple of {num_devices}, e.g. "
                f"{' or '.join(map(str, nearest))}")


def first_update_iteration(cfg: Config) -> int:
    """The training iteration (one rollout of num_envs * rollout_length env steps) after
    which replay is first ready to learn (`agent.Agent.ready_to_learn`): it holds
    min_replay_size positions over all envs and a whole window in each env's stream.

    Until the streams wrap, a stream of c positions offers c - W + 1 window starts
    (W = window_length; frame histories reach back only into positions held), and once
    they wrap `validate` has made room for one; so the first ready iteration is the
    first with c >= W and c * num_envs >= min_replay_size, c = iteration * rollout_length.
    """
    by_size = -(-cfg.min_replay_size // (cfg.num_envs * cfg.rollout_length))
    by_window = -(-cfg.window_length // cfg.rollout_length)
    return max(by_size, by_window, 1)


def validate_budget(cfg: Config) -> Config:
    """Raises `ConfigError` unless total_env_steps lets training make at least one update.

    Training runs iterations while fewer than total_env_steps env steps are done, and
    updates only once replay is ready (`first_update_iteration`); a budget that ends
    before would train nothing and report an untrained agent. Returns `cfg`.
    """
    iteration = first_update_iteration(cfg)
    per_iteration = cfg.num_envs * cfg.rollout_length
    least = (iteration - 1) * per_iteration + 1
    if cfg.total_env_steps < least:
        raise ConfigError(
            f"total_env_steps={cfg.total_env_steps}: makes no update; the first comes in "
            f"iteration {iteration} (of num_envs * rollout_length = {per_iteration} env "
            f"steps each), once replay holds min_replay_size={cfg.min_replay_size} positions and "
            f"a window of {cfg.window_length} steps per env; expected total_env_steps >= "
            f"{least} (or a smaller min_replay_size)")
    return cfg


def to_dict(cfg: Config) -> dict:
    """The config as a JSON-ready dict (run directories keep it as config.json)."""
    return dataclasses.asdict(cfg)


def from_dict(values: dict) -> Config:
    """Rebuilds a `Config` from `to_dict`'s output (JSON lists become tuples).

    Fields missing from `values` take their defaults; unknown names raise `ConfigError`.
    """
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; expected names among "
                          f"{sorted(known)}")
    def as_tuples(v):
        return tuple(as_tuples(x) for x in v) if isinstance(v, list) else v

    return Config(**{k: as_tuples(v) for k, v in values.items()})


def _validate_schedule(name: str, schedule, value_name: str, upper: float | None) -> None:
    """A (progress threshold, value) schedule: thresholds increasing in (0, 1], values
    >= 0 (and <= `upper` where given)."""
    previous = 0.0
    for entry in schedule:
        try:
            threshold, value = entry
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}={schedule!r}: entry {entry!r} is not a pair; expected pairs "
                f"(progress threshold, {value_name}), e.g. ((0.5, 0.5), (0.75, 0.25))"
            ) from None
        if not previous < threshold <= 1.0:
            raise ConfigError(
                f"{name}={schedule!r}: threshold {threshold!r}; expected "
                f"thresholds increasing in (0, 1] (this one must exceed {previous})")
        if not (value >= 0 and (upper is None or value <= upper)):
            expected = "a value >= 0" if upper is None else f"a value in [0, {upper}]"
            raise ConfigError(f"{name}={schedule!r}: {value_name} {value!r}; expected "
                              f"{expected}")
        previous = threshold


def cartpole(**overrides) -> Config:
    """CartPole-v1 preset: small MLP, Gumbel search, supports sized for the returns.

    Chosen by sweeps on 2 CPU cores (see the closing notes of issue 2): many small
    iterations (16 envs x 25 steps, then 25 updates) beat few large ones, and
    50-step value targets carry the cost of a slowly drifting cart back far
    enough for the agent to see it. Issue 4's ablation (benchmarks/ablation.py)
    added a target network copied every 100 learner steps: over seeds 0-4 it
    stopped at 14k-24k env steps (median 20k) where uniform replay with stored
    search values took 12k-54k (median 32k); prioritised replay and Reanalyze
    did not pay for themselves at this replay ratio.
    """
    base = Config(
        env="jax/CartPole-v1",
        num_envs=16,
        rollout_length=25,
        hidden_size=64,
        latent_size=64,
        value_support_size=20,  # h^-1(20) = 483 > 1 / (1 - 0.997) = 333
        reward_support_size=2,
        search="gumbel",
        num_simulations=16,
        discount=0.997,
        td_steps=50,
        unroll_steps=5,
        replay_capacity=50_000,
        min_replay_size=1_600,
        batch_size=256,
        updates_per_iteration=25,
        optimizer="adam",
        learning_rate=1e-3,
        target_update_period=100,
        total_env_steps=250_000,
        eval_every=5,
        eval_episodes=32,
        solve_return=490.0,  # a margin over 475 for the 100-episode check at the end
    )
    return for_env(base, overrides)


def atari_paper(**overrides) -> Config:
    """Atari as in the paper (SPEC.md, Appendices B, E-G), for a GPU or TPU; Breakout by default.

    96x96 RGB frames, 32 frames and 32 actions of history, the paper's ResNet
    (6x6x256 hidden state, a 16-block dynamics tower, prediction heads without a
    tower), 50 PUCT simulations with tree-wide min-max Q normalisation, n = 10,
    K = 5, 601-atom supports, prioritised replay with alpha = beta = 1, batch
    1024 at 0.1 samples per state, SGD with momentum 0.9 at lr 0.05 decayed by
    0.1 every 350k steps (the pseudocode's schedule), L2 1e-4, 27,000-step
    episodes, no reward clipping. What cannot be the paper's on one accelerator,
    and what the paper leaves open, is listed in the README ("atari_paper
    against the paper").
    """
    base = Config(
        env="ALE/Breakout-v5",
        sticky_action_probability=0.25,  # v5's (README: "atari_paper against the paper")
        max_episode_steps=27_000,
        num_envs=128,
        rollout_length=80,  # 128 x 80 = 10,240 env steps per update: 0.1 samples per state
        network="resnet",
        resnet_channels=256,
        representation_blocks=(2, 3, 3),
        dynamics_blocks=16,
        prediction_blocks=0,  # "the same architecture as AlphaZero": conv and dense heads
        head_channels=16,
        hidden_size=256,
        value_support_size=300,
        reward_support_size=300,
        search="muzero",
        num_simulations=50,
        dirichlet_alpha=0.25,
        dirichlet_fraction=0.25,
        # T = 1, then 0.5 and 0.25 after 500k and 750k of 1M updates; updates are
        # proportional to env steps here, so progress by env steps is the same.
        temperature_schedule=((0.5, 0.5), (0.75, 0.25)),
        discount=0.997,
        td_steps=10,
        unroll_steps=5,
        replay_capacity=1_000_000,
        min_replay_size=50_000,
        priority_alpha=1.0,
        priority_beta=1.0,
        batch_size=1024,
        updates_per_iteration=1,
        optimizer="sgd",
        learning_rate=0.05,
        momentum=0.9,
        lr_decay="exponential",
        lr_decay_steps=350_000,
        lr_end_fraction=0.1,
        weight_decay=1e-4,
        max_grad_norm=None,
        frame_size=(96, 96),
        grayscale=False,
        history_length=32,
        total_env_steps=1_000_000 * 10_240,  # 1M updates, as the paper
        eval_every=100,
        eval_episodes=8,
        solve_return=None,
        final_eval_episodes=32,
        log_every=10,
    )
    return for_env(base, overrides)


def atari_tiny(**overrides) -> Config:
    """Atari small enough for a CPU smoke run: the same pipeline, scaled down.

    84x84 grayscale frames, 4 frames and actions of history, a ResNet of 16
    channels with one block per stage (still 6x6 hidden states), 8 Gumbel
    simulations, episodes cut at 1,000 steps (so that a greedy evaluation of an
    untrained agent, which may never press FIRE, ends in seconds).
    """
    base = atari_paper(
        max_episode_steps=1_000,
        num_envs=8,
        rollout_length=25,
        resnet_channels=16,
        representation_blocks=(1, 1, 1),
        dynamics_blocks=1,
        prediction_blocks=1,
        head_channels=4,
        hidden_size=32,
        search="gumbel",
        num_simulations=8,
        max_num_considered_actions=4,
        td_steps=5,
        unroll_steps=3,
        replay_capacity=8 * 1_000,
        min_replay_size=400,
        batch_size=32,
        updates_per_iteration=4,
        optimizer="adam",
        learning_rate=1e-3,
        lr_decay_steps=None,
        max_grad_norm=5.0,
        frame_size=(84, 84),
        grayscale=True,
        history_length=4,
        total_env_steps=2_000,
        eval_every=0,
        eval_episodes=4,
        final_eval_episodes=4,
        log_every=5,
    )
    return for_env(base, overrides)


def sample_efficient(**overrides) -> Config:
    """CartPole-v1 with fewer env steps per update: many updates per step, partial Reanalyze.

    Wall time matters less here than env steps: each iteration collects 200 steps
    and trains 100 batches of 256 on them (128 samples per state), with prioritised
    replay and a quarter of every batch given fresh values (latest parameters, no
    target network) and, for 80% of that quarter, fresh search policies. Not the
    paper's MuZero Reanalyze: that is `muzero_reanalyze`. Issue 11's measurements
    (README): CartPole here is bounded by learner steps, not data, so twice the
    updates per env step (50 -> 100) and learning from 400 positions instead of
    800 moved the greedy evaluations at 2,000 env steps from 17-176 to 175-366
    (seeds 0-4); Gumbel noise at half scale while acting lengthens self-play
    episodes enough to show the drifting cart (seeds 0-2 had plateaued below 475);
    evaluating every iteration finds the first solving evaluation up to an iteration
    sooner without changing training.
    """
    base = cartpole(
        num_envs=8,
        rollout_length=25,
        min_replay_size=400,
        updates_per_iteration=100,
        priority_alpha=1.0,
        priority_beta=0.4,
        priority_beta_anneal_steps=2_000,
        reanalyze_fraction=0.25,
        reanalyze_policy_fraction=0.8,
        target_update_period=0,  # measured without; Reanalyze's fresh values suffice
        gumbel_scale=0.5,  # less acting noise: longer self-play episodes (README, issue 11)
        eval_every=1,
        total_env_steps=30_000,
    )
    return for_env(base, overrides)


def muzero_reanalyze(**overrides) -> Config:
    """MuZero Reanalyze (paper, Appendix H; SPEC.md) on CartPole-v1: `--preset reanalyze`.

    As the paper changes MuZero: every value target bootstraps from the target
    network's fresh value (every window, time limits included), 80% of every
    batch trains on fresh search policies (latest parameters), value loss weight
    0.25, n = 5. Not the paper's (README, "Issue 11", stop 28): Gumbel search with
    completed-Q differences under one step's reward not stretched to [0, 1]
    (`q_min_range` 1.0: with two actions mctx's min-max rescaling otherwise makes
    every Q gap 0 against 1, and the policy target one-hot on noise); the target
    network as an average of recent parameters (`target_ema` 0.95, about the last
    20 updates) instead of a copy every 100; 128 samples per state instead of 2.0
    (a 6,000-step budget on CartPole needs a thousand or more updates). Together
    these solved seeds 0-4 within 3,000-5,400 env steps where the paper's PUCT
    with a copied target solved one or two of five within 6,000.
    """
    base = cartpole(
        num_envs=8,
        rollout_length=25,
        min_replay_size=800,
        search="gumbel",
        q_min_range=1.0,
        td_steps=5,
        value_loss_weight=0.25,
        reanalyze_fraction=1.0,
        reanalyze_policy_fraction=0.8,
        target_update_period=0,
        target_ema=0.95,
        batch_size=256,
        updates_per_iteration=100,
        eval_every=1,  # training is the same at any cadence; the first solve is found sooner
        total_env_steps=30_000,
    )
    return for_env(base, overrides)


# Early-stop bars: a margin over Gymnasium's reward_threshold (CartPole-v1 475, Acrobot-v1
# -100, MountainCar-v0 -110), since a periodic evaluation of 32 episodes can pass where the
# final one of 100 does not.
_SOLVE_RETURN = {"CartPole-v1": 490.0, "Acrobot-v1": -90.0, "MountainCar-v0": -100.0}

# The envs whose discount and budget the vector presets (cartpole, classic) were tuned on,
# by Gymnasium name (their jax/ and gymnax/ twins count too).
TUNED_ENVS = tuple(_SOLVE_RETURN)


def _gymnasium_name(env_id: str) -> str:
    return env_id.split("/", 1)[1] if env_id.startswith(("gymnax/", "jax/")) else env_id


def solve_return_for(env_id: str) -> float | None:
    """The early-stop bar for an env id: its own, never another env's. A margin over
    the reward_threshold for the envs of `_SOLVE_RETURN`, else the reward_threshold of
    its Gymnasium form (gymnax/ and jax/ twins by name), else None (train the budget)."""
    name = _gymnasium_name(env_id)
    if name in _SOLVE_RETURN:
        return _SOLVE_RETURN[name]
    import importlib

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
    config = dataclasses.replace(base, **overrides)
    if config.env != base.env and "solve_return" not in overrides:
        config = dataclasses.replace(config, solve_return=solve_return_for(config.env))
    return config


def classic(**overrides) -> Config:
    """Small vector envs with |reward| <= 1 a step (classic control), host or jitted.

    `Acrobot-v1` (Gymnasium's numpy env, host path) by default; `gymnax/Acrobot-v1`
    (the jitted path), `CartPole-v1`, `MountainCar-v0` and the like take the same
    settings. Acrobot gives -1 a step until the tip swings above the bar: nothing
    tells states apart until the goal has been reached, and uniformly random actions
    reach it in 2% of 500-step episodes. What mattered (issue 10's runs, seed 0,
    gymnax/Acrobot-v1, greedy return at 150k env steps unless said):

    - runs of one action (exploration_repeat_probability 0.75, mean length 4) reach
      the goal in ~45% of episodes from the first iteration; without them PUCT and
      Gumbel search alike stayed at -500 for 150k steps;
    - the repeats fall with the temperature schedule (T 1 -> 0.5 at 40% of the
      budget, 0.25 at 70%), so that late in training self-play plays, and its value
      targets measure, the search's own choices: a fixed 0.75 stalled near -125;
    - learner steps per env step (50 per 400 steps, batch 256): 25 gave -159,
      50 gave -125 at the same env steps;
    - discount 0.99 (values in [-100, 0], value support 10 holds 120): 0.997 gave
      -459; n = 50: n = 10 stayed at -500;
    - PUCT with 50 simulations: with 16 it reached -125 and stalled; Gumbel with
      16 stayed at -500.

    On the host path (`Acrobot-v1`) the learner runs beside the next rollout
    (`act_while_learning`; late in training 0.71 s an iteration instead of 1.07 s on 2
    cores) and evaluation comes every 40 iterations, not 20 (while episodes last 500
    steps one costs 10-15 iterations): seed 0 took 538 s instead of 754 s (README).

    The supports assume |reward| <= 1 (reward support 1 holds 3.0): for larger
    rewards set `max_abs_reward` (validation then names the support sizes needed). On
    an env it was not tuned on (`tuned_for`), the experiment scripts take the time
    limit, discount, budget and supports from the env (`envs.fit_to_env`). `solve_return`
    is the env's own: a margin over its Gymnasium reward_threshold, None without one.
    """
    base = cartpole(
        env="Acrobot-v1",
        discount=0.99,
        value_support_size=10,  # h^-1(10) = 120 > 1 / (1 - 0.99) = 100
        reward_support_size=1,
        search="muzero",
        num_simulations=50,
        dirichlet_alpha=0.25,
        dirichlet_fraction=0.25,
        temperature=1.0,
        temperature_schedule=((0.4, 0.5), (0.7, 0.25)),
        exploration_repeat_probability=0.75,
        td_steps=50,
        batch_size=256,
        updates_per_iteration=50,
        act_while_learning=True,
        total_env_steps=250_000,
        # every 16k env steps: on the host path a periodic evaluation of 32 episodes
        # costs as much as 10-15 iterations while episodes still last 500 steps
        eval_every=40,
        eval_episodes=32,
        solve_return=solve_return_for("Acrobot-v1"),
    )
    return for_env(base, overrides)


def minatar(**overrides) -> Config:
    """MinAtar (gymnax's `gymnax/<Game>-MinAtar`, 10x10xC boolean planes), Breakout by default.

    Sized by what an hour of a 2-core CPU buys (issue 13; README "MinAtar"): measured
    in CPU seconds, a learner step (batch 128, K = 5) of the board ResNet at 16
    channels, one block each in h and g, cost 2.1 s (another machine, stop 23: 1.16 s,
    then 0.32 s with `networks.Conv`), of the MLP (2 x 128) 21 ms, and a searched env
    step (Gumbel, 8 simulations, 32 envs) 0.76 ms against 0.09 ms. So
    on a CPU h, g and f are MLPs on the flattened planes, the learner gets 4 samples
    per env step and the search 16 simulations; `--config.network board` gives the
    board ResNet (no striding: ball, paddle and bricks keep their own cells of the
    hidden state; its sizes are set here) for an accelerator. Rewards are 0 or 1 a
    step: discount 0.99 (values at most 100, value support 10 holds 120), reward
    support 1 (holds 3). Gumbel search, whose policy target improves on the prior with
    few simulations. Evaluation is greedy (no noise, the search's choice), 100 episodes,
    on gymnax's port with MinAtar's sticky actions put back (each step repeats the last
    action with probability 0.1, in training and evaluation: `sticky_action_probability`
    None is the env's own; gymnax's port has none, and without them a greedy agent on
    Breakout plays one of two episodes, its two starting positions), with gymnax's time
    limits (Breakout, Asterix and SpaceInvaders 1,000 steps, Freeway 2,500).
    """
    base = Config(
        env="gymnax/Breakout-MinAtar",
        num_envs=32,
        rollout_length=16,
        network="mlp",
        hidden_size=128,
        num_hidden_layers=2,
        latent_size=128,
        # --config.network board: the board ResNet, sized for 10x10 boards
        resnet_channels=16,
        representation_blocks=(1, 0, 0),
        dynamics_blocks=1,
        prediction_blocks=0,
        head_channels=4,
        action_embedding_size=8,
        value_support_size=10,  # h^-1(10) = 120 > 1 / (1 - 0.99) = 100
        reward_support_size=1,
        search="gumbel",
        num_simulations=16,
        max_num_considered_actions=4,
        discount=0.99,
        td_steps=10,
        unroll_steps=5,
        replay_capacity=100_000,
        min_replay_size=2_000,
        batch_size=128,
        updates_per_iteration=16,  # 2,048 windows per 512 env steps: 4 samples per state
        optimizer="adam",
        learning_rate=1e-3,
        target_update_period=200,
        # About an hour of a quiet 2-core CPU (2,200-3,200 env steps/s); Breakout seed 1
        # needed 6.66M to reach the bar (seed 0: 1.13M)
        total_env_steps=8_000_000,
        eval_every=20,
        eval_episodes=32,
        solve_return=None,
        final_eval_episodes=100,
        log_every=10,
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

    Value targets are game outcomes (discount 1, n = 1: nothing bootstraps), search
    backs up with discount -1 (the env's `two_player`), early moves are sampled from
    the search and later ones are its best (`sample_moves`). AlphaZero mode searches
    with pgx's own step and learns only h and f (K = 0). Tic-tac-toe and connect four
    use MLPs; the other games the board ResNet, small enough for a smoke run on a CPU.
    """
    if game not in DIRICHLET_ALPHA:
        raise ConfigError(f"game={game!r}: expected one of {list(DIRICHLET_ALPHA)}")
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: expected 'muzero' or 'alphazero'")
    base = Config(
        env=f"pgx/{game}",
        num_envs=32,
        rollout_length=16,
        hidden_size=64,
        latent_size=64,
        # MLPs for the small boards: on a CPU a learner step of the board ResNet cost
        # ~100x the MLP's (README, "MinAtar"; connect four's ran at 27 plies/s), still
        # ~15x since networks.Conv stopped XLA's CPU conv from running ~20x slower in scans.
        network="mlp" if game in ("tic_tac_toe", "connect_four") else "board",
        resnet_channels=32,
        representation_blocks=(2, 0, 0),
        dynamics_blocks=2,
        prediction_blocks=1,
        head_channels=4,
        action_embedding_size=16,
        value_support_size=2,
        reward_support_size=2,
        mode=mode,
        # PUCT with Dirichlet noise and visit-count sampling, as AlphaZero: Gumbel search
        # with a sharp prior repeated the same game over and over (measured on
        # tic-tac-toe), so positions off that line were never learned.
        search="muzero",
        num_simulations=32,
        max_num_considered_actions=16,
        dirichlet_alpha=DIRICHLET_ALPHA[game],
        dirichlet_fraction=0.25,
        temperature=1.0,
        sample_moves={"tic_tac_toe": 4, "connect_four": 10}.get(game, 30),
        # Tic-tac-toe: a random legal move in a quarter of self-play's plies keeps the
        # positions a perfect opponent reaches, and decisive games, in replay (AlphaZero
        # seeds 0-2 lost 0, 11 and 0 of 100 games as second to minimax; 42 for seed 0
        # without). MuZero mode needs the wins most: without them its reward head never
        # sees one (+0.01 predicted for a winning move) and the search's values are flat.
        exploration_epsilon=0.25 if game == "tic_tac_toe" else 0.0,
        # ... and the first two plies of every self-play game random (never at evaluation):
        # openings its own play stops reaching. AlphaZero seed 1 lost 14 of 100 as second
        # to minimax without them, none with them.
        random_opening_plies=2 if game == "tic_tac_toe" else 0,
        discount=1.0,
        td_steps=1,
        unroll_steps=0 if mode == "alphazero" else 5,
        replay_capacity=32 * 400,
        min_replay_size=32 * 32,
        batch_size=128,
        updates_per_iteration=8,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-4,
        total_env_steps=100_000,
        eval_every=0,
        solve_return=None,
        final_eval_episodes=100,
        log_every=10,
    )
    if (game, mode) == ("tic_tac_toe", "muzero"):
        # The model has the game to learn as well (README, "Board games"): 4x the updates
        # per ply and 8x the plies; 0-100-0 against minimax as either side on seed 0,
        # where 100,352 plies at 8 updates lost 100 and 98.
        base = dataclasses.replace(base, updates_per_iteration=32, total_env_steps=800_000)
    if game == "connect_four":
        # Sized for issue 12's 30 minutes of a 2-core CPU (README, "Board games"): MLPs
        # of 256 (128: 0.9 against random and 0.5 against the 100-simulation search
        # baseline from 500k plies on, 1.5M plies), tic-tac-toe MuZero mode's 8 samples
        # per ply, random moves in a quarter of the plies and random first two plies;
        # a 3x3 conv stem as h (one-move tactics: the MLP on flat planes recalled 43% of
        # wins, one conv layer 75%); outcomes on their own atoms (a win's target is not
        # split over a draw's atom); and, in MuZero mode, a reward label for a move not
        # played at every position (stop 27: 100 / 99 of 100 against random and 96 / 83
        # against the search baseline, where the same without it won 97 / 90 and
        # 83 / 62; seed 1's curve: 96-100% against random from 100k plies on, 100% from
        # 512k). 512k plies: 1,380 s alone at 372 plies a second, 1,670 s at 306.
        base = dataclasses.replace(
            base, hidden_size=256, latent_size=128, updates_per_iteration=32,
            replay_capacity=100_000, exploration_epsilon=0.25, random_opening_plies=2,
            network="conv_mlp", resnet_channels=32, representation_blocks=(0, 0, 0),
            support_squash="identity", value_support_size=1, reward_support_size=1,
            counterfactual_rewards=mode == "muzero", total_env_steps=512_000)
    return for_env(base, overrides)


def _board_preset(game: str):
    def preset(**overrides) -> Config:
        return board(game, **overrides)

    preset.__name__ = game
    preset.__doc__ = (f"pgx/{game}, two players, MuZero mode (experiments/board.py --mode "
                      f"alphazero for AlphaZero); see `board`.")
    return preset


BOARD_PRESETS = {game: _board_preset(game) for game in BOARD_GAMES}

PRESETS = {"cartpole": cartpole, "classic": classic, "sample_efficient": sample_efficient,
           "reanalyze": muzero_reanalyze, "minatar": minatar,
           "atari_tiny": atari_tiny, "atari_paper": atari_paper,
           **BOARD_PRESETS}
