"""Run logs: TensorBoard event files (tensorboardX) and a CSV of the same scalars.

One row per logged iteration, a dict of scalars keyed by name, goes to both:
`RUN_DIR/tensorboard/` (x axis: env steps) and `RUN_DIR/metrics.csv` (one
column per name). Columns appear as metrics do (losses only once learning
starts), so when a row brings a new name the CSV is rewritten whole with the
wider header; its rows are the run's history, which the training loop
checkpoints, so after a resume the CSV is rewritten from the checkpoint's
history and TensorBoard is told to drop events past it (`purge_step`). Nothing is
written before the first row (or `flush`/`close`): a Logger made for a run that
then fails to start leaves the directory's files as they were.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Sequence

from tensorboardX import SummaryWriter

from muzero_jax.errors import RunFault

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
STEP = "env_steps"  # the x axis of every curve


class LogWriteError(RunFault):
    """metrics.csv cannot be written (a full disk, a directory that cannot be written)."""


class Logger:
    """Writes rows of scalars to TensorBoard and CSV under `run_dir`.

    Args:
      run_dir: the run directory.
      history: rows already logged (from a checkpoint, when resuming); the CSV is
        rewritten from them and TensorBoard events after their last step dropped.
      run_key: with several runs in one CSV (seeds trained together), the column
        naming each row's run; each run gets its own TensorBoard run,
        `tensorboard/<name>/`.
    """

    def __init__(self, run_dir: str, history: Sequence[dict] = (), *,
                 run_key: str | None = None):
        self.csv_path = os.path.join(run_dir, CSV_NAME)
        self.tensorboard_dir = os.path.join(run_dir, TENSORBOARD_DIR)
        self.run_key = run_key
        self.rows: list[dict] = list(history)
        self.fields: list[str] = []
        for row in self.rows:
            self.fields += [k for k in row if k not in self.fields]
        self._csv_current = not self.rows  # the CSV on disk is rewritten at the first write
        self.writers: dict[str | None, SummaryWriter] = {}
        # TensorBoard drops each run's events after its last checkpointed row.
        self._purge: dict[str | None, int] = {}
        for row in self.rows:
            self._purge[None if run_key is None else row.get(run_key)] = int(row[STEP]) + 1

    def _writer(self, run: str | None) -> SummaryWriter:
        if run not in self.writers:
            purge = self._purge.get(run)
            directory = (self.tensorboard_dir if run is None
                         else os.path.join(self.tensorboard_dir, str(run)))
            # Event files are named by the second they open in; a suffix keeps a quick
            # resume from truncating the previous session's file.
            self.writers[run] = SummaryWriter(directory, purge_step=purge, flush_secs=30,
                                              filename_suffix=f".{time.time_ns()}")
        return self.writers[run]

    @property
    def writer(self) -> SummaryWriter:
        """The TensorBoard writer of a single-run log."""
        return self._writer(None)

    def write(self, row: dict) -> None:
        """Logs one row; `row[STEP]` is its x coordinate. None values are skipped."""
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new or not self._csv_current:
            self.fields += new
            self._rewrite_csv()
        else:
            try:
                with open(self.csv_path, "a", newline="") as f:
                    csv.DictWriter(f, fieldnames=self.fields).writerow(row)
            except OSError as e:
                raise self._write_error(e) from e
        step = int(row[STEP])
        writer = self._writer(None if self.run_key is None else row[self.run_key])
        for name, value in row.items():
            if name != STEP and isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isnan(value):
                    writer.add_scalar(name, value, global_step=step)

    def flush(self) -> None:
        if not self._csv_current:
            self._rewrite_csv()
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        if not self._csv_current:
            self._rewrite_csv()
        for writer in self.writers.values():
            writer.close()

    def _rewrite_csv(self) -> None:
        # Write beside and rename, so a kill mid-write never leaves half a CSV.
        tmp = self.csv_path + ".tmp"
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(self.rows)
            os.replace(tmp, self.csv_path)
        except OSError as e:
            raise self._write_error(e) from e
        self._csv_current = True

    def _write_error(self, e: OSError) -> LogWriteError:
        return LogWriteError(f"{self.csv_path}: cannot write ({e.strerror or e}); the "
                             f"checkpoints written so far are intact: free space or make the "
                             f"directory writable, then resume the run")


def read_csv(path: str) -> dict[str, list[float]]:
    """The CSV's columns as floats (empty cells as NaN), by name."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = list(rows[0]) if rows else []

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {name: [number(row.get(name)) for row in rows] for name in names}
