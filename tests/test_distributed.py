"""Data parallelism (muzero_jax.distributed): checks on one device here, and the
multi-device and multi-process ones in processes of their own.

JAX fixes its device count when it starts, so tests that need 8 devices live in
tests/multidevice_cases.py and run in a pytest process started with
XLA_FLAGS=--xla_force_host_platform_device_count=8; the multi-process test starts
two workers (tests/distributed_worker.py) of 4 forced devices each.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from scripts import script_in_process

from muzero_jax import distributed, loop
from muzero_jax.config import ConfigError, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARTPOLE = os.path.join(ROOT, "experiments", "cartpole.py")
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")


def forced_devices_env(count: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                        + f" --xla_force_host_platform_device_count={count}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def test_cases_on_8_forced_devices(request):
    """tests/multidevice_cases.py in a process with 8 CPU devices (slow ones with --runslow)."""
    # -n 0: one file, in that process (the suite's -n auto would start workers for it).
    args = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
            os.path.join(ROOT, "tests", "multidevice_cases.py")]
    if request.config.getoption("--runslow"):
        args.append("--runslow")
    proc = subprocess.run(args, cwd=ROOT, env=forced_devices_env(8), capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize("field", ["num_envs", "batch_size"])
def test_totals_that_do_not_divide_name_the_field_and_nearest_values(tiny_config, field):
    config = tiny_config.replace(**{"num_envs": 8, "batch_size": 16,
                                                 "num_devices": 8, "capacity": 8 * 64,
                                                 field: 12})
    with pytest.raises(ConfigError, match=rf"{field}=12: .*num_devices=8.*8 or 16"):
        validate(config)
    validate(config.replace(**{field: 24}))


def test_more_devices_than_visible_is_a_config_error(tiny_config):
    config = tiny_config.replace(num_devices=4)
    with pytest.raises(ConfigError, match=r"num_devices=4: only 1 device"):
        distributed.num_devices(config)
    assert distributed.num_devices(tiny_config.replace(num_devices=0)) == 1
    with pytest.raises(ConfigError, match="num_devices=-1"):
        validate(tiny_config.replace(num_devices=-1))


def test_one_device_runs_the_kernels_as_they_are(tiny_config):
    program = loop.make_train(tiny_config)
    assert isinstance(program.layout, distributed.Single)
    assert distributed.shard_config(tiny_config.replace(num_envs=8,
                                                        capacity=8 * 64), 4
                                    ).replay_length == 64


def test_multi_process_flags_need_all_three():
    with pytest.raises(ConfigError, match="expected all three"):
        distributed.initialize("127.0.0.1:1234", 2, None)
    with pytest.raises(ConfigError, match="0 <= process_id < num_processes"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    distributed.initialize(None, None, None)  # a single process: nothing to do


# On 8 devices, a batch that does not divide is named: tests/multidevice_cases.py.
@pytest.mark.parametrize("args, field", [
    # Too many devices is said first: 16 envs do not divide by 3 either.
    (["--run.num_devices", "3"], "num_devices=3: only 1 device"),
    (["--run.num_devices", "2"], "num_devices=2: only 1 device"),
])
def test_cli_exits_2_naming_the_field(tmp_path, monkeypatch, capsys, args, field):
    code, err = script_in_process(CARTPOLE, ["--out", str(tmp_path / "run"), *args],
                                  monkeypatch, capsys, tmp_path)
    assert code == 2, err
    assert field in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_workers(run_dir, total, resume=False):
    port = _free_port()
    return [subprocess.Popen(
        [sys.executable, WORKER, str(port), "2", str(i), str(run_dir), str(total)]
        + (["resume"] if resume else []), cwd=ROOT, env=forced_devices_env(4),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]


def _finish(workers, timeout=900):
    outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out[-4000:]
    return outputs


def _params(run_dir, process):
    with np.load(os.path.join(run_dir, f"params-{process}.npz")) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow
def test_two_processes_train_identically_and_resume_after_a_kill(tmp_path):
    """2 processes x 4 forced CPU devices on 127.0.0.1 (gloo collectives), one mesh of 8."""
    steps = 8 * 8  # envs x rollout length: env steps per iteration
    run_dir = tmp_path / "run"
    # A long run, killed (both processes, SIGKILL) once two checkpoints are on disk.
    workers = _start_workers(run_dir, 1000 * steps)
    checkpoints = run_dir / "checkpoints"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        done = [int(p.name) for p in checkpoints.glob("*") if p.name.isdigit()] \
            if checkpoints.is_dir() else []
        if len(done) >= 2:
            break
        assert all(w.poll() is None for w in workers), workers[0].communicate()[0][-4000:]
        time.sleep(1)
    for w in workers:
        w.send_signal(signal.SIGKILL)
    for w in workers:
        w.communicate()
    saved = max(int(p.name) for p in checkpoints.glob("*") if p.name.isdigit())
    assert saved >= 2

    # Resumed on the same process count, it goes on from the last checkpoint.
    outputs = _finish(_start_workers(run_dir, (saved + 2) * steps, resume=True))
    assert f"at iteration {saved}: {saved * steps} env steps" in outputs[0]
    first, second = _params(run_dir, 0), _params(run_dir, 1)
    assert int(first["env_steps"]) == (saved + 2) * steps
    assert int(first["devices"]) == 8
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert "| updates" not in outputs[1]  # only process 0 logs

    # One process cannot resume what two wrote.
    proc = subprocess.run(
        [sys.executable, CARTPOLE, "--resume", str(run_dir), "--run.num_devices", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "written by 2 process(es)" in proc.stderr
