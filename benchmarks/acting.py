"""How long a trained agent's episodes last under each acting setting (JAX envs).

    python -m benchmarks.acting RUN_DIR [--envs 16] [--steps 1000] [--runs seed2 seed3]

Loads the latest checkpoint of every run in RUN_DIR (one run, or `--seeds`/`--sweep`
runs side by side) and plays `--envs` x `--steps` steps of self-play from fresh envs
with the run's own search under each setting: greedy, the config's training acting
before any schedule (`Exploration.training`: a run with `temperature_schedule` acted
otherwise by its end), and fixed visit-count temperatures
and root-noise shares.
Prints, per run and setting, the mean length of the episodes that ended (and how many
did), and writes RUN_DIR/acting.json.

Why: the training log's `return` is the mean of the last 100 finished episodes, which in
a short run with few envs reaches back over most of it, so it cannot say how long the
episodes self-play plays now are (docs/why-presets.md, the `reanalyze` preset).
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import checkpoint
from muzero_jax.agent import Agent
from muzero_jax.search import Exploration

# (name, temperature, root-noise share) besides greedy and the config's own acting
SETTINGS = (("T1 noise0.25", 1.0, 0.25), ("T1 noise0.1", 1.0, 0.1), ("T1 noise0", 1.0, 0.0),
            ("T0.25 noise0.1", 0.25, 0.1), ("T0 noise0.25", 0.0, 0.25))


def acting(temperature: float, dirichlet_fraction: float, epsilon: float = 0.0) -> Exploration:
    """An `Exploration` with only these knobs set (no Gumbel noise, no repeats)."""
    return Exploration(temperature=jnp.float32(temperature),
                       dirichlet_fraction=jnp.float32(dirichlet_fraction),
                       gumbel_scale=jnp.float32(0.0), repeat_probability=jnp.float32(0.0),
                       epsilon=jnp.float32(epsilon))


def self_play(agent: Agent, params, key: jax.Array, exploration: Exploration,
              num_envs: int, steps: int):
    """The `[num_envs, steps]` Trajectory of self-play from fresh envs with `params`
    under `exploration`."""
    reset_key, play_key = jax.random.split(key)
    env_state = agent.actor.reset(reset_key, num_envs)
    return agent.actor.rollout(params, env_state, play_key, exploration, steps)[1]


def episode_lengths(agent: Agent, params, key: jax.Array, exploration: Exploration,
                    num_envs: int, steps: int) -> dict:
    """{"mean", "episodes"}: the mean length of the episodes that ended while `num_envs`
    fresh envs played `steps` steps of self-play with `params` under `exploration`
    (NaN and 0 where none ended)."""
    trajectory = self_play(agent, params, key, exploration, num_envs, steps)
    ended = np.asarray(trajectory.terminated | trajectory.truncated)
    lengths = np.asarray(trajectory.episode_length)[ended]
    return {"mean": float(lengths.mean()) if lengths.size else float("nan"),
            "episodes": int(lengths.size)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", nargs="*", help="run names (default: all)")
    args = parser.parse_args(argv)
    config = checkpoint.load_config(args.run_dir)
    agent = Agent(config)
    if agent.actor.host:
        parser.error(f"{config.env.id}: a host env; expected a JAX env (jax/, gymnax/, pgx/)")
    step, runs = checkpoint.restore_train_states(args.run_dir, agent.init(jax.random.key(0)))
    settings = [("greedy", Exploration.greedy()), ("training", agent.training_exploration)]
    settings += [(name, acting(t, d)) for name, t, d in SETTINGS]
    rows = []
    for run, state in runs:
        if args.runs and run["name"] not in args.runs:
            continue
        row = {"run": run["name"], "checkpoint": step}
        for i, (name, exploration) in enumerate(settings):
            row[name] = episode_lengths(agent, state.params, jax.random.key(i), exploration,
                                        args.envs, args.steps)
        print(f"{row['run']} (checkpoint {step}): " + ", ".join(
            f"{name} {row[name]['mean']:.0f} ({row[name]['episodes']})" for name, _ in settings),
            flush=True)
        rows.append(row)
    with open(os.path.join(args.run_dir, "acting.json"), "w") as f:
        json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
