"""Any `gymnasium.make` id with a discrete action space, as a host env.

`GymnasiumEnv(env_config)` reads the env's spaces once (one `gymnasium.make`, before
anything compiles) and makes batches with `gymnasium.make_vec` in same-step
auto-reset, in this process (`vector_mode="sync"`) or in worker processes
("async", spawned workers). Gymnasium's `"module:EnvId"` form imports the
module first, so a user's registered env trains by id.

Spaces: the action space must be `Discrete`. Observations may be a `Box` (float
vectors or arrays, stored as float32; uint8 `(height, width, channels)` images,
stored as frames), `Discrete` (one-hot, float32) or `MultiBinary` (float32).
Anything else fails with a message naming the space.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np

from muzero_jax.config import Config, ConfigError, EnvConfig
from muzero_jax.envs.base import EnvSpec, EpisodeStats, HostEnv, HostStep, env_config

SUPPORTED = ("actions: Discrete; observations: Box (float vectors/arrays, or uint8 images "
             "(height, width, channels)), Discrete (one-hot) or MultiBinary")


def gymnasium_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of `env_id`, importing `module` first for `"module:EnvId"`."""
    name = env_id
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"env={env_id!r}: cannot import module {module!r} ({e}); "
                              "expected 'module.path:EnvId' with an importable module that "
                              "registers EnvId") from None
    try:
        return gym.spec(name)
    except gym.error.Error as e:
        raise ConfigError(f"env={env_id!r}: not a registered Gymnasium env ({e}); expected a "
                          "gymnasium.make id, 'module:EnvId', 'gymnax/<id>', 'jax/<id>' or "
                          "'ALE/<Game>-v5'") from None


def _observation_kind(space: gym.Space, env_id: str) -> tuple[tuple[int, ...], str, str]:
    """(stored shape, stored dtype, how to convert) for an observation space."""
    if isinstance(space, gym.spaces.Box):
        if space.dtype == np.uint8 and len(space.shape) == 3:
            return tuple(space.shape), "uint8", "frames"
        return tuple(space.shape), "float32", "float"
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),), "float32", "one_hot"
    if isinstance(space, gym.spaces.MultiBinary):
        return tuple(np.atleast_1d(space.n)), "float32", "float"
    raise ConfigError(f"env={env_id!r}: observation space {space} is not supported; "
                      f"supported: {SUPPORTED}")


class GymnasiumEnv(HostEnv):
    """A Gymnasium env id, vectorised with `gymnasium.make_vec` (same-step auto-reset).

    The time limit is the env's own (its registered `max_episode_steps`, or
    `EnvConfig.max_episode_steps`); the final evaluation plays `gymnasium.make(env_id)`.

    Args:
      config: the env stage (a whole `Config` is read for its `env`).
    """

    def __init__(self, config: EnvConfig | Config):
        self.config = env_config(config)
        env_id = self.config.id
        self.gym_spec = gymnasium_spec(env_id)
        self.env_id = env_id
        self.max_episode_steps = self.config.max_episode_steps or self.gym_spec.max_episode_steps
        probe = gym.make(env_id, **self._kwargs())
        try:
            action_space, observation_space = probe.action_space, probe.observation_space
        finally:
            probe.close()
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"env={env_id!r}: action space {action_space} is not supported; "
                              f"supported: {SUPPORTED}")
        self.action_start = int(action_space.start)
        shape, dtype, self.convert = _observation_kind(observation_space, env_id)
        self.spec = EnvSpec(env_id=env_id, observation_shape=shape, observation_dtype=dtype,
                            num_actions=int(action_space.n),
                            max_episode_steps=self.max_episode_steps,
                            max_abs_reward=None,
                            # One-hot observations are ours, not what gymnasium.make gives,
                            # and another time limit is no longer the registered env's.
                            eval_id=None if self.convert == "one_hot" or (
                                self.max_episode_steps != self.gym_spec.max_episode_steps)
                            else env_id)

    def _kwargs(self) -> dict:
        if self.config.max_episode_steps is None:
            return {}
        return {"max_episode_steps": self.config.max_episode_steps}

    def observation(self, obs: np.ndarray) -> np.ndarray:
        """Batched observations as stored: `[B, *observation_shape]`."""
        if self.convert == "one_hot":
            one_hot = np.eye(self.spec.observation_shape[0], dtype=np.float32)
            return one_hot[np.asarray(obs, np.int64)]
        if self.convert == "frames":
            return np.asarray(obs, np.uint8)
        return np.asarray(obs, np.float32).reshape((-1,) + self.spec.observation_shape)

    def make(self, num_envs: int) -> GymnasiumEnvs:
        return GymnasiumEnvs(self, num_envs)


class GymnasiumEnvs:
    """B Gymnasium envs stepped together by a `gymnasium.vector.VectorEnv`."""

    legal_action_mask = None

    def __init__(self, env: GymnasiumEnv, num_envs: int):
        from gymnasium.vector import AutoresetMode

        self.env = env
        self.num_envs = num_envs
        vector_kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP}
        if env.config.vector_mode == "async":
            # Forking a process that runs JAX's threads can deadlock the child; spawned
            # workers import the env afresh ('module:EnvId', or a script's registration
            # under `if __name__ == "__main__":`).
            vector_kwargs["context"] = "spawn"
        self._vec = gym.make_vec(
            env.env_id, num_envs=num_envs, vectorization_mode=env.config.vector_mode,
            vector_kwargs=vector_kwargs, **env._kwargs())
        self._stats = EpisodeStats(num_envs)

    def reset(self, seed: int) -> np.ndarray:
        """Starts every env afresh (env b seeded with seed + b). `[B, *obs_shape]`."""
        obs, _ = self._vec.reset(seed=int(seed))
        self._stats.reset()
        return self.env.observation(obs)

    def step(self, action: np.ndarray) -> HostStep:
        """Plays `[B]` actions, auto-resetting the envs whose episode ended."""
        obs, reward, terminated, truncated, info = self._vec.step(
            np.asarray(action, np.int64) + self.env.action_start)
        observation = self.env.observation(obs)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool) & ~terminated
        done = terminated | truncated
        final = observation
        if done.any():  # same-step mode keeps the observations episodes ended on here
            final = observation.copy()
            for b in np.flatnonzero(done):
                final[b] = self.env.observation(np.asarray(info["final_obs"][b])[None])[0]
        episode_return, episode_length = self._stats.step(reward, done)
        return HostStep(observation=observation, final_observation=final, reward=reward,
                        terminated=terminated, truncated=truncated,
                        episode_return=episode_return, episode_length=episode_length)

    def close(self) -> None:
        self._vec.close()
