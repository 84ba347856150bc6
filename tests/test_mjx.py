"""MJX tasks (`muzero_jax.envs.mjx_env`): specs, Gymnasium agreement, clipping, resets, rewards.

Compiling an MJX step takes seconds, so two programs serve every test that steps:
`jax.lax.scan` of `jax.vmap(env.step)` over STEPS steps, one for InvertedPendulum-v5
(from states the test sets) and one for cartpole_swingup (from resets, a short time
limit).
"""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import envs
from muzero_jax.config import ConfigError, EnvConfig
from muzero_jax.envs import mjx_env
from muzero_jax.envs.mjx_env import MjxEnv, PhysicsState, PhysicsStep, tolerance

BATCH, STEPS = 16, 8


def scan_program(env):
    """(EnvState [B], actions [T, B, D]) -> (EnvState, StepOutput [T, B]), compiled."""
    return jax.jit(lambda state, actions: jax.lax.scan(jax.vmap(env.step), state, actions))


@pytest.fixture(scope="module")
def pendulum():
    env = envs.make(EnvConfig(id="mjx/InvertedPendulum-v5"))
    return env, scan_program(env)


@pytest.fixture(scope="module")
def cartpole():
    env = envs.make(EnvConfig(id="mjx/cartpole_swingup", max_episode_steps=4))
    return env, scan_program(env)


def states_at(env, qpos, qvel, seed=0):
    """A batch of EnvStates in the physics states qpos [B, nq], qvel [B, nv]."""
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(seed), len(qpos)))
    inner = PhysicsState(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))
    return state.replace(inner=inner, observation=jax.vmap(env.task.observe)(inner))


def test_specs_give_box_bounds_time_limits_and_reward_scale():
    pendulum = envs.make(EnvConfig(id="mjx/InvertedPendulum-v5"))
    spec = pendulum.spec
    assert isinstance(pendulum, MjxEnv)
    assert (spec.env_id, spec.observation_shape, spec.num_actions) == (
        "mjx/InvertedPendulum-v5", (4,), 0)
    assert (spec.action_low, spec.action_high, spec.action_dim) == ((-3.0,), (3.0,), 1)
    assert spec.continuous and spec.max_episode_steps == 1000 and spec.max_abs_reward == 1.0
    assert spec.eval_id == "InvertedPendulum-v5"
    for name in ("cartpole_swingup", "cartpole_balance"):
        spec = MjxEnv("mjx/" + name).spec
        assert (spec.observation_shape, spec.action_low, spec.action_high) == (
            (5,), (-1.0,), (1.0,))
        assert (spec.max_episode_steps, spec.max_abs_reward, spec.eval_id) == (
            1000, 1.0, None)
    # Another time limit is no longer Gymnasium's env: evaluation stays on this one.
    short = envs.make(EnvConfig(id="mjx/InvertedPendulum-v5", max_episode_steps=50)).spec
    assert (short.max_episode_steps, short.eval_id) == (50, None)


def test_half_cheetah_spec_and_mujoco_warnings_as_python_warnings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Gymnasium's half_cheetah.xml draws MuJoCo's deprecation of settotalmass: a Python
    # warning here, not a MUJOCO_LOG.TXT where the run started.
    with pytest.warns(UserWarning, match="^MuJoCo: compiler attribute 'settotalmass'"):
        cheetah = MjxEnv("mjx/HalfCheetah-v5").spec
    assert list(tmp_path.iterdir()) == []
    assert (cheetah.observation_shape, cheetah.action_low, cheetah.action_high) == (
        (17,), (-1.0,) * 6, (1.0,) * 6)
    assert (cheetah.max_episode_steps, cheetah.max_abs_reward, cheetah.eval_id) == (
        1000, 30.0, "HalfCheetah-v5")


def test_a_missing_mujoco_is_named_with_its_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco raises ImportError
    with pytest.raises(ConfigError) as error:
        envs.make(EnvConfig(id="mjx/cartpole_swingup"))
    message = str(error.value)
    assert message.startswith("env='mjx/cartpole_swingup' needs MuJoCo's JAX port")
    assert message.endswith("pip install mujoco==3.17.0 mujoco-mjx==3.17.0")


def test_unknown_task_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError) as error:
        envs.make(EnvConfig(id="mjx/Hopper-v5"))
    message = str(error.value)
    assert "'mjx/Hopper-v5'" in message and "\n" not in message
    known = ["mjx/InvertedPendulum-v5", "mjx/HalfCheetah-v5", "mjx/cartpole_swingup",
             "mjx/cartpole_balance"]
    assert mjx_env.task_ids() == known
    assert all(repr(env_id) in message for env_id in known)


