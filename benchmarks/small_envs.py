"""Small Gymnasium envs that no preset was tuned on, for the defaults' learning checks.

Importing this module registers them, so each trains by id from the repository root:

    python experiments/train.py --env benchmarks.small_envs:Corridor-v0

| id               | observations     | actions | time limit | optimal greedy return         |
|------------------|------------------|---------|------------|-------------------------------|
| Corridor-v0      | Discrete(10)     | 2       | 50         | 20 (+20 right, -10 left)      |
| Grid-v0          | Box(2,) position | 4       | 50         | 4.3 (+5 goal, -0.1 a step, 8) |
| ContextBandit-v0 | Box(4,) one-hot  | 4       | 30         | 15 (0.5 a matched arm)        |
| FrozenLakeDet-v0 | Discrete(16)     | 4       | 100        | 1 (Gymnasium's 4x4, no slips) |

None declares a reward range or a reward_threshold, as most Gymnasium envs do not.
Gymnasium's CliffWalking-v1 (no time limit; optimal return -13) is the fifth check.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

OPTIMAL_RETURN = {"benchmarks.small_envs:Corridor-v0": 20.0,
                  "benchmarks.small_envs:Grid-v0": 4.3,
                  "benchmarks.small_envs:ContextBandit-v0": 15.0,
                  "benchmarks.small_envs:FrozenLakeDet-v0": 1.0,
                  "CliffWalking-v1": -13.0}


class Corridor(gym.Env):
    """Cells 0..9, starting at 2: walking into cell 0 pays -10, into cell 9 pays +20 (both
    end the episode); every other step pays 0. Random walks mostly end on the left."""

    LENGTH, START = 10, 2

    def __init__(self):
        self.observation_space = spaces.Discrete(self.LENGTH)
        self.action_space = spaces.Discrete(2)  # 0: left, 1: right
        self._position = self.START

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._position = self.START
        return self._position, {}

    def step(self, action):
        self._position += 1 if int(action) == 1 else -1
        if self._position <= 0:
            return 0, -10.0, True, False, {}
        if self._position >= self.LENGTH - 1:
            return self.LENGTH - 1, 20.0, True, False, {}
        return self._position, 0.0, False, False, {}


class Grid(gym.Env):
    """A 5x5 grid from (0, 0) to the goal (4, 4): -0.1 a step, +5 on reaching the goal
    (which ends the episode); walls keep the agent in. Observations: (x, y) / 4."""

    SIZE = 5
    MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))

    def __init__(self):
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(4)
        self._xy = np.zeros(2, np.int64)

    def _observation(self):
        return (self._xy / (self.SIZE - 1)).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._xy = np.zeros(2, np.int64)
        return self._observation(), {}

    def step(self, action):
        self._xy = np.clip(self._xy + self.MOVES[int(action)], 0, self.SIZE - 1)
        if (self._xy == self.SIZE - 1).all():
            return self._observation(), 5.0, True, False, {}
        return self._observation(), -0.1, False, False, {}


class ContextBandit(gym.Env):
    """Each step shows one of 4 contexts (one-hot) drawn at random; the matching arm pays
    0.5, any other 0. Nothing ends an episode but its time limit."""

    ARMS = 4

    def __init__(self):
        self.observation_space = spaces.Box(0.0, 1.0, (self.ARMS,), np.float32)
        self.action_space = spaces.Discrete(self.ARMS)
        self._context = 0

    def _observation(self):
        return np.eye(self.ARMS, dtype=np.float32)[self._context]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._context = int(self.np_random.integers(self.ARMS))
        return self._observation(), {}

    def step(self, action):
        reward = 0.5 if int(action) == self._context else 0.0
        self._context = int(self.np_random.integers(self.ARMS))
        return self._observation(), reward, False, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)
gym.register("Grid-v0", entry_point=Grid, max_episode_steps=50)
gym.register("ContextBandit-v0", entry_point=ContextBandit, max_episode_steps=30)
gym.register("FrozenLakeDet-v0", entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
             kwargs={"map_name": "4x4", "is_slippery": False}, max_episode_steps=100)
