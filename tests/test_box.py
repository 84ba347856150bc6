"""Box action spaces on the host path: Gymnasium's control envs (MuJoCo's too), actions
clipped and reshaped, the reward probe, the evaluation's space check and play, and the
command line's refusals of spaces it cannot search."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import types

import box_envs
import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import pytest
import tomllib
from packaging.requirements import Requirement
from scripts import TRAIN, assert_one_line, script_in_process

import muzero_jax as mz
from muzero_jax import envs, experiment, support
from muzero_jax.config import ConfigError
from muzero_jax.envs import probe
from muzero_jax.envs.base import EnvSpec, JaxEnv, Transition
from muzero_jax.envs.gymnasium_host import GymnasiumEnv
from muzero_jax.envs.probe import observed_max_abs_reward
from muzero_jax.evaluate import check_env_fits, evaluate_gymnasium, played_actions

# id: (observation shape, low, high) as Gymnasium 1.3.0 and MuJoCo 3.17.0 declare them.
CONTROL = {
    "Pendulum-v1": ((3,), (-2.0,), (2.0,)),
    "InvertedPendulum-v5": ((4,), (-3.0,), (3.0,)),
    "Hopper-v5": ((11,), (-1.0,) * 3, (1.0,) * 3),
    "HalfCheetah-v5": ((17,), (-1.0,) * 6, (1.0,) * 6),
}


def _gymnasium(env_id: str) -> GymnasiumEnv:
    return GymnasiumEnv(mz.classic(env=env_id))


@pytest.mark.parametrize("env_id", list(CONTROL))
def test_control_envs_step_on_the_host_with_clipped_box_actions(env_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs HalfCheetah's model warning to the cwd
    shape, low, high = CONTROL[env_id]
    env = _gymnasium(env_id)
    spec = env.spec
    assert (spec.num_actions, spec.action_low, spec.action_high) == (0, low, high)
    assert spec.continuous and spec.action_dim == len(low) and not spec.legal_actions
    assert spec.observation_shape == shape and spec.eval_id == env_id
    rng = np.random.default_rng(0)
    within, beyond = env.make(2), env.make(2)
    try:
        np.testing.assert_array_equal(within.reset(5), beyond.reset(5))
        for _ in range(4):
            action = rng.uniform(-3.0, 3.0, (2, len(low))) * np.asarray(high)
            clipped = np.clip(action, low, high).astype(np.float32)
            a, b = within.step(clipped), beyond.step(action.astype(np.float32))
            assert a.observation.shape == (2, *shape) and a.observation.dtype == np.float32
            assert a.reward.shape == (2,) and a.reward.dtype == np.float32
            for name in ("observation", "final_observation", "reward", "terminated"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)
            assert np.all(np.isfinite(a.observation))
    finally:
        within.close()
        beyond.close()


def test_a_matrix_box_is_flattened_row_major_and_clipped_per_entry():
    env = _gymnasium(box_envs.MATRIX_ID)
    assert env.spec.action_low == tuple(box_envs.MATRIX_LOW.ravel().tolist())
    assert env.spec.action_high == tuple(box_envs.MATRIX_HIGH.ravel().tolist())
    batch = env.make(2)
    batch.reset(0)
    action = np.array([[5.0, -5.0, 0.25, 0.0, 2.0, -9.0],
                       [-0.5, 1.5, -1.0, 0.75, 0.5, -2.0]], np.float32)
    step = batch.step(action)
    batch.close()
    # The echo env observes what it received (flattened back): each entry within its bounds.
    np.testing.assert_array_equal(step.observation, [[1.0, -2.0, 0.25, 0.0, 2.0, -3.0],
                                                     [-0.5, 1.5, 0.0, 0.5, 1.0, -2.0]])
    np.testing.assert_array_equal(step.reward, [3.0, 2.0])


@pytest.mark.parametrize("env_id, expected", [
    (box_envs.UNBOUNDED_ID, f"env='{box_envs.UNBOUNDED_ID}': action space Box(-inf, inf, "
                            "(2,), float32) is unbounded; expected a Box with a finite low "
                            "and high in every dimension"),
    (box_envs.MULTI_DISCRETE_ID, "action space MultiDiscrete([2 3]) is not supported; "
                                 "supported: actions: Discrete or a float Box"),
    (box_envs.INT_BOX_ID, "action space Box(0, 5, (2,), int64) is not supported"),
])
def test_spaces_that_cannot_be_searched_are_refused_in_one_line(env_id, expected):
    with pytest.raises(ConfigError) as error:
        _gymnasium(env_id)
    assert "\n" not in str(error.value) and expected in str(error.value), str(error.value)


class BoxDrift(JaxEnv):
    """A JAX Box env paid its action's first entry: the probe's actions show in rewards."""

    spec = EnvSpec(env_id="jax/BoxDrift", observation_shape=(2,), num_actions=0,
                   max_episode_steps=5, action_low=(-3.0, 0.0), action_high=(0.5, 1.0))

    def initial(self, key):
        return jnp.zeros(()), jnp.zeros(2)

    def transition(self, inner, action, key):
        return Transition(inner=inner, observation=action, reward=action[0],
                          terminated=jnp.zeros((), bool))


def test_the_reward_probe_plays_uniform_actions_within_the_bounds():
    # |first entry| of U(-3, 0.5): at most 3, near it over 400 draws (the JAX path), and
    # the largest entry of the matrix Box, whose widest range is [1, 4] (the host path).
    jax_largest = observed_max_abs_reward(BoxDrift(), 4, 400, seed=0)
    assert 2.9 < jax_largest <= 3.0
    host_largest = observed_max_abs_reward(_gymnasium(box_envs.MATRIX_ID), 4, 400, seed=0)
    assert 3.9 < host_largest <= 4.0
    # Pendulum pays at worst -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2) a step.
    pendulum = observed_max_abs_reward(_gymnasium("Pendulum-v1"), 4, 400, seed=0)
    assert 10.0 < pendulum <= np.pi ** 2 + 6.4 + 0.004


def test_box_supports_hold_more_than_a_random_controller_earns():
    # Declared bounds where a probe would understate: MountainCarContinuous' goal bonus
    # (100, never reached at random) and Hopper's trained gait.
    assert _gymnasium("MountainCarContinuous-v0").spec.max_abs_reward == 100.0
    assert _gymnasium("Hopper-v5").spec.max_abs_reward == 20.0
    assert _gymnasium("Pendulum-v1").spec.max_abs_reward is None
    # An unknown Box env: the probe's largest |reward| (the matrix Box: just under 4)
    # times BOX_PROBE_FACTOR, with supports sized for it.
    config = envs.fit_to_env(mz.control(env=box_envs.MATRIX_ID))
    assert 3.9 * probe.BOX_PROBE_FACTOR < config.env.max_abs_reward <= 4.0 * probe.BOX_PROBE_FACTOR
    held = support.largest_reward_held(config.network.reward_support_size,
                                       config.network.value_support_size,
                                       config.loss.discount, config.network.support_squash)
    assert held >= config.env.max_abs_reward


def _box_agent(env_id: str, low=None, high=None):
    """What the evaluation reads of an agent trained on the Box env `env_id`."""
    spec = _gymnasium(env_id).spec
    if low is not None:
        spec = EnvSpec(env_id=env_id, observation_shape=spec.observation_shape,
                       num_actions=0, action_low=low, action_high=high)
    return types.SimpleNamespace(spec=spec, num_actions=0, config=mz.classic(env=env_id),
                                 observation_shape=spec.observation_shape)


def test_the_evaluation_checks_a_box_envs_dimensions_and_bounds():
    check_env_fits(_box_agent("Pendulum-v1"), "Pendulum-v1")
    with pytest.raises(ConfigError) as error:
        check_env_fits(_box_agent("Pendulum-v1", (-1.0,), (1.0,)), "Pendulum-v1")
    assert ("acts in Box(-2.0, 2.0, (1,), float32); the run's networks (trained on "
            "Pendulum-v1) take observations of shape (3,) and 1-dimensional actions within "
            "low [-1.0], high [1.0]") in str(error.value)
    for other in ("CartPole-v1", "MountainCarContinuous-v0"):  # discrete; a Box, other shapes
        with pytest.raises(ConfigError, match=f"--env {other}: observes"):
            check_env_fits(_box_agent("Pendulum-v1"), other)
    discrete = types.SimpleNamespace(spec=envs.make(mz.classic(env="CartPole-v1").env).spec,
                                     num_actions=2, observation_shape=(4,),
                                     config=mz.classic(env="CartPole-v1"))
    with pytest.raises(ConfigError, match="and 2 discrete actions"):
        check_env_fits(discrete, "InvertedPendulum-v5")


class FixedActions:
    """An agent that plays `action` (`[D]`) in every env and records what it observed:
    as its search output's action, or (`sampled`) as the chosen one of three samples."""

    def __init__(self, action, sampled: bool):
        self.action, self.sampled, self.seen = np.asarray(action, np.float32), sampled, []

    def act(self, state, key, obs, *, greedy):
        assert greedy
        self.seen.append(np.array(obs))
        batch = len(obs)
        if not self.sampled:
            return types.SimpleNamespace(action=np.tile(self.action, (batch, 1)),
                                         root_actions=None)
        samples = np.stack([-self.action, np.zeros_like(self.action), self.action])
        return types.SimpleNamespace(action=np.full(batch, 2, np.int32),
                                     root_actions=np.tile(samples, (batch, 1, 1)))


