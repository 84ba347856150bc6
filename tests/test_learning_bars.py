"""The CartPole learning bars, as the user runs them (slow: minutes each, --runslow).

Each trains seed 0 through `experiments/cartpole.py` with the preset the bar names
and checks the final greedy evaluation (100 episodes, on Gymnasium's env) against
Gymnasium's reward_threshold. The figures are printed (pytest -s) for the record;
env steps per seed are deterministic, wall seconds depend on the machine's load.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "cartpole.py")

BARS = (
    # env id, preset, Gymnasium's reward_threshold, what the final evaluation plays
    ("Acrobot-v1", "classic", -100.0, "gymnasium Acrobot-v1"),
    ("gymnax/Acrobot-v1", "classic", -100.0, "gymnasium Acrobot-v1"),
    ("CartPole-v1", "cartpole", 475.0, "gymnasium CartPole-v1"),
)


@pytest.mark.slow
@pytest.mark.parametrize("env_id,preset,threshold,eval_env", BARS,
                         ids=[f"{p}-{e}" for e, p, _, _ in BARS])
def test_preset_reaches_the_gymnasium_threshold(env_id, preset, threshold, eval_env,
                                                tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--preset", preset, "--env.id", env_id, "--seed", "0",
         "--out", str(out)],
        capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    print(f"\n{env_id} ({preset}, seed 0): {summary['env_steps']} env steps, "
          f"{summary['wall_seconds']:.0f} s wall (compile included), eval "
          f"{summary['eval_return_mean']:.1f} over {summary['eval_episodes']} episodes")
    assert summary["eval_env"] == eval_env and summary["eval_episodes"] == 100
    assert summary["eval_return_mean"] >= threshold
    assert summary["solved"]


# Small envs no preset was tuned on (benchmarks/small_envs.py), trained by id with no other
# flag: the defaults (time limit, discount, supports and budget from the env) must reach
# the optimal greedy return.
SMALL_ENVS = ("benchmarks.small_envs:Corridor-v0", "benchmarks.small_envs:FrozenLakeDet-v0",
              "CliffWalking-v1")


@pytest.mark.slow
@pytest.mark.parametrize("env_id", SMALL_ENVS)
def test_defaults_learn_a_small_env_nobody_tuned(env_id, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    from benchmarks.small_envs import OPTIMAL_RETURN

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "train.py"), "--env", env_id,
         "--out", str(out)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    print(f"\n{env_id}: {summary['env_steps']} env steps, {summary['wall_seconds']:.0f} s wall "
          f"(compile included), eval {summary['eval_return_mean']:.2f} over "
          f"{summary['eval_episodes']} episodes")
    assert summary["config"]["run"]["solve_return"] is None  # none has a reward_threshold
    assert summary["eval_return_min"] >= OPTIMAL_RETURN[env_id] - 1e-3
