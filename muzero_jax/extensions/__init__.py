"""Extensions: variants of MuZero that add per-step data, targets and loss terms.

Each variant declares what it adds in one `Extension` object; the core carries its
data by name and never knows which variant it holds:

    self-play   `record` computes the extension's fields of one step inside the JAX
                rollout (from the env, a key of its own, the env states searched, the
                search's output and the played action) -> `Trajectory.extra`
    replay      the fields `fields` declares are stored and gathered into windows like
                the core ones -> `ReplayBuffer.extra`, `Window.extra`
    targets     `targets` turns a window's fields into targets for the K unroll steps
                -> `Targets.extra`
    loss        `unroll_loss` gives per-sample loss terms at each unroll step, from the
                state g was fed and what g made of it; `LOSSES` says which core term
                each joins (sharing its weight) or that it stands alone

`active(config)` lists the extensions a config turns on, in a fixed order (the order
in which they take their rollout keys).

The variants built on it:

- Sampled MuZero (`extensions/sampled.py`, `SearchConfig.sampled_actions` K > 0):
  the core action is the index of the sample played and the core policy target the
  search's weights over the K samples; `record` keeps the root's samples (`[K, D]`
  floats for a Box env, `[K]` ints for a discrete one), on the host path too (`HOST`);
  `targets` slices rows 0..K. It adds no loss term: the model
  (`sampled.SampledModel`) feeds g the sample a stored index picks
  (`Model.unroll_inference`) and replaces the core policy term by
  -sum_j p_j log pi(a_j | s^k) over the stored samples (`Model.policy_loss`).
- EfficientZero: the consistency loss is `consistency.Consistency`: it records
  nothing; `targets` reads the observations of rows 1..K (`replay.observations`) and
  `unroll_loss` compares the state g made at step k with h of that observation
  (stop-gradient), a term of its own weight. The value prefix is not an extension:
  its LSTM carry runs along the unroll and through the search's embeddings, so it
  lives in the model (`networks.ValuePrefix`), the learner's unroll, the search
  (`search.make_prefix_recurrent_fn`) and the batch's reward targets
  (`targets.value_prefix_targets`).
- Stochastic MuZero (`extensions/stochastic.py`, docs/stochastic.md): nothing
  recorded (the encoder reads observations); `targets` gives the observations of rows
  1..K; `unroll_loss` the afterstate value, the encoder's code against the
  afterstate's chance prior, and the commitment loss. The afterstate unroll itself
  (`Model.unroll_inference`) and `mctx.stochastic_muzero_policy` belong to the model
  (`muzero_jax/stochastic.py`) and the search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import chex
import jax
import jax.numpy as jnp

from muzero_jax import replay

if TYPE_CHECKING:
    from muzero_jax.config import Config
    from muzero_jax.envs import EnvSpec, EnvState, JaxEnv
    from muzero_jax.networks import Model, Params
    from muzero_jax.replay import ReplayBuffer, Window
    from muzero_jax.search import SearchOutput
    from muzero_jax.targets import Targets


class Extension:
    """One variant's additions to the core; every hook's default adds nothing.

    `LOSSES`: the names of the terms `unroll_loss` returns, each mapped to the core
    term it is added to before that term's weight ("value", "reward" or "policy"), or
    to None for a term added to the per-sample loss as it is (weighted by the
    extension itself). Each is also a metric: its mean over the batch.
    `USES_KEY`: whether `record` needs a key; the rollout splits one off each step's
    key only for extensions that do, so that the others leave the search's keys as
    they are. `HOST`: whether `record` reads only the search's output and the action
    (no env, env state or key), so that host self-play can record it too.
    """

    LOSSES: ClassVar[Mapping[str, str | None]] = {}
    USES_KEY: ClassVar[bool] = False
    HOST: ClassVar[bool] = False

    def fields(self, spec: EnvSpec) -> dict[str, jax.ShapeDtypeStruct]:
        """Name -> shape (after the `[B, L]` axes) and dtype of each field `record` gives."""
        del spec
        return {}

    def record(self, env: JaxEnv, key: chex.PRNGKey | None, env_state: EnvState,
               search: SearchOutput, action: chex.Array) -> dict[str, jax.Array]:
        """The fields of one step of `[B]` envs: name -> `[B, *shape]` (pure, traced).

        Args:
          env: the single-env JAX environment.
          key: this extension's key for the step (None unless `USES_KEY`).
          env_state: `[B]` the states searched from, before the action.
          search: the `[B]` search output there.
          action: `[B]` int32, the actions played.
        """
        del env, key, env_state, search, action
        return {}

    def targets(self, buffer: ReplayBuffer, window: Window, past_end: chex.Array,
                past_truncation: chex.Array, unroll_steps: int) -> dict[str, jax.Array]:
        """Name -> `[N, ...]` targets of `[N, W]` windows for K = `unroll_steps` steps.

        `past_end`, `past_truncation`: `[N, K + 1]` bool `targets.episode_masks` of
        rows 0..K. `buffer`: the replay the windows come from (for observations).
        """
        del buffer, window, past_end, past_truncation, unroll_steps
        return {}

    def unroll_loss(self, model: Model, params: Params, state: chex.Array,
                    inference, k: chex.Array, targets: Targets) -> dict[str, jax.Array]:
        """Name (in `LOSSES`) -> `[N]` loss at unroll step k (1..K, traced).

        `state`: the `[N, ...]` hidden state g was fed at step k (its gradient scaled as
        the unroll scales it); `inference`: g's and f's output there (its `state` is
        what g made). Each term is summed over the steps and divided by K, as the core
        terms of steps k >= 1 are.
        """
        del model, params, state, inference, k, targets
        return {}


def active(config: Config) -> tuple[Extension, ...]:
    """The extensions `config` turns on, in the order they take their rollout keys."""
    from muzero_jax.extensions.consistency import Consistency
    from muzero_jax.extensions.counterfactual import Counterfactual
    from muzero_jax.extensions.sampled import Sampled
    from muzero_jax.extensions.stochastic import Stochastic

    chosen = []
    if config.loss.counterfactual_rewards:
        chosen.append(Counterfactual())
    if config.loss.consistency_loss_weight > 0:
        chosen.append(Consistency(weight=config.loss.consistency_loss_weight,
                                  history_length=config.env.history_length))
    if config.network.chance_outcomes:
        chosen.append(Stochastic(commitment_weight=config.loss.commitment_loss_weight))
    if config.search.sampled_actions:
        chosen.append(Sampled(num_samples=config.search.sampled_actions))
    return tuple(chosen)


def fields(extensions: tuple[Extension, ...], spec: EnvSpec) -> dict[str, jax.ShapeDtypeStruct]:
    """Every field the extensions record, by name; two declaring one name is an error."""
    declared: dict[str, jax.ShapeDtypeStruct] = {}
    for extension in extensions:
        for name, field in extension.fields(spec).items():
            if name in declared:
                raise ValueError(f"extension {type(extension).__name__} declares field "
                                 f"{name!r}, which another extension declares; expected "
                                 f"unique names")
            declared[name] = field
    return declared


def split_keys(extensions: tuple[Extension, ...], key: chex.PRNGKey
               ) -> tuple[chex.PRNGKey, tuple[chex.PRNGKey | None, ...]]:
    """`key` after each extension that `USES_KEY` split its own off, and those keys."""
    keys = []
    for extension in extensions:
        if extension.USES_KEY:
            key, own = jax.random.split(key)
            keys.append(own)
        else:
            keys.append(None)
    return key, tuple(keys)


def record(extensions: tuple[Extension, ...], env: JaxEnv, keys: tuple, env_state: EnvState,
           search: SearchOutput, action: chex.Array) -> dict[str, jax.Array]:
    """All the extensions' fields of one step (`Extension.record`), by name."""
    extra: dict[str, jax.Array] = {}
    for extension, key in zip(extensions, keys, strict=True):
        extra.update(extension.record(env, key, env_state, search, action))
    return extra


