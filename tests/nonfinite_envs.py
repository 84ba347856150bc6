"""Envs for the fault tests that turn non-finite at a known step: Gymnasium envs (host
path) and a JAX env (compiled path), registered on import.

Each instance counts its own steps over episodes and returns a NaN observation or
reward on its `nan_at`-th step, so B envs stepped together meet it at env step
`nan_at * B` of training.
"""

from __future__ import annotations

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from muzero_jax import envs

NAN_AT = 50  # the step (of each env) that is non-finite
GYM_OBSERVATION_ID = "MuZeroTestNanObservation-v0"
GYM_REWARD_ID = "MuZeroTestNanReward-v0"
GYM_STEADY_ID = "MuZeroTestSteady-v0"  # never non-finite
JAX_ID = "jax/MuZeroTestNanObservation-v0"


class NanAt(gym.Env):
    """Four-float observations, two actions, episodes of 10 steps; step `nan_at` (over
    episodes) is NaN in `quantity` ("observation" or "reward")."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, quantity: str, nan_at: int = NAN_AT):
        self.quantity, self.nan_at = quantity, nan_at
        self.steps, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t / 10, 0.5, -0.5, 0.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        obs, reward = self._obs(), float(action)
        if self.steps == self.nan_at:
            if self.quantity == "observation":
                obs[1] = np.nan
            else:
                reward = np.nan
        return obs, reward, self.t >= 10, False, {}


class NanAtJax(envs.JaxEnv):
    """The compiled path's twin of `NanAt("observation")`: no episode ends, so the
    inner state counts each env's steps; the observation of step `nan_at` is NaN."""

    def __init__(self, max_episode_steps=None, nan_at: int = NAN_AT):
        self.nan_at = nan_at
        self.spec = envs.EnvSpec(env_id=JAX_ID, observation_shape=(4,), num_actions=2,
                                 max_episode_steps=max_episode_steps, max_abs_reward=1.0)

    def _obs(self, steps):
        obs = jnp.array([0.0, 0.5, -0.5, 0.0]).at[0].set((steps % 10) / 10)
        return jnp.where(steps == self.nan_at, jnp.nan, obs)

    def initial(self, key):
        del key
        return jnp.int32(0), self._obs(jnp.int32(0))

    def transition(self, inner, action, key):
        del key
        steps = inner + 1
        return envs.Transition(inner=steps, observation=self._obs(steps),
                               reward=action.astype(jnp.float32),
                               terminated=jnp.bool_(False))


for _id, _quantity in ((GYM_OBSERVATION_ID, "observation"), (GYM_REWARD_ID, "reward")):
    if _id not in gym.registry:
        gym.register(_id, entry_point=NanAt, kwargs={"quantity": _quantity})
if GYM_STEADY_ID not in gym.registry:
    gym.register(GYM_STEADY_ID, entry_point=NanAt,
                 kwargs={"quantity": "observation", "nan_at": -1})
envs.register(JAX_ID, NanAtJax)
