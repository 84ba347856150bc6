"""gymnax envs through the JaxEnv protocol: time limits, MinAtar, and the Gymnasium twins."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import envs
from muzero_jax.config import ConfigError, EnvConfig
from muzero_jax.envs.gymnax_env import GymnaxEnv

# How each twin's gymnax state is set from Gymnasium's `unwrapped.state`.
STATE_FIELDS = {
    "CartPole-v1": ("x", "x_dot", "theta", "theta_dot"),
    "Acrobot-v1": ("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
    "MountainCar-v0": ("position", "velocity"),
}


def _policy(name: str, obs: np.ndarray, rng: np.random.Generator) -> int:
    """Mostly a policy that ends episodes early (by termination), with random actions."""
    if rng.random() < 0.2:
        return int(rng.integers(3 if name != "CartPole-v1" else 2))
    if name == "CartPole-v1":
        return 1  # pushes one way: the pole falls
    if name == "Acrobot-v1":
        return 2 if obs[5] > 0 else 0  # torque along the second joint's velocity
    return 2 if obs[1] >= 0 else 0  # MountainCar: push along the velocity


@pytest.mark.parametrize("name", sorted(STATE_FIELDS))
def test_gymnax_twin_matches_gymnasium_step_for_step(name):
    """Our step from Gymnasium's state each step: same observation, reward and flags, to a
    termination and to the time limit; so the twin's final evaluation may play Gymnasium's."""
    env = GymnaxEnv(name)
    assert env.spec.eval_id == name
    reference = gym.make(name)
    assert env.spec.max_episode_steps == reference.spec.max_episode_steps


    @jax.jit
    def synced_step(state, values, t, obs, action):
        """Our step from Gymnasium's state `values` at step t."""
        inner = state.inner.replace(time=t, **{
            k: values[i] for i, k in enumerate(STATE_FIELDS[name])})
        return env.step(state.replace(inner=inner, observation=obs, step_count=t), action)

    rng = np.random.default_rng(0)
    endings = []
    for episode, limit_only in ((0, False), (1, True)):
        obs, _ = reference.reset(seed=episode)
        state = env.reset(jax.random.key(episode))
        for t in range(reference.spec.max_episode_steps):
            values = np.asarray(reference.unwrapped.state, np.float32)
            previous_obs = obs
            action = 1 if limit_only and name != "CartPole-v1" else _policy(name, obs, rng)
            if limit_only and name == "CartPole-v1":
                action = int(obs[2] + 0.5 * obs[3] > 0)  # balances to the limit
            obs, reward, terminated, truncated, _ = reference.step(action)
            state, out = synced_step(state, values, jnp.int32(t), previous_obs,
                                     jnp.int32(action))
            np.testing.assert_allclose(out.final_observation, obs, rtol=0, atol=1e-5)
            assert (float(out.reward), bool(out.terminated), bool(out.truncated)) == (
                reward, terminated, truncated), (name, episode, t)
            if terminated or truncated:
                endings.append((terminated, truncated))
                break
    assert endings == [(True, False), (False, True)]


def test_time_limit_is_truncation_with_the_final_observation_kept():
    env = GymnaxEnv("Acrobot-v1", max_episode_steps=4)
    assert env.spec.max_episode_steps == 4
    assert env.spec.eval_id is None  # a 4-step Acrobot is not Gymnasium's Acrobot-v1
    step = jax.jit(env.step)
    state = env.reset(jax.random.key(0))
    inner = state.inner
    for t in range(4):
        state, out = step(state, jnp.int32(1))
        # What gymnax itself reaches from the same state (zero torque noise: no key use).
        expected, inner, *_ = env.env.step_env(jax.random.key(0), inner, 1, env.params)
        assert (bool(out.terminated), bool(out.truncated)) == (False, t == 3)
    np.testing.assert_allclose(out.final_observation, expected, rtol=0, atol=1e-6)
    assert not np.allclose(out.observation, out.final_observation)  # a new episode's first
    assert float(out.episode_return) == -4.0 and int(out.episode_length) == 4
    assert int(state.step_count) == 0


def test_default_time_limit_is_the_envs_own():
    assert GymnaxEnv("Acrobot-v1").spec.max_episode_steps == 500
    spec = GymnaxEnv("Breakout-MinAtar").spec
    assert spec.max_episode_steps == 1_000 and spec.eval_id is None


