"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

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
from scripts import (
    CARTPOLE,
    ROOT,
    TINY,
    TRAIN,
    assert_one_line,
    run_script,
    script_env,
    script_in_process,
    snapshot,
)

import muzero_jax as mz
from muzero_jax import checkpoint, evaluate, experiment
from muzero_jax.errors import Interrupted

train_lib = importlib.import_module("muzero_jax.train")  # mz.train is the function


@pytest.fixture(scope="module")
def trained_run(tiny_run):
    """The TINY run directory (conftest's `tiny_run`), never changed by a test here: copy it
    with `copy_run` first."""
    return tiny_run[0]


def copy_run(run_dir, tmp_path):
    """A copy of `run_dir` under `tmp_path` that a case may damage: (path, its snapshot)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, snapshot(copy)


# --- bad input, refused before anything compiles -----------------------------------------


def test_a_bad_override_is_refused_before_compiling(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = script_in_process(CARTPOLE, ["--out", str(out), "--learner.learning_rate", "-1"],
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
    (["--learner.learning_rate", "inf"], "learning_rate=inf: expected a finite number"),
    (["--learner.weight_decay", "nan"], "weight_decay=nan: expected a finite number"),
    (["--acting.temperature", "nan"], "temperature=nan"),
    (["--search.gumbel_scale", "nan"], "gumbel_scale=nan"),
    (["--loss.value_loss_weight", "nan"], "value_loss_weight=nan"),
    (["--replay.priority_alpha", "nan"], "priority_alpha=nan"),
    (["--learner.momentum", "nan"], "momentum=nan"),
    (["--learner.max_grad_norm", "inf"], "max_grad_norm=inf"),  # float | None
    (["--env.max_abs_reward", "inf"], "max_abs_reward=inf"),
    (["--run.solve_return", "inf"], "solve_return=inf"),
    (["--acting.temperature_schedule", "0.5", "inf"],  # a pair inside a tuple
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
    (["--env", "CartPole-v1", "--env.id", "Acrobot-v1"],
     ["--env CartPole-v1", "--env.id Acrobot-v1"]),
    (["--seed", "1", "--run.seed", "2"], ["--seed 1", "--run.seed 2"]),
    (["--total-env-steps", "4000", "--run.total_env_steps", "8000"],
     ["--total-env-steps 4000", "--run.total_env_steps 8000"]),
    (["--eval-episodes", "3", "--run.final_eval_episodes", "4"],
     ["--eval-episodes 3", "--run.final_eval_episodes 4"]),
])
def test_a_flag_and_a_config_field_that_disagree_are_refused(args, needles, tmp_path,
                                                             monkeypatch, capsys):
    refused(CARTPOLE, args, needles, monkeypatch, capsys, tmp_path)


def test_more_devices_than_visible_is_said_before_divisibility(tmp_path, monkeypatch, capsys):
    count = jax.device_count() + 1  # num_envs below does not divide by it either
    refused(CARTPOLE, ["--run.num_devices", str(count), "--acting.num_envs",
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
    (["--mode", "alphazero", "--search.mode", "muzero"],
     ["--mode alphazero", "--search.mode muzero"]),
    (["--baseline-simulations", "0"], ["--baseline-simulations 0"]),
])
def test_board_py_refuses_what_it_cannot_train(args, needles, tmp_path, monkeypatch, capsys):
    refused(BOARD, args, needles, monkeypatch, capsys, tmp_path)


def test_an_int_field_given_a_float_in_config_json_is_refused(trained_run, tmp_path,
                                                              monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    values = json.loads((run / "config.json").read_text())
    values["run"]["eval_every"] = 2.5  # JSON has no integer type of its own
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
    (["--network.hidden_size", "128"], "different network shape"),
    (["--env", "Acrobot-v1"], "trained on jax/CartPole-v1"),  # refused before restoring
])
def test_a_failed_resume_leaves_every_file_as_it_was(trained_run, tmp_path, monkeypatch,
                                                     capsys, flags, expected):
    run, before = copy_run(trained_run, tmp_path)
    code, err = script_in_process(CARTPOLE, ["--resume", str(run), *flags], monkeypatch,
                                  capsys, tmp_path)
    assert code == 2
    assert_one_line(err, str(run), expected)
    assert snapshot(run) == before  # config.json, metrics.csv, tensorboard/ included


def test_a_missing_item_falls_back_to_the_newest_readable_checkpoint(trained_run, tmp_path,
                                                                     monkeypatch, capsys):
    run, _ = copy_run(trained_run, tmp_path)
    latest = _steps(run)[-1]
    _damage(run / "checkpoints" / str(latest), "train_state", data=None)
    run_script(CARTPOLE, ["--resume", str(run)], monkeypatch, tmp_path)
    line = assert_one_line(capsys.readouterr().err, "warning:", f"checkpoints/{latest}",
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
                              env=script_env())
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

    def no_training(*args, **kwargs):
        raise AssertionError("started training before refusing the run directory")

    monkeypatch.setattr(experiment, "train", no_training)
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
EVAL_TINY = _flags(**{"run.eval_every": 2, "run.solve_return": 5})


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
        CARTPOLE, ["--out", str(out), *EVAL_TINY, "--learner.learning_rate", "1e30"],
        monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "'jax/CartPole-v1'", "(loss) at env step 32", "learning_rate")
    assert not (out / "summary.json").exists()
    assert not (out / "checkpoints").exists() or _checkpoints(out) == []


# --- signals -------------------------------------------------------------------------------


def test_ctrl_c_before_training_is_one_line_and_exit_130(tmp_path, capsys):
    def interrupted(config):  # Ctrl-C while the Agent is built, before train() starts
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--out", str(out), *TINY], description="", default_preset=None,
                        check=interrupted)
    assert exit_info.value.code == 130
    assert_one_line(capsys.readouterr().err, "interrupted (SIGINT)")
    assert not out.exists()


@pytest.mark.parametrize("signum", [
    signal.SIGINT,
    pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_ends_as_the_whole_one(
        trained_run, tmp_path, monkeypatch, signum):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, CARTPOLE, "--out", str(out), *TINY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=script_env())
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

    run_script(CARTPOLE, ["--resume", str(out)], monkeypatch, tmp_path)
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 1600
    _assert_same_final_params(out, trained_run)


def test_a_signal_on_the_host_path_finishes_the_iteration_and_its_update(tiny_config,
                                                                         tmp_path):
    cfg = tiny_config.replace(env="CartPole-v1", total_env_steps=10 * 32,
                              eval_every=0, solve_return=None, log_every=1,
                              act_while_learning=True, checkpoint_every=1000)
    run = tmp_path / "run"
    found = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest started in the background

    def interrupt(row):  # called before the iteration's update starts on its worker
        if row["iteration"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match=f"SIGINT: stopped after iteration 3 .*--resume "
                                          f"{run}") as raised:
        mz.train(cfg, run_dir=str(run), on_iteration=interrupt, log=None)
    assert raised.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is found
    step, state = checkpoint.restore_train_state(str(run), mz.Agent(cfg).init(
        jax.random.key(0)))
    assert step == 3 and int(state.step) == 3 * cfg.learner.updates_per_iteration  # its update too


def test_a_second_signal_exits_without_waiting_for_the_chunk_under_way(monkeypatch, capsys):
    from muzero_jax import cli

    class Exited(Exception):
        pass

    def exit_now(code):  # os._exit: the interpreter's exit would wait for XLA's threads
        raise Exited(code)

    monkeypatch.setattr(cli.os, "_exit", exit_now)
    with pytest.raises(Exited) as exited, cli.one_line_errors(prog="train.py"):
        raise Interrupted("SIGINT again: stopped at once", signal.SIGINT, at_once=True)
    assert exited.value.args == (130,)
    assert_one_line(capsys.readouterr().err, "train.py: error: SIGINT again: stopped at once")
    with pytest.raises(SystemExit) as stopped, cli.one_line_errors(prog="train.py"):
        raise Interrupted("SIGINT: stopped after iteration 3", signal.SIGINT)
    assert stopped.value.code == 130  # after a checkpoint: the ordinary exit


def test_train_restores_the_signal_handlers_it_found():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    found = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest started in the background
    notices = []
    try:
        stop = train_lib._StopSignals(notices.append)
        assert signal.getsignal(signal.SIGTERM) is not mine
        os.kill(os.getpid(), signal.SIGTERM)  # noted, not fatal, while training
        assert stop.signum == signal.SIGTERM
        # Said at once, not when the chunk under way ends.
        assert notices == ["SIGTERM: stopping at the end of the current chunk, with a "
                           "checkpoint; SIGTERM again stops at once, without it"]
        with pytest.raises(Interrupted) as raised:  # a second one stops at once
            os.kill(os.getpid(), signal.SIGTERM)
        assert raised.value.exit_code == 143 and raised.value.at_once
        assert len(notices) == 1
        stop.restore()
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is found
        with pytest.raises(Interrupted, match="SIGTERM: stopped after iteration 7"):
            stop.raise_if_received(None, 7, 224)
    finally:
        signal.signal(signal.SIGTERM, previous)



# --- early stops -----------------------------------------------------------------------------


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
    summary = run_script(CARTPOLE, ["--out", str(out), *EVAL_TINY], monkeypatch, tmp_path)
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
    resumed = run_script(CARTPOLE, ["--resume", str(out)], monkeypatch, tmp_path)
    assert resumed["env_steps"] == 192 and resumed["early_stop"] == stops


def test_an_early_stop_whose_confirmation_passes_stops(tmp_path, monkeypatch):
    played = []

    def confirm(agent, state, config):
        played.append((int(state.step), config.run.final_eval_episodes))
        return np.full(config.run.final_eval_episodes, 500.0), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    summary = run_script(CARTPOLE, ["--out", str(out), *EVAL_TINY], monkeypatch, tmp_path)
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
        score = 500.0 if config.run.seed == 0 else 1.0
        return np.full(config.run.final_eval_episodes, score), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    flags = _flags(**{"run.eval_every": 2, "run.solve_return": 5,
                      "total-env-steps": 320})
    del flags[flags.index("--seed"):flags.index("--seed") + 2]
    summary = run_script(CARTPOLE, ["--out", str(out), "--seeds", "0", "1", *flags],
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
        return np.full(config.run.final_eval_episodes, next(answers)), "confirmation stub"

    monkeypatch.setattr(_train_module(), "confirm_solved", confirm)
    out = tmp_path / "run"
    summary = run_script(CARTPOLE, ["--out", str(out), "--env", nonfinite_envs.GYM_STEADY_ID,
                                     *_flags(**{"run.solve_return": -1})],
                          monkeypatch, tmp_path)
    assert [(s["env_steps"], s["confirm_return"], s["confirmed"])
            for s in summary["early_stop"]] == [(64, -5.0, False), (384, 3.0, True)]
    assert summary["env_steps"] == 384 and summary["solved_during_training"]


# --- defaults for an env nobody tuned ----------------------------------------------------------

CORRIDOR = "benchmarks.small_envs:Corridor-v0"  # +20 right, -10 left, no reward_threshold
# Tiny flags for runs on the small envs (plumbing, not learning); everything the env's
# scales decide (time limit, discount, supports) is left to the defaults.
SMALL = ["--acting.num_envs", "4", "--acting.rollout_length", "16", "--network.hidden_size",
         "16", "--network.latent_size", "8", "--network.num_hidden_layers", "1",
         "--search.num_simulations", "4", "--learner.batch_size", "16",
         "--learner.updates_per_iteration", "2", "--replay.capacity", "512",
         "--replay.min_size", "64", "--loss.td_steps", "3", "--loss.unroll_steps",
         "2", "--run.eval_every", "1", "--run.eval_episodes", "4",
         "--run.act_while_learning", "false", "--run.checkpoint_every", "0",
         "--seed", "0", "--total-env-steps", "256", "--eval-episodes", "4"]


@pytest.fixture(scope="module")
def corridor_run(tmp_path_factory):
    """experiments/train.py --env CORRIDOR with SMALL, trained to the end once, in process
    (never changed by a test)."""
    from muzero_jax import experiment

    out = tmp_path_factory.mktemp("corridor") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(ROOT)  # benchmarks.small_envs, whatever the working directory
        summary = experiment.main(["--env", CORRIDOR, "--out", str(out), *SMALL],
                                  description="train", default_preset=None)
    return out, summary


def test_a_preset_takes_no_other_envs_solve_return(tmp_path, monkeypatch):
    import muzero_jax as mz

    # A user's module that registers its env with a reward_threshold: that is its bar.
    (tmp_path / "user_envs_with_bar.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('Bar-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv',"
        " reward_threshold=7.0, max_episode_steps=40)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert mz.classic(env="user_envs_with_bar:Bar-v0").run.solve_return == 7.0

    assert mz.presets.classic().run.solve_return == -90.0  # Acrobot's own
    for preset in (mz.presets.classic, mz.presets.cartpole, mz.presets.muzero_reanalyze,
                   mz.presets.sample_efficient, mz.presets.minatar):
        assert preset(env=CORRIDOR).run.solve_return is None, preset.__name__
        # The env's own bar: a margin over Gymnasium's reward_threshold.
        assert preset(env="Acrobot-v1").run.solve_return == -90.0, preset.__name__
        assert preset(env="gymnax/CartPole-v1").run.solve_return == 490.0, preset.__name__
    assert mz.presets.cartpole(env="FrozenLake-v1").run.solve_return == 0.7  # its threshold


def test_an_env_without_reward_threshold_does_not_stop_early(corridor_run):
    # Every evaluation of an untrained agent returns -10 or 0: at or above Acrobot's -90.
    out, summary = corridor_run
    assert summary["env_steps"] == 256 and not summary["solved_during_training"]
    assert summary["config"]["run"]["solve_return"] is None and not summary["solved"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) > 2 and rows[-1].split(",")[1] == "256"


def test_the_probed_scales_are_saved_and_a_resume_rebuilds_them(corridor_run, tmp_path,
                                                                 monkeypatch, capsys):
    from muzero_jax import checkpoint, experiment
    from muzero_jax.train import train

    out, _ = corridor_run
    saved = checkpoint.load_config(str(out))
    # Corridor pays +20 and -10 within the probe: supports sized for twice 20, and a
    # time limit of 50 gives the discount 1 - 1/50.
    assert (saved.env.max_abs_reward, saved.network.reward_support_size,
            saved.network.value_support_size, saved.loss.discount) == (40.0, 6, 46, 0.98)
    probed = experiment.preset_config("classic", CORRIDOR)  # the probe is deterministic
    assert (probed.env.max_abs_reward, probed.network.reward_support_size,
            probed.network.value_support_size) == (40.0, 6, 46)
    # A resume rebuilds the saved shapes: the checkpoint restores into them (a budget
    # already spent, so nothing more compiles than the restore needs).
    copy, _ = copy_run(out, tmp_path)
    monkeypatch.syspath_prepend(ROOT)
    result = train(saved, run_dir=str(copy), resume=True, log=None)
    assert result.env_steps == 256 and result.agent.reward_limit >= 40.0
    # An override the saved shapes cannot hold is refused before anything compiles.
    code, err = script_in_process(TRAIN, ["--resume", str(copy), "--env.max_abs_reward",
                                          "100"], monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "reward_support_size=6")


def test_a_reward_beyond_the_supports_stops_the_run_with_one_line(tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "run"
    monkeypatch.syspath_prepend(ROOT)
    code, err = script_in_process(
        TRAIN, ["--env", CORRIDOR, "--out", str(out), *SMALL, "--env.max_abs_reward",
                "none", "--network.reward_support_size", "1"], monkeypatch, capsys, tmp_path)
    assert code == 2
    line = assert_one_line(err, CORRIDOR, "--env.max_abs_reward", "reward_support_size=1",
                           "--network.reward_support_size", "--network.value_support_size")
    assert "beyond the 2.99 " in line  # h^-1(1): what a reward support of size 1 holds


def test_defaults_for_an_env_nobody_tuned(monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    import benchmarks.small_envs  # noqa: F401  (registers the small envs)
    import muzero_jax as mz
    from muzero_jax import envs, experiment, support

    monkeypatch.setattr(envs.probe, "PROBE_STEPS", 400)
    for env_id, limit in ((CORRIDOR, 50), ("benchmarks.small_envs:ContextBandit-v0", 30),
                          ("benchmarks.small_envs:FrozenLakeDet-v0", 100),
                          ("CliffWalking-v1", None)):
        config = experiment.preset_config(experiment.preset_for_env(env_id), env_id)
        assert config.run.solve_return is None, env_id
        assert config.env.max_episode_steps == (None if limit else envs.probe.DEFAULT_TIME_LIMIT)
        horizon = limit or envs.probe.DEFAULT_TIME_LIMIT
        assert config.loss.discount == pytest.approx(1 - 1 / horizon), env_id
        assert config.run.total_env_steps == min(max(1_000 * horizon, 50_000), 100_000), env_id
        observed = envs.probe.observed_max_abs_reward(
            envs.make(config), config.acting.num_envs, envs.probe.PROBE_STEPS, config.run.seed)
        held = support.largest_reward_held(config.network.reward_support_size,
                                           config.network.value_support_size, config.loss.discount)
        assert observed <= config.env.max_abs_reward <= held, env_id
    # CliffWalking's -100 of a step into the cliff: supports for twice that.
    assert config.env.max_abs_reward == 200.0 and config.network.reward_support_size == 14
    # A JAX env declaring no scale is probed by a jitted random rollout: gymnax's Catch pays
    # +-1, which classic's value support (10: 120) does not hold at its time limit's
    # discount 0.997 (333), so both supports are sized for twice that.
    catch = experiment.preset_config("classic", "gymnax/Catch-bsuite")
    assert (catch.loss.discount, catch.env.max_abs_reward, catch.network.reward_support_size,
            catch.network.value_support_size) == (0.997, 2.0, 1, 26)
    # Envs whose presets were tuned on them keep every tuned value.
    assert experiment.preset_config("classic", "Acrobot-v1") == mz.classic(env="Acrobot-v1")
    assert experiment.preset_config("cartpole", "CartPole-v1") == mz.cartpole(
        env="CartPole-v1")


def test_a_reward_beyond_the_supports_stops_a_compiled_run(tiny_config):
    """The JAX path: the largest |reward| is reduced inside the compiled chunk and checked
    once per chunk."""
    from muzero_jax import envs, support
    from muzero_jax.train import train

    class LoudCartPole(envs.FuncJaxEnv):  # CartPole paying 10 a step, with no declared scale
        def transition(self, inner, action, key):
            out = super().transition(inner, action, key)
            return out._replace(reward=10.0 * out.reward)

    base = envs.make_cartpole()
    env = LoudCartPole(base.func_env, base.params, env_id="jax/LoudCartPole",
                       max_episode_steps=500, num_actions=2)
    config = tiny_config.replace(eval_every=0, total_env_steps=64)
    # The cartpole supports of tiny_config (2 and 20) hold |reward| <= h^-1(2) = 7.95; for
    # twice the 10 seen, h(20) = 3.6 and h(20 / (1 - 0.997)) = 87.3.
    with pytest.raises(support.RewardBeyondSupport, match=(
            r"^env 'jax/LoudCartPole' paid a reward of magnitude 10 by env step 32, beyond "
            r"the 7.95 .*--env.max_abs_reward 20 --network.reward_support_size 4 "
            r"--network.value_support_size 88$")):
        train(config, env=env, log=None, iterations_per_call=1)
