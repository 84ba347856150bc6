"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import nonfinite_envs
import numpy as np
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


def _flags(**overrides) -> list[str]:
    """TINY with some of its flags' values replaced (flag name without '--' -> value)."""
    flags = list(TINY)
    for name, value in overrides.items():
        flags[flags.index("--" + name) + 1] = str(value)
    return flags


# The tiny CartPole run with a greedy evaluation every 2 iterations that any policy passes:
# every evaluation reaches the solve return. The early-stop cases and the loss case share
# its compiled program (the learning rate lives in the optimizer state).
EVAL_TINY = _flags(**{"config.eval_every": 2, "config.solve_return": 5})


def _checkpoints(out) -> list[str]:
    return sorted(os.listdir(out / "checkpoints"), key=int)


def _readable_checkpoint(out):
    """The latest checkpoint's learner state (restored, so readable), and its step."""
    import jax

    from muzero_jax import Agent, checkpoint

    agent = Agent(checkpoint.load_config(str(out)))
    step, state = checkpoint.restore_train_state(str(out), agent.init(jax.random.key(0)))
    return step, state


@pytest.mark.parametrize("env_id, quantity", [
    (nonfinite_envs.GYM_OBSERVATION_ID, "observation"),
    (nonfinite_envs.GYM_REWARD_ID, "reward")])
def test_a_gymnasium_env_turning_nan_stops_the_run(env_id, quantity, tmp_path, monkeypatch,
                                                   capsys):
    # 4 envs step together: each one's step 50 is env step 200, in iteration 7; the
    # checkpoint every 16 updates (4 per iteration) was written after iteration 4.
    out = tmp_path / "run"
    code, err = script_in_process(CARTPOLE, ["--out", str(out), "--env", env_id, *TINY],
                                  monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, repr(env_id), f"({quantity}) at env step 200", "checkpoint")
    assert not (out / "summary.json").exists()
    assert _checkpoints(out) == ["4"]
    step, state = _readable_checkpoint(out)
    assert step == 4 and int(state.step) == 16


def test_a_jax_env_turning_nan_stops_the_compiled_run(tmp_path, monkeypatch, capsys):
    # The compiled path: chunks of 5 iterations (log_every); the checkpoint after the
    # first chunk (20 updates) is the last; env step 200 falls in the second chunk.
    out = tmp_path / "run"
    code, err = script_in_process(
        CARTPOLE, ["--out", str(out), "--env", nonfinite_envs.JAX_ID, *TINY],
        monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, repr(nonfinite_envs.JAX_ID), "(observation) at env step 200")
    assert not (out / "summary.json").exists()
    assert _checkpoints(out) == ["5"]
    step, state = _readable_checkpoint(out)
    assert step == 5 and int(state.step) == 20


def test_a_non_finite_loss_stops_the_run(tmp_path, monkeypatch, capsys):
    # A learning rate of 1e30 is a valid number: the first update throws the parameters
    # to ~1e30 and the next one's gradient norm overflows, in the first iteration.
    out = tmp_path / "run"
    code, err = script_in_process(
        CARTPOLE, ["--out", str(out), *EVAL_TINY, "--config.learning_rate", "1e30"],
        monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "'jax/CartPole-v1'", "(loss) at env step 32", "learning_rate")
    assert not (out / "summary.json").exists()
    assert not (out / "checkpoints").exists() or _checkpoints(out) == []


# --- signals -------------------------------------------------------------------------------


# --- early stops -----------------------------------------------------------------------------


