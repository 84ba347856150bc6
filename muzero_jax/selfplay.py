"""Self-play: B environments stepped T times, searching at every step, in one jit.

The rollout is a `lax.scan` over time whose body searches the whole batch at
once and steps the vmapped environment. Its output, a `Trajectory`, is the one
format replay accepts; host-driven environments (Gymnasium, ALE) build the same
`Trajectory` from the same jitted search (see `Trajectory` for the row layout).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from muzero_jax.envs import EnvState, JaxEnv
from muzero_jax.networks import Params
from muzero_jax.search import Exploration, Searcher


@chex.dataclass(frozen=True)
class Trajectory:
    """T steps of B environment streams, batch axis first.

    Row t of a stream holds the observation acted on, what the search said
    there, the action taken and what the environment answered. Episodes follow
    each other in a stream: after a row with `terminated` or `truncated`, the next
    row is the next episode's first observation.

    observation: `[B, T, *obs_shape]` the observation searched at step t.
    action: `[B, T]` int32, the action taken.
    reward: `[B, T]` float32, the reward received for it.
    terminated: `[B, T]` bool, the episode reached a terminal state after it.
    truncated: `[B, T]` bool, the episode hit its time limit after it.
    search_policy: `[B, T, A]` the search's policy target.
    root_value: `[B, T]` the search's root value.
    final_value: `[B, T]` the network's value of the observation the episode was
      truncated on (0 elsewhere): the bootstrap value at a time limit.
    episode_return: `[B, T]` the finished episode's return where it ended, else 0.
    episode_length: `[B, T]` int32, likewise its length.
    """

    observation: chex.Array
    action: chex.Array
    reward: chex.Array
    terminated: chex.Array
    truncated: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    final_value: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array


def reset(env: JaxEnv, key: chex.PRNGKey, num_envs: int) -> EnvState:
    """`[num_envs]` fresh environments."""
    return jax.vmap(env.reset)(jax.random.split(key, num_envs))


def rollout(env: JaxEnv, searcher: Searcher, params: Params, env_state: EnvState,
            key: chex.PRNGKey, exploration: Exploration,
            num_steps: int) -> tuple[EnvState, Trajectory]:
    """Runs `num_steps` steps of search-and-act on every environment.

    Args:
      env: the single-env JAX environment (vmapped here).
      searcher: the batched search.
      params: network parameters.
      env_state: `[B]` environment states.
      key: PRNG key (consumed).
      exploration: acting knobs (training or greedy).
      num_steps: T (static).

    Returns:
      The `[B]` environment states after T steps, and the `[B, T]` trajectory.
    """
    model = searcher.model

    def step(env_state: EnvState, step_key):
        observation = env_state.observation
        out = searcher(params, step_key, observation, exploration)
        env_state, env_out = jax.vmap(env.step)(env_state, out.action)
        # The time limit is rare: only pay for the extra network call when it hits.
        final_value = jax.lax.cond(
            jnp.any(env_out.truncated),
            lambda: jnp.where(env_out.truncated,
                              model.initial_inference(params, env_out.final_observation).value,
                              0.0),
            lambda: jnp.zeros_like(env_out.reward))
        row = Trajectory(
            observation=observation, action=out.action, reward=env_out.reward,
            terminated=env_out.terminated, truncated=env_out.truncated,
            search_policy=out.search_policy, root_value=out.root_value,
            final_value=final_value, episode_return=env_out.episode_return,
            episode_length=env_out.episode_length)
        return env_state, row

    env_state, rows = jax.lax.scan(step, env_state,
                                   jax.random.split(key, num_steps))
    return env_state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)
