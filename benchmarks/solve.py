"""Time to solve CartPole-v1: cold-start runs of experiments/cartpole.py, one process per seed.

Each run is a fresh `python experiments/cartpole.py --seed S --out DIR/seedS` (compilation
included, no persistent compile cache), run one after another so that seeds do not share
the cores. Its summary.json and metrics.csv are read back; the learning curves of all
seeds go into one PNG.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "cartpole.py")
SOLVED = 475.0


def run_seed(seed: int, out: str, extra_args: tuple[str, ...] = ()) -> dict:
    """Runs one seed in a fresh process; returns its summary with its metrics rows."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT, "--seed", str(seed), "--out", out,
                           *extra_args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{SCRIPT} --seed {seed} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    # metrics.csv times run from the start of train(); shift them to process start, the
    # clock of summary.json's wall_seconds, so that the curves include start-up.
    startup = summary["wall_seconds"] - summary["train_seconds"]
    curve = [{"wall_seconds": float(r["wall_seconds"]) + startup,
              "env_steps": int(r["env_steps"]),
              "eval_return": float(r["eval_return"])}
             for r in rows if r.get("eval_return") not in (None, "", "None")]
    first = next((p for p in curve if p["eval_return"] >= SOLVED), None)
    return {
        "seed": seed,
        "wall_seconds": summary["wall_seconds"],
        "env_steps": summary["env_steps"],
        "train_steps": summary["train_steps"],
        "final_eval_return": summary["eval_return_mean"],
        "final_eval_episodes": summary["eval_episodes"],
        "solved": summary["solved"],
        "first_eval_475_wall_seconds": first and round(first["wall_seconds"], 2),
        "first_eval_475_env_steps": first and first["env_steps"],
        "curve": curve,
    }


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_to_solve(seeds: list[int], out: str, extra_args: tuple[str, ...] = (),
                  log=print) -> dict:
    """Runs every seed and summarises: medians/min/max over the seeds that solved."""
    runs = []
    for seed in seeds:
        run = run_seed(seed, os.path.join(out, f"seed{seed}"), extra_args)
        log(f"  seed {seed}: {run['wall_seconds']:.1f} s, {run['env_steps']} env steps, "
            f"final eval {run['final_eval_return']:.1f} over {run['final_eval_episodes']} "
            f"episodes{' (solved)' if run['solved'] else ''}")
        runs.append(run)
    solved = [r for r in runs if r["solved"]]
    return {
        "seeds": seeds,
        "extra_args": list(extra_args),
        "solved": len(solved),
        "wall_seconds": _stats([r["wall_seconds"] for r in solved]),
        "env_steps": _stats([r["env_steps"] for r in solved]),
        "runs": runs,
    }


def plot(result: dict, path: str, title: str) -> None:
    """Eval return against wall seconds and against env steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for run in result["runs"]:
        curve = run["curve"]
        label = f"seed {run['seed']}"
        axes[0].plot([p["wall_seconds"] for p in curve], [p["eval_return"] for p in curve],
                     marker="o", markersize=3, label=label)
        axes[1].plot([p["env_steps"] for p in curve], [p["eval_return"] for p in curve],
                     marker="o", markersize=3, label=label)
    for ax, xlabel in zip(axes, ("wall seconds since process start (compilation included)",
                                 "env steps"), strict=True):
        ax.axhline(SOLVED, color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(left=0)
        ax.set_ylim(0, 520)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("greedy eval return (JAX CartPole-v1)")
    axes[1].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
