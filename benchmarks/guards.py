"""What the non-finite guard costs the compiled training loop.

`loop.TrainProgram` checks every iteration's observations, rewards, loss and gradient
for non-finite values (`loop.first_fault`); `check_finite=False` builds the same program
without the check. This section times one chunk of `eval_every` iterations (so one
greedy evaluation is in it, as in training) of the CartPole preset both ways, from the
same state with learning under way, with their repeats interleaved; the cost is the
median over repeats of the guarded chunk's time over the unguarded one's, less one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import muzero_jax as mz
from benchmarks.timing import median_ratio
from muzero_jax.loop import make_train


def benchmark(settings, log, config: mz.Config | None = None) -> dict:
    config = config or mz.cartpole()
    chunk = config.eval_every or config.log_every
    guarded = make_train(config, num_iterations=chunk)
    programs = {"guarded": guarded,
                "unguarded": dataclasses.replace(guarded, check_finite=False)}
    runner = jax.jit(lambda key: jax.tree.map(lambda x: x[None], guarded.init(key)))(
        jax.random.key(0))
    # Not donated: every timed call starts from the same state and does the same work.
    chunks = {name: jax.jit(p.run_chunk) for name, p in programs.items()}
    # Past min_replay_size, so that the timed chunks learn in every iteration.
    steps_per_chunk = chunk * config.num_envs * config.rollout_length
    warm_chunks = -(-config.min_replay_size // steps_per_chunk)
    for i in range(warm_chunks):
        runner, _ = chunks["guarded"](runner, jnp.int32(1 + i * chunk))
    first = jnp.int32(1 + warm_chunks * chunk)
    timings = settings.measure_interleaved(
        {name: (lambda fn=fn: fn(runner, first)) for name, fn in chunks.items()})
    cost = median_ratio(timings["guarded"], timings["unguarded"]) - 1.0
    per_iteration = {name: t.median_s / chunk for name, t in timings.items()}
    log(f"  non-finite guard: {1e3 * per_iteration['guarded']:.1f} ms per iteration guarded, "
        f"{1e3 * per_iteration['unguarded']:.1f} ms unguarded: cost {cost:+.2%} "
        f"(median over {timings['guarded'].repeats} interleaved repeats)")
    return {"config": f"cartpole preset, chunks of {chunk} iterations (one evaluation)",
            "seconds_per_iteration": per_iteration,
            "spread": {name: t.spread for name, t in timings.items()},
            "compile_seconds": {name: t.first_call_s for name, t in timings.items()},
            "cost": cost}


def markdown(sec: dict) -> list[str]:
    if "guards" not in sec:
        return []
    g = sec["guards"]
    ms = {k: 1e3 * v for k, v in g["seconds_per_iteration"].items()}
    return ["## Non-finite guard: its cost per training iteration", "",
            f"{g['config']}; guarded and unguarded chunks interleaved.", "",
            "| guarded ms/iteration | unguarded ms/iteration | cost |", "|---|---|---|",
            f"| {ms['guarded']:.1f} | {ms['unguarded']:.1f} | {g['cost']:+.2%} |", ""]
