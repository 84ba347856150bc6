"""Fault injection: every bad input and fault a user can meet ends in one line and the
documented exit code, and leaves a run directory's files as they were where nothing
should change.

Most cases are refused before anything compiles and run in this process
(`script_in_process`); those that need a trained run share one tiny run directory
(`trained_run`), copied before a case changes anything in it.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import pytest

from scripts import CARTPOLE, ENV, ROOT, TINY, TRAIN, assert_one_line, script_in_process, snapshot


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


# --- signals -------------------------------------------------------------------------------


# --- early stops -----------------------------------------------------------------------------


# --- defaults for an env nobody tuned ----------------------------------------------------------

CORRIDOR = "benchmarks.small_envs:Corridor-v0"  # +20 right, -10 left, no reward_threshold
# Tiny flags for runs on the small envs (plumbing, not learning); everything the env's
# scales decide (time limit, discount, supports) is left to the defaults.
SMALL = ["--config.num_envs", "4", "--config.rollout_length", "16", "--config.hidden_size",
         "16", "--config.latent_size", "8", "--config.num_hidden_layers", "1",
         "--config.num_simulations", "4", "--config.batch_size", "16",
         "--config.updates_per_iteration", "2", "--config.replay_capacity", "512",
         "--config.min_replay_size", "64", "--config.td_steps", "3", "--config.unroll_steps",
         "2", "--config.eval_every", "1", "--config.eval_episodes", "4",
         "--config.act_while_learning", "false", "--config.checkpoint_every", "0",
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
    assert mz.classic(env="user_envs_with_bar:Bar-v0").solve_return == 7.0

    assert mz.config.classic().solve_return == -90.0  # Acrobot's own
    for preset in (mz.config.classic, mz.config.cartpole, mz.config.muzero_reanalyze,
                   mz.config.sample_efficient, mz.config.minatar):
        assert preset(env=CORRIDOR).solve_return is None, preset.__name__
        # The env's own bar: a margin over Gymnasium's reward_threshold.
        assert preset(env="Acrobot-v1").solve_return == -90.0, preset.__name__
        assert preset(env="gymnax/CartPole-v1").solve_return == 490.0, preset.__name__
    assert mz.config.cartpole(env="FrozenLake-v1").solve_return == 0.7  # its threshold


def test_an_env_without_reward_threshold_does_not_stop_early(corridor_run):
    # Every evaluation of an untrained agent returns -10 or 0: at or above Acrobot's -90.
    out, summary = corridor_run
    assert summary["env_steps"] == 256 and not summary["solved_during_training"]
    assert summary["config"]["solve_return"] is None and not summary["solved"]
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
    assert (saved.max_abs_reward, saved.reward_support_size, saved.value_support_size,
            saved.discount) == (40.0, 6, 46, 0.98)
    probed = experiment.preset_config("classic", CORRIDOR)  # the probe is deterministic
    assert (probed.max_abs_reward, probed.reward_support_size,
            probed.value_support_size) == (40.0, 6, 46)
    # A resume rebuilds the saved shapes: the checkpoint restores into them (a budget
    # already spent, so nothing more compiles than the restore needs).
    copy, _ = copy_run(out, tmp_path)
    monkeypatch.syspath_prepend(ROOT)
    result = train(saved, run_dir=str(copy), resume=True, log=None)
    assert result.env_steps == 256 and result.agent.reward_limit >= 40.0
    # An override the saved shapes cannot hold is refused before anything compiles.
    code, err = script_in_process(TRAIN, ["--resume", str(copy), "--config.max_abs_reward",
                                          "100"], monkeypatch, capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "reward_support_size=6")


def test_a_reward_beyond_the_supports_stops_the_run_with_one_line(tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "run"
    monkeypatch.syspath_prepend(ROOT)
    code, err = script_in_process(
        TRAIN, ["--env", CORRIDOR, "--out", str(out), *SMALL, "--config.max_abs_reward",
                "none", "--config.reward_support_size", "1"], monkeypatch, capsys, tmp_path)
    assert code == 2
    line = assert_one_line(err, CORRIDOR, "--config.max_abs_reward", "reward_support_size=1",
                           "--config.reward_support_size", "--config.value_support_size")
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
        assert config.solve_return is None, env_id
        assert config.max_episode_steps == (None if limit else envs.probe.DEFAULT_TIME_LIMIT)
        horizon = limit or envs.probe.DEFAULT_TIME_LIMIT
        assert config.discount == pytest.approx(1 - 1 / horizon), env_id
        assert config.total_env_steps == envs.probe.BUDGET_EPISODES * horizon, env_id
        observed = envs.probe.observed_max_abs_reward(
            envs.make(config), config.num_envs, envs.probe.PROBE_STEPS, config.seed)
        held = support.largest_reward_held(config.reward_support_size,
                                           config.value_support_size, config.discount)
        assert observed <= config.max_abs_reward <= held, env_id
    # CliffWalking's -100 of a step into the cliff: supports for twice that.
    assert config.max_abs_reward == 200.0 and config.reward_support_size == 14
    # A JAX env declaring no scale is probed by a jitted random rollout: gymnax's Catch pays
    # +-1, which classic's value support (10: 120) does not hold at its time limit's
    # discount 0.997 (333), so both supports are sized for twice that.
    catch = experiment.preset_config("classic", "gymnax/Catch-bsuite")
    assert (catch.discount, catch.max_abs_reward, catch.reward_support_size,
            catch.value_support_size) == (0.997, 2.0, 1, 26)
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
    config = dataclasses.replace(tiny_config, eval_every=0, total_env_steps=64)
    # The cartpole supports of tiny_config (2 and 20) hold |reward| <= h^-1(2) = 7.95; for
    # twice the 10 seen, h(20) = 3.6 and h(20 / (1 - 0.997)) = 87.3.
    with pytest.raises(support.RewardBeyondSupport, match=(
            r"^env 'jax/LoudCartPole' paid a reward of magnitude 10 by env step 32, beyond "
            r"the 7.95 .*--config.max_abs_reward 20 --config.reward_support_size 4 "
            r"--config.value_support_size 88$")):
        train(config, env=env, log=None, iterations_per_call=1)