def compare_with_gymnasium(env_id, out, qpos, qvel, actions, steps, atol, reward_atol):
    """Steps `gymnasium.make(env_id)` from each qpos [B, nq], qvel [B, nv] with actions
    [T, B, D] and checks `out`'s first `steps` steps (up to a termination) against it;
    returns the number of steps compared."""
    import gymnasium

    reference = gymnasium.make(env_id).unwrapped
    reference.reset(seed=0)
    compared = 0
    for b in range(len(qpos)):
        reference.set_state(qpos[b], qvel[b])
        for t in range(steps):
            observation, reward, terminated, _, _ = reference.step(actions[t, b])
            np.testing.assert_allclose(out.final_observation[t, b], observation, atol=atol)
            assert float(out.reward[t, b]) == pytest.approx(reward, abs=reward_atol)
            assert bool(out.terminated[t, b]) == terminated
            compared += 1
            if terminated:
                break
    return compared


def test_inverted_pendulum_matches_gymnasium_from_the_same_states(pendulum):
    env, run = pendulum
    rng = np.random.default_rng(0)
    # Past the rail's ends (+-1) and tilted, so the joint limits act; actions out of
    # bounds, which both clip to +-3.
    qpos = np.stack([rng.uniform(-1.05, 1.05, BATCH), rng.uniform(-0.15, 0.15, BATCH)], 1)
    qvel = rng.uniform(-2.0, 2.0, (BATCH, 2))
    actions = rng.uniform(-5.0, 5.0, (STEPS, BATCH, 1)).astype(np.float32)
    _, out = run(states_at(env, qpos, qvel), actions)
    compared = compare_with_gymnasium("InvertedPendulum-v5", out, qpos, qvel, actions,
                                      STEPS, atol=1e-5, reward_atol=0.0)
    assert compared > 2 * BATCH


@pytest.mark.slow
def test_half_cheetah_matches_gymnasium_for_its_first_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Gymnasium's env writes MuJoCo's warning to MUJOCO_LOG.TXT
    with pytest.warns(UserWarning, match="settotalmass"):
        env = MjxEnv("mjx/HalfCheetah-v5")
    rng = np.random.default_rng(0)
    batch, steps = 4, 3
    qpos = rng.uniform(-0.1, 0.1, (batch, 9))
    qvel = 0.1 * rng.standard_normal((batch, 9))
    actions = rng.uniform(-1.0, 1.0, (steps, batch, 6)).astype(np.float32)
    _, out = scan_program(env)(states_at(env, qpos, qvel), actions)
    # Contacts amplify float32's rounding step by step; the reward is a position
    # difference over 0.05 s.
    compared = compare_with_gymnasium("HalfCheetah-v5", out, qpos, qvel, actions, steps,
                                      atol=1e-3, reward_atol=1e-2)
    assert compared == batch * steps


def test_actions_are_clipped_into_the_control_range(pendulum):
    env, run = pendulum
    qpos, qvel = np.zeros((BATCH, 2)), np.zeros((BATCH, 2))
    # Pairs of envs in the same state: one given the bound, the other far beyond it.
    push = np.array([3.0, 30.0, -3.0, -1e6] * (BATCH // 4), np.float32)
    actions = np.broadcast_to(push[None, :, None], (STEPS, BATCH, 1))
    _, out = run(states_at(env, qpos, qvel), actions)
    # Up to the pole's fall: then each env resets to its own random state.
    end = int(np.argmax(np.asarray(out.terminated[:, 0]))) + 1
    assert end > 1
    observation = np.asarray(out.final_observation[:end])
    np.testing.assert_array_equal(observation[:, 0], observation[:, 1])
    np.testing.assert_array_equal(observation[:, 2], observation[:, 3])
    assert observation[0, 0, 2] > 0 > observation[0, 2, 2]  # the cart moves as pushed


def test_a_fallen_pole_ends_the_episode_and_resets_in_the_same_step(pendulum):
    env, run = pendulum
    qpos, qvel = np.zeros((BATCH, 2)), np.zeros((BATCH, 2))
    actions = np.full((STEPS, BATCH, 1), 3.0, np.float32)
    state, out = run(states_at(env, qpos, qvel), actions)
    assert out.observation.dtype == jnp.float32 and out.reward.dtype == jnp.float32
    assert out.terminated.dtype == jnp.bool_ and out.observation.shape == (STEPS, BATCH, 4)
    terminated = np.asarray(out.terminated[:, 0])
    assert terminated.any() and not np.asarray(out.truncated).any()
    end = int(np.argmax(terminated))  # the same in every env: same state, same push
    assert np.all(np.asarray(out.terminated[end]))
    assert np.all(np.abs(np.asarray(out.final_observation[end, :, 1])) > 0.2)
    # Reset noise is +-0.01 on every coordinate; the fallen state is far from it.
    assert np.all(np.abs(np.asarray(out.observation[end])) <= 0.01)
    np.testing.assert_array_equal(out.reward[:end + 1, 0], [1.0] * end + [0.0])
    np.testing.assert_array_equal(out.episode_length[end], end + 1)
    np.testing.assert_array_equal(out.episode_return[end], float(end))
    np.testing.assert_array_equal(out.episode_length[:end], 0)
    # Fresh episodes from different reset keys: different first states.
    assert len({tuple(np.asarray(o)) for o in out.observation[end]}) == BATCH
    assert np.all(np.asarray(state.step_count) < STEPS)


def test_cartpole_swingup_truncates_resets_hanging_and_pays_within_0_1(cartpole):
    env, run = cartpole
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(3), BATCH))
    actions = jax.random.uniform(jax.random.key(4), (STEPS, BATCH, 1), minval=-2.0,
                                 maxval=2.0)
    _, out = run(state, actions)
    reward = np.asarray(out.reward)
    assert np.all((reward >= 0.0) & (reward <= 1.0))
    # Hanging down, upright is (cos + 1) / 2, near 0.
    assert reward.max() < 0.05
    truncated = np.asarray(out.truncated)
    np.testing.assert_array_equal(truncated, np.isin(np.arange(STEPS), [3, 7])[:, None]
                                  & np.ones(BATCH, bool))
    assert not np.asarray(out.terminated).any()
    np.testing.assert_array_equal(np.asarray(out.episode_length)[truncated], 4)
    observation = np.asarray(out.observation)
    np.testing.assert_allclose(observation[..., 1] ** 2 + observation[..., 2] ** 2, 1.0,
                               atol=1e-5)
    start = observation[3]  # the new episode's first observation after truncation
    assert np.all(np.abs(start[:, 0]) < 0.05) and np.all(start[:, 1] < -0.99)
    assert not np.allclose(out.final_observation[3], out.observation[3])


