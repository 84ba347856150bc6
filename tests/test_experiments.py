import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import imageio
import jax
import numpy as np
import pytest
from scripts import CARTPOLE as SCRIPT
from scripts import TINY, TRAIN, run_script, script_env
from scripts import script_in_process as _script_in_process

import muzero_jax as mz
from muzero_jax import checkpoint, envs, evaluate, experiment


def test_cartpole_experiment_writes_summary_and_metrics(tiny_run, tmp_path, capsys):
    out, stdout = tiny_run
    assert "eval on gymnasium CartPole-v1" in stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env_steps", "train_steps", "wall_seconds", "eval_seconds",
                "eval_return_mean", "eval_return_std", "eval_episodes", "seed"):
        assert key in summary, key
    assert summary["seed"] == 3 and summary["eval_episodes"] == 2
    assert summary["preset"] == "cartpole"
    assert summary["config"]["replay"]["priority_alpha"] == 1.0
    assert summary["config"]["acting"]["temperature_schedule"] == [[0.5, 0.5]]
    assert summary["env_steps"] == 1600 and summary["wall_seconds"] > 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows and {"env_steps", "wall_seconds", "episodes_return"} <= set(rows[0])
    assert os.listdir(out / "checkpoints") and os.listdir(out / "tensorboard")
    assert (out / "curves.png").stat().st_size > 10_000

    # Evaluation from the run directory alone: returns, an MP4 and a search tree.
    tree = ["--tree-png", str(tmp_path / "tree.png")]
    have_dot = shutil.which("dot") is not None
    # In this process, as `python -m muzero_jax.evaluate ARGS` runs it (its `main`).
    if not have_dot:  # Graphviz is a system package: where it is missing, say what to install
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(out), *tree])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "apt-get install graphviz" in err
        assert "Traceback" not in err
    assert evaluate.main([str(out), "--episodes", "2", "--video",
                          *(tree if have_dot else [])]) == 0
    assert "over 2 greedy episodes" in capsys.readouterr().out
    if have_dot:
        assert open(tmp_path / "tree.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    video = imageio.get_reader(str(out / "videos" / "eval-episode-0.mp4"))
    first = next(iter(video))
    assert first.shape == (400, 600, 3) and first.std() > 0  # a drawn frame, not blank


def test_resume_with_another_env_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save_config(str(run), mz.cartpole())
    before = sorted(os.listdir(run))
    for env_id in ("Acrobot-v1", "CartPole-v1"):  # another game; the same under another family
        code, err = _script_in_process(TRAIN, ["--resume", str(run), "--env", env_id],
                                       monkeypatch, capsys, tmp_path)
        assert code == 2 and err.count("\n") == 1, err[-2000:]
        assert f"--env {env_id}: the run in {run} trained on jax/CartPole-v1" in err
    assert sorted(os.listdir(run)) == before


def test_bad_arguments_exit_with_a_message(tmp_path, monkeypatch, capsys):
    code, err = _script_in_process(SCRIPT, ["--total-env-steps", "-5", "--out", str(tmp_path)],
                                   monkeypatch, capsys, tmp_path)
    assert code == 2
    assert "total_env_steps=-5" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args, expected", [
    (["--replay.priority_alpha", "-1"], "priority_alpha=-1"),
    (["--learner.target_ema", "0.5", "--learner.target_update_period", "5"],
     "one way to update the target network"),
    (["--acting.temperature_schedule", "0.5"], "temperature_schedule"),
])
def test_bad_overrides_exit_with_a_message(tmp_path, monkeypatch, capsys, args, expected):
    code, err = _script_in_process(SCRIPT, ["--out", str(tmp_path), *args], monkeypatch,
                                   capsys, tmp_path)
    assert code == 2, args
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args, expected", [
    (["--env", "Blackjack-v1"], "env='Blackjack-v1': observation space Tuple(Discrete(32), "
                                "Discrete(11), Discrete(2)) is not supported"),
    (["--env", "NoSuchEnv-v0"], "env='NoSuchEnv-v0': not a registered Gymnasium env"),
    (["--env", "gymnax/NoSuchEnv"], "env='gymnax/NoSuchEnv': not a gymnax env"),
    (["--env", "jax/NoSuchEnv"], "env='jax/NoSuchEnv': not a registered JAX environment"),
    (["--env", "CartPole-v1", "--search.num_simulations", "0"], "num_simulations=0"),
    (["--env", "CartPole-v1", "--search.num_simulation", "8"],
     "Perhaps you meant: --search.num_simulations"),
    (["--env", "CartPole-v1", "--config.num_simulations", "8"],
     "--config.num_simulations: flags are grouped by stage; use --search.num_simulations"),
    (["--env", "CartPole-v1", "--sweep", "search.num_simulations", "4,8"],
     "--sweep search.num_simulations: supported fields are ['learning_rate'] (or "
     "['learner.learning_rate']"),
    (["--env", "CartPole-v1", "--search.num_simulations", "eight"], "'eight'"),
    (["--env", "CartPole-v1", "--preset", "atari9"], "--preset 'atari9'"),
])
def test_train_py_user_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, args,
                                                   expected):
    code, err = _script_in_process(TRAIN, ["--out", str(tmp_path / "run"), *args],
                                   monkeypatch, capsys, tmp_path)
    assert code == 2, err[-2000:]
    assert err.count("\n") == 1, err  # one line, no usage, no traceback
    assert err.startswith("train.py: error: ") and expected in err
    assert not (tmp_path / "run").exists()  # nothing was started


