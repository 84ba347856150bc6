"""Self-play: B environments stepped T times, searching at every step.

For JAX environments the rollout is one jitted `lax.scan` over time whose body
searches the whole batch at once and steps the vmapped environment. Host-driven
environments (ALE's vectorised Atari) are stepped by `host_rollout`, a Python
loop over the T steps that calls the same jitted batched search at each and
keeps each game's frame/action history on the device. Both return a
`Trajectory`, the one format replay accepts (see it for the row layout).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import history as history_lib
from muzero_jax.envs import EnvState, JaxEnv
from muzero_jax.networks import Params
from muzero_jax.search import Exploration, Searcher, SearchOutput


@chex.dataclass(frozen=True)
class Trajectory:
    """T steps of B environment streams, batch axis first.

    Row t of a stream holds the observation acted on, what the search said
    there, the action taken and what the environment answered. Episodes follow
    each other in a stream: after a row with `terminated` or `truncated`, the next
    row is the next episode's first observation.

    observation: `[B, T, *obs_shape]` the observation searched at step t; with a
      frame history, only its newest frame `[B, T, *frame_shape]` uint8 (replay
      rebuilds the stack from consecutive rows).
    action: `[B, T]` int32, the action taken.
    reward: `[B, T]` float32, the reward received for it.
    terminated: `[B, T]` bool, the episode reached a terminal state after it.
    truncated: `[B, T]` bool, the episode hit its time limit after it.
    search_policy: `[B, T, A]` the search's policy target.
    root_value: `[B, T]` the search's root value.
    final_value: `[B, T]` the acting network's value of the observation the
      episode was truncated on (0 elsewhere): the bootstrap value at a time limit
      when neither a target network nor Reanalyze gives a fresh one.
    final_observation: `[B, T, *obs_shape]` the observation the step reached,
      before any reset (with a frame history: its newest frame); replay keeps it
      only where the episode was truncated, to refresh the value there.
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
    final_observation: chex.Array
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
            final_value=final_value, final_observation=env_out.final_observation,
            episode_return=env_out.episode_return,
            episode_length=env_out.episode_length)
        return env_state, row

    env_state, rows = jax.lax.scan(step, env_state,
                                   jax.random.split(key, num_steps))
    return env_state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)


# --- host-driven environments (ALE) ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostEnvState:
    """B host-driven games and what self-play keeps of them.

    games: the games (e.g. `envs.atari.AtariGames`): mutable host objects, stepped
      in place, so an older `HostEnvState` of the same games is stale.
    history: `[B, H]` `history.History` on the device; its newest frame is `frame`.
    frame: `[B, *frame_shape]` uint8 numpy, the frame to act on now.
    """

    games: Any
    history: history_lib.History
    frame: np.ndarray


def host_reset(games: Any, seed: int, history_length: int) -> HostEnvState:
    """Resets `games` (game b seeded with seed + b) and starts their histories."""
    frame = games.reset(seed)
    return HostEnvState(games=games, history=history_lib.start(jnp.asarray(frame),
                                                                 history_length),
                        frame=frame)


def host_rollout(env_state: HostEnvState, key: chex.PRNGKey, num_steps: int, *,
                 search: Callable[[chex.PRNGKey, history_lib.History], SearchOutput],
                 push: Callable[..., history_lib.History],
                 final_value: Callable[[history_lib.History, chex.Array, chex.Array],
                                       chex.Array]) -> tuple[HostEnvState, Trajectory]:
    """Runs `num_steps` steps of search-and-act on B host games.

    Args:
      env_state: the games and their histories.
      key: PRNG key (consumed).
      num_steps: T.
      search: jitted `(key, history) -> SearchOutput` for the `[B]` histories.
      push: jitted `history.push`.
      final_value: jitted `(history, final_frame, action) -> [B]` the network value
        of the history extended by the frame a truncated episode ended on.

    Returns:
      The new state (same games, stepped) and the `[B, T]` trajectory, whose
      observations are single frames.
    """
    games, hist, frame = env_state.games, env_state.history, env_state.frame
    rows = []
    for step_key in jax.random.split(key, num_steps):
        out = search(step_key, hist)
        action = np.asarray(out.action)
        step = games.step(action)
        done = step.terminated | step.truncated
        value = np.zeros(len(action), np.float32)
        if step.truncated.any():  # the time limit is rare: pay for the value only then
            value = np.where(step.truncated,
                             np.asarray(final_value(hist, step.final_frame, action)), 0.0)
        rows.append(dict(observation=frame, action=action, reward=step.reward,
                         terminated=step.terminated, truncated=step.truncated,
                         search_policy=out.search_policy, root_value=out.root_value,
                         final_value=value, final_observation=step.final_frame,
                         episode_return=step.episode_return,
                         episode_length=step.episode_length))
        hist = push(hist, step.frame, action, done)
        frame = step.frame

    def stack(name):
        values = [row[name] for row in rows]
        if isinstance(values[0], jax.Array):
            return jnp.stack(values, axis=1)
        return np.stack(values, axis=1)

    trajectory = Trajectory(**{name: stack(name) for name in rows[0]})
    return HostEnvState(games=games, history=hist, frame=frame), trajectory
