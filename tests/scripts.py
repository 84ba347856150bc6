"""What the tests that run experiment scripts share: the tiny flags, the paths, running a
script in this process, and a run directory's contents as bytes."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARTPOLE = os.path.join(ROOT, "experiments", "cartpole.py")
TRAIN = os.path.join(ROOT, "experiments", "train.py")


def script_env() -> dict:
    """The environment of a script's process: this one's as it is when called (conftest's
    compile_cache fixture sets the shared compilation cache after the test modules import
    this one), with the repository on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=ROOT)


# One tiny config for every test that runs experiments/cartpole.py to check plumbing
# (summary, logs, checkpoints, resume), not learning: within one test run the later
# processes find its programs in the persistent compilation cache the first one filled.
TINY = ["--acting.num_envs", "4", "--acting.rollout_length", "8", "--network.hidden_size", "16",
        "--network.latent_size", "8", "--network.num_hidden_layers", "1",
        "--search.num_simulations", "4", "--learner.batch_size", "16",
        "--learner.updates_per_iteration", "4", "--replay.capacity", "256",
        "--replay.min_size", "32", "--loss.td_steps", "3", "--loss.unroll_steps", "2",
        "--run.eval_every", "0", "--run.solve_return", "none",
        "--run.checkpoint_every", "16", "--run.checkpoint_keep", "100",
        "--replay.priority_alpha", "1.0", "--acting.temperature_schedule", "0.5", "0.5",
        "--seed", "3", "--total-env-steps", "1600", "--eval-episodes", "2"]


def _script(path, argv, monkeypatch, cwd):
    """The script at `path`, loaded as `python PATH ARGV` would run it from `cwd`."""
    spec = importlib.util.spec_from_file_location("script_under_test", path)
    script = importlib.util.module_from_spec(spec)
    # A script's dataclasses (its flags) look their module up while being defined.
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", [path, *argv])  # error lines name the script
    monkeypatch.setattr(sys, "path", list(sys.path))  # main puts the working directory on it
    monkeypatch.chdir(cwd)
    return script


def script_in_process(path, argv, monkeypatch, capsys, cwd):
    """The script at `path` run in this process as `python PATH ARGV` runs it, for input
    it must refuse: (exit code, stderr). No new process and imports for each refusal.
    """
    script = _script(path, argv, monkeypatch, cwd)
    with pytest.raises(SystemExit) as exit_info:
        script.main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


def run_script(path, argv, monkeypatch, cwd) -> dict:
    """The script at `path` run to its end in this process, as `python PATH ARGV` runs it:
    the summary its `main` returns. The compiled programs of an earlier process come
    from the persistent compilation cache; a new process would first import everything.
    """
    return _script(path, argv, monkeypatch, cwd).main(list(argv))


def snapshot(directory) -> dict[str, str]:
    """Every file under `directory` (relative path -> sha256 of its bytes); {} if absent."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return files


def assert_one_line(err: str, *expected: str) -> str:
    """`err` is one line (no traceback, no usage) holding every string of `expected`."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]
