"""Run directories written by muzero_jax 0.1 (one flat Config) keep working."""

import csv
import json
import shutil
from pathlib import Path

from scripts import CARTPOLE, run_script

import muzero_jax as mz

# experiments/cartpole.py of 0.1 with tests/scripts.py's TINY flags of that version, 320
# env steps, one checkpoint kept (curves.png dropped: it is redrawn).
FIXTURE = Path(__file__).parent / "fixtures" / "cartpole-0.1"


def test_a_flat_config_json_of_0_1_maps_onto_the_stages():
    with open(FIXTURE / "config.json") as f:
        flat = json.load(f)
    config = mz.config.from_dict(flat)
    assert config.acting.num_envs == flat["num_envs"] == 4
    assert config.replay.capacity == flat["replay_capacity"] == 256
    assert config.replay.min_size == flat["min_replay_size"] == 32
    assert config.env.id == flat["env"] == "jax/CartPole-v1"
    assert config.search.policy == flat["search"] == "gumbel"
    assert config.acting.temperature_schedule == ((0.5, 0.5),)
    # Written again in the new form, it reads back the same.
    assert mz.config.from_dict(mz.config.to_dict(config)) == config


def test_a_run_directory_of_0_1_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    run_script(CARTPOLE, ["--resume", str(run), "--total-env-steps", "480",
                          "--eval-episodes", "2"], monkeypatch, tmp_path)
    with open(run / "summary.json") as f:
        summary = json.load(f)
    # 40 updates came from the checkpoint, 20 more from the 160 steps after it.
    assert (summary["env_steps"], summary["train_steps"]) == (480, 60)
    with open(run / "metrics.csv") as f:
        steps = [int(row["env_steps"]) for row in csv.DictReader(f)]
    assert steps[0] < 320 < steps[-1] == 480  # the old rows kept, the new ones after them
    assert mz.config.from_dict(json.loads((run / "config.json").read_text())).acting.num_envs == 4
