"""Learning curves of a run, drawn from its metrics.csv with matplotlib.

    python -m muzero_jax.plot RUN_DIR [--out FILE]     # default RUN_DIR/curves.png

One panel per group of related scalars (returns, episode length, loss terms,
learning rate and gradient norm, search statistics, speed), each against env
steps; groups the CSV lacks are left out, and any other numeric column gets a
panel of its own, so metrics added later (priorities, say) are drawn too.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys

from muzero_jax.logger import CSV_NAME, STEP, read_csv

PNG_NAME = "curves.png"

PANELS = (
    ("return", ("episodes_return", "eval_return")),
    ("episode length", ("episode_length",)),
    ("loss", ("loss", "value_loss", "policy_loss", "reward_loss")),
    ("learning rate", ("learning_rate",)),
    ("gradient norm", ("grad_norm",)),
    ("search", ("root_value", "value_target", "value_prediction")),
    ("search policy entropy", ("policy_entropy",)),
    ("speed (per second)", ("env_steps_per_second", "updates_per_second")),
)
# Columns that are counters or clocks, not curves.
_SKIP = {STEP, "iteration", "train_steps", "wall_seconds", "l2", "seed", "run"}
_STYLES = ("-", "--", ":", "-.")


def panel_series(csv_path: str) -> list[tuple[str, list[dict]]]:
    """What `plot_curves` draws: [(panel title, [series])], each series a dict with
    "label", "run" (the CSV's `run` column: a seed or sweep value, "" for a one-run
    CSV), "metric", "x" (env steps) and "y", NaN rows left out; panels with nothing
    to draw are left out.

    Raises FileNotFoundError if the CSV is missing, ValueError if it has no rows.
    """
    columns = read_csv(csv_path)
    if not columns or not columns.get(STEP):
        raise ValueError(f"{csv_path}: no rows to plot (expected a '{STEP}' column)")
    runs = _rows_by_run(csv_path)
    panels = [(title, [n for n in names if n in columns]) for title, names in PANELS]
    drawn = {n for _, names in panels for n in names}
    panels += [(name, [name]) for name in columns if name not in drawn | _SKIP]
    out = []
    for title, names in panels:
        series = []
        for run, rows in runs.items():
            for name in names:
                points = [(columns[STEP][i], columns[name][i]) for i in rows
                          if not math.isnan(columns[name][i])]
                if points:
                    label = " ".join(p for p in (name if len(names) > 1 else "", run) if p)
                    series.append({"label": label, "run": run, "metric": name,
                                   "x": [p[0] for p in points], "y": [p[1] for p in points]})
        if series:
            out.append((title, series))
    return out


def plot_curves(csv_path: str, png_path: str) -> str:
    """Draws the CSV's curves into `png_path` (see `panel_series`); returns the path.

    With seeds or a sweep (a `run` column) each run is a colour and each metric of a
    panel a line style; otherwise each metric is a colour. Raises FileNotFoundError
    if the CSV is missing, ValueError if it has no rows.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    panels = panel_series(csv_path)
    runs = sorted({s["run"] for _, series in panels for s in series}, key=str)
    cols = 3
    grid_rows = max(1, math.ceil(len(panels) / cols))
    width, height = 5.0 * cols, 3.2 * grid_rows + 0.4
    fig, axes = plt.subplots(grid_rows, cols, figsize=(width, height), squeeze=False)
    # Margins in inches, fixed: tight_layout would draw every panel twice to measure its
    # labels, most of the time of a plot that every run ends with.
    left, right, top, bottom, across, down = 0.75, 0.2, 0.75, 0.5, 0.85, 0.8
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height,
        bottom=bottom / height,
        wspace=across / ((width - left - right - across * (cols - 1)) / cols),
        hspace=down / ((height - top - bottom - down * (grid_rows - 1)) / grid_rows))
    for ax, (title, series) in zip(axes.flat, panels, strict=False):
        metrics = list(dict.fromkeys(s["metric"] for s in series))
        for s in series:
            m = metrics.index(s["metric"])
            many = len(runs) > 1
            ax.plot(s["x"], s["y"], marker="." if len(s["x"]) < 30 else None,
                    label=s["label"] or None,
                    color=f"C{(runs.index(s['run']) if many else m) % 10}",
                    linestyle=_STYLES[m % len(_STYLES)] if many else "-")
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(os.path.basename(os.path.dirname(os.path.abspath(csv_path))))
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


def _rows_by_run(csv_path: str) -> dict[str, list[int]]:
    """Row indices by the CSV's `run` column ({"": every row} without one)."""
    with open(csv_path, newline="") as f:
        names = [row.get("run") or "" for row in csv.DictReader(f)]
    runs: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        runs.setdefault(name, []).append(i)
    return runs


def plot_run(run_dir: str, png_path: str | None = None) -> str:
    """Draws RUN_DIR/metrics.csv into `png_path` (default RUN_DIR/curves.png)."""
    return plot_curves(os.path.join(run_dir, CSV_NAME),
                       png_path or os.path.join(run_dir, PNG_NAME))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m muzero_jax.plot",
                                     description="Draw a run's learning curves.")
    parser.add_argument("run_dir", help="a run directory holding metrics.csv")
    parser.add_argument("--out", default=None, help="PNG to write (default RUN_DIR/curves.png)")
    args = parser.parse_args(argv)
    csv_path = os.path.join(args.run_dir, CSV_NAME)
    if not os.path.isfile(csv_path):
        parser.error(f"{csv_path}: no such file; expected a run directory written by "
                     f"training (python experiments/cartpole.py --out DIR)")
    try:
        path = plot_run(args.run_dir, args.out)
    except ValueError as e:
        parser.error(str(e))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
