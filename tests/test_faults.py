"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jax
import pytest

from muzero_jax import evaluate
from scripts import (CARTPOLE, ENV, ROOT, TINY, assert_one_line, script_in_process,
                     snapshot)


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


ATARI = os.path.join(ROOT, "experiments", "atari.py")
BOARD = os.path.join(ROOT, "experiments", "board.py")


def refused(script, args, needles, monkeypatch, capsys, tmp_path):
    """`script --out DIR ARGS` exits 2 with one line holding `needles`, DIR not created."""
    out = tmp_path / "run"
    code, err = script_in_process(script, ["--out", str(out), *args], monkeypatch, capsys,
                                  tmp_path)
    assert code == 2, err[-3000:]
    assert_one_line(err, *needles)
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--config.learning_rate", "inf"], "learning_rate=inf: expected a finite number"),
    (["--config.weight_decay", "nan"], "weight_decay=nan: expected a finite number"),
    (["--config.temperature", "nan"], "temperature=nan"),
    (["--config.gumbel_scale", "nan"], "gumbel_scale=nan"),
    (["--config.value_loss_weight", "nan"], "value_loss_weight=nan"),
    (["--config.priority_alpha", "nan"], "priority_alpha=nan"),
    (["--config.momentum", "nan"], "momentum=nan"),
    (["--config.max_grad_norm", "inf"], "max_grad_norm=inf"),  # float | None
    (["--config.max_abs_reward", "inf"], "max_abs_reward=inf"),
    (["--config.solve_return", "inf"], "solve_return=inf"),
    (["--config.temperature_schedule", "0.5", "inf"],  # a pair inside a tuple
     "temperature_schedule=((0.5, inf),): inf is not a finite number"),
])
def test_a_non_finite_float_field_is_refused(args, needle, tmp_path, monkeypatch, capsys):
    refused(CARTPOLE, args, [needle], monkeypatch, capsys, tmp_path)


@pytest.mark.parametrize("steps", ["0", "400", "1200"])
def test_a_budget_that_makes_no_update_is_refused(steps, tmp_path, monkeypatch, capsys):
    # cartpole: 400 env steps an iteration, min_replay_size 1,600: the first update comes
    # in the fourth iteration, which runs only while fewer than total_env_steps are done.
    refused(CARTPOLE, ["--total-env-steps", steps],
            [f"total_env_steps={steps}: makes no update", "total_env_steps >= 1201"],
            monkeypatch, capsys, tmp_path)


@pytest.mark.parametrize("args, needles", [
    (["--env", "CartPole-v1", "--config.env", "Acrobot-v1"],
     ["--env CartPole-v1", "--config.env Acrobot-v1"]),
    (["--seed", "1", "--config.seed", "2"], ["--seed 1", "--config.seed 2"]),
    (["--total-env-steps", "4000", "--config.total-env-steps", "8000"],
     ["--total-env-steps 4000", "--config.total_env_steps 8000"]),
    (["--eval-episodes", "3", "--config.final_eval_episodes", "4"],
     ["--eval-episodes 3", "--config.final_eval_episodes 4"]),
])
def test_a_flag_and_a_config_field_that_disagree_are_refused(args, needles, tmp_path,
                                                             monkeypatch, capsys):
    refused(CARTPOLE, args, needles, monkeypatch, capsys, tmp_path)


def test_more_devices_than_visible_is_said_before_divisibility(tmp_path, monkeypatch, capsys):
    count = jax.device_count() + 1  # num_envs below does not divide by it either
    refused(CARTPOLE, ["--config.num_devices", str(count), "--config.num_envs",
                       str(2 * count + 1)],
            [f"num_devices={count}: only {jax.device_count()} device(s) visible"],
            monkeypatch, capsys, tmp_path)


def test_atari_py_names_the_ids_it_takes(tmp_path, monkeypatch, capsys):
    refused(ATARI, ["--env", "CartPole-v1"],
            ["env='CartPole-v1'", "ALE/<Game>-v5", "experiments/train.py"],
            monkeypatch, capsys, tmp_path)


def test_atari_py_budget_given_twice_is_refused(tmp_path, monkeypatch, capsys):
    refused(ATARI, ["--env", "ALE/Pong-v5", "--env-steps", "2000", "--total-env-steps", "4000"],
            ["--total-env-steps 4000", "--env-steps 2000"], monkeypatch, capsys, tmp_path)


@pytest.mark.parametrize("args, needles", [
    (["--env", "CartPole-v1"], ["env='CartPole-v1'", "pgx board games"]),
    (["--game", "tic_tac_toe", "--env", "pgx/connect_four"],
     ["env='pgx/connect_four'", "--game tic_tac_toe"]),
    (["--mode", "alphazero", "--config.mode", "muzero"],
     ["--mode alphazero", "--config.mode muzero"]),
    (["--baseline-simulations", "0"], ["--baseline-simulations 0"]),
])
def test_board_py_refuses_what_it_cannot_train(args, needles, tmp_path, monkeypatch, capsys):
    refused(BOARD, args, needles, monkeypatch, capsys, tmp_path)


def test_an_int_field_given_a_float_in_config_json_is_refused(trained_run, tmp_path,
                                                              monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    values = json.loads((run / "config.json").read_text())
    values["eval_every"] = 2.5  # JSON has no integer type of its own
    (run / "config.json").write_text(json.dumps(values))
    before = snapshot(run)
    code, err = script_in_process(CARTPOLE, ["--resume", str(run)], monkeypatch, capsys,
                                  tmp_path)
    assert code == 2
    assert_one_line(err, "eval_every=2.5: expected an integer")
    assert snapshot(run) == before


def test_evaluate_on_an_env_the_networks_do_not_fit_is_one_line(trained_run, capsys):
    before = snapshot(trained_run)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(trained_run), "--env", "Acrobot-v1", "--episodes", "1"])
    assert exit_info.value.code == 2
    assert_one_line(capsys.readouterr().err, "--env Acrobot-v1", "shape (6,)",
                    "Discrete(3)", "shape (4,) and 2 discrete actions")
    assert snapshot(trained_run) == before


# --- run directories: resume, checkpoints, disk ------------------------------------------


# --- non-finite values: config, env, learner -----------------------------------------------


# --- signals -------------------------------------------------------------------------------


# --- early stops -----------------------------------------------------------------------------


# --- defaults for an env nobody tuned ----------------------------------------------------------