def test_minatar_observes_float32_planes_and_steps_inside_jit_and_vmap():
    env = envs.make(mz.cartpole(env="gymnax/Breakout-MinAtar"))
    assert isinstance(env, envs.JaxEnv)
    assert env.spec.env_id == "gymnax/Breakout-MinAtar"
    assert env.spec.observation_shape == (10, 10, 4) and env.spec.num_actions == 3
    assert env.spec.observation_dtype == "float32" and not env.spec.frames
    num_envs = 4
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), num_envs))
    assert state.observation.shape == (num_envs, 10, 10, 4)
    assert state.observation.dtype == jnp.float32

    @jax.jit
    def rollout(state, key):
        def body(state, key):
            action = jax.random.randint(key, (num_envs,), 0, 3)
            return jax.vmap(env.step)(state, action)

        return jax.lax.scan(body, state, jax.random.split(key, 300))

    state, out = rollout(state, jax.random.key(1))
    assert out.observation.shape == (300, num_envs, 10, 10, 4)
    assert set(np.unique(np.asarray(out.observation))) == {0.0, 1.0}
    terminated = np.asarray(out.terminated)
    # Random paddles miss the ball: the game ends its episodes, not the time limit.
    assert terminated.any() and not np.asarray(out.truncated).any()
    lengths = np.asarray(out.episode_length)[terminated]
    assert np.all((lengths > 0) & (lengths < 300))


def test_unknown_gymnax_id_names_the_registered_ones():
    with pytest.raises(ConfigError, match="Breakout-MinAtar"):
        GymnaxEnv("NoSuchGame-MinAtar")


def test_continuous_gymnax_envs_have_box_actions_clipped_into_their_bounds():
    import gymnax

    env = GymnaxEnv("Pendulum-v1")
    assert (env.spec.num_actions, env.spec.action_low, env.spec.action_high) == (0, (-2.0,),
                                                                                 (2.0,))
    raw, params = gymnax.make("Pendulum-v1")
    inner, _ = env.initial(jax.random.key(0))
    out = env.transition(inner, jnp.array([5.0]), jax.random.key(1))
    _, want, reward, _, _ = raw.step_env(jax.random.key(1), inner, jnp.array([2.0]), params)
    assert float(out.inner.last_u) == 2.0 and float(out.reward) == float(reward)
    assert float(out.inner.theta) == float(want.theta)


def test_minatar_repeats_the_previous_action_as_minatar_defines():
    """MinAtar's sticky actions (0.1 by default; gymnax's ports have none): at 1 every step
    plays the previous action (0 at an episode's start), at 0 the one given, as gymnax."""
    import gymnax

    assert GymnaxEnv("Breakout-MinAtar").sticky_action_probability == 0.1
    assert GymnaxEnv("CartPole-v1").sticky_action_probability == 0.0
    raw, params = gymnax.make("Breakout-MinAtar")
    actions = jnp.array([1, 1, 2], jnp.int32)  # before the ball can reach the bottom

    def play(env, key):
        state = env.reset(key)
        for a in actions:
            state, _ = env.step(state, a)
        inner = state.inner[0] if env.sticky_action_probability else state.inner
        return inner.pos, inner.ball_x, inner.ball_y

    def gymnax_play(key, played):
        _, inner = raw.reset_env(jax.random.split(key)[1], params)  # EnvState.reset's key
        for a in played:
            _, inner, *_ = raw.step_env(jax.random.key(0), inner, a, params)
        return inner.pos, inner.ball_x, inner.ball_y

    key = jax.random.key(3)
    stuck = play(GymnaxEnv("Breakout-MinAtar", sticky_action_probability=1.0), key)
    free = play(GymnaxEnv("Breakout-MinAtar", sticky_action_probability=0.0), key)
    assert [int(x) for x in stuck] == [int(x) for x in gymnax_play(key, [0] * len(actions))]
    assert [int(x) for x in free] == [int(x) for x in gymnax_play(key, actions)]
    assert int(free[0]) != int(stuck[0])  # the paddle moved only without sticking


def test_sticky_actions_are_refused_where_the_env_cannot_repeat():
    with pytest.raises(ConfigError, match="sticky_action_probability=0.1: 'pgx/tic_tac_toe'"):
        envs.make(EnvConfig(id="pgx/tic_tac_toe", sticky_action_probability=0.1))
