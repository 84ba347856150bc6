"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import nonfinite_envs
import numpy as np
import pytest
from scripts import CARTPOLE, ENV, ROOT, TINY, assert_one_line, script_in_process, snapshot

import muzero_jax as mz
from muzero_jax import checkpoint, evaluate, experiment
from muzero_jax.errors import Interrupted

train_lib = importlib.import_module("muzero_jax.train")  # mz.train is the function


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


def _final_params(run_dir):
    """(step, learner state) of a one-run directory's latest checkpoint."""
    agent = mz.Agent(checkpoint.load_config(str(run_dir)))
    return checkpoint.restore_train_state(str(run_dir), agent.init(jax.random.key(0)))


def _assert_same_final_params(run_dir, reference):
    (step_a, state_a), (step_b, state_b) = _final_params(run_dir), _final_params(reference)
    assert step_a == step_b
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        assert np.array_equal(a, b)


def _steps(run_dir):
    return sorted(int(n) for n in os.listdir(run_dir / "checkpoints") if n.isdigit())


def _damage(step_dir, *paths, data=b""):
    """Deletes (data=None) or overwrites with `data` each path under a checkpoint step."""
    for path in paths:
        target = step_dir / path
        if data is None:
            shutil.rmtree(target)
        else:
            target.write_bytes(data)


@pytest.mark.parametrize("flags, expected", [
    (["--config.hidden_size", "128"], "different network shape"),
    (["--env", "Acrobot-v1"], "different network shape"),  # a host env: the other driver
])
def test_a_failed_resume_leaves_every_file_as_it_was(trained_run, tmp_path, monkeypatch,
                                                     capsys, flags, expected):
    run, before = copy_run(trained_run, tmp_path)
    code, err = script_in_process(CARTPOLE, ["--resume", str(run), *flags], monkeypatch,
                                  capsys, tmp_path)
    assert code == 2
    assert_one_line(err, str(run), expected)
    assert snapshot(run) == before  # config.json, metrics.csv, tensorboard/ included


def test_a_missing_item_falls_back_to_the_newest_readable_checkpoint(trained_run, tmp_path):
    run, _ = copy_run(trained_run, tmp_path)
    latest = _steps(run)[-1]
    _damage(run / "checkpoints" / str(latest), "train_state", data=None)
    proc = subprocess.run([sys.executable, CARTPOLE, "--resume", str(run)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = assert_one_line(proc.stderr, "warning:", f"checkpoints/{latest}",
                           "item 'train_state' is missing", f"using checkpoint {latest - 5}")
    assert line.startswith("warning:")
    # The skipped checkpoint is kept aside, and the run ends exactly as the whole one did.
    assert os.listdir(run / checkpoint.UNREADABLE_DIR) == [str(latest)]
    _assert_same_final_params(run, trained_run)


@pytest.mark.parametrize("damage", ["empty_manifest", "garbled_loop_metadata",
                                    "missing_loop"])
def test_no_readable_checkpoint_is_one_line_and_exit_2(trained_run, tmp_path, monkeypatch,
                                                       capsys, damage):
    run, _ = copy_run(trained_run, tmp_path)
    for step in _steps(run):
        step_dir = run / "checkpoints" / str(step)
        if damage == "empty_manifest":  # tensorstore's reads fail on other threads
            _damage(step_dir, "train_state/manifest.ocdbt")
        elif damage == "garbled_loop_metadata":
            _damage(step_dir, "loop/metadata", data=b'{"iteration": ')
        else:
            _damage(step_dir, "loop", data=None)
    before = snapshot(run)
    if damage == "empty_manifest":  # a process of its own: the noise came at its exit too
        proc = subprocess.run([sys.executable, CARTPOLE, "--resume", str(run)],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env=ENV)
        code, err = proc.returncode, proc.stderr
    else:
        code, err = script_in_process(CARTPOLE, ["--resume", str(run)], monkeypatch, capsys,
                                      tmp_path)
    assert code == 2
    assert_one_line(err, f"no checkpoint in {run / 'checkpoints'} can be read",
                    "corrupted checkpoint")
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", ["latest", "all"])
def test_evaluate_on_a_damaged_run_directory(trained_run, tmp_path, capsys, damage):
    run, _ = copy_run(trained_run, tmp_path)
    steps = _steps(run)
    for step in steps if damage == "all" else steps[-1:]:
        _damage(run / "checkpoints" / str(step), "train_state/manifest.ocdbt")
    before = snapshot(run)
    if damage == "all":
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(run), "--episodes", "1"])
        assert exit_info.value.code == 2
        assert_one_line(capsys.readouterr().err, "can be read", "manifest")
    else:
        assert evaluate.main([str(run), "--episodes", "1"]) == 0
        captured = capsys.readouterr()
        assert_one_line(captured.err, "warning:", f"using checkpoint {steps[-2]}")
        assert f"checkpoint {steps[-2]} " in captured.out
    assert snapshot(run) == before  # evaluating reads only


