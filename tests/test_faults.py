"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from scripts import CARTPOLE, ENV, TINY, assert_one_line, script_in_process, snapshot


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """experiments/cartpole.py with TINY trained to the end once (never changed by a test:
    copy it with `copy_run` first)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    proc = subprocess.run([sys.executable, CARTPOLE, "--out", str(out), *TINY],
                          capture_output=True, text=True, timeout=600, cwd=out.parent, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def copy_run(run_dir, tmp_path):
    """A copy of `run_dir` under `tmp_path` that a case may damage: (path, its snapshot)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, snapshot(copy)


# --- bad input, refused before anything compiles -----------------------------------------


def test_a_bad_override_is_refused_before_compiling(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = script_in_process(CARTPOLE, ["--out", str(out), "--config.learning_rate", "-1"],
                                  monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "learning_rate=-1")
    assert not out.exists()


# --- run directories: resume, checkpoints, disk ------------------------------------------


# --- non-finite values: config, env, learner -----------------------------------------------


# --- signals -------------------------------------------------------------------------------


# --- early stops -----------------------------------------------------------------------------


# --- defaults for an env nobody tuned ----------------------------------------------------------