@pytest.mark.parametrize("sampled", [False, True], ids=["vector", "sampled"])
def test_the_greedy_evaluation_plays_box_actions_clipped_into_the_bounds(sampled):
    returns = evaluate_gymnasium(FixedActions([5.0], sampled), None, "Pendulum-v1", 2, seed=7)
    expected = []
    for i in range(2):
        game = gym.make("Pendulum-v1")
        game.reset(seed=7 + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = game.step(np.array([2.0], np.float32))
            total, done = total + reward, terminated or truncated
        expected.append(total)
    np.testing.assert_array_equal(returns, expected)

    agent = FixedActions([5.0, -5.0, 0.25, 0.0, 2.0, -9.0], sampled)
    returns = evaluate_gymnasium(agent, None, box_envs.MATRIX_ID, 1)
    np.testing.assert_array_equal(returns, [9.0])  # 3 steps of the largest |entry|, 3
    np.testing.assert_array_equal(agent.seen[1], [[1.0, -2.0, 0.25, 0.0, 2.0, -3.0]])


def test_played_actions_pick_the_chosen_sample_of_one_observation_or_a_batch():
    samples = np.arange(12, dtype=np.float32).reshape(2, 3, 2)  # [B, K, D]
    batch = types.SimpleNamespace(action=np.array([2, 0]), root_actions=samples)
    np.testing.assert_array_equal(played_actions(batch), [[4.0, 5.0], [6.0, 7.0]])
    one = types.SimpleNamespace(action=np.array(1), root_actions=samples[1])
    np.testing.assert_array_equal(played_actions(one), [8.0, 9.0])
    plain = types.SimpleNamespace(action=np.array([1, 0]), root_actions=None)
    np.testing.assert_array_equal(played_actions(plain), [1, 0])


# --- the command line ---------------------------------------------------------------


def _must_not_compile(*args, **kwargs):
    raise AssertionError("a refused env reached parameter initialisation")


@pytest.mark.parametrize("env_id, expected", [
    (box_envs.UNBOUNDED_ID, "action space Box(-inf, inf, (2,), float32) is unbounded"),
    (box_envs.MULTI_DISCRETE_ID, "action space MultiDiscrete([2 3]) is not supported"),
])
def test_train_refuses_unsearchable_action_spaces_before_compiling(
        env_id, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mz.Agent, "init", _must_not_compile)
    out = tmp_path / "run"
    code, err = script_in_process(TRAIN, ["--env", env_id, "--out", str(out)], monkeypatch,
                                  capsys, tmp_path)
    assert code == 2
    assert_one_line(err, "train.py: error: ", f"env={env_id!r}: {expected}")
    assert not out.exists()


def test_train_takes_pendulum_through_the_env_layer(tmp_path, monkeypatch, capsys):
    # Up to training only: what reaches it is the Box env (whichever preset trains it).
    reached = {}

    def train(config, *, env, **kwargs):
        reached.update(config=config, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(experiment, "train", train)
    out = tmp_path / "run"
    code, err = script_in_process(TRAIN, ["--env", "Pendulum-v1", "--out", str(out)],
                                  monkeypatch, capsys, tmp_path)
    assert code == 0, err[-2000:]
    spec = reached["env"].spec
    assert (spec.env_id, spec.num_actions, spec.action_low, spec.action_high) == (
        "Pendulum-v1", 0, (-2.0,), (2.0,))
    assert reached["config"].env.id == "Pendulum-v1"


def test_the_control_extra_pins_what_requirements_txt_pins_and_is_installed():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        extra = [Requirement(r) for r in tomllib.load(f)["project"]["optional-dependencies"][
            "control"]]
    with open(os.path.join(root, "requirements.txt")) as f:
        pinned = dict(re.findall(r"^([A-Za-z][\w.-]*)==([\w.]+)$", f.read(), re.M))
    assert {r.name for r in extra} >= {"mujoco", "mujoco-mjx"}
    for requirement in extra:
        (version,) = [str(s.version) for s in requirement.specifier if s.operator == "=="]
        assert pinned.get(requirement.name) == version, (requirement, pinned)
        assert importlib.metadata.version(requirement.name) == version, requirement


def test_the_control_benchmark_tables_our_runs_beside_the_bar_and_sac():
    from benchmarks import control

    assert control.published_for("gymnax/Pendulum-v1") == [
        ("RL Zoo SAC (SB3), deterministic", 20_000, -157.0, control.SB3_ZOO)]
    assert control.budget("InvertedPendulum-v5", None) == 100_000
    assert control.budget("InvertedPendulum-v5", 3_000) == 3_000
    curve = [{"env_steps": 25_000, "wall_seconds": 300.0, "eval_return": -400.0},
             {"env_steps": 50_000, "wall_seconds": 600.0, "eval_return": -180.0}]
    runs = [{"env": "Pendulum-v1", "seed": seed, "env_steps": 50_000, "wall_seconds": wall,
             "final_eval_return": value, "final_eval_std": 5.0, "curve": curve,
             "bar": {"return": -200.0, "minutes": 15, "met": met}}
            for seed, wall, value, met in ((0, 700.0, -170.0, True), (1, 950.0, -190.0, False),
                                           (2, 800.0, -250.0, False))]
    lines = control.markdown({"config": "c", "env_ids": ["Pendulum-v1"], "runs": runs,
                              "plot": "control/cpu.png"})
    row = next(line for line in lines if line.startswith("| Pendulum-v1 | -190.0"))
    assert row.startswith("| Pendulum-v1 | -190.0 [-250.0, -170.0] | 50,000 | >= -200 in 15 "
                          "min: 1/3 seeds | [RL Zoo SAC (SB3), deterministic]")
    assert "| Pendulum-v1 | 1 | 50,000 | 950 | -190.0 +- 5.0 | -180.0 at 50,000 |" in lines


def test_the_benchmarks_read_a_finished_run_instead_of_training_it_again(tmp_path):
    from benchmarks import minatar

    run = tmp_path / "seed1"
    run.mkdir()
    config = {"env": {"id": "Pendulum-v1"}, "run": {"seed": 1, "total_env_steps": 50_000}}
    (run / "config.json").write_text(json.dumps(config))
    assert not minatar.finished(str(run), "Pendulum-v1", 50_000, 1)  # no summary: unfinished
    (run / "summary.json").write_text("{}")
    assert minatar.finished(str(run), "Pendulum-v1", 50_000, 1)
    assert not minatar.finished(str(run), "Pendulum-v1", 50_000, 2)
    assert not minatar.finished(str(run), "Pendulum-v1", 20_000, 1)
    assert not minatar.finished(str(run), "gymnax/Pendulum-v1", 50_000, 1)
