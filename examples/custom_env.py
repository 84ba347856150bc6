"""Your own Gymnasium environment, trained by id: a grid maze, in one file.

    python examples/custom_env.py [--total-env-steps N]

`GridMaze` is a plain `gymnasium.Env` (numpy, stepped on the host): the agent
walks from S to G around walls, paying 1 per step, so the return is minus the
steps taken (the shortest path takes 8; an agent that never arrives gets -50 at
the time limit). Registered with `gymnasium.register`, it trains by id through
`muzero_jax.train` like any Gymnasium env: `gymnasium.make_vec` steps 16 mazes,
one jitted batched search per step. Other processes (`vector_mode="async"`,
`experiments/train.py`) import it by `--env examples.custom_env:GridMaze-v0`
from the repository root, Gymnasium's `module:EnvId` form.
"""

import argparse
import os
import sys

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import muzero_jax as mz  # noqa: E402

MAZE = ("S.#..", "..#.#", "#....", "..##.", ".#..G")  # S start, G goal, # wall


class GridMaze(gym.Env):  # -1 per step: the return is minus the steps taken
    def __init__(self):
        self.walls = np.array([[c == "#" for c in row] for row in MAZE])
        self.action_space = gym.spaces.Discrete(4)  # up, down, left, right
        self.observation_space = gym.spaces.Box(0.0, 1.0, (25,), np.float32)

    def observe(self):  # one-hot of the agent's cell
        return (np.arange(25) == 5 * self.cell[0] + self.cell[1]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = (0, 0)
        return self.observe(), {}

    def step(self, action):
        r, c = np.add(self.cell, [(-1, 0), (1, 0), (0, -1), (0, 1)][action])
        if 0 <= r < 5 and 0 <= c < 5 and not self.walls[r, c]:  # else: stay
            self.cell = (int(r), int(c))
        return self.observe(), -1.0, self.cell == (4, 4), False, {}


gym.register("GridMaze-v0", entry_point=GridMaze, max_episode_steps=50)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total-env-steps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = mz.cartpole(  # CartPole's preset fits: small MLP, Gumbel search, 16 envs
        env="GridMaze-v0", max_abs_reward=1.0, seed=args.seed,
        total_env_steps=args.total_env_steps, eval_every=4, solve_return=-8.0)
    result = mz.train(config)
    returns = mz.evaluate_gymnasium(result.agent, result.state, "GridMaze-v0", num_episodes=10)
    print(f"greedy return on GridMaze-v0: {returns.mean():.1f} (best possible: -8) after "
          f"{result.env_steps} env steps, {result.seconds:.0f} s")
