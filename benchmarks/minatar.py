"""MinAtar: return against env steps and wall seconds, beside published figures (`--only minatar`).

One cold process per game (`experiments/train.py --env gymnax/<Game>-MinAtar --preset
minatar`, compilation included, no persistent compile cache), one after another so that
games do not share the cores. The learning curve is the periodic greedy evaluation of
metrics.csv (32 episodes); the final figure is summary.json's greedy evaluation of 100
episodes on gymnax's port with MinAtar's sticky actions (0.1, the preset's env default) and
the env's own time limit. `--minatar-steps` sets the env-step budget per game, so that a
CPU can run a short version.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "train.py")
GAMES = ("Breakout", "Asterix", "Freeway", "SpaceInvaders")
DEFAULT_STEPS = 2_000_000  # an accelerator's budget per game, a sitting for all four
EVALS_PER_RUN = 10  # periodic evaluations over a run, whatever its budget

# Returns at the given budgets: the MinAtar paper (Young & Tian 2019, training
# average, read off its curves) and gymnax's PPO baselines.
PUBLISHED = (
    ("MinAtar paper, DQN (training average)", "5M frames",
     {"Asterix": 17, "Breakout": 10, "Freeway": 50, "SpaceInvaders": 43}),
    ("MinAtar paper, AC(lambda)", "5M frames",
     {"Asterix": 19, "Breakout": 17.5, "Freeway": 47, "SpaceInvaders": 185}),
    ("gymnax baselines, PPO", "10M steps",
     {"Asterix": 15, "Breakout": 28, "Freeway": 58, "SpaceInvaders": 131}),
)


def run_game(game: str, out: str, env_steps: int, seed: int = 0,
             extra_args: tuple[str, ...] = ()) -> dict:
    """Trains one game in a fresh process; returns its summary and learning curve."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    steps_per_iteration = _steps_per_iteration()
    eval_every = max(1, env_steps // (EVALS_PER_RUN * steps_per_iteration))
    command = [sys.executable, SCRIPT, "--env", f"gymnax/{game}-MinAtar", "--preset",
               "minatar", "--seed", str(seed), "--out", out, "--total-env-steps",
               str(env_steps), "--compile-cache", "none", "--run.eval_every",
               str(eval_every), "--run.log_every", str(eval_every), *extra_args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    # Results are committed: keep the figures and curves, not checkpoints (replay
    # included) or TensorBoard event files.
    for bulky in ("checkpoints", "tensorboard"):
        shutil.rmtree(os.path.join(out, bulky), ignore_errors=True)
    return read_run(out, game, seed)


def read_run(out: str, game: str, seed: int) -> dict:
    """A finished run directory's summary and its eval curve (clock from process start)."""
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    # metrics.csv times run from the start of train(); shift them to process start, the
    # clock of summary.json's wall_seconds, so that the curves include start-up.
    startup = summary["wall_seconds"] - summary["train_seconds"]
    curve = [{"wall_seconds": round(float(r["wall_seconds"]) + startup, 2),
              "env_steps": int(r["env_steps"]), "eval_return": float(r["eval_return"])}
             for r in rows if r.get("eval_return") not in (None, "", "None", "nan")]
    return {"game": game, "seed": seed, "run_dir": out,
            "wall_seconds": summary["wall_seconds"], "env_steps": summary["env_steps"],
            "train_steps": summary["train_steps"],
            "final_eval_return": summary["eval_return_mean"],
            "final_eval_std": summary["eval_return_std"],
            "final_eval_episodes": summary["eval_episodes"], "curve": curve}


def _steps_per_iteration() -> int:
    from muzero_jax.presets import minatar

    config = minatar()
    return config.acting.num_envs * config.acting.rollout_length


def benchmark(out: str, device: str, log, env_steps: int = DEFAULT_STEPS,
              games=GAMES) -> dict:
    """Runs every game for `env_steps`, draws the curves, returns the section's record."""
    runs = []
    for game in games:
        run = run_game(game, os.path.join(out, "minatar", device, game), env_steps)
        log(f"  {game:14s}: {run['env_steps']:,} env steps in {run['wall_seconds']:.0f} s, "
            f"greedy return {run['final_eval_return']:.1f} +- {run['final_eval_std']:.1f} "
            f"({run['final_eval_episodes']} episodes)")
        runs.append(run)
    png = f"minatar/{device}.png"  # relative to `out`, as the tables' links are
    os.makedirs(os.path.dirname(os.path.join(out, png)), exist_ok=True)
    plot(runs, os.path.join(out, png))
    return {"config": f"preset minatar, seed 0, {env_steps:,} env steps per game, MinAtar's "
                      "sticky actions (0.1), cold process each (compilation included)",
            "env_steps_budget": env_steps, "runs": runs, "plot": png}


def plot(runs: list[dict], path: str) -> None:
    """Greedy eval return against env steps (top) and wall seconds (bottom), one column per
    game; the final 100-episode evaluation as a point at the run's end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(runs), figsize=(3.6 * len(runs), 6), squeeze=False)
    for col, run in enumerate(runs):
        curve = run["curve"]
        for row, x in enumerate(("env_steps", "wall_seconds")):
            ax = axes[row, col]
            ax.plot([p[x] for p in curve], [p["eval_return"] for p in curve], marker=".",
                    label="greedy eval (32 ep.)")
            ax.plot([run[x]], [run["final_eval_return"]], "o", color="C3",
                    label=f"final ({run['final_eval_episodes']} ep.)")
            ax.set_xlabel("env steps" if x == "env_steps"
                          else "wall seconds since process start")
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
        axes[0, col].set_title(f"{run['game']}-MinAtar")
    axes[0, 0].set_ylabel("greedy return")
    axes[1, 0].set_ylabel("greedy return")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(section: dict) -> list[str]:
    runs = {r["game"]: r for r in section["runs"]}
    games = [g for g in GAMES if g in runs]
    lines = [f"Greedy return ({section['config']}); published figures as their sources give "
             "them, at their own (much larger) budgets:", "",
             "| source | budget | " + " | ".join(games) + " |",
             "|---|---|" + "---|" * len(games)]
    for source, budget, figures in PUBLISHED:
        lines.append(f"| {source} | {budget} | "
                     + " | ".join(f"{figures[g]:g}" for g in games) + " |")
    lines.append(f"| muzero_jax `minatar`, greedy, 100 episodes | {section['env_steps_budget']:,}"
                 " steps | " + " | ".join(
                     f"{runs[g]['final_eval_return']:.1f} +- {runs[g]['final_eval_std']:.1f}"
                     for g in games) + " |")
    lines += ["", "| game | env steps | wall s (compile included) | env steps/s | "
              "final greedy return (100 ep.) | best periodic eval (32 ep.): return at env "
              "steps |", "|---|---|---|---|---|---|"]
    for g in games:
        r = runs[g]
        best = max(r["curve"], key=lambda p: p["eval_return"], default=None)
        lines.append(f"| {g} | {r['env_steps']:,} | {r['wall_seconds']:.0f} | "
                     f"{r['env_steps'] / r['wall_seconds']:.0f} | "
                     f"{r['final_eval_return']:.1f} +- {r['final_eval_std']:.1f} | "
                     + (f"{best['eval_return']:.1f} at {best['env_steps']:,}" if best
                        else "-") + " |")
    lines += ["", f"![MinAtar curves](../{section['plot']})"]
    return lines
