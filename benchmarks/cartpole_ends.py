"""How a trained CartPole agent's greedy episodes end: the cart off the track, or the pole down.

    python -m benchmarks.cartpole_ends RUN_DIR [--envs 16] [--steps 1000]

Loads the latest checkpoint of every run in RUN_DIR and plays `--envs` x `--steps`
greedy steps from fresh envs. For each run, prints the episodes that ended by
termination, their mean length, how many ended with |x| > 2.4 (track) and how many
with |theta| > 12 degrees (pole; Gymnasium's thresholds), and the range of the search's
root values. A pole that falls is a short-horizon failure; a cart that drifts off the
track takes 100-300 steps to fail, and so needs values that look that far ahead
(docs/why-presets.md, the `reanalyze` preset).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from benchmarks.acting import self_play
from muzero_jax import checkpoint
from muzero_jax.agent import Agent
from muzero_jax.search import Exploration

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * np.pi / 360  # gymnasium's CartPole thresholds


def episode_ends(agent: Agent, params, key: jax.Array, num_envs: int, steps: int) -> dict:
    """How the greedy episodes of `num_envs` fresh envs x `steps` steps ended.

    Returns {"episodes", "mean_length", "track", "pole", "root_value_min",
    "root_value_max"}: terminated episodes, their mean length (NaN if none), how many
    ended with the cart past |x| 2.4 and with the pole past 12 degrees, and the range
    of the search's root values over all `[num_envs, steps]` steps.
    """
    trajectory = self_play(agent, params, key, Exploration.greedy(), num_envs, steps)
    ended = np.asarray(trajectory.terminated)
    final = np.asarray(trajectory.final_observation)[ended]
    lengths = np.asarray(trajectory.episode_length)[ended]
    root_value = np.asarray(trajectory.root_value)
    return {"episodes": int(ended.sum()),
            "mean_length": float(lengths.mean()) if lengths.size else float("nan"),
            "track": int(np.sum(np.abs(final[:, 0]) > X_LIMIT)),
            "pole": int(np.sum(np.abs(final[:, 2]) > THETA_LIMIT)),
            "root_value_min": float(root_value.min()),
            "root_value_max": float(root_value.max())}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    config = checkpoint.load_config(args.run_dir)
    if config.env.id not in ("jax/CartPole-v1", "gymnax/CartPole-v1"):
        parser.error(f"{config.env.id}: expected a JAX CartPole run (jax/ or gymnax/CartPole-v1)")
    agent = Agent(config)
    step, runs = checkpoint.restore_train_states(args.run_dir, agent.init(jax.random.key(0)))
    rows = []
    for run, state in runs:
        row = {"run": run["name"], "checkpoint": step,
               **episode_ends(agent, state.params, jax.random.key(1), args.envs, args.steps)}
        print(f"{row['run']} (checkpoint {step}): {row['episodes']} episodes ended, mean length "
              f"{row['mean_length']:.0f}: track {row['track']}, pole {row['pole']}; root values "
              f"{row['root_value_min']:.1f} to {row['root_value_max']:.1f}", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
