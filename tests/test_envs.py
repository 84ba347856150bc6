import dataclasses

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.phys2d.cartpole import CartPoleFunctional, CartPoleParams

import muzero_jax as mz
from muzero_jax import envs
from muzero_jax.config import EnvConfig
from muzero_jax.envs.functional import FuncJaxEnv


def _synced(env, gym_env, obs):
    """Our env state set to the Gymnasium env's current state."""
    state = env.reset(jax.random.key(0))
    return state.replace(inner=jnp.asarray(gym_env.unwrapped.state, jnp.float32),
                         observation=jnp.asarray(obs),
                         step_count=jnp.int32(gym_env._elapsed_steps or 0))


def test_cartpole_matches_gymnasium_episode_for_episode():
    """Same start, same (random) actions: same observations, rewards and flags."""
    env = envs.make_jax("jax/CartPole-v1")
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for episode in range(10):
        reference = gym.make("CartPole-v1")
        obs, _ = reference.reset(seed=episode)
        state = _synced(env, reference, obs)
        for _ in range(500):
            action = int(rng.integers(2))
            obs, reward, terminated, truncated, _ = reference.step(action)
            state, out = step(state, jnp.int32(action))
            np.testing.assert_allclose(out.final_observation, obs, rtol=1e-5, atol=1e-5)
            assert float(out.reward) == reward
            assert bool(out.terminated) == terminated
            assert bool(out.truncated) == truncated
            if terminated or truncated:
                break
        assert terminated, "a random policy ends CartPole by termination"


def test_cartpole_matches_gymnasium_step_by_step_to_the_time_limit():
    """A balancing policy for 500 steps, our step applied to Gymnasium's state each time.

    CartPole is chaotic, so float32 and Gymnasium's float64 drift apart over
    hundreds of open-loop steps; each single step must still agree, and the
    500th must be reported as truncation.
    """
    env = envs.make_jax("jax/CartPole-v1")
    step = jax.jit(env.step)
    reference = gym.make("CartPole-v1")
    obs, _ = reference.reset(seed=3)
    steps = 0
    for _ in range(500):
        steps += 1
        state = _synced(env, reference, obs)
        action = int(obs[2] + 0.5 * obs[3] > 0)
        obs, reward, terminated, truncated, _ = reference.step(action)
        _, out = step(state, jnp.int32(action))
        np.testing.assert_allclose(out.final_observation, obs, rtol=1e-5, atol=1e-6)
        assert (float(out.reward), bool(out.terminated), bool(out.truncated)) == (
            reward, terminated, truncated)
    assert steps == 500 and truncated and not terminated


def test_gymnasium_default_functional_params_are_not_cartpole_v1():
    """Why envs.cartpole passes its own parameters: the defaults diverge from v1 at once."""
    default = FuncJaxEnv(CartPoleFunctional(), CartPoleParams(), max_episode_steps=500,
                         num_actions=2)
    reference = gym.make("CartPole-v1")
    obs, _ = reference.reset(seed=0)
    state = _synced(default, reference, obs)
    obs, *_ = reference.step(1)
    _, out = default.step(state, jnp.int32(1))
    assert np.abs(np.asarray(out.final_observation) - obs).max() > 1e-3
    fields = {f.name for f in dataclasses.fields(CartPoleParams)}
    assert "polemass_length" in fields


def test_time_limit_is_truncation_and_auto_resets():
    env = envs.make_jax("jax/CartPole-v1", max_episode_steps=3)
    state = env.reset(jax.random.key(1))
    step = jax.jit(env.step)
    flags = []
    for i in range(3):
        state, out = step(state, jnp.int32(i % 2))
        flags.append((bool(out.terminated), bool(out.truncated)))
    assert flags == [(False, False), (False, False), (False, True)]
    assert int(state.step_count) == 0
    assert float(out.episode_return) == 3.0 and int(out.episode_length) == 3
    # The returned observation is the new episode's; the final one is the old episode's end.
    assert not np.allclose(out.observation, out.final_observation)
    assert np.all(np.abs(np.asarray(out.observation)) <= 0.05)


def test_termination_is_not_truncation():
    env = envs.make_jax("jax/CartPole-v1")
    state = env.reset(jax.random.key(2))
    step = jax.jit(env.step)
    steps = 0
    while steps < 200:
        steps += 1
        state, out = step(state, jnp.int32(1))  # always push right: falls quickly
        if bool(out.terminated):
            break
    assert bool(out.terminated) and not bool(out.truncated)
    assert int(out.episode_length) == steps


