import csv
import json
import os
import shutil

import jax
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax.checkpoint import CheckpointError


@pytest.mark.slow
def test_training_learns_to_balance_the_pole():
    """A small, short run must clearly beat the untrained agent on CartPole-v1 (a learning
    check: 7,000 env steps and 825 updates, with optimised code under --runslow)."""
    config = mz.cartpole(num_envs=8, rollout_length=25, hidden_size=32, latent_size=32,
                         num_simulations=8, batch_size=128, updates_per_iteration=25,
                         capacity=20_000, min_size=400,
                         total_env_steps=7_000, eval_every=0, solve_return=None,
                         learning_rate=1e-3, seed=0)
    result = mz.train(config, log=None)
    agent = result.agent
    untrained = agent.init(jax.random.key(0))
    before = mz.evaluate_jax(agent, untrained, jax.random.key(1), 16)
    after = mz.evaluate_jax(agent, result.state, jax.random.key(1), 16)
    assert result.env_steps == 7_000
    assert result.train_steps > 0
    assert np.mean(after) >= 60, (np.mean(before), np.mean(after))
    assert np.mean(after) >= 3 * np.mean(before)
    row = result.history[-1]
    for name in ("loss", "value_loss", "policy_loss", "reward_loss", "grad_norm"):
        assert np.isfinite(row[name])


def test_gymnasium_evaluation_plays_whole_episodes(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    returns = mz.evaluate_gymnasium(tiny_agent, state, "CartPole-v1", 3, seed=0)
    assert returns.shape == (3,)
    assert np.all(returns >= 8) and np.all(returns <= 500)
    assert np.all(returns == np.round(returns))


# --- determinism, checkpoints and resume ------------------------------------------------

def _run_config(tiny_config, **overrides):
    return tiny_config.replace(total_env_steps=640, eval_every=3, eval_episodes=4,
                               solve_return=None, log_every=2, checkpoint_every=6,
                               checkpoint_keep=20, **overrides)


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                     strict=True))


_CLOCKS = ("wall_seconds", "env_steps_per_second", "updates_per_second")


@pytest.fixture(scope="module")
def uninterrupted(tiny_config, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("uninterrupted"))
    return run_dir, mz.train(_run_config(tiny_config), run_dir=run_dir, log=None)


def test_same_config_and_seed_give_the_same_parameters(tiny_config, uninterrupted):
    _, first = uninterrupted
    again = mz.train(_run_config(tiny_config), log=None)
    assert first.train_steps == again.train_steps == 20 * 2  # learning from iteration 1
    assert _same(first.state, again.state)
    assert [{k: v for k, v in row.items() if k not in _CLOCKS} for row in first.history] == \
        [{k: v for k, v in row.items() if k not in _CLOCKS} for row in again.history]


def test_the_run_directory_holds_checkpoints_logs_and_curves(uninterrupted):
    run_dir, result = uninterrupted
    # 2 updates per iteration: 6, 12, ... are reached at iterations 3, 6, ...; checkpoints
    # fall between calls of the compiled loop (log_every = 2 iterations each): at 4, 6, ...;
    # the end (iteration 20) is saved too.
    assert sorted(int(s) for s in os.listdir(os.path.join(run_dir, "checkpoints"))) == \
        [4, 6, 10, 12, 16, 18, 20]
    assert mz.config.from_dict(json.load(open(os.path.join(run_dir, "config.json")))) == \
        result.agent.config
    rows = list(csv.DictReader(open(os.path.join(run_dir, "metrics.csv"))))
    # Every 2nd iteration, and the evaluations (every 3rd) at odd ones: 3, 9, 15.
    assert len(rows) == len(result.history) == 10 + 3
    for name in ("episodes_return", "episode_length", "loss", "value_loss", "policy_loss",
                 "reward_loss", "learning_rate", "grad_norm", "root_value", "policy_entropy",
                 "env_steps_per_second", "updates_per_second", "eval_return"):
        assert name in rows[-1], name
    assert os.listdir(os.path.join(run_dir, "tensorboard"))
    assert os.path.getsize(os.path.join(run_dir, "curves.png")) > 10_000


