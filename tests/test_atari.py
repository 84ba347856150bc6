"""Atari: the ale-py adapter's preprocessing, the ResNet, replay memory, host self-play."""

import json
import os

import ale_py
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import run_script, script_in_process

import muzero_jax as mz
from muzero_jax import history, replay
from muzero_jax.config import ConfigError
from muzero_jax.envs.atari import Atari
from muzero_jax.networks import Model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def atari_agent():
    """Breakout with the smallest network and search that still run the whole pipeline."""
    cfg = mz.atari_tiny(num_envs=2, rollout_length=6, resnet_channels=4,
                        representation_blocks=(0, 0, 0), dynamics_blocks=0,
                        prediction_blocks=0, head_channels=1, hidden_size=4,
                        num_simulations=2, max_num_considered_actions=2, batch_size=4,
                        updates_per_iteration=1, td_steps=2, unroll_steps=1,
                        capacity=2 * 40, min_size=12, frame_size=(32, 32),
                        history_length=3, max_episode_steps=10)
    return mz.Agent(cfg)


@pytest.mark.parametrize("overrides, shape", [
    ({}, (84, 84, 1)),
    ({"frame_size": (96, 96), "grayscale": False}, (96, 96, 3)),
])
def test_preprocessed_frames_have_the_configured_shape_and_dtype(overrides, shape):
    games = Atari(mz.atari_tiny(**overrides)).make(2)
    frame = games.reset(seed=0)
    assert frame.shape == (2, *shape) and frame.dtype == np.uint8
    step = games.step(np.array([1, 0]))
    for x in (step.observation, step.final_observation):
        assert x.shape == (2, *shape) and x.dtype == np.uint8
    assert step.reward.dtype == np.float32 and step.terminated.dtype == bool
    assert frame.max() > 0  # a picture, not a blank buffer
    games.close()


def test_defaults_are_gymnasiums_v5():
    gym.register_envs(ale_py)
    v5 = gym.spec("ALE/Breakout-v5").kwargs
    cfg = mz.atari_paper()
    assert cfg.env.sticky_action_probability == v5["repeat_action_probability"] == 0.25
    assert cfg.env.frame_skip == v5["frameskip"] == 4
    assert cfg.env.full_action_space is v5["full_action_space"] is False
    frames = cfg.env.max_episode_steps * cfg.env.frame_skip
    assert frames == v5["max_num_frames_per_episode"] == 108_000
    assert (cfg.env.noop_max, cfg.env.terminal_on_life_loss) == (0, False)
    assert Atari(cfg.env).num_actions == gym.make("ALE/Breakout-v5").action_space.n == 4


def test_time_limit_truncates_and_reports_the_episode():
    games = Atari(mz.atari_tiny(max_episode_steps=5)).make(2)
    games.reset(seed=3)
    for t in range(1, 6):
        step = games.step(np.array([0, 0]))  # NOOP: Breakout waits for FIRE, no life lost
        assert not step.terminated.any()
        assert step.truncated.all() == (t == 5)
    np.testing.assert_array_equal(step.episode_length, [5, 5])
    np.testing.assert_array_equal(step.episode_return, [0.0, 0.0])
    games.close()


def test_unknown_games_and_misplaced_histories_are_named():
    with pytest.raises(ValueError, match="env='ALE/NoSuchGame-v5'"):
        Atari(mz.atari_tiny(env="ALE/NoSuchGame-v5").env)
    with pytest.raises(ValueError, match="env='ALE/Breakout-v4'.*-v5"):
        Atari(mz.atari_tiny(env="ALE/Breakout-v4").env)
    with pytest.raises(ConfigError, match="history_length=4: .*'jax/CartPole-v1'.*expected 0"):
        mz.Agent(mz.cartpole(history_length=4))
    with pytest.raises(ConfigError, match="kind='resnet'.*shape \\(4,\\)"):
        mz.Agent(mz.cartpole(network="resnet"))