def test_a_full_disk_during_a_save_is_one_line_and_keeps_earlier_checkpoints(
        trained_run, tmp_path, monkeypatch, capsys):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    run, _ = copy_run(trained_run, tmp_path)
    steps = _steps(run)
    shutil.rmtree(run / "checkpoints" / str(steps[-1]))  # as if killed before the last one
    earlier = snapshot(run / "checkpoints")
    write = json_checkpoint_handler.JsonCheckpointHandler._save_fn

    async def full(self, x, directory):  # in orbax's writer thread: it surfaces at wait
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full)
    code, err = script_in_process(CARTPOLE, ["--resume", str(run)], monkeypatch, capsys,
                                  tmp_path)
    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", write)
    assert code == 2
    assert_one_line(err, f"{run / 'checkpoints'}: cannot write checkpoint {steps[-1]}",
                    "No space left on device")
    # The failed write is invisible; every checkpoint before it is as it was, and reads.
    assert {k: v for k, v in snapshot(run / "checkpoints").items()
            if "orbax-checkpoint-tmp" not in k} == earlier
    step, trees, _ = checkpoint.Checkpointer(str(run / "checkpoints"), create=False).restore(
        {"rng": {"key": jax.random.key(0)}}, required=("rng",))
    assert step == steps[-2] and trees["rng"] is not None


def test_out_into_an_earlier_runs_directory_is_refused_before_compiling(
        trained_run, tmp_path, monkeypatch, capsys):
    run, _ = copy_run(trained_run, tmp_path)
    shutil.rmtree(run / "checkpoints")  # its logs and summary stay
    before = snapshot(run)

    def no_agent(*args, **kwargs):
        raise AssertionError("built the Agent before refusing the run directory")

    monkeypatch.setattr(experiment, "Agent", no_agent)
    code, err = script_in_process(CARTPOLE, ["--out", str(run), *TINY], monkeypatch, capsys,
                                  tmp_path)
    assert code == 2
    assert_one_line(err, str(run), "metrics.csv", "summary.json", "another --out",
                    "--resume")
    assert snapshot(run) == before
    # train() itself refuses it too, for callers that do not go through the scripts.
    with pytest.raises(checkpoint.CheckpointError, match="earlier run's metrics.csv"):
        mz.train(checkpoint.load_config(str(run)), run_dir=str(run), log=None)
    assert snapshot(run) == before



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


@pytest.mark.parametrize("signum", [
    signal.SIGINT,
    pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_ends_as_the_whole_one(
        trained_run, tmp_path, signum):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, CARTPOLE, "--out", str(out), *TINY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=ENV)
    metrics = out / "metrics.csv"  # its first row: training has started
    deadline = time.monotonic() + 300
    while not metrics.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum
    name = signal.Signals(signum).name
    line = assert_one_line(err, f"{name}: stopped after iteration", "saved",
                           f"--resume {out}")
    iteration = int(line.split("stopped after iteration ")[1].split()[0])
    assert _steps(out)[-1] == iteration < 50  # saved where it stopped, before the end
    assert not (out / "summary.json").exists()

    resumed = subprocess.run([sys.executable, CARTPOLE, "--resume", str(out)],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 1600
    _assert_same_final_params(out, trained_run)


def test_a_signal_on_the_host_path_finishes_the_iteration_and_its_update(tiny_config,
                                                                         tmp_path):
    cfg = dataclasses.replace(tiny_config, env="CartPole-v1", total_env_steps=10 * 32,
                              eval_every=0, solve_return=None, log_every=1,
                              act_while_learning=True, checkpoint_every=1000)
    run = tmp_path / "run"

    def interrupt(row):  # called before the iteration's update starts on its worker
        if row["iteration"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match=f"SIGINT: stopped after iteration 3 .*--resume "
                                          f"{run}") as raised:
        mz.train(cfg, run_dir=str(run), on_iteration=interrupt, log=None)
    assert raised.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    step, state = checkpoint.restore_train_state(str(run), mz.Agent(cfg).init(
        jax.random.key(0)))
    assert step == 3 and int(state.step) == 3 * cfg.updates_per_iteration  # its update too


def test_train_restores_the_signal_handlers_it_found():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        stop = train_lib._StopSignals()
        assert signal.getsignal(signal.SIGTERM) is not mine
        os.kill(os.getpid(), signal.SIGTERM)  # noted, not fatal, while training
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as raised:  # a second one stops at once
            os.kill(os.getpid(), signal.SIGTERM)
        assert raised.value.exit_code == 143
        stop.restore()
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(Interrupted, match="SIGTERM: stopped after iteration 7"):
            stop.raise_if_received(None, 7, 224)
    finally:
        signal.signal(signal.SIGTERM, previous)



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