def _run_script(path, argv, monkeypatch, cwd) -> dict:
    """The script at `path` run to its end in this process: the summary it returns."""
    spec = importlib.util.spec_from_file_location("script_under_test", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(cwd)
    return script.main(list(argv))


def _train_module():
    return sys.modules["muzero_jax.train"]  # `muzero_jax.train` is also the function


def test_an_early_stop_whose_confirmation_fails_trains_on(tmp_path, monkeypatch):
    # Every evaluation (each 2 iterations: 64 env steps) reaches solve_return 5. The
    # confirmation plays the final evaluation (2 episodes of Gymnasium's CartPole-v1,
    # which last 8 steps or more); its first two are made to fail.
    train = _train_module()
    real, played = train.evaluate_final, []

    def evaluate_final(agent, state, config):
        returns, label = real(agent, state, config)
        played.append((label, len(returns)))
        return (returns - 100.0 if len(played) < 3 else returns), label

    monkeypatch.setattr(train, "evaluate_final", evaluate_final)
    out = tmp_path / "run"
    summary = _run_script(CARTPOLE, ["--out", str(out), *EVAL_TINY], monkeypatch, tmp_path)
    assert played == [("gymnasium CartPole-v1", 2)] * 3
    assert summary["env_steps"] == 192 and summary["solved_during_training"]
    stops = summary["early_stop"]
    assert [(s["env_steps"], s["confirmed"]) for s in stops] == [
        (64, False), (128, False), (192, True)]
    assert all(s["eval_return"] >= 5 and s["confirm_episodes"] == 2
               and s["confirm_env"] == "gymnasium CartPole-v1" for s in stops)
    assert stops[0]["confirm_return"] < 5 <= 8 <= stops[2]["confirm_return"]
    assert json.loads((out / "summary.json").read_text())["early_stop"] == stops
    # Checkpointed: the resumed (solved, so finished) run keeps the list.
    monkeypatch.setattr(train, "evaluate_final", real)
    resumed = _run_script(CARTPOLE, ["--resume", str(out)], monkeypatch, tmp_path)
    assert resumed["env_steps"] == 192 and resumed["early_stop"] == stops


def test_an_early_stop_whose_confirmation_passes_stops(tmp_path, monkeypatch):
    played = []

    def confirm(agent, state, config):
        played.append((int(state.step), config.final_eval_episodes))
        return np.full(config.final_eval_episodes, 500.0), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    summary = _run_script(CARTPOLE, ["--out", str(out), *EVAL_TINY], monkeypatch, tmp_path)
    # The first evaluation (iteration 2: 64 env steps, 8 updates) stops the run, and the
    # confirmation is its final evaluation, not played again.
    assert played == [(8, 2)]
    assert summary["env_steps"] == 64 and summary["solved_during_training"]
    assert summary["early_stop"] == [{
        "env_steps": 64, "eval_return": summary["early_stop"][0]["eval_return"],
        "confirm_return": 500.0, "confirm_episodes": 2, "confirm_env": "confirmation stub",
        "confirmed": True}]
    assert summary["eval_return_mean"] == 500.0 and summary["eval_env"] == "confirmation stub"


@pytest.mark.slow
def test_runs_side_by_side_confirm_their_early_stops_each(tmp_path, monkeypatch):
    # Seed 0's first confirmation passes; seed 1's all fail: seed 0 stops at the first
    # evaluation while seed 1 trains on to the end of its budget.
    def confirm(agent, state, config):
        score = 500.0 if config.seed == 0 else 1.0
        return np.full(config.final_eval_episodes, score), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    flags = _flags(**{"config.eval_every": 2, "config.solve_return": 5,
                      "total-env-steps": 320})
    del flags[flags.index("--seed"):flags.index("--seed") + 2]
    summary = _run_script(CARTPOLE, ["--out", str(out), "--seeds", "0", "1", *flags],
                          monkeypatch, tmp_path)
    runs = {run["seed"]: run for run in summary["runs"]}
    assert runs[0]["env_steps"] == 64 and runs[0]["solved_during_training"]
    assert [(e["env_steps"], e["confirmed"]) for e in runs[0]["early_stop"]] == [(64, True)]
    assert runs[1]["env_steps"] == 320 and not runs[1]["solved_during_training"]
    assert [(e["env_steps"], e["confirmed"]) for e in runs[1]["early_stop"]] == [
        (64, False), (128, False), (192, False), (256, False), (320, False)]


def test_host_early_stops_confirm_and_wait_after_a_failure(tmp_path, monkeypatch):
    # The host path evaluates whenever the training return reaches the solve return
    # (-1: from iteration 2, the first with a finished episode of 10 steps); after a
    # failed confirmation it waits 10 iterations (no periodic evaluations) before the
    # training return triggers another.
    answers = iter([-5.0, 3.0])

    def confirm(agent, state, config):
        return np.full(config.final_eval_episodes, next(answers)), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    summary = _run_script(CARTPOLE, ["--out", str(out), "--env", nonfinite_envs.GYM_STEADY_ID,
                                     *_flags(**{"config.solve_return": -1})],
                          monkeypatch, tmp_path)
    assert [(s["env_steps"], s["confirm_return"], s["confirmed"])
            for s in summary["early_stop"]] == [(64, -5.0, False), (384, 3.0, True)]
    assert summary["env_steps"] == 384 and summary["solved_during_training"]


# --- defaults for an env nobody tuned ----------------------------------------------------------