def test_resnet_hidden_state_is_6x6_for_96x96_input():
    # The paper's downsampling with narrow layers (the shapes do not depend on widths).
    cfg = mz.atari_paper(resnet_channels=8, representation_blocks=(1, 0, 0),
                         dynamics_blocks=1, prediction_blocks=0, hidden_size=8)
    model = Model(cfg.network, num_actions=18, observation_shape=(96, 96, 32 * 4))
    params = jax.jit(model.init)(jax.random.key(0))
    obs = jax.random.uniform(jax.random.key(1), (2, 96, 96, 128))
    root = jax.jit(model.initial_inference)(params, obs)
    assert root.state.shape == (2, 6, 6, 8)
    assert root.policy_logits.shape == (2, 18) and root.value_logits.shape == (2, 601)
    recurrent = jax.jit(model.recurrent_inference)
    step = recurrent(params, root.state, jnp.array([0, 17]))
    assert step.state.shape == (2, 6, 6, 8) and step.reward_logits.shape == (2, 601)
    for s in (root.state, step.state):
        np.testing.assert_allclose(s.min(axis=(1, 2, 3)), 0.0, atol=1e-6)
        np.testing.assert_allclose(s.max(axis=(1, 2, 3)), 1.0, atol=1e-5)
    # Different actions lead to different states.
    other = recurrent(params, root.state, jnp.array([1, 16]))
    assert np.abs(np.asarray(other.state - step.state)).max() > 1e-4


def test_replay_memory_per_stored_step_is_one_frame():
    # The paper's 96x96 RGB frames, 32-frame history, Breakout's 4 actions.
    agent = mz.Agent(mz.atari_paper(num_envs=2, capacity=2 * 50))
    buf = agent.init_replay()
    assert buf.observation.shape == (2, 50, 96, 96, 3) and buf.observation.dtype == jnp.uint8
    frame = 96 * 96 * 3  # 27,648 bytes, stored once
    # action 4 + reward 4 + terminated 1 + truncated 1 + policy 4 x 4 + root and final
    # value 4 + 4 + priority 4
    assert replay.bytes_per_position(buf) == frame + 38 == 27_686
    stacked = 32 * (frame + 96 * 96) * 4  # one float32 stack of 32 frames and action planes
    assert stacked / replay.bytes_per_position(buf) > 170


def test_host_self_play_keeps_each_games_history(atari_agent):
    agent = atari_agent
    state = agent.init(jax.random.key(0))
    env_state = agent.reset(jax.random.key(1))
    trajectories = []
    for i in range(3):  # 18 steps: every game is truncated at step 10
        env_state, traj = agent.rollout(state, env_state, jax.random.key(2 + i))
        trajectories.append(traj)
    traj = jax.tree.map(lambda *x: np.concatenate(x, axis=1), *trajectories)
    assert traj.observation.shape == (2, 18, 32, 32, 1) and traj.observation.dtype == np.uint8
    np.testing.assert_array_equal(traj.truncated[:, 9], True)
    np.testing.assert_array_equal(traj.episode_length[:, 9], 10)
    # The bootstrap value is read where (and only where) the time limit hit; a fresh
    # network's zero heads give every input the same value.
    fresh_value = agent.model.initial_inference(
        state.params, jnp.zeros((1, *agent.observation_shape))).value[0]
    final_value = np.asarray(traj.final_value)
    np.testing.assert_allclose(final_value[:, 9], fresh_value, atol=1e-6)
    assert np.all(final_value[:, 9] != 0.0)
    np.testing.assert_array_equal(np.delete(final_value, 9, axis=1), 0.0)
    # Replay keeps the frame the time limit hit on, for fresh values there later.
    final_frames = np.asarray(traj.final_observation)
    assert final_frames.shape == traj.observation.shape and final_frames.dtype == np.uint8
    np.testing.assert_array_equal(final_frames[:, 3:8], traj.observation[:, 4:9])
    # The histories now hold frames 16..18 of the second episode (it began at step 10)
    # and the actions 15..17 that led to them.
    hist = env_state.history
    np.testing.assert_array_equal(hist.actions, traj.action[:, 15:18])
    np.testing.assert_array_equal(hist.frames[:, :-1], traj.observation[:, 16:18])
    np.testing.assert_array_equal(hist.frames[:, -1], env_state.observation)
    # Replay rebuilds what the games' histories hold now, and the stack at the second
    # episode's first step holds nothing of the first episode.
    buf = agent.init_replay()
    for t in trajectories:
        buf = agent.add(buf, t)
    slots = jnp.array([[10, 17], [10, 17]])
    stacks = replay.observations(buf, jnp.arange(2), slots, history_length=3)
    first = np.asarray(stacks[:, 0])
    np.testing.assert_array_equal(first[..., :2], 0.0)  # no frames of episode one
    np.testing.assert_array_equal(first[..., 3:], 0.0)  # and no actions
    np.testing.assert_allclose(first[..., 2], traj.observation[:, 10, ..., 0] / 255.0)
    searched_at_17 = history.planes(jnp.asarray(traj.observation[:, 15:18]),
                                    jnp.asarray(traj.action[:, 14:17]), agent.num_actions)
    np.testing.assert_allclose(stacks[:, 1], searched_at_17)
    assert agent.ready_to_learn(buf)
    state, buf, metrics = agent.update(state, buf, jax.random.key(9))
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
    returns = mz.evaluate_jax(agent, state, jax.random.key(4), 2)
    assert returns.shape == (2,) and np.all(returns >= 0)


