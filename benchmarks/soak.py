"""Soak and cold start: does a long run's memory stay flat, and where does start-up go.

soak     a CartPole run with a 20k-position buffer and checkpoints every 500 updates,
         no early stop, recording the process's resident memory (RSS, /proc) against env
         steps; the figure is the growth of RSS from the buffer's filling to the end.
compile  a cold `python experiments/cartpole.py` (a fresh process, short budget) and the
         seconds each compiled program took to build (trace, lower, XLA), from its
         summary.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOAK_STEPS = 520_000  # 20k to fill the buffer, then 500k
QUICK_SOAK_STEPS = 40_000
CAPACITY = 20_000


def rss_mb() -> float:
    """This process's resident set size in MB (Linux), NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def soak(settings, log, total_env_steps: int | None = None) -> dict:
    import muzero_jax as mz
    from muzero_jax.train import limit_malloc_arenas

    # `python -m benchmarks` caps the arenas before JAX starts; this covers other callers
    # (late: arenas JAX's threads already made stay, so their growth is larger).
    limit_malloc_arenas()
    total = total_env_steps or (QUICK_SOAK_STEPS if settings.quick else SOAK_STEPS)
    config = mz.cartpole(capacity=CAPACITY, total_env_steps=total, solve_return=None,
                         checkpoint_every=500, eval_every=25)
    import jax

    samples, live = [], []

    def record(row):
        samples.append((row["env_steps"], rss_mb()))
        live.append(len(jax.live_arrays()))  # a leak of device buffers would show here

    with tempfile.TemporaryDirectory() as run_dir:
        result = mz.train(config, run_dir=run_dir, log=None, on_iteration=record)
    after_fill = [(s, m) for s, m in samples if s >= CAPACITY]
    # Medians over the first and last fifth after the buffer filled: single samples are
    # noisy (allocator, checkpoint writes in flight).
    fifth = max(1, len(after_fill) // 5)
    start = statistics.median(m for _, m in after_fill[:fifth])
    end = statistics.median(m for _, m in after_fill[-fifth:])
    growth = (end - start) / start
    steps_after_fill = after_fill[-1][0] - after_fill[0][0]
    log(f"  RSS {start:.0f} MB after the buffer filled -> {end:.0f} MB at "
        f"{result.env_steps:,} env steps ({growth:+.2%} over {steps_after_fill:,} steps, "
        f"{(end - start) / max(steps_after_fill, 1) * 1000:+.3f} MB per 1,000 steps); "
        f"live JAX arrays {live[0]} -> {live[-1]}")
    return {"env_steps": result.env_steps, "replay_capacity": CAPACITY,
            "live_arrays_start": live[0], "live_arrays_end": live[-1],
            "checkpoint_every": 500, "rss_start_mb": start, "rss_end_mb": end,
            "rss_growth": growth, "steps_after_fill": steps_after_fill,
            "samples": samples[::max(1, len(samples) // 200)]}


def _cartpole_run(extra: list[str]) -> dict:
    """summary.json of a fresh `experiments/cartpole.py` process (4,000 env steps)."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "experiments", "cartpole.py"), "--out", out,
             "--total-env-steps", "4000", "--eval-episodes", "10", *extra],
            capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)


def cold_start(settings, log) -> dict:
    """Compile seconds per program of a cold experiments/cartpole.py run (no compilation
    cache), and of the same run again with a warm persistent cache (the second run of
    the same shapes, as a user's next run is)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, extra in (("cold", ["--compile-cache", "none"]),
                            ("cache_filled", ["--compile-cache", cache]),
                            ("warm", ["--compile-cache", cache])):
            summary = _cartpole_run(extra)
            if name == "cache_filled":
                continue
            compile_seconds = summary["compile_seconds"]
            total = sum(compile_seconds.values())
            log(f"  {name}: wall {summary['wall_seconds']:.1f}s (to the end of training), "
                f"compile {total:.1f}s ({total / summary['wall_seconds']:.0%}): "
                + ", ".join(f"{k} {v:.1f}s" for k, v in list(compile_seconds.items())[:5]))
            out[name] = {"wall_seconds": summary["wall_seconds"],
                         "compile_seconds": compile_seconds, "compile_total_seconds": total,
                         "env_steps": summary["env_steps"]}
    return out


def markdown(sec: dict) -> list[str]:
    lines = []
    if "compile" in sec:
        runs = sec["compile"]
        lines += ["## Cold start: compile seconds per program", "",
                  "A fresh `experiments/cartpole.py` process, 4,000 env steps, with no "
                  "compilation cache (cold) and with JAX's persistent cache filled by an "
                  "earlier run of the same shapes (warm: tracing and lowering still run).", "",
                  "| run | wall s | compile s | share | largest programs |",
                  "|---|---|---|---|---|"]
        for name in ("cold", "warm"):
            if name not in runs:
                continue
            r = runs[name]
            top = ", ".join(f"`{k}` {v:.1f}" for k, v in list(r["compile_seconds"].items())[:3])
            lines.append(f"| {name} | {r['wall_seconds']:.1f} | {r['compile_total_seconds']:.1f}"
                         f" | {r['compile_total_seconds'] / r['wall_seconds']:.0%} | {top} |")
        lines.append("")
    if "soak" in sec:
        r = sec["soak"]
        lines += ["## Soak: resident memory of a long run", "",
                  f"CartPole, {r['replay_capacity']:,}-position buffer, checkpoints every "
                  f"{r['checkpoint_every']} updates: RSS {r['rss_start_mb']:.0f} MB once the "
                  f"buffer filled, {r['rss_end_mb']:.0f} MB after {r['steps_after_fill']:,} "
                  f"more env steps ({r['rss_growth']:+.2%}).", ""]
    return lines