def _help_of(path, argv, monkeypatch, capsys, cwd):
    """What `python PATH ARGV` prints for help (exit 0), run in this process."""
    spec = importlib.util.spec_from_file_location("script_under_test", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exit_info:
        script.main(list(argv))
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err[-2000:]
    return captured.out


def test_train_py_help_presets_lists_env_families_and_presets(tmp_path, monkeypatch, capsys):
    text = _help_of(TRAIN, ["--env", "Acrobot-v1", "--help", "presets"], monkeypatch, capsys,
                    tmp_path)
    text = " ".join(text.split())
    for family, what in envs.FAMILIES.items():
        assert f"{family} {' '.join(what.split())}" in text, family
    for name, make in mz.PRESETS.items():
        assert f"{name} {make.__doc__.strip().splitlines()[0]}" in text, name
    assert "without --preset: cartpole for jax/CartPole-v1, CartPole-v1, gymnax/CartPole-v1" \
        in text


@pytest.mark.parametrize("script", ["train", "cartpole", "atari", "board"])
@pytest.mark.parametrize("columns", [80, 120])
def test_each_scripts_help_fits_one_screen(script, columns, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))
    path = os.path.join(os.path.dirname(TRAIN), f"{script}.py")
    text = _help_of(path, ["--help"], monkeypatch, capsys, tmp_path)
    assert len(text.splitlines()) <= 60, text
    # The script's own flags with their comments and defaults; a line per stage.
    for flag in ("--env ID", "--preset NAME", "--seed INT", "--out DIR", "--resume DIR"):
        assert re.search(rf"^  {re.escape(flag)} +\S", text, re.M), flag
    for stage in mz.config.STAGES:
        assert re.search(rf"^  {stage} +.*: \d+ flags, --help {stage}$", text, re.M), stage
    assert "--help-all" in text


def test_train_py_help_shows_the_family_presets_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    text = _help_of(TRAIN, ["--env", "Acrobot-v1", "--help"], monkeypatch, capsys, tmp_path)
    preset = experiment.preset_for_env("Acrobot-v1")
    assert re.search(rf"--preset NAME +named configuration to start from \(default: "
                     rf"{preset}\)", text)
    assert "--total_env_steps INT" in text and "--sweep FIELD VALUES" in text
    text = _help_of(TRAIN, ["--env", "Acrobot-v1", "--help", "env"], monkeypatch, capsys,
                    tmp_path)
    assert "--env.id STR" in text and "(default: Acrobot-v1)" in text
    assert "--search." not in text  # only the stage asked for
    text = _help_of(TRAIN, ["--env", "Acrobot-v1", "--help-all"], monkeypatch, capsys,
                    tmp_path)
    assert "--env.id STR" in text and "--search.num_simulations INT" in text


@pytest.mark.parametrize("env_id, preset", [
    ("jax/CartPole-v1", "cartpole"), ("CartPole-v1", "cartpole"),
    ("gymnax/CartPole-v1", "cartpole"), ("ALE/Pong-v5", "atari_tiny"),
    ("Acrobot-v1", experiment.CLASSIC_PRESET), ("gymnax/Acrobot-v1", experiment.CLASSIC_PRESET),
    ("my_package.envs:Maze-v0", experiment.CLASSIC_PRESET),
    ("gymnax/Breakout-MinAtar",
     "minatar" if "minatar" in mz.PRESETS else experiment.CLASSIC_PRESET),
])
def test_without_preset_the_envs_family_picks_it(env_id, preset):
    assert experiment.preset_for_env(env_id) == preset


class _Stop(Exception):
    pass