def test_atari_experiment_smoke_run_writes_summary(tmp_path, monkeypatch):
    out = tmp_path / "run"
    # In this process: a new one would first import everything again.
    run_script(
        os.path.join(ROOT, "experiments", "atari.py"),
        ["--env", "ALE/Breakout-v5", "--preset", "tiny", "--env-steps", "400",
         "--eval-episodes", "2", "--max-episode-steps", "100", "--out", str(out),
         # The preset's network with no residual blocks (its downsampling convolutions
         # alone), narrower, on smaller frames, with a shorter unroll: this checks the
         # run's plumbing, not what the preset learns.
         "--network.resnet_channels", "4", "--network.head_channels", "1",
         "--network.hidden_size", "4", "--network.representation_blocks", "0", "0", "0",
         "--network.dynamics_blocks", "0", "--network.prediction_blocks", "0",
         "--env.frame_size", "32", "32",
         "--search.num_simulations", "2", "--search.max_num_considered_actions", "2",
         "--learner.batch_size", "8", "--loss.unroll_steps", "1", "--loss.td_steps", "2"],
        monkeypatch, tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    cartpole_keys = {"env_steps", "train_steps", "wall_seconds", "train_seconds",
                     "eval_seconds", "eval_return_mean", "eval_return_std", "eval_return_min",
                     "eval_episodes", "solved", "solved_during_training", "seed", "config"}
    assert cartpole_keys <= set(summary)
    assert summary["env_steps"] == 400 and summary["train_steps"] > 0
    assert summary["eval_episodes"] == 2 and summary["config"]["env"]["history_length"] == 4
    # The same run directory as CartPole's: Atari is a preset, not a second code path.
    assert (out / "metrics.csv").exists() and (out / "config.json").exists()
    assert os.listdir(out / "checkpoints") and os.listdir(out / "tensorboard")
    assert (out / "curves.png").exists()


def test_atari_experiment_names_a_bad_game(tmp_path, monkeypatch, capsys):
    code, err = script_in_process(os.path.join(ROOT, "experiments", "atari.py"),
                                  ["--env", "ALE/NoSuchGame-v5", "--out", str(tmp_path)],
                                  monkeypatch, capsys, tmp_path)
    assert code == 2
    assert "env='ALE/NoSuchGame-v5'" in err and "Traceback" not in err
