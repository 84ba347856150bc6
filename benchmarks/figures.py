"""The figures of docs/results.md, drawn from the raw files under benchmarks/results/.

    python -m benchmarks.figures [--out docs/img] [--only NAME ...]

Every figure reads committed per-run files only (each run's metrics.csv, the board
curve's curve.json, the benchmark tables' JSON), so it can be redrawn at any time and
says nothing the files do not. Learning curves are the periodic greedy evaluations
against env steps and against wall seconds (process start, compilation included); where
several seeds exist the line is their median and the shaded band their range, a seed that
stopped once solved held at its last evaluation (two seeds are drawn as two lines).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import warnings

import numpy as np

from muzero_jax.logger import read_csv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
EPYC = "cpu-amd-epyc-2c"
DPI = 80


def eval_runs(csv_path: str) -> dict[str, dict[str, np.ndarray]]:
    """The periodic greedy evaluations of a metrics.csv, by run (its `run` column: a seed
    of a multi-seed run; "" for a one-run CSV): {run: {"env_steps": [E], "wall_seconds":
    [E], "eval_return": [E]}}, rows without an evaluation left out."""
    columns = read_csv(csv_path)
    with open(csv_path, newline="") as f:
        names = [row.get("run") or "" for row in csv.DictReader(f)]
    runs: dict[str, dict[str, list[float]]] = {}
    for i, name in enumerate(names):
        if math.isnan(columns["eval_return"][i]):
            continue
        run = runs.setdefault(name, {"env_steps": [], "wall_seconds": [], "eval_return": []})
        for key in run:
            run[key].append(columns[key][i])
    return {name: {k: np.asarray(v) for k, v in run.items()} for name, run in runs.items()}


def band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over curves [(x [N], y [N]), ...] at each point of `grid` [G].

    A curve's value at g is its last point with x <= g (NaN before its first point, its
    last value after its end: a run that stopped once solved keeps its last evaluation);
    points where no curve has a value are NaN. Returns three [G] arrays.
    """
    held = np.full((len(curves), len(grid)), np.nan)
    for c, (x, y) in enumerate(curves):
        index = np.searchsorted(x, grid, side="right") - 1
        held[c] = np.where(index >= 0, y[np.clip(index, 0, None)], np.nan)
    with warnings.catch_warnings():  # an all-NaN column is NaN, as documented: no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanmedian(held, axis=0), np.nanmin(held, axis=0),
                np.nanmax(held, axis=0))


def _curves_panel(ax, runs: list[dict[str, np.ndarray]], x_key: str, label: str, color: str):
    """The median and range of three or more runs' evaluations against `x_key`; fewer
    are drawn one line each (a median of two is no run's curve). An empty `label` leaves
    the legend only the statistic, for a panel whose title names the runs."""
    if len(runs) < 3:
        for r, run in enumerate(runs):
            name = f"seed {r}" if len(runs) > 1 else "evaluations"
            ax.plot(run[x_key], run["eval_return"], "-", color=f"C{int(color[1:]) + r}",
                    linewidth=1, label=f"{label}, {name}" if label else name)
        return
    grid = np.unique(np.concatenate([r[x_key] for r in runs]))
    median, low, high = band([(r[x_key], r["eval_return"]) for r in runs], grid)
    ax.fill_between(grid, low, high, step="post", color=color, alpha=0.25, linewidth=0)
    statistic = f"median, range of {len(runs)} seeds"
    ax.step(grid, median, where="post", color=color,
            label=f"{label}: {statistic}" if label else statistic)


