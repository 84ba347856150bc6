import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cartpole_experiment_writes_summary_and_metrics(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "cartpole.py"), "--seed", "3",
         "--out", str(out), "--total-env-steps", "2000", "--eval-episodes", "2",
         "--set", "priority_alpha=1.0", "--set", "temperature_schedule=((0.5, 0.5),)"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval on gymnasium CartPole-v1" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env_steps", "train_steps", "wall_seconds", "eval_seconds",
                "eval_return_mean", "eval_return_std", "eval_episodes", "seed"):
        assert key in summary, key
    assert summary["seed"] == 3 and summary["eval_episodes"] == 2
    assert summary["preset"] == "cartpole"
    assert summary["config"]["priority_alpha"] == 1.0
    assert summary["config"]["temperature_schedule"] == [[0.5, 0.5]]
    assert summary["env_steps"] >= 2000 and summary["wall_seconds"] > 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows and {"env_steps", "wall_seconds", "episodes_return"} <= set(rows[0])


def test_bad_arguments_exit_with_a_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "cartpole.py"),
         "--total-env-steps", "-5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "total_env_steps=-5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_overrides_exit_with_a_message(tmp_path):
    script = os.path.join(ROOT, "experiments", "cartpole.py")
    for args, expected in ((["--set", "no_such_field=1"], "no_such_field=1"),
                           (["--set", "priority_alpha=-1"], "priority_alpha=-1"),
                           (["--set", "target_ema=0.5", "--set", "target_update_period=5"],
                            "one way to update the target network")):
        proc = subprocess.run([sys.executable, script, "--out", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, args
        assert expected in proc.stderr
        assert "Traceback" not in proc.stderr
