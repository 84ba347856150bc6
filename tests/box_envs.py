"""Tiny Gymnasium envs with action spaces the Box tests need, registered on import
(importable as `box_envs`, so that `box_envs:<id>` names them from the tests directory).

- UNBOUNDED_ID: a Box with infinite bounds (refused).
- MULTI_DISCRETE_ID: a MultiDiscrete space (refused).
- INT_BOX_ID: a Box of integers (refused: not a float Box).
- MATRIX_ID: a 2x3 float Box with a different bound per entry.

Each step observes the action it received, flattened, and is paid its largest |entry|,
so a test sees what the env was given.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

UNBOUNDED_ID = "muzero_jax_tests/UnboundedBox-v0"
MULTI_DISCRETE_ID = "muzero_jax_tests/MultiDiscreteActions-v0"
INT_BOX_ID = "muzero_jax_tests/IntegerBox-v0"
MATRIX_ID = "muzero_jax_tests/MatrixBox-v0"

MATRIX_LOW = np.array([[-1.0, -2.0, 0.0], [-0.5, 1.0, -3.0]], np.float32)
MATRIX_HIGH = np.array([[1.0, 2.0, 0.5], [0.5, 4.0, -1.0]], np.float32)


class EchoEnv(gym.Env):
    """Observes the last action it received, flattened; reward: its largest |entry|;
    episodes of 3 steps."""

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space
        size = int(np.prod(action_space.shape or (1,)))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        self.t += 1
        observation = np.asarray(action, np.float32).reshape(self.observation_space.shape)
        return observation, float(np.max(np.abs(observation))), self.t >= 3, False, {}


SPACES = {
    UNBOUNDED_ID: lambda: gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
    MULTI_DISCRETE_ID: lambda: gym.spaces.MultiDiscrete([2, 3]),
    INT_BOX_ID: lambda: gym.spaces.Box(0, 5, (2,), np.int64),
    MATRIX_ID: lambda: gym.spaces.Box(MATRIX_LOW, MATRIX_HIGH, dtype=np.float32),
}

for _env_id, _space in SPACES.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=EchoEnv, kwargs={"action_space": _space()},
                     max_episode_steps=10)
