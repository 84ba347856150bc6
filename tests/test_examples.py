import os
import re
import subprocess
import sys

import pytest
from scripts import script_in_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name, env_id, worst, best", [
    ("custom_env.py", "GridMaze-v0", -50.0, -8.0),
    ("custom_jax_env.py", "jax/Catch-v0", -1.0, 1.0),
])
def test_example_runs_as_pasted_from_another_directory(tmp_path, name, env_id, worst, best):
    # A fresh process, no PYTHONPATH, another working directory: as a user would run it,
    # in smoke mode (the example's network and programs, a budget of seconds).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MUZERO_JAX_SMOKE"] = "1"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smoke mode (MUZERO_JAX_SMOKE=1): 400 env steps" in proc.stdout
    match = re.search(rf"greedy return on {re.escape(env_id)}: (-?[\d.]+) .* after (\d+) env "
                      r"steps", proc.stdout)
    assert match, proc.stdout[-2000:]
    assert worst <= float(match.group(1)) <= best
    assert int(match.group(2)) == 400


def test_a_users_gymnasium_module_is_found_by_module_colon_id(monkeypatch, capsys):
    # train.py imports examples.custom_env (which registers GridMaze-v0) from its working
    # directory and builds the env: the config's observation_shape is then checked
    # against the maze's 25 cells.
    code, err = script_in_process(os.path.join(ROOT, "experiments", "train.py"),
                                  ["--env", "examples.custom_env:GridMaze-v0",
                                   "--env.observation_shape", "3"], monkeypatch, capsys, ROOT)
    assert code == 2, err[-2000:]
    assert "observes shape (25,)" in err and err.count("\n") == 1
