"""The environment protocol: what self-play, replay and evaluation need of an env.

An environment is described by an `EnvSpec` and comes in one of two realisations:

- `JaxEnv`: one environment as pure functions (`initial`, `transition`), which
  self-play vmaps over the batch and steps inside the jitted `lax.scan`. The
  base class adds the time limit (as truncation), same-step auto-reset, the
  observation a truncation bootstraps from, and running episode statistics, so a
  new JAX env writes only its dynamics.
- `HostEnv`: environments stepped from Python (Gymnasium's numpy envs, ALE's C++
  emulators). `make(num_envs)` returns `HostEnvs`, a batch stepped together with
  the same auto-reset and the same fields (`HostStep`); self-play calls one jitted
  batched search per step.

Both report, for every step: the next observation (the new episode's first where
one ended), the observation the step reached (before any reset: a truncated
episode bootstraps from its value), the reward, `terminated` (a terminal state:
absorbing, value 0) apart from `truncated` (a time limit: not a terminal), and
the finished episode's return and length. Optional legal-action masks ride along
with the observation they belong to (True where an action is legal).

Observations are float32, except frames (`observation_dtype` uint8, shape
`(height, width, channels)`), which replay stores as they are and the network
sees scaled to [0, 1] (`to_float`). A host env of frames may be given a history
of its last H frames and actions (`EnvConfig.history_length`, `muzero_jax.history`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax.config import Config, EnvConfig


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the agent must know of an environment before anything compiles.

    env_id: the id it was made from (`muzero_jax.envs.make`).
    observation_shape: one observation's shape, as stored in replay (frames: one frame).
    observation_dtype: "float32", or "uint8" for frames `(height, width, channels)`.
    num_actions: A, the size of the discrete action space; 0 for a Box env.
    action_low, action_high: a Box env's bounds, one finite float per action
      dimension (None for a discrete env); its actions are `[D]` float32 vectors
      within them, searched by sampling (Sampled MuZero).
    max_episode_steps: the time limit in agent steps, reported as truncation (None: none).
    max_abs_reward: the largest |reward| of one step, if known (sizes the supports).
    legal_actions: whether steps report a legal-action mask (else every action is legal).
    eval_id: a `gymnasium.make` id with the same dynamics, on which the final
      evaluation is played (None: evaluate on this env itself).
    two_player: a two-player, zero-sum, alternating game: observations are from the
      view of the player to move and rewards from the view of the player who moved,
      so search backs values up with discount -1 between plies and value targets are
      the game's outcome from the mover's view (`muzero_jax.envs.pgx_env`).
    """

    env_id: str
    observation_shape: tuple[int, ...]
    num_actions: int
    observation_dtype: str = "float32"
    max_episode_steps: int | None = None
    max_abs_reward: float | None = None
    legal_actions: bool = False
    eval_id: str | None = None
    two_player: bool = False
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.observation_dtype not in ("float32", "uint8"):
            raise ValueError(f"observation_dtype={self.observation_dtype!r}: expected "
                             "'float32' (vectors, boards) or 'uint8' (frames)")
        if self.observation_dtype == "uint8" and len(self.observation_shape) != 3:
            raise ValueError(f"uint8 observations of shape {self.observation_shape}: frames "
                             "are expected as (height, width, channels)")
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError(f"action_low={self.action_low}, action_high={self.action_high}: "
                             "expected both (a Box env) or neither (a discrete env)")
        if self.continuous:
            low, high = np.asarray(self.action_low), np.asarray(self.action_high)
            if (low.ndim != 1 or low.shape != high.shape or not low.size
                    or not np.all(np.isfinite(low) & np.isfinite(high) & (low < high))):
                raise ValueError(f"action bounds {self.action_low}, {self.action_high}: "
                                 "expected equal-length tuples of finite floats, low < high")
            if self.num_actions != 0 or self.legal_actions:
                raise ValueError(f"num_actions={self.num_actions}, legal_actions="
                                 f"{self.legal_actions} for a Box env: expected 0 and False")
        elif self.num_actions < 1:
            raise ValueError(f"num_actions={self.num_actions}: expected >= 1")

    @property
    def continuous(self) -> bool:
        """Whether actions are `[D]` float vectors in a bounded Box."""
        return self.action_low is not None

    @property
    def action_dim(self) -> int:
        """D, the length of a Box env's action vectors (0 for a discrete env)."""
        return len(self.action_low) if self.continuous else 0

    @property
    def frames(self) -> bool:
        """Whether observations are uint8 frames."""
        return self.observation_dtype == "uint8"