def _learning_figure(rows: list[tuple[str, list[dict[str, np.ndarray]]]], ylabel: str,
                     path: str, line: float | None = None) -> str:
    """One row per (title, runs), evaluations against env steps (left) and wall seconds
    (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.0 * len(rows)), squeeze=False)
    for r, (title, runs) in enumerate(rows):
        for c, (x_key, xlabel) in enumerate((("env_steps", "env steps"),
                                             ("wall_seconds", "wall seconds"))):
            ax = axes[r, c]
            _curves_panel(ax, runs, x_key, "", f"C{r}")
            if line is not None:
                ax.axhline(line, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _save(fig, path: str, layout: bool = True) -> str:
    import matplotlib.pyplot as plt

    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _path(*parts: str) -> str:
    return os.path.join(RESULTS, *parts)


def cartpole(path: str) -> str:
    """CartPole-v1: the `cartpole` preset's solve runs (5 processes) and the `reanalyze`
    preset (5 seeds in one process)."""
    solve = [eval_runs(_path("cartpole-solve", EPYC, f"seed{s}", "metrics.csv"))[""]
             for s in range(5)]
    reanalyze = list(eval_runs(_path("reanalyze", EPYC, "preset", "metrics.csv")).values())
    return _learning_figure([("cartpole preset", solve), ("reanalyze preset", reanalyze)],
                            "greedy return (32 episodes)", path, line=475)


def reanalyze(path: str) -> str:
    """The `reanalyze` preset against two of the settings it was chosen over, seeds 0-4
    each, on one pair of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = (("PUCT, target EMA 0.95, 50 updates", "puct-ema0.95"),
              ("Gumbel, q_min_range 1, target EMA 0.95, 50 updates",
               "gumbel-ema0.95-qminrange1"),
              ("the preset (the same, 100 updates)", "preset"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    for c, (x_key, xlabel) in enumerate((("env_steps", "env steps"),
                                         ("wall_seconds", "wall seconds"))):
        for g, (label, run) in enumerate(groups):
            runs = list(eval_runs(_path("reanalyze", EPYC, run, "metrics.csv")).values())
            _curves_panel(axes[c], runs, x_key, label, f"C{g}")
        axes[c].axhline(475, color="grey", linestyle=":", linewidth=1)
        axes[c].set_xlabel(xlabel)
        axes[c].set_ylabel("greedy return (32 episodes)")
        axes[c].grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, path, layout=False)


def minatar_breakout(path: str) -> str:
    """Breakout-MinAtar at 2M env steps, seeds 0-2, top to bottom: plain MuZero (conv h),
    the `minatar` preset (plain with the off-policy correction), plain with an MLP h, and
    with EfficientZero's three additions (the MinAtar benchmark's `plain`, `off_policy`,
    `mlp` and `efficientzero` variants); a variant joins once its three seeds are
    committed."""
    from benchmarks import minatar

    rows = [(f"Breakout-MinAtar, {title}", _minatar_seeds(variant, "Breakout"))
            for variant, title in (("plain", "plain MuZero (conv h)"),
                                   (minatar.PRESET_VARIANT,
                                    "minatar preset (off-policy correction)"),
                                   ("mlp", "MLP h (--network.kind mlp)"),
                                   ("efficientzero", "all three EfficientZero additions"))]
    return _learning_figure([r for r in rows if r[1]], "greedy return (32 episodes)", path,
                            line=24)


def minatar_games(path: str) -> str:
    """Every MinAtar game at 2M env steps, plain MuZero and the `minatar` preset, top to
    bottom in the benchmark's order (a game and variant join once their three seeds are
    committed)."""
    from benchmarks import minatar

    rows = [(f"{game}-MinAtar, {title}", _minatar_seeds(variant, game))
            for game in minatar.GAMES
            for variant, title in (("plain", "plain MuZero"),
                                   (minatar.PRESET_VARIANT, "minatar preset"))]
    return _learning_figure([r for r in rows if r[1]], "greedy return (32 episodes)", path)


def _minatar_seeds(variant: str, game: str) -> list[dict[str, np.ndarray]]:
    """The periodic evaluations of seeds 0-2 of a MinAtar variant and game, each from the
    machine that finished it (`minatar.run_dir`); [] unless all three have finished
    (written their summary.json)."""
    from benchmarks import minatar

    runs = [minatar.run_dir(RESULTS, EPYC, variant, game, s) for s in range(3)]
    if not all(os.path.exists(os.path.join(r, "summary.json")) for r in runs):
        return []
    return [eval_runs(os.path.join(r, "metrics.csv"))[""] for r in runs]


def game_2048(path: str) -> str:
    """pgx 2048 at 2M env steps, seeds 0-2: the `2048` preset (Stochastic MuZero), plain
    MuZero with the same flags and AlphaZero mode (pgx's step in the tree), top to
    bottom; the dotted line is 4x the random player."""
    from benchmarks import game2048

    random_score = game2048.baselines()["random"]["mean_score"]
    rows = [(f"2048: {title}",
             [eval_runs(_path("2048", EPYC, f"{variant}-seed{seed}", "metrics.csv"))[""]
              for seed in range(3)])
            for variant, title in (("stochastic", "Stochastic MuZero (preset 2048)"),
                                   ("plain", "plain MuZero, the same flags"),
                                   ("alphazero", "AlphaZero mode, pgx's step"))]
    return _learning_figure(rows, "greedy score (8 games)", path, line=4 * random_score)


def connect_four(path: str) -> str:
    """Connect four, the preset, seed 1: score against the random player and the
    100-simulation search baseline at every kept checkpoint (50 games a side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(_path("connect-four", EPYC, "preset-seed1-600k", "curve.json")) as f:
        rows = json.load(f)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, (x_key, xlabel) in zip(axes, (("env_steps", "plies (env steps)"),
                                          ("train_seconds", "training seconds")), strict=True):
        x = [row[x_key] for row in rows]
        for c, (key, label) in enumerate((("random_score", "against random"),
                                          ("search100_score", "against search-100"))):
            ax.plot(x, [row[key] for row in rows], ".-", color=f"C{c}", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score (wins + draws / 2)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _section(name: str, section: str) -> dict:
    with open(_path(name, f"{EPYC}.json")) as f:
        return json.load(f)["sections"][section]


def search_cost(path: str) -> str:
    """Simulations/s of `Agent.act` (50 simulations) against batch, beside the network
    alone doing the same number of recurrent_inference calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _section("speed", "search")["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for c, (algorithm, label) in enumerate((("muzero", "PUCT"), ("gumbel", "Gumbel"))):
        mine = [r for r in rows if r["algorithm"] == algorithm]
        batch = [r["batch"] for r in mine]
        ax.plot(batch, [r["search"]["median"] for r in mine], "o-", color=f"C{c}",
                label=f"{label} search")
        ax.plot(batch, [r["network_only"]["median"] for r in mine], "o:", color=f"C{c}",
                label=f"{label}: network only")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch (roots searched together)")
    ax.set_ylabel("simulations / s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def scaling(path: str) -> str:
    """Self-play env steps/s and learner updates/s on 1-8 forced CPU devices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _section("scaling", "scaling")["rows"]
    devices = [r["devices"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for c, envs in enumerate((16, 128)):
        axes[0].plot(devices, [next(s["env_steps_per_second"] for s in r["selfplay"]
                                    if s["envs"] == envs) for r in rows],
                     "o-", color=f"C{c}", label=f"{envs} envs")
    axes[1].plot(devices, [r["learner"][0]["updates_per_second"] for r in rows], "o-",
                 color="C2", label="batch 256")
    for ax, ylabel in zip(axes, ("self-play env steps / s", "learner updates / s"),
                          strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(devices, [str(d) for d in devices])
        ax.set_xlabel("devices (forced CPU devices sharing 2 cores)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def compile_times(path: str) -> str:
    """Wall seconds of a 4,000-step CartPole process, compiling and the rest, cold and
    with JAX's persistent cache warm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = _section("compile", "compile")
    kinds = ("cold", "warm")
    compile_s = [section[k]["compile_total_seconds"] for k in kinds]
    rest = [section[k]["wall_seconds"] - c for k, c in zip(kinds, compile_s, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.barh(kinds, compile_s, color="C3", label="compiling")
    ax.barh(kinds, rest, left=compile_s, color="C0", label="everything else")
    ax.set_xlabel("wall seconds")
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8)
    return _save(fig, path)


FIGURES = {
    "results-cartpole": cartpole,
    "results-reanalyze": reanalyze,
    "results-minatar-breakout": minatar_breakout,
    "results-minatar-games": minatar_games,
    "results-connect-four": connect_four,
    "results-2048": game_2048,
    "results-search": search_cost,
    "results-scaling": scaling,
    "results-compile": compile_times,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("docs", "img"),
                        help="directory for the PNGs (default docs/img)")
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=None,
                        help="draw only these figures (default: all)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name in args.only or FIGURES:
        print(FIGURES[name](os.path.join(args.out, f"{name}.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