def observations_reached(buffer: ReplayBuffer, window: Window, past_end: chex.Array,
                         unroll_steps: int, history_length: int = 0
                         ) -> tuple[jax.Array, jax.Array]:
    """What the env showed at rows 1..K of each window, for extensions whose loss reads
    the observation an unroll step reached (consistency, chance codes).

    Returns `[N, K, *obs_shape]` observations (H-frame stacks as self-play made them)
    and a `[N, K]` float32 mask, 0 past the window's first episode end (those rows show
    the next episode).
    """
    slots = replay.window_slots(window.position, unroll_steps + 1, buffer.length)[:, 1:]
    observation = replay.observations(buffer, window.stream, slots,
                                      history_length=history_length)
    return observation, (~past_end[:, 1:]).astype(jnp.float32)


def targets(extensions: tuple[Extension, ...], buffer: ReplayBuffer, window: Window,
            past_end: chex.Array, past_truncation: chex.Array,
            unroll_steps: int) -> dict[str, jax.Array]:
    """All the extensions' targets (`Extension.targets`), by name."""
    extra: dict[str, jax.Array] = {}
    for extension in extensions:
        extra.update(extension.targets(buffer, window, past_end, past_truncation,
                                       unroll_steps))
    return extra


def unroll_losses(extensions: tuple[Extension, ...], model: Model, params: Params,
                  state: chex.Array, inference, k: chex.Array,
                  batch_targets: Targets) -> dict[str, jax.Array]:
    """All the extensions' loss terms at unroll step k (`Extension.unroll_loss`), by name."""
    terms: dict[str, jax.Array] = {}
    for extension in extensions:
        terms.update(extension.unroll_loss(model, params, state, inference, k, batch_targets))
    return terms


def loss_terms(extensions: tuple[Extension, ...]) -> dict[str, str | None]:
    """Every loss term's name -> the core term it joins (None: it stands alone)."""
    joins: dict[str, str | None] = {}
    for extension in extensions:
        joins.update(extension.LOSSES)
    return joins


def zeros_like_losses(extensions: tuple[Extension, ...], like: jax.Array) -> dict[str, jax.Array]:
    """Every loss term as `[N]` zeros: K = 0 unrolls no step to take them at."""
    return {name: jnp.zeros_like(like) for name in loss_terms(extensions)}


__all__ = ["Extension", "active", "fields", "loss_terms", "record", "split_keys", "targets",
           "unroll_losses", "zeros_like_losses"]