def test_a_run_resumed_from_a_checkpoint_ends_exactly_as_one_that_never_stopped(
        tiny_config, uninterrupted, tmp_path):
    run_dir, result = uninterrupted
    # A copy of the run as if killed after its checkpoint at iteration 6.
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    for step in os.listdir(os.path.join(copy, "checkpoints")):
        if int(step) > 6:
            shutil.rmtree(os.path.join(copy, "checkpoints", step))
    resumed = mz.train(_run_config(tiny_config), run_dir=copy, resume=True, log=None)
    assert resumed.env_steps == result.env_steps and resumed.train_steps == result.train_steps
    # The clock goes on from the checkpoint's: its seconds are part of the whole run's.
    assert (result.resumes, result.earlier_seconds, resumed.resumes) == (0, 0.0, 1)
    assert 0 < resumed.earlier_seconds < result.seconds
    assert resumed.seconds > resumed.earlier_seconds
    assert _same(resumed.state, result.state)  # params, optimizer state, step
    assert _same(resumed.buffer, result.buffer)
    # Logged rows after the checkpoint are rewritten, not duplicated.
    rows = list(csv.DictReader(open(os.path.join(copy, "metrics.csv"))))
    assert [int(r["iteration"]) for r in rows] == [r["iteration"] for r in result.history]
    assert [float(r["loss"]) for r in rows[-3:]] == [r["loss"] for r in result.history[-3:]]


def test_a_finished_run_resumed_with_a_bigger_budget_goes_on(tiny_config, uninterrupted,
                                                              tmp_path):
    run_dir, result = uninterrupted
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    per_iteration = tiny_config.acting.num_envs * tiny_config.acting.rollout_length
    more = _run_config(tiny_config).replace(total_env_steps=result.env_steps + 4 * per_iteration)
    resumed = mz.train(more, run_dir=copy, resume=True, log=None)
    assert resumed.env_steps == more.run.total_env_steps
    assert resumed.train_steps == result.train_steps + 4 * tiny_config.learner.updates_per_iteration


def test_resume_refuses_a_checkpoint_of_another_network(tiny_config, uninterrupted):
    run_dir, _ = uninterrupted
    bigger = _run_config(tiny_config, hidden_size=32)
    with pytest.raises(CheckpointError, match=r"'train_state.params.*' is float32\[.*\] in "
                                              r"the checkpoint but this config expects"):
        mz.train(bigger, run_dir=run_dir, resume=True, log=None)


def test_a_fresh_run_will_not_mix_into_a_run_directory(tiny_config, uninterrupted, tmp_path):
    run_dir, _ = uninterrupted
    with pytest.raises(CheckpointError, match=r"already holds checkpoints .*--resume"):
        mz.train(_run_config(tiny_config), run_dir=run_dir, log=None)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        mz.train(_run_config(tiny_config), run_dir=str(tmp_path), resume=True, log=None)


# --- the host backend ---------------------------------------------------------------------

def test_the_host_keeps_the_last_100_episodes_oldest_first():
    # The host backend keeps its episodes in the compiled loop's ring and checkpoints
    # them as a list, oldest first, as 100 appended at a time would be kept.
    from muzero_jax import loop
    from muzero_jax.train import _ordered

    rng = np.random.default_rng(0)
    recent = (np.full(100, np.nan, np.float32), np.full(100, np.nan, np.float32), np.int32(0))
    kept = []
    for _ in range(5):  # about 32 episodes each: the ring wraps
        done = rng.random((4, 16)) < 0.5
        returns = rng.normal(size=(4, 16)).astype(np.float32)
        recent = jax.jit(loop.record_episodes)(*recent, done, returns, returns)
        kept = (kept + returns[done].tolist())[-100:]
        assert _ordered(np.asarray(recent[0]), int(recent[2])).tolist() == kept
    assert int(recent[2]) > 100


def test_a_host_run_resumes_its_counters_and_episodes(tiny_config, tmp_path):
    per_update = tiny_config.learner.updates_per_iteration
    cfg = tiny_config.replace(env="CartPole-v1", total_env_steps=6 * 32, eval_every=0,
                              solve_return=None, log_every=1, checkpoint_every=per_update,
                              checkpoint_keep=20)
    whole_dir = str(tmp_path / "whole")
    whole = mz.train(cfg, run_dir=whole_dir, log=None)
    copy = str(tmp_path / "copy")
    shutil.copytree(whole_dir, copy)
    for step in os.listdir(os.path.join(copy, "checkpoints")):
        if int(step) > 3:
            shutil.rmtree(os.path.join(copy, "checkpoints", step))
    meta = json.load(open(os.path.join(copy, "checkpoints", "3", "loop", "metadata")))
    assert meta["iteration"] == 3 and meta["env_steps"] == 3 * 32
    assert np.mean(meta["recent_returns"]) == pytest.approx(whole.history[2]["episodes_return"])
    resumed = mz.train(cfg, run_dir=copy, resume=True, log=None)
    # Host games are live objects, not checkpointed: the resumed run plays new ones, so
    # only its counters and the rows before the checkpoint match the whole run's.
    assert (resumed.env_steps, resumed.train_steps) == (whole.env_steps, whole.train_steps)
    assert [row["iteration"] for row in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert json.dumps(resumed.history[:3]) == json.dumps(whole.history[:3])  # NaN too
