"""Any `gymnasium.make` id with a discrete or bounded continuous action space, as a host env.

`GymnasiumEnv(env_config)` reads the env's spaces once (one `gymnasium.make`, before
anything compiles) and makes batches with `gymnasium.make_vec` in same-step
auto-reset, in this process (`vector_mode="sync"`) or in worker processes
("async", spawned workers). Gymnasium's `"module:EnvId"` form imports the
module first, so a user's registered env trains by id.

Spaces: the action space must be `Discrete` or a bounded float `Box`. A Box of any
shape is flattened to D = its size (row-major): the agent's actions are `[D]` float32
vectors, clipped into the bounds and reshaped to the Box's shape before the env sees
them (`ActionMap`). A Box with an infinite bound is refused: sampled search draws its
actions within the bounds. Observations may be a `Box` (float vectors or arrays, stored
as float32; uint8 `(height, width, channels)` images, stored as frames), `Discrete`
(one-hot, float32) or `MultiBinary` (float32). Anything else fails with a message
naming the space.
"""

from __future__ import annotations

import dataclasses
import importlib

import gymnasium as gym
import numpy as np

from muzero_jax.config import Config, ConfigError, EnvConfig
from muzero_jax.envs.base import EnvSpec, EpisodeStats, HostEnv, HostStep, env_config

SUPPORTED = ("actions: Discrete or a float Box with finite bounds; observations: Box (float "
             "vectors/arrays, or uint8 images (height, width, channels)), Discrete (one-hot) "
             "or MultiBinary")


# Per-step |reward| bounds of Gymnasium envs whose rewards a short random rollout
# (`envs.fit_to_env`'s probe) understates, by name without the version: a goal bonus
# random actions never reach (MountainCarContinuous: 100; at random, 0.1), and MuJoCo
# locomotion, where a trained controller earns several times a random one (Hopper-v5:
# 2.1 a step at most at random, 5.05 by 35,200 env steps of training). A generous bound
# costs support atoms only: the squash keeps the resolution of small values.
REWARD_BOUNDS = {"MountainCarContinuous": 100.0, "InvertedPendulum": 1.0,
                 "InvertedDoublePendulum": 10.0, "Reacher": 5.0, "Pusher": 10.0,
                 "Swimmer": 5.0, "Hopper": 20.0, "Walker2d": 20.0, "HalfCheetah": 30.0,
                 "Ant": 30.0, "Humanoid": 30.0}


def declared_reward_bound(env_id: str) -> float | None:
    """`REWARD_BOUNDS`' entry for a Gymnasium id (`Hopper-v5` reads `Hopper`), else None."""
    name = env_id.split(":", 1)[-1].rsplit("-v", 1)[0]
    return REWARD_BOUNDS.get(name)


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


def describe_space(space: gym.Space) -> str:
    """`str(space)` on one line (numpy wraps the bounds of a large or 2-D Box)."""
    return " ".join(str(space).split())


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
    raise ConfigError(f"env={env_id!r}: observation space {describe_space(space)} is not "
                      f"supported; supported: {SUPPORTED}")


@dataclasses.dataclass(frozen=True, eq=False)
class ActionMap:
    """How the agent's actions become a Gymnasium env's: a Discrete space's index plus
    its `start`, or a Box's `[D]` float vector clipped into the bounds and reshaped.

    start: a Discrete space's first action (0 for a Box).
    low, high: a Box's bounds flattened to `[D]` float64 (None for a Discrete space).
    shape, dtype: the Box's own shape and dtype (None, int64 for a Discrete space).
    """

    start: int = 0
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    shape: tuple[int, ...] | None = None
    dtype: str = "int64"

    @property
    def continuous(self) -> bool:
        return self.low is not None

    def batch(self, action: np.ndarray) -> np.ndarray:
        """`[B]` int indices (a Box: `[B, D]` floats) as a vector env's actions."""
        if not self.continuous:
            return np.asarray(action, np.int64) + self.start
        action = np.asarray(action, np.float64).reshape(-1, self.low.size)
        clipped = np.clip(action, self.low, self.high)
        return clipped.reshape((-1, *self.shape)).astype(self.dtype)

    def one(self, action: np.ndarray) -> int | np.ndarray:
        """One env's action: an index `[]` as an int, a Box's `[D]` vector clipped and
        reshaped to the Box's shape."""
        if not self.continuous:
            return int(action) + self.start
        return self.batch(np.asarray(action)[None])[0]


def action_map(space: gym.Space, env_id: str) -> ActionMap:
    """The `ActionMap` of an action space; `ConfigError` (one line naming the space) for a
    space other than Discrete or a bounded float Box."""
    if isinstance(space, gym.spaces.Discrete):
        return ActionMap(start=int(space.start))
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        raise ConfigError(f"env={env_id!r}: action space {describe_space(space)} is not "
                          f"supported; supported: {SUPPORTED}")
    low = np.asarray(space.low, np.float64).ravel()
    high = np.asarray(space.high, np.float64).ravel()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ConfigError(f"env={env_id!r}: action space {describe_space(space)} is unbounded; "
                          "expected a Box with a finite low and high in every dimension "
                          "(continuous actions are sampled within the bounds)")
    if not (low.size and np.all(low < high)):
        raise ConfigError(f"env={env_id!r}: action space {describe_space(space)} has an empty "
                          "range; expected low < high in every dimension")
    return ActionMap(low=low, high=high, shape=tuple(space.shape), dtype=str(space.dtype))


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
        self.actions = action_map(action_space, env_id)
        bounds = ((tuple(map(float, self.actions.low)), tuple(map(float, self.actions.high)))
                  if self.actions.continuous else (None, None))
        shape, dtype, self.convert = _observation_kind(observation_space, env_id)
        self.spec = EnvSpec(env_id=env_id, observation_shape=shape, observation_dtype=dtype,
                            num_actions=0 if self.actions.continuous else int(action_space.n),
                            action_low=bounds[0], action_high=bounds[1],
                            max_episode_steps=self.max_episode_steps,
                            max_abs_reward=declared_reward_bound(env_id),
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
        """Plays `[B]` actions (a Box env: `[B, D]`, clipped into its bounds),
        auto-resetting the envs whose episode ended."""
        obs, reward, terminated, truncated, info = self._vec.step(
            self.env.actions.batch(action))
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
