"""What the non-finite guard costs the compiled training loop.

`loop.TrainProgram` checks every iteration's observations, rewards, loss and gradient
for non-finite values (`loop.first_fault`); `check_finite=False` builds the same program
without the check. This section times one chunk of `eval_every` iterations (so one
greedy evaluation is in it, as in training) of the CartPole preset both ways, from the
same state with learning under way, with their repeats interleaved; the cost is the
median over repeats of the guarded chunk's time over the unguarded one's, less one,
averaged over two passes that interleave them in opposite orders (on a loaded machine
the second call of a pair is systematically faster or slower). On a shared machine that
difference can still drown in the load's noise, so the section also times
the check by itself (`loop.first_fault` jitted alone on one iteration's trajectory,
with no fusion into the rollout: an upper bound) against the unguarded iteration.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import muzero_jax as mz
from benchmarks.timing import measure, measure_interleaved, median_ratio
from muzero_jax.loop import first_fault, make_train

REPEATS = 15  # the chunks' A/B: more than other sections, the difference is small


def benchmark(settings, log, config: mz.Config | None = None) -> dict:
    config = config or mz.cartpole()
    chunk = config.run.eval_every or config.run.log_every
    agent = mz.Agent(config)
    guarded = make_train(config, num_iterations=chunk, pieces=agent.pieces)
    programs = {"guarded": guarded,
                "unguarded": dataclasses.replace(guarded, check_finite=False)}
    runner = jax.jit(lambda key: jax.tree.map(lambda x: x[None], guarded.init(key)))(
        jax.random.key(0))
    # Not donated: every timed call starts from the same state and does the same work.
    chunks = {name: jax.jit(p.run_chunk) for name, p in programs.items()}
    # Past min_replay_size, so that the timed chunks learn in every iteration.
    steps_per_chunk = chunk * config.acting.num_envs * config.acting.rollout_length
    warm_chunks = -(-config.replay.min_size // steps_per_chunk)
    for i in range(warm_chunks):
        runner, _ = chunks["guarded"](runner, jnp.int32(1 + i * chunk))
    first = jnp.int32(1 + warm_chunks * chunk)
    repeats = max(settings.repeats, REPEATS)
    calls = {name: (lambda fn=fn: fn(runner, first)) for name, fn in chunks.items()}
    passes = [measure_interleaved(dict(order), repeats=repeats,
                                  min_repeat_seconds=settings.min_repeat_seconds)
              for order in (list(calls.items()), list(calls.items())[::-1])]
    costs = [median_ratio(t["guarded"], t["unguarded"]) - 1.0 for t in passes]
    cost = sum(costs) / len(costs)
    timings = passes[0]
    per_iteration = {name: min(t[name].median_s for t in passes) / chunk for name in calls}

    # The check alone, on one iteration's trajectory and learner metrics.
    one = jax.tree.map(lambda x: x[0], runner)
    _, trajectory = agent.rollout(one.train_state, agent.reset(jax.random.key(1)),
                                  jax.random.key(2))
    update_metrics = {"loss": jnp.float32(1.0), "grad_norm": jnp.float32(1.0)}
    check = jax.jit(lambda r, t, m: first_fault(r, t, m, jnp.bool_(True), r.env_steps))
    alone = measure(lambda: check(one, trajectory, update_metrics), repeats=repeats,
                    min_repeat_seconds=settings.min_repeat_seconds)
    alone_share = alone.median_s / per_iteration["unguarded"]
    log(f"  non-finite guard: {1e3 * per_iteration['guarded']:.1f} ms per iteration guarded, "
        f"{1e3 * per_iteration['unguarded']:.1f} ms unguarded (spread "
        f"{timings['guarded'].spread:.0%}, {timings['unguarded'].spread:.0%}): cost "
        f"{cost:+.2%} ({costs[0]:+.2%} guarded first, {costs[1]:+.2%} unguarded first; "
        f"medians over {repeats} interleaved repeats); the check alone "
        f"{1e6 * alone.median_s:.0f} us, {alone_share:.3%} of an iteration")
    return {"config": f"cartpole preset, chunks of {chunk} iterations (one evaluation)",
            "seconds_per_iteration": per_iteration,
            "spread": {name: t.spread for name, t in timings.items()},
            "compile_seconds": {name: t.first_call_s for name, t in timings.items()},
            "cost": cost, "cost_by_order": costs, "check_alone_seconds": alone.median_s,
            "check_alone_share": alone_share}


def markdown(sec: dict) -> list[str]:
    if "guards" not in sec:
        return []
    g = sec["guards"]
    ms = {k: 1e3 * v for k, v in g["seconds_per_iteration"].items()}
    return ["## Non-finite guard: its cost per training iteration", "",
            f"{g['config']}; guarded and unguarded chunks interleaved.", "",
            "| guarded ms/iteration | unguarded ms/iteration | cost (A/B) | check alone "
            "| its share of an iteration |", "|---|---|---|---|---|",
            f"| {ms['guarded']:.1f} | {ms['unguarded']:.1f} | {g['cost']:+.2%} | "
            f"{1e6 * g['check_alone_seconds']:.0f} us | {g['check_alone_share']:.3%} |", ""]
