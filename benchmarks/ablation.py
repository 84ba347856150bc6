"""What each piece of the paper's training machinery is worth on CartPole-v1.

    python -m benchmarks.ablation [--seeds 0 1 2] [--out benchmarks/results/cartpole-ablation]
                                  [--only NAME ...] [--max-env-steps 60000]

Every run is a cold-start subprocess of `experiments/cartpole.py` (compilation
included, as a user would see it), one after another so that runs do not share
the cores. Variants of the `cartpole` preset, each adding one piece:

- baseline: uniform replay, no Reanalyze, no target network;
- prioritised: priorities |v - z|, alpha = beta = 1 (the paper's Atari values);
- prioritised+reanalyze: and a quarter of each batch reanalyzed (80% of it with
  fresh search policies);
- +target network: and bootstrap values from a target network copied every 100
  learner steps;
- uniform+target network: the target network alone, on the baseline;

then the number of Gumbel simulations (2, 4, 8, 16, 50) on the `cartpole` preset
as it is (uniform replay and a target network; 16 is its default), and the
`sample_efficient` preset. A run counts as solved at
the first periodic greedy evaluation (32 episodes of the JAX CartPole) with mean
>= 475; its env steps and wall seconds (from process start) there are reported,
median over seeds, with the final check on gymnasium's CartPole-v1 alongside.
Writes OUT/<device>.json, .md and .png (rewritten after every run; <device> names the
machine, e.g. `cpu-amd-epyc-2c`), the runs themselves under OUT/runs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time

from benchmarks import machine, solve

SOLVED = solve.SOLVED

_PRIORITISED = ("replay.priority_alpha=1.0", "replay.priority_beta=1.0")
_REANALYZE = ("replay.reanalyze_fraction=0.25", "replay.reanalyze_policy_fraction=0.8")
_NO_EXTRAS = ("replay.priority_alpha=0.0", "replay.reanalyze_fraction=0.0",
              "learner.target_update_period=0", "learner.target_ema=0.0")

# name -> (preset, overrides as STAGE.FIELD=VALUE); each variant adds one piece to the one
# before.
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "baseline": ("cartpole", _NO_EXTRAS),
    "prioritised": ("cartpole", _NO_EXTRAS + _PRIORITISED),
    "prioritised+reanalyze": ("cartpole", _NO_EXTRAS + _PRIORITISED + _REANALYZE),
    "+target network": ("cartpole", _NO_EXTRAS + _PRIORITISED + _REANALYZE
                        + ("learner.target_update_period=100",)),
    "uniform+target network": ("cartpole", _NO_EXTRAS + ("learner.target_update_period=100",)),
    **{f"gumbel {n} sims": ("cartpole", (f"search.num_simulations={n}",))
       for n in (2, 4, 8, 16, 50)},
    "sample_efficient preset": ("sample_efficient", ()),
}


def run(name: str, seed: int, out: str, max_env_steps: int, eval_episodes: int) -> dict:
    """One cold-start run of a variant (`solve.run_seed`); returns what the table needs."""
    preset, overrides = VARIANTS[name]
    args = ["--preset", preset, "--eval-episodes", str(eval_episodes)]
    for item in overrides:
        field, value = item.split("=", 1)
        args += [f"--{field}", value]
    if preset == "cartpole":
        args += ["--total-env-steps", str(max_env_steps)]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_seconds()
    result = solve.run_seed(seed, out, tuple(args))
    cpu_seconds = _children_cpu_seconds() - cpu_before
    return {
        "variant": name, "seed": seed, "preset": preset, "overrides": list(overrides),
        "solved": result["first_eval_475_env_steps"] is not None,
        "env_steps_to_solve": result["first_eval_475_env_steps"],
        "wall_seconds_to_solve": result["first_eval_475_wall_seconds"],
        "env_steps": result["env_steps"], "train_steps": result["train_steps"],
        "wall_seconds": result["wall_seconds"],
        "gymnasium_eval_return": result["final_eval_return"],
        "gymnasium_eval_episodes": result["final_eval_episodes"],
        # CPU seconds of the whole process (training, compilation and the final
        # evaluation): less sensitive than wall seconds to other jobs on the cores.
        "cpu_seconds": round(cpu_seconds, 1),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarise(runs: list[dict]) -> list[dict]:
    """One row per variant: medians over seeds (an unsolved run counts as infinite)."""
    rows = []
    for name in VARIANTS:
        mine = [r for r in runs if r["variant"] == name]
        if not mine:
            continue

        def median(key, mine=mine):
            values = [r[key] if r["solved"] else float("inf") for r in mine]
            middle = statistics.median(values)
            return None if middle == float("inf") else middle  # JSON has no infinity

        rows.append({"variant": name, "seeds": len(mine),
                     "solved": sum(r["solved"] for r in mine),
                     "median_env_steps": median("env_steps_to_solve"),
                     "median_wall_seconds": median("wall_seconds_to_solve"),
                     "env_steps": [r["env_steps_to_solve"] for r in mine],
                     "wall_seconds": [r["wall_seconds_to_solve"] for r in mine],
                     "cpu_seconds": [r.get("cpu_seconds") for r in mine],
                     "gymnasium_eval_return": [r["gymnasium_eval_return"] for r in mine]})
    return rows


def _fmt(x, digits=0):
    if x is None or x == float("inf"):
        return "not solved"
    return f"{x:,.{digits}f}"


def write_markdown(path: str, rows: list[dict], meta: dict) -> None:
    lines = [
        "# Ablation on CartPole-v1 (CPU)", "",
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}. Median over seeds of the "
        "env steps and wall seconds (process start, compilation included) to the first "
        f"periodic greedy evaluation with mean >= {SOLVED:g}; runs capped at "
        f"{meta['max_env_steps']:,} env steps (an unsolved run counts as infinite). 1-minute "
        f"load average during the runs: {meta['load_min']:.1f} to {meta['load_max']:.1f} "
        "(other jobs on the same cores inflate wall seconds; env steps are unaffected). "
        "CPU s: the whole run's CPU time (user + system, final evaluation included; - where "
        "not recorded).", "",
        "| variant | solved | median env steps | median wall s | env steps per seed | "
        "wall s per seed | CPU s per run | gymnasium eval per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['solved']}/{r['seeds']} | {_fmt(r['median_env_steps'])} | "
            f"{_fmt(r['median_wall_seconds'], 1)} | "
            f"{', '.join(_fmt(x) for x in r['env_steps'])} | "
            f"{', '.join(_fmt(x, 1) for x in r['wall_seconds'])} | "
            f"{', '.join('-' if x is None else f'{x:.0f}' for x in r['cpu_seconds'])} | "
            f"{', '.join(f'{x:.1f}' for x in r['gymnasium_eval_return'])} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_plot(path: str, rows: list[dict], runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 2), sharey=True)
    names = [r["variant"] for r in rows]
    for ax, key, per_run, label in (
            (axes[0], "median_env_steps", "env_steps_to_solve", "env steps to eval >= 475"),
            (axes[1], "median_wall_seconds", "wall_seconds_to_solve",
             "wall seconds to eval >= 475 (cold start)")):
        cap = 1.1 * max([v for r in runs if (v := r[per_run]) is not None] + [1])
        medians = [r[key] if r[key] is not None else cap for r in rows]
        colors = ["tab:blue" if r[key] is not None else "tab:gray" for r in rows]
        ax.barh(range(len(rows)), medians, color=colors, alpha=0.6, label="median")
        for i, name in enumerate(names):
            xs = [r[per_run] if r["solved"] else cap for r in runs if r["variant"] == name]
            ax.scatter(xs, [i] * len(xs), color="black", s=14, zorder=3)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), names)
    axes[0].invert_yaxis()
    fig.suptitle("muzero_jax on CartPole-v1: medians (bars) and seeds (dots); "
                 "grey = not solved within the cap")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "cartpole-ablation"))
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=None,
                        help="run these variants only (default: all)")
    parser.add_argument("--max-env-steps", type=int, default=60_000,
                        help="cap per run of the cartpole variants (default 60000)")
    parser.add_argument("--eval-episodes", type=int, default=100,
                        help="final gymnasium evaluation episodes per run (default 100)")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    runs_dir = os.path.join(args.out, "runs")
    command = shlex.join(["python", "-m", "benchmarks.ablation",
                          *(sys.argv[1:] if argv is None else argv)])
    meta = {"command": command.strip(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{machine.cpu_count()} CPU cores ({machine.cpu_model()}), "
                       f"Python {platform.python_version()}",
            "max_env_steps": args.max_env_steps, "load_min": 0.0, "load_max": 0.0}
    if args.only:
        meta["command"] = ("python -m benchmarks.ablation (all variants; last partial re-run: "
                           f"{meta['command']})")
    base = os.path.join(args.out, machine.cpu_name())
    runs: list[dict] = []
    if args.only and os.path.exists(base + ".json"):
        # A partial re-run keeps the other variants' results from the last run.
        with open(base + ".json") as f:
            runs = [r for r in json.load(f)["runs"] if r["variant"] not in args.only]
    for name in args.only or list(VARIANTS):
        for seed in args.seeds:
            slug = name.replace(" ", "_").replace("+", "plus_")
            result = run(name, seed, os.path.join(runs_dir, f"{slug}-seed{seed}"),
                         args.max_env_steps, args.eval_episodes)
            runs = [r for r in runs if (r["variant"], r["seed"]) != (name, seed)] + [result]
            print(f"{name:>24s} seed {seed}: solved={result['solved']} "
                  f"env_steps={result['env_steps_to_solve']} "
                  f"wall={result['wall_seconds_to_solve']}s "
                  f"gym={result['gymnasium_eval_return']:.1f} "
                  f"load={result['load_average_1min_after']}", flush=True)
            loads = [r[k] for r in runs for k in ("load_average_1min_before",
                                                  "load_average_1min_after")]
            meta.update(load_min=min(loads), load_max=max(loads))
            rows = summarise(runs)
            with open(base + ".json", "w") as f:
                json.dump({"meta": meta, "summary": rows, "runs": runs}, f, indent=2)
            write_markdown(base + ".md", rows, meta)
            write_plot(base + ".png", rows, runs)
    return runs


if __name__ == "__main__":
    main()