@pytest.mark.parametrize("argv, preset, env_id", [
    (["--env", "CartPole-v1"], "cartpole", "CartPole-v1"),
    (["--env.id", "gymnax/CartPole-v1"], "cartpole", "gymnax/CartPole-v1"),
    (["--env", "Acrobot-v1"], experiment.CLASSIC_PRESET, "Acrobot-v1"),
    (["--env", "Acrobot-v1", "--preset", "sample_efficient"], "sample_efficient", "Acrobot-v1"),
    ([], "cartpole", "jax/CartPole-v1"),
])
def test_train_py_runs_the_family_preset_on_the_env_given(argv, preset, env_id):
    seen = {}

    def check(config):  # stops main before it trains
        seen["config"] = config
        raise _Stop

    with pytest.raises(_Stop):
        experiment.main(argv + ["--seed", "3"], description="", default_preset=None,
                        check=check)
    assert seen["config"] == mz.PRESETS[preset](env=env_id, seed=3)


def test_main_builds_the_env_once_and_no_agent_before_train(tmp_path, monkeypatch):
    # The config is checked, the env built once and handed to train, whose Agent is the
    # only one: nothing is built twice before training starts.
    built, seen = [], {}
    real_init = mz.Agent.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    def fake_train(config, **kwargs):
        seen.update(kwargs, config=config)
        raise _Stop

    monkeypatch.setattr(mz.Agent, "__init__", counting_init)
    monkeypatch.setattr(experiment, "train", fake_train)
    with pytest.raises(_Stop):
        experiment.main(["--out", str(tmp_path / "run"), "--seed", "2"], description="",
                        default_preset="cartpole")
    assert built == []
    assert seen["config"] == mz.cartpole(seed=2)
    assert seen["env"].spec.env_id == "jax/CartPole-v1" and seen["resume"] is False


@pytest.mark.parametrize("given", ["learning_rate", "learner.learning_rate",
                                   "learner.learning-rate"])
def test_sweep_takes_the_field_by_name_or_stage_path(given, tmp_path, monkeypatch):
    seen = {}

    def fake_train(config, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(experiment, "train", fake_train)
    with pytest.raises(_Stop):
        experiment.main(["--out", str(tmp_path / "run"), "--sweep", given, "1e-3,3e-3"],
                        description="", default_preset="cartpole")
    assert seen["sweep"] == ("learning_rate", (1e-3, 3e-3))


def _final_state(run_dir):
    agent = mz.Agent(checkpoint.load_config(run_dir))
    return checkpoint.restore_train_state(run_dir, agent.init(jax.random.key(0)))


def test_a_run_killed_with_sigkill_resumes_and_matches_an_uninterrupted_one(tiny_run,
                                                                           tmp_path,
                                                                           monkeypatch):
    whole, _ = tiny_run  # the uninterrupted run
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, SCRIPT, "--out", str(killed), *TINY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=script_env())
    checkpoints = killed / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints.is_dir() and any(n.isdigit() for n in os.listdir(checkpoints))):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (killed / "summary.json").exists()  # killed mid-run, not after it
    first_steps = sorted(int(n) for n in os.listdir(checkpoints) if n.isdigit())
    assert first_steps and first_steps[-1] < 50  # 50 iterations in all

    # The resume in this process: a new one would first import everything again.
    run_script(SCRIPT, ["--resume", str(killed)], monkeypatch, tmp_path)

    summaries = [json.loads((d / "summary.json").read_text()) for d in (killed, whole)]
    assert summaries[0]["env_steps"] == summaries[1]["env_steps"] == 1600
    assert summaries[0]["train_steps"] == summaries[1]["train_steps"] == 50 * 4
    assert (summaries[0]["resumes"], summaries[1]["resumes"]) == (1, 0)
    (step_a, state_a), (step_b, state_b) = _final_state(str(killed)), _final_state(str(whole))
    assert step_a == step_b == 50
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such run directory"),
    ("no_checkpoints", "no checkpoints/ directory"),
    ("corrupted", "corrupted checkpoint"),
    ("other_network", "different network shape"),
])
def test_evaluate_rejects_bad_run_directories_with_exit_2(tmp_path, capsys, case, expected):
    run_dir = tmp_path / "run"
    config = mz.cartpole(hidden_size=16, latent_size=8, num_hidden_layers=1)
    if case != "missing":
        checkpoint.save_config(str(run_dir), config)
    if case in ("corrupted", "other_network"):
        agent = mz.Agent(config)
        ckpt = checkpoint.Checkpointer(str(run_dir / "checkpoints"))
        ckpt.save(1, {"train_state": agent.init(jax.random.key(0))}, {})
        ckpt.wait()
    if case == "corrupted":
        item = run_dir / "checkpoints" / "1" / "train_state"
        for name in os.listdir(item):
            if (item / name).is_file():
                (item / name).write_bytes(b"garbage")
    if case == "other_network":
        checkpoint.save_config(str(run_dir), mz.cartpole(hidden_size=32, latent_size=8,
                                                         num_hidden_layers=1))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(run_dir), "--episodes", "1"])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err
