"""Greedy evaluation, on our JAX environments and on Gymnasium's own.

`evaluate_jax` runs the compiled self-play rollout with greedy exploration and
reads off each environment's first episode (counting later, shorter episodes
would bias the mean downwards). `evaluate_gymnasium` plays
`gymnasium.make(env_id)` instances from the host, one jitted batched search per
step, so a result can be checked against the reference implementation.
"""

from __future__ import annotations

import math

import gymnasium as gym
import jax
import numpy as np

from muzero_jax.agent import Agent
from muzero_jax.learner import TrainState


def evaluate_jax(agent: Agent, state: TrainState, key: jax.Array,
                 num_episodes: int) -> np.ndarray:
    """Returns of `num_episodes` greedy episodes on the agent's JAX env. `[E]` float."""
    cfg = agent.config
    num_envs, chunk = cfg.num_envs, cfg.rollout_length
    max_chunks = math.ceil(agent.env.max_episode_steps / chunk) + 1
    returns = []
    for _ in range(math.ceil(num_episodes / num_envs)):
        key, reset_key = jax.random.split(key)
        env_state = agent.reset(reset_key)
        first = np.full(num_envs, np.nan)
        for _ in range(max_chunks):
            key, rollout_key = jax.random.split(key)
            env_state, traj = agent.rollout(state, env_state, rollout_key, greedy=True)
            done = np.asarray(traj.terminated | traj.truncated)
            episode_return = np.asarray(traj.episode_return)
            for b in np.flatnonzero(np.isnan(first) & done.any(axis=1)):
                first[b] = episode_return[b, np.argmax(done[b])]
            if not np.isnan(first).any():
                break
        returns.append(first)
    return np.concatenate(returns)[:num_episodes]


def evaluate_gymnasium(agent: Agent, state: TrainState, env_id: str, num_episodes: int,
                       *, seed: int = 0, key: jax.Array | None = None) -> np.ndarray:
    """Returns of `num_episodes` greedy episodes of `gymnasium.make(env_id)`. `[E]` float.

    All episodes run side by side; each step searches the whole batch at once
    (finished episodes keep a stale observation whose action is ignored), so the
    search compiles once for batch `num_episodes`.
    """
    key = jax.random.key(seed) if key is None else key
    games = [gym.make(env_id) for _ in range(num_episodes)]
    obs = np.stack([g.reset(seed=seed + i)[0] for i, g in enumerate(games)]).astype(np.float32)
    returns = np.zeros(num_episodes)
    active = np.ones(num_episodes, bool)
    while active.any():
        key, act_key = jax.random.split(key)
        actions = np.asarray(agent.act(state, act_key, obs, greedy=True).action)
        for i in np.flatnonzero(active):
            o, r, terminated, truncated, _ = games[i].step(int(actions[i]))
            obs[i] = o
            returns[i] += r
            active[i] = not (terminated or truncated)
    for g in games:
        g.close()
    return returns
