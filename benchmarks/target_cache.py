"""Learner steps with replay's cache of target-network values against without it.

    python -m benchmarks.target_cache [--out DIR] [--quick]

For each preset (`minatar`: Breakout-MinAtar; `cartpole`), replay is filled by a few
self-play rollouts and `Pieces.update` runs over whole target periods (the least common
multiple of `target_update_period` and `updates_per_iteration`, so that each timed call
holds the same share of copies), once reading the bootstrap values from the cache
(`muzero_jax.target_cache`) and once computing them from the windows, with the same
state, buffer and keys. The cache computes every slot of the buffer at each copy whether
written or not, so a part-filled buffer costs what a full one does. Figures are the
median over interleaved repeats, compilation apart, in milliseconds per learner step.
Writes `target-cache.json` and `.md` under DIR (default
benchmarks/results/target-cache/).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import jax
import jax.numpy as jnp

import muzero_jax as mz
from benchmarks import machine
from benchmarks.timing import measure_interleaved
from muzero_jax import target_cache

PRESETS = {"minatar": lambda: mz.minatar(), "cartpole": lambda: mz.cartpole()}
QUICK = {"minatar": lambda: mz.minatar(capacity=8_192, target_update_period=16),
         "cartpole": lambda: mz.cartpole(capacity=4_000, target_update_period=25)}


def period_calls(config: mz.Config) -> int:
    """`update` calls spanning a whole number of target periods."""
    learner = config.learner
    steps = math.lcm(learner.target_update_period, learner.updates_per_iteration)
    return steps // learner.updates_per_iteration


def measure(name: str, config: mz.Config, repeats: int, min_repeat_seconds: float) -> dict:
    agent = mz.Agent(config)
    state = agent.init(jax.random.key(0))
    buffer, env = agent.init_replay(), agent.reset(jax.random.key(1))
    while not agent.ready_to_learn(buffer):
        env, trajectory = agent.rollout(state, env, jax.random.key(2))
        buffer = agent.add(buffer, trajectory)
    if buffer.value_cache is None:
        raise SystemExit(f"{name}: the cache does not pay for this config "
                         f"({target_cache.calls_per_step(config)} calls a step)")
    calls = period_calls(config)
    starts = {"cached": buffer, "direct": buffer.replace(value_cache=None)}

    def periods(start):
        def run():
            # update donates its state and buffer: each call starts from copies.
            s, b = jax.tree.map(jnp.copy, state), jax.tree.map(jnp.copy, start)
            for i in range(calls):
                s, b, metrics = agent.update(s, b, jax.random.key(10 + i))
            return metrics["loss"]

        return run

    timing = measure_interleaved({k: periods(v) for k, v in starts.items()},
                                 repeats=repeats, min_repeat_seconds=min_repeat_seconds)
    steps = calls * config.learner.updates_per_iteration
    with_cache, without = target_cache.calls_per_step(config)
    row = {"preset": name, "steps_per_call": steps,
           "target_calls_per_step_cached": with_cache, "target_calls_per_step_direct": without,
           **{f"{k}_ms_per_step": 1e3 * t.median_s / steps for k, t in timing.items()},
           **{f"{k}_spread": t.spread for k, t in timing.items()},
           "speedup": timing["direct"].median_s / timing["cached"].median_s}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
          flush=True)
    return row


def write(rows: list[dict], out: pathlib.Path, argv: dict) -> None:
    about = machine.describe()
    lines = [f"# Learner steps with and without replay's cache of target-network values "
             f"({about['cpu']}, {about['cpu_cores']} cores)", "",
             "Median over interleaved repeats of `update` calls spanning whole target",
             "periods, compilation apart; spread = (max - min) / median over the repeats.",
             "", "| preset | target-network calls a step, cached / direct | ms a step, "
             "cached (spread) | ms a step, direct (spread) | direct / cached |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['target_calls_per_step_cached']:.0f} / "
                     f"{r['target_calls_per_step_direct']:.0f} | "
                     f"{r['cached_ms_per_step']:.1f} ({r['cached_spread']:.2f}) | "
                     f"{r['direct_ms_per_step']:.1f} ({r['direct_spread']:.2f}) | "
                     f"{r['speedup']:.2f} |")
    machine.write_record(out, "target-cache", "python -m benchmarks.target_cache", argv,
                         rows, lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/target-cache")
    parser.add_argument("--quick", action="store_true",
                        help="small buffers and target periods: checks the harness only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    presets = QUICK if args.quick else PRESETS
    rows = [measure(name, make(), args.repeats, 0.0) for name, make in presets.items()]
    write(rows, pathlib.Path(args.out), vars(args))


if __name__ == "__main__":
    main()
