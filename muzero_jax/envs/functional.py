"""Batched JAX environments on Gymnasium's functional API, with auto-reset.

A `gymnasium.experimental.functional.FuncEnv` gives pure `initial`, `transition`,
`observation`, `reward` and `terminal` functions of an explicit state. `JaxEnv`
adds what self-play needs around one such env, written for a single env and
vmapped over the batch by the caller:

- a step counter and a time limit, reported as *truncation*, never as
  termination (SPEC.md: a time limit is not a terminal; targets bootstrap there);
- auto-reset in the same step: after an episode ends, the returned state and
  observation are already the next episode's first, and the observation the
  episode ended on is returned beside them as `final_observation`;
- running episode return and length, so that statistics need no host loop.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from gymnasium.experimental.functional import FuncEnv


@chex.dataclass(frozen=True)
class EnvState:
    """State of one environment (leading `[B]` axis when batched).

    inner: the FuncEnv's own state.
    observation: `[*obs_shape]` the observation the agent acts on now.
    step_count: `[]` int32, steps taken in the current episode.
    episode_return: `[]` float32, undiscounted return so far in the episode.
    key: PRNG key consumed by resets and stochastic transitions.
    """

    inner: Any
    observation: chex.Array
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


class JaxEnv:
    """A single-env, pure, jit-able wrapper of a `FuncEnv`; vmap it over a batch.

    Args:
      func_env: the functional environment.
      params: its parameters (passed to every FuncEnv call).
      max_episode_steps: the time limit; reaching it truncates the episode.
      num_actions: size of the discrete action space.
      max_abs_reward: largest |reward| of one step, if known (checks supports).
    """

    def __init__(self, func_env: FuncEnv, params: Any, *, max_episode_steps: int,
                 num_actions: int, max_abs_reward: float | None = None):
        self.func_env = func_env
        self.params = params
        self.max_episode_steps = int(max_episode_steps)
        self.num_actions = int(num_actions)
        self.max_abs_reward = max_abs_reward
        self.observation_shape = tuple(func_env.observation_space.shape)

    def _initial(self, key: chex.PRNGKey) -> tuple[Any, chex.Array]:
        init_key, obs_key = jax.random.split(key)
        inner = self.func_env.initial(init_key, self.params)
        observation = self.func_env.observation(inner, obs_key, self.params)
        return inner, jnp.asarray(observation, jnp.float32)

    def reset(self, key: chex.PRNGKey) -> EnvState:
        """A fresh episode. key: one PRNG key (consumed)."""
        key, init_key = jax.random.split(key)
        inner, observation = self._initial(init_key)
        return EnvState(inner=inner, observation=observation,
                        step_count=jnp.zeros((), jnp.int32),
                        episode_return=jnp.zeros((), jnp.float32), key=key)

    def step(self, state: EnvState, action: chex.Array) -> tuple[EnvState, StepOutput]:
        """One step with auto-reset. action: `[]` int32."""
        key, transition_key, reward_key, obs_key, reset_key = jax.random.split(state.key, 5)
        inner = self.func_env.transition(state.inner, action, transition_key, self.params)
        reward = jnp.asarray(
            self.func_env.reward(state.inner, action, inner, reward_key, self.params),
            jnp.float32)
        terminated = jnp.asarray(self.func_env.terminal(inner, obs_key, self.params), bool)
        step_count = state.step_count + 1
        truncated = (step_count >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_observation = jnp.asarray(
            self.func_env.observation(inner, obs_key, self.params), jnp.float32)
        episode_return = state.episode_return + reward

        reset_inner, reset_observation = self._initial(reset_key)
        pick = lambda fresh, old: jnp.where(done, fresh, old)  # noqa: E731
        new_state = EnvState(
            inner=jax.tree.map(pick, reset_inner, inner),
            observation=pick(reset_observation, final_observation),
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
