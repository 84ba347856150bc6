"""Configuration: a small tree of frozen dataclasses, one per stage of the pipeline.

    config = Config()                                   # the paper's defaults
    config = config.replace(num_simulations=25)         # a field, by its (unique) name
    config = config.replace(search=dict(policy="gumbel", num_simulations=16))  # by stage
    config.search.num_simulations                       # 16

Each stage is read by the pieces of its stage alone (`EnvConfig` by `envs`,
`SearchConfig` by `search`, ...), and checks its own fields in `check`; `validate`
runs every stage's checks and those that span stages, before anything compiles.
Field names are unique over all stages, so `Config.replace` and the old flat
config.json (`from_dict`) can name a field without its stage.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Any, Literal

from muzero_jax import support


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


MODES = ("muzero", "alphazero")  # SearchConfig.mode
# The SearchConfig.policy values that search chance nodes (a network with chance codes).
CHANCE_POLICIES = ("stochastic", "stochastic_gumbel")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The environment and what it shows the agent (`muzero_jax.envs`).

    `id` picks the family: `jax/<name>`, `gymnax/<id>`, `pgx/<game>`, `ALE/<Game>-v5` or
    any Gymnasium id (`module:EnvId` imports `module` first). The Atari fields apply to
    ALE ids; `sticky_action_probability` also to gymnax's MinAtar ports, which leave
    MinAtar's 0.1 out.
    """

    id: str = "jax/CartPole-v1"  # env id: jax/<name>, gymnax/<id>, pgx/<game>, ALE/.. or gymnasium
    max_episode_steps: int | None = None  # time limit (truncation); None: the env's own
    max_abs_reward: float | None = None  # largest |reward| of a step; None: the env's, if known
    vector_mode: Literal["sync", "async"] = "sync"  # gymnasium ids: envs in this process or not
    observation_shape: tuple[int, ...] | None = None  # None: take the env's; else checked
    history_length: int = 0  # last H frames and actions stacked as planes (paper: 32); 0: none
    frame_size: tuple[int, int] = (96, 96)  # Atari: (height, width) of a preprocessed frame
    grayscale: bool = False  # Atari: one channel (paper: RGB)
    frame_skip: int = 4  # Atari: emulator frames per step, max-pooled over the last two (v5: 4)
    sticky_action_probability: float | None = None  # repeat the last action; None: env's own
    full_action_space: bool = False  # Atari: all 18 actions, or the game's minimal set (v5)
    noop_max: int = 0  # Atari: up to this many no-ops after a reset (v5: 0; DQN papers: 30)
    terminal_on_life_loss: bool = False  # Atari: end episodes at a lost life (v5: False)

    def check(self) -> None:
        if (len(self.frame_size) != 2
                or any(isinstance(x, bool) or x < 1 for x in self.frame_size)):
            raise ConfigError(f"frame_size={self.frame_size!r}: expected (height, width), "
                              "two integers >= 1")
        _at_least(self, 1, "frame_skip")
        _at_least(self, 0, "history_length", "noop_max")
        _optional_at_least(self, 1, "max_episode_steps")
        _in_range(self, "sticky_action_probability", 0.0, 1.0)
        if self.max_abs_reward is not None and not self.max_abs_reward > 0:
            raise ConfigError(f"max_abs_reward={self.max_abs_reward!r}: expected a value > 0 "
                              "or None")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """h, g and f, and the categorical supports of values and rewards (`networks`).

    `kind`: `mlp` for vector observations; `resnet` for images, downsampled as the
    paper's Atari network; `board`, a ResNet that keeps the board's size; `conv_mlp`,
    the board's h (`resnet_channels`, `representation_blocks[0]` blocks) into a flat
    latent with MLP g and f, for small boards on a CPU. `value_prefix` replaces g's
    per-step reward head by an LSTM over the unroll that predicts the rewards' sum
    since the unroll's start (restarting every `lstm_horizon_len` steps; the search
    takes differences); `projection_size` > 0 adds the projection and prediction
    heads of the consistency loss (EfficientZero, docs/efficientzero.md).
    `chance_outcomes` C > 0 adds Stochastic MuZero's afterstate dynamics and prediction,
    a chance encoder onto C one-hot codes and a dynamics from afterstate and code
    (`muzero_jax.stochastic`; MLPs, h a conv stem with `kind` "conv_mlp"; searched by
    `SearchConfig.policy` "stochastic"); with `afterstate_reward` its reward reads the
    afterstate alone, not the code: for games where the move fixes the reward before
    chance acts (2048's merges, a backgammon move that ends the game), so that the
    encoder's code, which sees the position reached, cannot stand in for a reward the
    afterstate must carry (the search's chance nodes have no encoder). `support_squash`
    "h" is the paper's h(x) = sign(x)(sqrt(|x| + 1) - 1) + 1e-3 x; "identity" makes the
    atoms the values (outcomes in {-1, 0, 1} with S = 1: a win is one atom).
    """

    kind: Literal["mlp", "resnet", "board", "conv_mlp"] = "mlp"  # the network family
    hidden_size: int = 64  # width of MLP hidden layers (ResNet: of each head's dense layer)
    num_hidden_layers: int = 2  # hidden layers in each MLP torso of h, g and f
    latent_size: int = 64  # size of the MLP hidden state s
    value_support_size: int = 300  # S: value atoms -S..S (paper: 300, 601 atoms)
    reward_support_size: int = 300  # S: reward atoms -S..S (paper: 300)
    support_squash: Literal["h", "identity"] = "h"  # scalar-to-atom map (paper: h)
    action_embedding_size: int = 16  # board: g sees the action as an embedding of this size
    resnet_channels: int = 256  # channels of the hidden state and its towers (paper: 256)
    representation_blocks: tuple[int, int, int] = (2, 3, 3)  # h's blocks per stage (paper)
    dynamics_blocks: int = 16  # residual blocks of g (paper: 16)
    prediction_blocks: int = 16  # residual blocks of f (paper: 16)
    head_channels: int = 16  # 1x1-conv channels in front of each head's dense layers
    value_prefix: bool = False  # g predicts an LSTM's reward sum over the unroll (EfficientZero)
    lstm_hidden_size: int = 64  # width of the value prefix's LSTM (EfficientZero: 512)
    lstm_horizon_len: int = 5  # the value prefix restarts every this many steps (EfficientZero: 5)
    projection_size: int = 0  # consistency loss: projection width; 0: none (EfficientZero: 1024)
    chance_outcomes: int = 0  # C > 0: Stochastic MuZero's afterstates and C chance codes
    afterstate_reward: bool = False  # stochastic: reward from the afterstate, not the code

    def check(self) -> None:
        _at_least(self, 1, "hidden_size", "num_hidden_layers", "latent_size",
                  "value_support_size", "reward_support_size", "lstm_hidden_size",
                  "lstm_horizon_len")
        _at_least(self, 0, "projection_size")
        _at_least(self, 0, "dynamics_blocks", "prediction_blocks")
        if self.kind in ("resnet", "board", "conv_mlp"):
            _at_least(self, 1, "resnet_channels", "head_channels", "action_embedding_size")
        if self.kind == "resnet" and self.resnet_channels < 2:
            raise ConfigError(f"resnet_channels={self.resnet_channels!r}: expected >= 2 (the "
                              "first strided conv has half as many)")
        blocks = self.representation_blocks
        if len(blocks) != 3 or any(b < 0 for b in blocks):
            raise ConfigError(f"representation_blocks={blocks!r}: expected three integers "
                              ">= 0")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The search (`muzero_jax.search`, through mctx).

    `policy`: "muzero" (`mctx.muzero_policy`, PUCT), "gumbel" (`gumbel_muzero_policy`)
    or "stochastic" (`stochastic_muzero_policy`: decision and chance nodes, with the
    network's `chance_outcomes` codes; PUCT constants as "muzero"), or
    "stochastic_gumbel" (the same tree searched with Gumbel's selection and constants
    as "gumbel", `muzero_jax.stochastic_gumbel`).
    `mode` "muzero" searches the learned model (g, f); "alphazero" searches with the
    env's own step (JAX envs: the embedding is the env state, illegal moves are masked
    in the tree) and learns only h and f (`LossConfig.unroll_steps` 0). PUCT's Q is
    normalised to [0, 1] over the whole tree ("tree_min_max", the paper's) or over a
    node and its children ("parent_and_siblings", mctx's default); Q gaps under
    `q_min_range` are not stretched to all of [0, 1] (EfficientZero floors it at 0.01).
    `sampled_actions` K > 0 searches K actions sampled at every node (Sampled MuZero,
    `muzero_jax.sampled`), required for Box actions; with K equal to a discrete env's
    action count every action is a child, each once (plain MuZero's search).
    """

    mode: Literal["muzero", "alphazero"] = "muzero"  # search a learned model or the env's step
    policy: Literal["muzero", "gumbel", "stochastic", "stochastic_gumbel"] = "muzero"  # see above
    num_simulations: int = 50  # simulations per search (paper: 50 Atari, 800 board games)
    max_depth: int | None = None  # deepest simulation; None: unbounded
    pb_c_init: float = 1.25  # PUCT c1 (paper: 1.25)
    pb_c_base: float = 19652.0  # PUCT c2 (paper: 19652)
    q_normalisation: Literal["tree_min_max", "parent_and_siblings"] = "tree_min_max"  # PUCT Q
    q_min_range: float = 1e-8  # smallest max - min that Q normalisation divides by
    dirichlet_alpha: float = 0.25  # root noise (paper: 0.25 Atari, 0.3 chess, 0.03 Go)
    dirichlet_fraction: float = 0.25  # root noise share: PUCT prior, sampled proposal (0.25)
    max_num_considered_actions: int = 16  # Gumbel: actions sampled at the root
    gumbel_scale: float = 1.0  # Gumbel: noise scale while training (0 at evaluation)
    sampled_actions: int = 0  # K actions sampled per node; 0: every action (paper: K = 20)

    def check(self) -> None:
        _at_least(self, 1, "num_simulations", "max_num_considered_actions")
        _at_least(self, 0, "sampled_actions")
        _optional_at_least(self, 1, "max_depth")
        _positive_float(self, "dirichlet_alpha", "pb_c_init", "pb_c_base", "q_min_range")
        _in_range(self, "dirichlet_fraction", 0.0, 1.0)
        _at_least(self, 0, "gumbel_scale")


@dataclasses.dataclass(frozen=True)
class ActingConfig:
    """Self-play: how many envs, how long, and how far from the search's choice.

    `temperature_schedule` holds pairs (progress threshold, temperature), progress
    being env steps over `RunConfig.total_env_steps`, thresholds increasing in (0, 1]:
    from each threshold on its temperature replaces `temperature` (the paper's Atari:
    ((0.5, 0.5), (0.75, 0.25)); on the command line `0.5 0.5 0.75 0.25`). Gumbel search
    scales `gumbel_scale` by it. Repeats and epsilon are scaled down with it too.
    """

    num_envs: int = 16  # B: environments stepped in lock-step by self-play
    rollout_length: int = 50  # T: self-play steps per env per training iteration
    temperature: float = 1.0  # visit-count temperature while training (PUCT search)
    temperature_schedule: tuple[tuple[float, float], ...] = ()  # (progress, temperature) pairs
    sample_moves: int | None = None  # board games: sample this many moves, then play the best
    exploration_repeat_probability: float = 0.0  # repeat the last action instead (paper: 0)
    exploration_epsilon: float = 0.0  # play a random legal action instead (paper: 0)
    random_opening_plies: int = 0  # JAX envs: first N plies of a self-play game random

    def check(self) -> None:
        _at_least(self, 1, "num_envs", "rollout_length")
        _at_least(self, 0, "temperature", "random_opening_plies")
        _optional_at_least(self, 0, "sample_moves")
        _in_range(self, "exploration_epsilon", 0.0, 1.0)
        if not 0.0 <= self.exploration_repeat_probability < 1.0:
            raise ConfigError(
                f"exploration_repeat_probability={self.exploration_repeat_probability!r}: "
                "expected a value in [0, 1) (1 would never act on the search)")
        _check_schedule("temperature_schedule", self.temperature_schedule, "temperature")


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Replay, prioritised sampling and Reanalyze (`replay`, `reanalyze`).

    P(i) ~ p_i^alpha with p_i = |v_i - z_i| + epsilon; importance weights
    (N P(i))^-beta normalised by their max. Reanalyze gives a share of each batch
    fresh bootstrap values from the latest (or target) parameters, and of those a
    share fresh search policies.
    """

    capacity: int = 100_000  # positions held, over all envs (rounded to num_envs)
    min_size: int = 1_000  # positions collected before the first update
    priority_alpha: float = 0.0  # P(i) ~ p_i^alpha; 0: uniform (paper: 1)
    priority_beta: float = 1.0  # importance-weight exponent (paper: 1)
    priority_beta_anneal_steps: int = 0  # learner steps to anneal beta to 1; 0: fixed
    priority_epsilon: float = 1e-3  # added to |v - z| so that no priority is 0
    reanalyze_fraction: float = 0.0  # share of each batch given fresh values; 0: off
    reanalyze_policy_fraction: float = 0.8  # of those, the share given fresh search policies

    def reanalyzed(self, batch_size: int) -> tuple[int, int]:
        """Windows of a batch of `batch_size` given fresh bootstrap values by Reanalyze,
        and of those, the windows given fresh search policies."""
        num_values = int(round(self.reanalyze_fraction * batch_size))
        return num_values, int(round(self.reanalyze_policy_fraction * num_values))

    def check(self) -> None:
        _at_least(self, 1, "capacity")
        _at_least(self, 0, "min_size", "priority_alpha", "priority_beta_anneal_steps")
        _in_range(self, "priority_beta", 0.0, 1.0)
        _in_range(self, "reanalyze_fraction", 0.0, 1.0)
        _in_range(self, "reanalyze_policy_fraction", 0.0, 1.0)
        if not self.priority_epsilon > 0:
            raise ConfigError(f"priority_epsilon={self.priority_epsilon!r}: expected a value "
                              "> 0 (a zero priority would never be sampled again)")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The K-step unroll loss and its targets (`targets`, `learner`, `extensions`).

    `counterfactual_rewards` (JAX envs, MuZero mode) has self-play also try one move it
    did not play at every position with the env's own step, and the learner adds a
    reward loss for it on g (`muzero_jax.extensions.counterfactual`): the reward head
    then learns the wins its own play misses.

    EfficientZero's additions (docs/efficientzero.md): `consistency_loss_weight` > 0
    (with `NetworkConfig.projection_size`) adds the self-supervised consistency loss
    (`muzero_jax.extensions.consistency`); `off_policy_correction_steps` > 0 shortens
    each window's n by one for every that many env steps of its age
    (`targets.corrected_td_steps`). The value prefix is `NetworkConfig.value_prefix`.
    """

    discount: float = 0.997  # gamma (paper: 0.997)
    td_steps: int = 10  # n of the n-step value target (paper: 10)
    unroll_steps: int = 5  # K of the K-step unroll (paper: 5)
    value_loss_weight: float = 1.0  # paper: 1.0; 0.25 with Reanalyze
    reward_loss_weight: float = 1.0  # paper: 1.0
    counterfactual_rewards: bool = False  # a reward loss for a move not played (paper: off)
    consistency_loss_weight: float = 0.0  # g's state against h of the next obs; 0: off (EZ: 2)
    off_policy_correction_steps: int = 0  # n shrinks by 1 per this many env steps of age; 0: off
    commitment_loss_weight: float = 1.0  # stochastic: beta of the encoder's commitment term

    @property
    def window_length(self) -> int:
        """Positions a replay window spans: K + 1 unrolled plus n for bootstrapping."""
        return self.unroll_steps + self.td_steps + 1

    def check(self) -> None:
        _at_least(self, 1, "td_steps")
        _at_least(self, 0, "unroll_steps", "value_loss_weight", "reward_loss_weight",
                  "consistency_loss_weight", "off_policy_correction_steps",
                  "commitment_loss_weight")
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"discount={self.discount!r}: expected 0 < discount <= 1")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """The optimizer, its schedule and the target network (`learner`).

    `lr_decay` "cosine" decays to `lr_end_fraction` of the peak at `lr_decay_steps`,
    then stays; "exponential" is peak * lr_end_fraction ** (step / lr_decay_steps),
    the paper's (Atari: 0.05 * 0.1 ** (step / 350k)). The target network is a copy every
    `target_update_period` steps or an average with weight `target_ema`, not both.
    """

    batch_size: int = 256  # windows per update (paper: 1024 Atari)
    updates_per_iteration: int = 50  # learner steps after each self-play rollout
    optimizer: Literal["adam", "sgd"] = "adam"  # paper: SGD with momentum
    learning_rate: float = 3e-3  # peak learning rate
    lr_warmup_steps: int = 0  # linear warm-up from 0 to the peak
    lr_decay_steps: int | None = None  # steps of the decay; None: constant after warm-up
    lr_decay: Literal["cosine", "exponential"] = "cosine"  # shape of the decay
    lr_end_fraction: float = 0.1  # learning rate as a share of the peak after the decay
    momentum: float = 0.9  # SGD momentum (paper: 0.9)
    max_grad_norm: float | None = 5.0  # global-norm gradient clipping; None: off
    weight_decay: float = 1e-4  # c in c * ||theta||^2, added to the loss (paper: 1e-4)
    target_update_period: int = 0  # copy params to the target network every N steps; 0: off
    target_ema: float = 0.0  # > 0: target <- ema target + (1 - ema) params every step

    @property
    def use_target_network(self) -> bool:
        """Whether bootstrap values come from a (lagging) target network's value."""
        return self.target_update_period > 0 or self.target_ema > 0

    def check(self) -> None:
        _at_least(self, 1, "batch_size", "updates_per_iteration")
        _at_least(self, 0, "lr_warmup_steps", "weight_decay", "target_update_period")
        _optional_at_least(self, 1, "lr_decay_steps")
        _positive_float(self, "learning_rate")
        _in_range(self, "lr_end_fraction", 0.0, 1.0)
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm={self.max_grad_norm!r}: expected > 0 or None")
        if not 0.0 <= self.target_ema < 1.0:
            raise ConfigError(f"target_ema={self.target_ema!r}: expected a value in [0, 1)")
        if self.target_ema > 0 and self.target_update_period > 0:
            raise ConfigError(
                f"target_update_period={self.target_update_period} and target_ema="
                f"{self.target_ema}: expected one way to update the target network (set "
                "the other to 0)")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The run: seed, budget, evaluations, devices, checkpoints (`train`, `distributed`).

    A run stops early when a periodic evaluation reaches `solve_return` and a
    confirming evaluation of `final_eval_episodes` does too. Several runs in one
    program (seeds, a sweep) are stepped one after another inside the compiled
    iteration ("map", CPUs) or side by side ("vmap", accelerators).
    """

    seed: int = 0  # PRNG seed: parameters, self-play, replay sampling, evaluation
    total_env_steps: int = 200_000  # stop after this many env steps
    eval_every: int = 10  # iterations between greedy evaluations; 0: never
    eval_episodes: int = 32  # episodes per periodic evaluation (JAX envs)
    solve_return: float | None = 475.0  # early-stop bar, confirmed at the end; None: off
    final_eval_episodes: int = 100  # episodes of the final evaluation
    log_every: int = 5  # iterations between progress lines
    num_devices: int = 1  # data-parallel devices (totals divide by it); 0: every device
    run_layout: Literal["auto", "map", "vmap"] = "auto"  # runs of one program: auto by device
    act_while_learning: bool = False  # host envs: learn on a thread beside the next rollout
    checkpoint_every: int = 1_000  # updates between checkpoints; 0: only at the end
    checkpoint_keep: int = 3  # most recent checkpoints kept on disk
    checkpoint_replay: bool | None = None  # save the replay buffer; None: if under 1 GiB

    def check(self) -> None:
        _at_least(self, 1, "eval_episodes", "final_eval_episodes", "log_every",
                  "checkpoint_keep")
        _at_least(self, 0, "total_env_steps", "eval_every", "checkpoint_every")
        if self.num_devices < 0:
            raise ConfigError(f"num_devices={self.num_devices!r}: expected an integer >= 0 "
                              "(0: every device)")


# A string given for these stages names its main choice (`Config.replace`).
MAIN_CHOICE = {"env": "id", "search": "policy", "network": "kind"}

STAGES: dict[str, type] = {
    "env": EnvConfig, "network": NetworkConfig, "search": SearchConfig,
    "acting": ActingConfig, "replay": ReplayConfig, "loss": LossConfig,
    "learner": LearnerConfig, "run": RunConfig}


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration: one frozen dataclass per stage."""

    env: EnvConfig = EnvConfig()  # the environment
    network: NetworkConfig = NetworkConfig()  # h, g, f and the supports
    search: SearchConfig = SearchConfig()  # the search
    acting: ActingConfig = ActingConfig()  # self-play and its exploration
    replay: ReplayConfig = ReplayConfig()  # replay, priorities, Reanalyze
    loss: LossConfig = LossConfig()  # the unroll loss and its targets
    learner: LearnerConfig = LearnerConfig()  # optimizer and target network
    run: RunConfig = RunConfig()  # seed, budget, evaluation, devices, checkpoints

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes`: a field by its name (`num_simulations=25`), a stage by
        its name with a dict of its fields or a stage config (`search=dict(...)`), or the
        main choice of a stage by the stage's name (`env="CartPole-v1"`: `env.id`;
        `search="gumbel"`: `search.policy`; `network="resnet"`: `network.kind`). A field
        named on its own wins over its stage's dict or object, whatever their order."""
        stages: dict[str, dict] = {}
        whole_stages_first = sorted(changes.items(), key=lambda change: not (
            change[0] in STAGES and not isinstance(change[1], str)))
        for name, value in whole_stages_first:
            if name in STAGES and isinstance(value, str) and name in MAIN_CHOICE:
                name, value = MAIN_CHOICE[name], value  # env="CartPole-v1": the stage's choice
            if name in STAGES:
                if isinstance(value, STAGES[name]):
                    stages[name] = {**stages.get(name, {}), **dataclasses.asdict(value)}
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"{name}={value!r}: expected a {STAGES[name].__name__} "
                                      f"or a dict of its fields")
                stages.setdefault(name, {}).update(value)
                continue
            stage = stage_of(name)
            stages.setdefault(stage, {})[name] = value
        updated = {}
        for stage, fields in stages.items():
            known = {f.name for f in dataclasses.fields(STAGES[stage])}
            unknown = sorted(set(fields) - known)
            if unknown:
                raise ConfigError(f"{stage}: unknown field(s) {unknown}; expected names "
                                  f"among {sorted(known)}")
            updated[stage] = dataclasses.replace(getattr(self, stage), **fields)
        return dataclasses.replace(self, **updated)

    @property
    def num_reanalyzed(self) -> int:
        """Windows of each batch given fresh bootstrap values by Reanalyze."""
        return self.replay.reanalyzed(self.learner.batch_size)[0]

    @property
    def num_reanalyzed_policies(self) -> int:
        """Of those, windows whose policy targets come from a fresh search."""
        return self.replay.reanalyzed(self.learner.batch_size)[1]

    @property
    def samples_per_state(self) -> float:
        """Replay ratio: windows trained on per env step collected (paper: 0.1; Reanalyze 2.0)."""
        return (self.learner.batch_size * self.learner.updates_per_iteration
                / (self.acting.num_envs * self.acting.rollout_length))

    @property
    def replay_length(self) -> int:
        """Steps held per environment stream."""
        return max(self.replay.capacity // self.acting.num_envs, 1)


@functools.cache
def _field_stage() -> dict[str, str]:
    table: dict[str, str] = {}
    for stage, cls in STAGES.items():
        for field in dataclasses.fields(cls):
            if field.name in table or field.name in STAGES:
                raise AssertionError(f"field {field.name!r} of {stage} is not unique")
            table[field.name] = stage
    return table


def stage_of(name: str) -> str:
    """The stage holding field `name`; `ConfigError` naming the new spelling of an old
    flat name (`replay_capacity` -> replay.capacity) or listing none."""
    table = _field_stage()
    if name in table:
        return table[name]
    if name in RENAMED:
        raise ConfigError(f"{name}: now {RENAMED[name]}")
    if name in REMOVED:
        raise ConfigError(f"{name}: removed ({REMOVED[name]})")
    raise ConfigError(f"unknown config field {name!r}; expected one of {sorted(table)}")


def path_of(name: str) -> str:
    """`stage.field` for a field name, old flat names included (`env` -> env.id)."""
    if name in RENAMED:
        return RENAMED[name]
    return f"{stage_of(name)}.{name}"


# Flat names of the single-dataclass Config (config.json of runs up to 0.1) whose field
# changed its name inside its stage.
RENAMED = {"env": "env.id", "network": "network.kind", "search": "search.policy",
           "replay_capacity": "replay.capacity", "min_replay_size": "replay.min_size"}
# Flat fields that no longer exist, with their only value that still loads.
REMOVED = {"tie_break": "noise", "dirichlet_schedule": (), "opportunist_games": 0.0,
           "augment_symmetries": False}


# --- validation ----------------------------------------------------------------------

def _at_least(cfg, low: int, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value < low:
            kind = "an integer" if isinstance(value, int) else "a value"
            raise ConfigError(f"{name}={value!r}: expected {kind} >= {low}")


def _optional_at_least(cfg, low: int, name: str) -> None:
    value = getattr(cfg, name)
    if value is not None and value < low:
        raise ConfigError(f"{name}={value!r}: expected an integer >= {low} or None")


def _positive_float(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ConfigError(f"{name}={value!r}: expected a value > 0")


def _in_range(cfg, name: str, low: float, high: float) -> None:
    value = getattr(cfg, name)
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{name}={value!r}: expected a value in [{low:g}, {high:g}]")


def _check_schedule(name: str, schedule, value_name: str) -> None:
    """(progress threshold, value) pairs: thresholds increasing in (0, 1], values >= 0."""
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
        if not value >= 0:
            raise ConfigError(f"{name}={schedule!r}: {value_name} {value!r}; expected a "
                              "value >= 0")
        previous = threshold


def _type_fault(value, hint) -> tuple[str, object] | None:
    """(what was expected, the offending value) where `value` does not fit the field type
    `hint`, else None: numbers, booleans, strings and Literal choices, tuples item by
    item (a tuple of the wrong length is left to the stage's own check)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        faults = [_type_fault(value, a) for a in args if a is not type(None)]
        return None if None in faults else faults[0]
    if origin is Literal:
        return None if value in args else (" or ".join(map(repr, args)), value)
    if hint is bool:
        return None if isinstance(value, bool) else ("true or false", value)
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return None
        return "an integer", value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "a number", value
        # inf and nan pass comparisons such as `not value > 0`, and a run trained on
        # them logs loss nan to the end of its budget.
        try:
            return None if math.isfinite(value) else ("a finite number", value)
        except OverflowError:  # an int beyond any float
            return "a finite number", value
    if hint is str:
        return None if isinstance(value, str) else ("a string", value)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return "a tuple", value
        items = ([args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis
                 else list(args) if len(args) == len(value) else [])
        for item, item_hint in zip(value, items, strict=False):
            fault = _type_fault(item, item_hint)
            if fault is not None:
                return fault
    return None


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def check_types(part) -> None:
    """Raises `ConfigError` for a field of the stage config `part` whose value is not of
    its declared type (an int field given 16.0 from config.json, a float given inf or
    nan, a bool given 0, a Literal given another string)."""
    cls = type(part)
    for field in dataclasses.fields(cls):
        value = getattr(part, field.name)
        fault = _type_fault(value, _hints(cls)[field.name])
        if fault is None:
            continue
        expected, offending = fault
        if offending is value:
            raise ConfigError(f"{field.name}={value!r}: expected {expected}")
        raise ConfigError(f"{field.name}={value!r}: {offending!r} is not {expected}")


def validate_types(cfg: Config) -> None:
    """`check_types` of every stage (each must be its stage's class)."""
    for stage, cls in STAGES.items():
        part = getattr(cfg, stage)
        if not isinstance(part, cls):
            raise ConfigError(f"{stage}={part!r}: expected a {cls.__name__}")
        check_types(part)


def validate(cfg: Config, *, max_abs_reward: float | None = None,
             observation_shape: tuple[int, ...] | None = None,
             num_actions: int | None = None) -> Config:
    """Checks `cfg` (and its fit to an environment, where its facts are given), raising
    `ConfigError` naming the first bad field. Returns `cfg`, so that calls chain.

    Args:
      max_abs_reward: the env's largest |reward| a step: the reward support must hold
        it and the value support max_abs_reward / (1 - discount).
      observation_shape: the env's observation shape. num_actions: the children of each
        search node (the env's action count; with sampled search, K).
    """
    validate_types(cfg)
    for stage in STAGES:
        getattr(cfg, stage).check()
    _check_mode(cfg)
    _check_efficientzero(cfg)
    if cfg.run.num_devices > 1:
        validate_divisible(cfg, cfg.run.num_devices)
    # A window needs W positions, plus the H - 1 before it for its history.
    needed = cfg.loss.window_length + max(cfg.env.history_length, 1)
    if cfg.replay_length < needed:
        raise ConfigError(
            f"capacity={cfg.replay.capacity}: holds {cfg.replay_length} steps per env over "
            f"num_envs={cfg.acting.num_envs}; expected at least unroll_steps + td_steps + "
            f"max(history_length, 1) + 1 = {needed} per env, i.e. capacity >= "
            f"{needed * cfg.acting.num_envs}")
    if max_abs_reward is not None:
        _check_supports(cfg, max_abs_reward)
    _check_env_fit(cfg, observation_shape, num_actions)
    return cfg


def _check_mode(cfg: Config) -> None:
    if cfg.search.mode == "alphazero":
        if cfg.loss.unroll_steps != 0:
            raise ConfigError(f"unroll_steps={cfg.loss.unroll_steps!r}: mode='alphazero' "
                              "searches with the env's own step and learns no dynamics; "
                              "expected 0")
        if cfg.replay.reanalyze_fraction > 0:
            raise ConfigError(f"reanalyze_fraction={cfg.replay.reanalyze_fraction!r}: mode="
                              "'alphazero' searches env states, which replay does not keep; "
                              "expected 0")
        if cfg.loss.counterfactual_rewards:
            raise ConfigError("counterfactual_rewards=True: mode='alphazero' learns no "
                              "dynamics, so no reward to label; expected False")
    _check_stochastic(cfg)
    _check_sampled(cfg)
    if cfg.search.mode == "alphazero":
        return
    if cfg.loss.unroll_steps < 1:
        raise ConfigError(f"unroll_steps={cfg.loss.unroll_steps!r}: expected an integer >= 1 "
                          "(0 only with mode='alphazero')")


def _check_efficientzero(cfg: Config) -> None:
    """The EfficientZero options' fit to each other and to the mode."""
    net, loss = cfg.network, cfg.loss
    if (loss.consistency_loss_weight > 0) != (net.projection_size > 0):
        raise ConfigError(
            f"consistency_loss_weight={loss.consistency_loss_weight!r} with projection_size="
            f"{net.projection_size!r}: expected both > 0 (the loss compares projections) or "
            "both 0")
    if cfg.search.mode == "alphazero" and (net.value_prefix or net.projection_size):
        raise ConfigError("value_prefix/projection_size: mode='alphazero' learns no dynamics; "
                          "expected value_prefix=False and projection_size=0")
    if net.value_prefix and loss.counterfactual_rewards:
        raise ConfigError("counterfactual_rewards=True: labels g's per-step reward head, "
                          "which value_prefix=True replaces; expected one of the two")


def _check_stochastic(cfg: Config) -> None:
    """Stochastic MuZero: the network's chance codes and the search's policy go together."""
    codes, policy = cfg.network.chance_outcomes, cfg.search.policy
    if codes and policy not in CHANCE_POLICIES:
        named = " or ".join(repr(p) for p in CHANCE_POLICIES)
        raise ConfigError(f"chance_outcomes={codes}: the chance codes are searched by "
                          f"policy {named}; expected one of them (not {policy!r}) or "
                          "chance_outcomes=0")
    if policy in CHANCE_POLICIES and codes < 2:
        raise ConfigError(f"chance_outcomes={codes}: policy={policy!r} needs a codebook; "
                          "expected an integer >= 2")
    if codes and cfg.network.kind not in ("mlp", "conv_mlp"):
        raise ConfigError(f"kind={cfg.network.kind!r}: the stochastic network's g, f and "
                          "afterstate steps are MLPs; expected kind 'mlp' or 'conv_mlp' "
                          "with chance_outcomes > 0")
    if cfg.network.afterstate_reward and not codes:
        raise ConfigError("afterstate_reward=True: only a stochastic network has "
                          "afterstates; expected chance_outcomes > 0 or afterstate_reward "
                          "False")
    if codes and cfg.search.mode == "alphazero":
        raise ConfigError(f"chance_outcomes={codes}: mode='alphazero' searches the env's own "
                          "step and learns no dynamics; expected 0")
    if codes and (cfg.network.value_prefix or cfg.network.projection_size):
        raise ConfigError(f"chance_outcomes={codes}: the stochastic model has no value prefix "
                          "or projection heads; expected value_prefix=False and "
                          "projection_size=0 with chance_outcomes > 0")
    if codes and cfg.env.history_length:
        raise ConfigError(f"history_length={cfg.env.history_length}: the chance encoder reads "
                          "single observations; expected 0 with chance_outcomes > 0")


def _check_sampled(cfg: Config) -> None:
    """Sampled search: the options whose data or targets assume every action is a child."""
    k = cfg.search.sampled_actions
    if not k:
        return
    refused = (
        (cfg.search.mode == "alphazero", "mode='alphazero' steps the env with action "
         "indices; expected mode='muzero'"),
        (cfg.network.chance_outcomes > 0, "chance_outcomes > 0 (Stochastic MuZero) has its own "
         "search; expected chance_outcomes=0"),
        (cfg.network.value_prefix, "value_prefix=True is not carried through the sampled "
         "tree; expected value_prefix=False"),
        (cfg.loss.counterfactual_rewards, "counterfactual_rewards=True labels an action "
         "index, not a sampled action; expected False"),
        (cfg.replay.reanalyze_fraction > 0, f"reanalyze_fraction="
         f"{cfg.replay.reanalyze_fraction} would give policy targets over new samples; "
         "expected 0"),
        (cfg.env.history_length > 0, f"history_length={cfg.env.history_length} stacks action "
         "indices as planes; expected 0"),
        (cfg.acting.exploration_repeat_probability > 0, "exploration_repeat_probability="
         f"{cfg.acting.exploration_repeat_probability} would repeat an index into a new "
         "sample set; expected 0"))
    for bad, why in refused:
        if bad:
            raise ConfigError(f"sampled_actions={k}: {why}")


def _check_supports(cfg: Config, max_abs_reward: float) -> None:
    net, discount = cfg.network, cfg.loss.discount
    reward_needed, value_needed = support.sizes_for(max_abs_reward, discount,
                                                    net.support_squash)
    reward_max = support.max_scalar(net.reward_support_size, squash=net.support_squash)
    if reward_max < max_abs_reward:
        raise ConfigError(
            f"reward_support_size={net.reward_support_size}: represents |reward| <= "
            f"{reward_max:.3g}, but the env's rewards reach {max_abs_reward:g}; expected "
            f"reward_support_size >= {reward_needed}")
    span = support.prefix_span(cfg)
    if span > 1 and reward_max < span * max_abs_reward:
        raise ConfigError(
            f"reward_support_size={net.reward_support_size}: represents |reward| <= "
            f"{reward_max:.3g}, but value prefixes of {span} steps reach {span} x "
            f"{max_abs_reward:g}; expected reward_support_size >= "
            f"{support.size_needed(span * max_abs_reward, net.support_squash)}")
    if discount < 1.0:
        value_bound = max_abs_reward / (1.0 - discount)
        value_max = support.max_scalar(net.value_support_size, squash=net.support_squash)
        if value_max < value_bound:
            raise ConfigError(
                f"value_support_size={net.value_support_size}: represents |value| <= "
                f"{value_max:.4g}, but returns reach max_abs_reward / (1 - discount) = "
                f"{max_abs_reward:g} / (1 - {discount}) = {value_bound:.4g}; expected "
                f"value_support_size >= {value_needed}")


def _check_env_fit(cfg: Config, observation_shape, num_actions) -> None:
    env_id = cfg.env.id
    if observation_shape is not None and cfg.env.observation_shape is not None:
        if tuple(cfg.env.observation_shape) != tuple(observation_shape):
            raise ConfigError(
                f"observation_shape={tuple(cfg.env.observation_shape)}: the env {env_id!r} "
                f"observes shape {tuple(observation_shape)}; expected that shape (or None)")
    if (observation_shape is not None and cfg.network.kind != "mlp"
            and len(observation_shape) != 3):
        raise ConfigError(
            f"kind={cfg.network.kind!r}: the env {env_id!r} observes shape "
            f"{tuple(observation_shape)}; expected images (height, width, channels), or "
            "network kind 'mlp'")
    if (num_actions is not None and cfg.search.policy in ("gumbel", "stochastic_gumbel")
            and num_actions < 2):
        if cfg.search.sampled_actions:
            raise ConfigError(f"sampled_actions={cfg.search.sampled_actions}: policy='gumbel' "
                              "needs at least 2 children; expected >= 2")
        raise ConfigError(f"env {env_id!r} has {num_actions} action(s); expected >= 2")


def validate_divisible(cfg: Config, num_devices: int) -> None:
    """Raises `ConfigError` unless num_envs and batch_size (totals) divide by `num_devices`."""
    for stage, name in (("acting", "num_envs"), ("learner", "batch_size")):
        value = getattr(getattr(cfg, stage), name)
        if value % num_devices:
            below = value // num_devices * num_devices
            nearest = [v for v in (below, below + num_devices) if v > 0]
            raise ConfigError(
                f"{name}={value}: a total split over num_devices={num_devices} devices; "
                f"expected a multiple of {num_devices}, e.g. "
                f"{' or '.join(map(str, nearest))}")


def first_update_iteration(cfg: Config) -> int:
    """The training iteration (one rollout of num_envs * rollout_length env steps) after
    which replay is first ready to learn: it holds min_size positions over all envs and a
    whole window in each env's stream.

    Until the streams wrap, a stream of c positions offers c - W + 1 window starts
    (W = window_length), and once they wrap `validate` has made room for one; so the
    first ready iteration is the first with c >= W and c * num_envs >= min_size,
    c = iteration * rollout_length.
    """
    acting = cfg.acting
    by_size = -(-cfg.replay.min_size // (acting.num_envs * acting.rollout_length))
    by_window = -(-cfg.loss.window_length // acting.rollout_length)
    return max(by_size, by_window, 1)


def validate_budget(cfg: Config) -> Config:
    """Raises `ConfigError` unless total_env_steps lets training make at least one update
    (a budget that ends before replay is ready would report an untrained agent)."""
    iteration = first_update_iteration(cfg)
    per_iteration = cfg.acting.num_envs * cfg.acting.rollout_length
    least = (iteration - 1) * per_iteration + 1
    if cfg.run.total_env_steps < least:
        raise ConfigError(
            f"total_env_steps={cfg.run.total_env_steps}: makes no update; the first comes in "
            f"iteration {iteration} (of num_envs * rollout_length = {per_iteration} env "
            f"steps each), once replay holds min_size={cfg.replay.min_size} positions and "
            f"a window of {cfg.loss.window_length} steps per env; expected total_env_steps "
            f">= {least} (or a smaller min_size)")
    return cfg


# --- config.json ---------------------------------------------------------------------

def to_dict(cfg: Config) -> dict:
    """The config as a JSON-ready dict of stages (run directories keep it as config.json)."""
    return dataclasses.asdict(cfg)


def _as_tuples(v):
    return tuple(_as_tuples(x) for x in v) if isinstance(v, list) else v


def from_dict(values: dict) -> Config:
    """Rebuilds a `Config` from `to_dict`'s output, or from the flat dict of a single-
    dataclass config (run directories of 0.1), mapped onto the stages. JSON lists become
    tuples; missing fields take their defaults; unknown names raise `ConfigError`."""
    if not any(isinstance(v, dict) for v in values.values()):
        values = _from_flat(values)
    unknown = sorted(set(values) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown config stage(s) {unknown}; expected {list(STAGES)}")
    changes = {stage: {k: _as_tuples(v) for k, v in fields.items()}
               for stage, fields in values.items()}
    return Config().replace(**changes)


def _from_flat(values: dict) -> dict:
    nested: dict[str, dict] = {}
    for name, value in values.items():
        if name in REMOVED:
            if _as_tuples(value) != REMOVED[name]:
                raise ConfigError(f"{name}={value!r}: removed in 0.2; expected "
                                  f"{REMOVED[name]!r} (its only behaviour now)")
            continue
        stage, field = path_of(name).split(".")
        nested.setdefault(stage, {})[field] = value
    return nested
