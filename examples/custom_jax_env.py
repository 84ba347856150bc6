"""Your own JAX environment, trained through the jitted path: Catch, in one file.

    python examples/custom_jax_env.py [--total-env-steps N]

`Catch` subclasses `muzero_jax.envs.JaxEnv`: a ball falls down a 10 x 5 board
from a random column while the agent moves a paddle along the bottom row (left,
stay, right); catching it pays +1, missing it -1, and the episode ends. Its
`initial` and `transition` are pure functions of one env; the base class adds
the time limit, auto-reset and episode statistics, and self-play vmaps it and
steps it inside one compiled `lax.scan`. Registered with
`muzero_jax.envs.register`, it trains by the id `jax/Catch-v0`.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import muzero_jax as mz  # noqa: E402
from muzero_jax import envs  # noqa: E402


class Catch(envs.JaxEnv):  # a ball falls down a 10 x 5 board; catch it with the paddle
    spec = envs.EnvSpec(env_id="jax/Catch-v0", observation_shape=(50,), num_actions=3,
                        max_episode_steps=10, max_abs_reward=1.0)

    def observe(self, s):  # s: [3] int32 (ball row, ball column, paddle column)
        board = jnp.zeros((10, 5)).at[s[0], s[1]].set(1.0)
        return board.at[9, s[2]].set(1.0).ravel()

    def initial(self, key):
        s = jnp.array([0, jax.random.randint(key, (), 0, 5), 2])
        return s, self.observe(s)

    def transition(self, s, action, key):  # action: 0 left, 1 stay, 2 right
        s = jnp.array([s[0] + 1, s[1], jnp.clip(s[2] + action - 1, 0, 4)])
        reward = jnp.where(s[0] == 9, jnp.where(s[1] == s[2], 1.0, -1.0), 0.0)
        return envs.Transition(s, self.observe(s), reward, terminated=s[0] == 9)


envs.register("Catch-v0", lambda max_episode_steps=None: Catch())

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total-env-steps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # CartPole's preset (small MLP, Gumbel search, 16 envs), with twice its updates per
    # env step: Catch pays once per episode, and with 25 it had not learnt in 30k steps.
    config = mz.cartpole(env="jax/Catch-v0", updates_per_iteration=50, seed=args.seed,
                         total_env_steps=args.total_env_steps, solve_return=1.0)
    result = mz.train(config)
    returns = mz.evaluate_jax(result.agent, result.state, jax.random.key(1), 100)
    print(f"greedy return on jax/Catch-v0: {returns.mean():.2f} (best possible: 1) after "
          f"{result.env_steps} env steps, {result.seconds:.0f} s")