def env_config(config: EnvConfig | Config) -> EnvConfig:
    """The env stage: `config` itself, or a whole `Config`'s `env` (the env factories
    read nothing else)."""
    if isinstance(config, Config):
        return config.env
    if not isinstance(config, EnvConfig):
        raise TypeError(f"config={config!r}: expected an EnvConfig (or a Config)")
    return config


def to_float(observation: chex.Array) -> jax.Array:
    """The network's view of stored observations: uint8 frames scaled to [0, 1], else float32."""
    observation = jnp.asarray(observation)
    if observation.dtype == jnp.uint8:
        return observation.astype(jnp.float32) / 255.0
    return observation.astype(jnp.float32)


# --- JAX-native environments ------------------------------------------------------------


class Transition(NamedTuple):
    """What `JaxEnv.transition` returns for one env.

    inner: the env's own next state. observation: `[*obs_shape]` the observation
    reached. reward: `[]` float. terminated: `[]` bool, a terminal state was reached.
    """

    inner: Any
    observation: chex.Array
    reward: chex.Array
    terminated: chex.Array


@chex.dataclass(frozen=True)
class EnvState:
    """State of one JAX environment (leading `[B]` axis when batched).

    inner: the env's own state.
    observation: `[*obs_shape]` the observation the agent acts on now.
    legal_action_mask: `[A]` bool, True where an action is legal now.
    step_count: `[]` int32, steps taken in the current episode.
    episode_return: `[]` float32, undiscounted return so far in the episode.
    key: PRNG key consumed by resets and stochastic transitions.
    """

    inner: Any
    observation: chex.Array
    legal_action_mask: chex.Array
    step_count: chex.Array
    episode_return: chex.Array
    key: chex.PRNGKey


@chex.dataclass(frozen=True)
class StepOutput:
    """What one step reports (leading `[B]` axis when batched).

    observation: `[*obs_shape]` next observation (the new episode's first, if done).
    final_observation: `[*obs_shape]` the observation reached by this step, before
      any reset; equals `observation` when the episode goes on.
    reward: `[]` float32.
    terminated: `[]` bool, the episode reached a terminal state.
    truncated: `[]` bool, the episode hit the time limit (and did not terminate).
    episode_return: `[]` float32, the finished episode's return where done, else 0.
    episode_length: `[]` int32, the finished episode's length where done, else 0.
    """

    observation: chex.Array
    final_observation: chex.Array
    reward: chex.Array
    terminated: chex.Array
    truncated: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array