def test_cartpole_reward_factors_by_hand():
    reward = mjx_env.TASKS["cartpole_swingup"].reward

    def at(x=0.0, angle=0.0, angular_velocity=0.0, ctrl=0.0):
        state = PhysicsState(jnp.array([x, angle]), jnp.array([0.0, angular_velocity]))
        observation = mjx_env.TASKS["cartpole_swingup"].observe(state)
        value, terminated = reward(PhysicsStep(state, state, observation, jnp.array([ctrl]),
                                               0.01))
        assert not bool(terminated)
        return float(value)

    assert at() == pytest.approx(1.0)
    assert at(angle=math.pi) == pytest.approx(0.0, abs=1e-6)
    assert at(angle=math.pi / 2) == pytest.approx(0.5)
    assert at(x=2.0) == pytest.approx(0.55)  # centered: (1 + 0.1) / 2
    assert at(ctrl=1.0) == pytest.approx(0.8)  # small_control: (4 + 0) / 5
    assert at(ctrl=0.5) == pytest.approx(0.95)  # (4 + 0.75) / 5
    assert at(angular_velocity=-5.0) == pytest.approx(0.55)


def test_tolerance_as_dmc_defines_it():
    assert float(tolerance(0.5, lower=0.0, upper=1.0)) == 1.0
    assert float(tolerance(2.0, margin=2.0)) == pytest.approx(0.1)
    assert float(tolerance(-1.0, margin=2.0)) == pytest.approx(0.1 ** 0.25)
    assert float(tolerance(3.0, lower=0.0, upper=1.0, margin=2.0)) == pytest.approx(0.1)
    quadratic = dict(margin=1.0, value_at_margin=0.0, sigmoid="quadratic")
    assert float(tolerance(0.5, **quadratic)) == pytest.approx(0.75)
    assert float(tolerance(1.0, **quadratic)) == 0.0 and float(tolerance(-2.0, **quadratic)) == 0.0
    assert float(tolerance(0.1)) == 0.0 and float(tolerance(0.0)) == 1.0
    with pytest.raises(ValueError, match="sigmoid='cubic'"):
        tolerance(0.0, margin=1.0, sigmoid="cubic")


@pytest.mark.parametrize("name, low, high", [
    ("InvertedPendulum-v5", [-0.01] * 4, [0.01] * 4),
    ("cartpole_balance", [-0.1, -0.034], [0.1, 0.034]),
])
def test_initial_states_lie_in_the_tasks_reset_ranges(name, low, high):
    env = MjxEnv("mjx/" + name)
    inner, observation = jax.vmap(env.initial)(jax.random.split(jax.random.key(0), 256))
    values = np.concatenate([inner.qpos, inner.qvel], 1)[:, :len(low)]
    assert np.all((values >= low) & (values <= high))
    # Uniform over the range: its ends are approached.
    np.testing.assert_allclose(values.min(0), low, rtol=0.1)
    np.testing.assert_allclose(values.max(0), high, rtol=0.1)
    assert observation.dtype == jnp.float32
    assert observation.shape == (256, *env.spec.observation_shape)


def test_cartpole_swingup_starts_hanging_down():
    env = MjxEnv("mjx/cartpole_swingup")
    inner, observation = jax.vmap(env.initial)(jax.random.split(jax.random.key(0), 256))
    assert np.all(np.abs(np.asarray(inner.qpos[:, 1]) - math.pi) < 0.05)
    assert np.all(np.abs(np.asarray(inner.qpos[:, 0])) < 0.05)
    assert 0.005 < float(np.std(inner.qvel)) < 0.02  # DMC's 0.01 normal noise
    assert np.all(np.asarray(observation[:, 1]) < -0.99)