def test_vmapped_reset_and_step_keep_the_batch_axis():
    env = envs.make_jax("jax/CartPole-v1")
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 5))
    state, out = jax.vmap(env.step)(state, jnp.zeros(5, jnp.int32))
    assert out.observation.shape == (5, 4) and out.observation.dtype == jnp.float32
    assert out.reward.shape == (5,) and out.terminated.dtype == jnp.bool_


def test_unknown_env_names_the_registered_ones():
    with pytest.raises(ValueError, match="jax/CartPole-v1"):
        envs.make_jax("jax/NoSuchEnv-v0")


def test_host_envs_step_in_worker_processes_as_in_this_one():
    """vector_mode='async' (gymnasium's AsyncVectorEnv) gives the same steps as 'sync'."""

    outs = {}
    for mode in ("sync", "async"):
        batch = envs.make(mz.cartpole(env="CartPole-v1", vector_mode=mode)).make(2)
        try:
            first = batch.reset(seed=5)
            steps = [batch.step(np.array([t % 2, 1])) for t in range(30)]
        finally:
            batch.close()
        outs[mode] = (first, [(s.observation, s.final_observation, s.reward, s.terminated,
                               s.episode_return) for s in steps])
    np.testing.assert_array_equal(outs["sync"][0], outs["async"][0])
    for sync, asynchronous in zip(outs["sync"][1], outs["async"][1], strict=True):
        for a, b in zip(sync, asynchronous, strict=True):
            np.testing.assert_array_equal(a, b)
    assert any(s[3].any() for s in outs["sync"][1])  # an episode ended on the way


def test_a_custom_jax_env_object_trains_without_registration():
    """`train(config, env=...)` takes an env object; the protocol is all it needs."""
    from muzero_jax.envs import EnvSpec, JaxEnv, Transition

    class Coin(JaxEnv):
        """Guess a coin shown in the observation: reward 1 if right; 4 steps an episode."""

        spec = EnvSpec(env_id="coin", observation_shape=(2,), num_actions=2,
                       max_episode_steps=4, max_abs_reward=1.0)

        def initial(self, key):
            side = jax.random.bernoulli(key).astype(jnp.int32)
            return side, jax.nn.one_hot(side, 2)

        def transition(self, inner, action, key):
            side = jax.random.bernoulli(key).astype(jnp.int32)
            return Transition(inner=side, observation=jax.nn.one_hot(side, 2),
                              reward=(action == inner).astype(jnp.float32),
                              terminated=jnp.bool_(False))

    cfg = mz.cartpole(num_envs=4, rollout_length=4, hidden_size=16, latent_size=8,
                      num_hidden_layers=1, num_simulations=4, max_num_considered_actions=2,
                      capacity=400, min_size=32, batch_size=16,
                      updates_per_iteration=2, td_steps=2, unroll_steps=2,
                      total_env_steps=64, eval_every=0, solve_return=None)
    result = mz.train(cfg, env=Coin(), log=None)
    assert result.env_steps == 64 and result.train_steps > 0
    assert result.agent.spec.env_id == "coin"


def test_make_reads_the_env_stage_alone():
    stage = EnvConfig(id="jax/CartPole-v1", max_episode_steps=7)
    env = envs.make(stage)
    assert env.spec.max_episode_steps == 7 and env.spec.num_actions == 2
    assert envs.make(mz.Config().replace(env=stage)).spec == env.spec  # a whole Config: its env
    host = envs.make(EnvConfig(id="CartPole-v1", max_episode_steps=9))
    assert host.spec.max_episode_steps == 9 and host.config.id == "CartPole-v1"
    with pytest.raises(TypeError, match="'jax/CartPole-v1': expected an EnvConfig"):
        envs.make("jax/CartPole-v1")


def test_fit_to_env_sets_the_scales_of_an_untuned_env():
    # CartPole declares |reward| <= 1, which the preset's supports hold: they stay.
    fitted = envs.fit_to_env(mz.cartpole())
    assert (fitted.loss.discount, fitted.run.total_env_steps) == (0.997, 100_000)
    assert fitted.env.max_abs_reward == 1.0 and fitted.network == mz.cartpole().network
    # FrozenLake declares none: a random rollout sees 1, supports are sized for twice it,
    # and its 100-step limit gives the discount 1 - 1/100.
    fitted = envs.fit_to_env(mz.classic(env="FrozenLake-v1", value_support_size=1,
                                        reward_support_size=1))
    assert (fitted.loss.discount, fitted.env.max_abs_reward) == (0.99, 2.0)
    assert (fitted.network.value_support_size, fitted.network.reward_support_size) == (14, 1)