class JaxEnv(abc.ABC):
    """One environment as pure, jit-able functions; self-play vmaps it over the batch.

    A subclass sets `spec` and writes its dynamics for a single env:

        initial(key) -> (inner, observation)
        transition(inner, action, key) -> Transition(inner, observation, reward, terminated)
        legal_action_mask(inner) -> [A] bool      (optional; default: all legal)

    `reset` and `step` (here) add the time limit `spec.max_episode_steps` as
    truncation, auto-reset in the same step, and episode statistics.
    """

    spec: EnvSpec

    @abc.abstractmethod
    def initial(self, key: chex.PRNGKey) -> tuple[Any, chex.Array]:
        """A new episode's state and first observation `[*obs_shape]`. key: consumed."""

    @abc.abstractmethod
    def transition(self, inner: Any, action: chex.Array, key: chex.PRNGKey) -> Transition:
        """One step from `inner` with `[]` int32 `action` (a Box env: `[D]` float32). key:
        consumed."""

    def legal_action_mask(self, inner: Any) -> chex.Array:
        """`[A]` bool, True where an action is legal in `inner` (default: all). A Box env
        has no actions to mask: `[1]` True, since checkpoints cannot hold empty arrays."""
        del inner
        return jnp.ones((max(self.spec.num_actions, 1),), bool)

    def _observe(self, observation: chex.Array) -> jax.Array:
        dtype = jnp.uint8 if self.spec.frames else jnp.float32
        return jnp.asarray(observation).astype(dtype)

    def reset(self, key: chex.PRNGKey) -> EnvState:
        """A fresh episode. key: one PRNG key (consumed)."""
        key, init_key = jax.random.split(key)
        inner, observation = self.initial(init_key)
        return EnvState(inner=inner, observation=self._observe(observation),
                        legal_action_mask=self.legal_action_mask(inner),
                        step_count=jnp.zeros((), jnp.int32),
                        episode_return=jnp.zeros((), jnp.float32), key=key)

    def step(self, state: EnvState, action: chex.Array) -> tuple[EnvState, StepOutput]:
        """One step with auto-reset. action: `[]` int32 (a Box env: `[D]` float32)."""
        # Five keys, of which two go unused: the transition takes the second and the reset
        # the fifth, the split every recorded CartPole run and test figure was made with.
        keys = jax.random.split(state.key, 5)
        key, transition_key, reset_key = keys[0], keys[1], keys[4]
        out = self.transition(state.inner, action, transition_key)
        reward = jnp.asarray(out.reward, jnp.float32)
        terminated = jnp.asarray(out.terminated, bool)
        step_count = state.step_count + 1
        limit = self.spec.max_episode_steps
        truncated = ((step_count >= limit) & ~terminated if limit is not None
                     else jnp.zeros((), bool))
        done = terminated | truncated
        final_observation = self._observe(out.observation)
        episode_return = state.episode_return + reward

        reset_inner, reset_observation = self.initial(reset_key)
        pick = lambda fresh, old: jnp.where(done, fresh, old)  # noqa: E731
        inner = jax.tree.map(pick, reset_inner, out.inner)
        new_state = EnvState(
            inner=inner,
            observation=pick(self._observe(reset_observation), final_observation),
            legal_action_mask=self.legal_action_mask(inner),
            step_count=jnp.where(done, 0, step_count),
            episode_return=jnp.where(done, 0.0, episode_return),
            key=key,
        )
        output = StepOutput(
            observation=new_state.observation,
            final_observation=final_observation,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            episode_return=jnp.where(done, episode_return, 0.0),
            episode_length=jnp.where(done, step_count, 0),
        )
        return new_state, output


# --- host-driven environments -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostStep:
    """What one step of B host environments reports (numpy, leading `[B]` axis).

    observation: `[B, *obs_shape]` the next observation (a new episode's first where done).
    final_observation: `[B, *obs_shape]` the observation the step reached, before any reset.
    reward: `[B]` float32. terminated, truncated: `[B]` bool (truncated only where
      not terminated).
    episode_return: `[B]` float32, the finished episode's return where done, else 0.
    episode_length: `[B]` int32, likewise its length in agent steps.
    legal_action_mask: `[B, A]` bool for the next observation, or None (all legal).
    """

    observation: np.ndarray
    final_observation: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    legal_action_mask: np.ndarray | None = None


class HostEnvs(Protocol):
    """B host environments stepped together (a mutable object, not a pytree).

    reset(seed) -> `[B, *obs_shape]` first observations (env b seeded with seed + b).
    step(actions `[B]` int, a Box env's `[B, D]` float32) -> `HostStep`, auto-resetting
    the envs whose episode ended.
    legal_action_mask: `[B, A]` bool for the current observations, or None.
    close() releases workers or emulators.
    """

    num_envs: int
    legal_action_mask: np.ndarray | None

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> HostStep: ...

    def close(self) -> None: ...


class HostEnv(abc.ABC):
    """An environment stepped from Python: its `spec` and a factory of `HostEnvs`."""

    spec: EnvSpec

    @abc.abstractmethod
    def make(self, num_envs: int) -> HostEnvs:
        """`num_envs` environments (call `reset` before stepping)."""


class EpisodeStats:
    """Running return and length of B host episodes (a helper for `HostEnvs`)."""

    def __init__(self, num_envs: int):
        self._return = np.zeros(num_envs, np.float32)
        self._length = np.zeros(num_envs, np.int32)

    def reset(self) -> None:
        self._return[:] = 0.0
        self._length[:] = 0

    def step(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Adds a step; returns `[B]` (return, length) of the episodes that ended, else 0."""
        self._return += reward
        self._length += 1
        episode_return = np.where(done, self._return, 0.0).astype(np.float32)
        episode_length = np.where(done, self._length, 0).astype(np.int32)
        self._return[done] = 0.0
        self._length[done] = 0
        return episode_return, episode_length
