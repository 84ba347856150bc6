"""Target network, temperature schedule, the prioritised update loop and absorbing states."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax.config import ConfigError, validate
from muzero_jax.replay import Window
from muzero_jax.search import Exploration
from muzero_jax.targets import Targets, window_targets


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                    strict=True))


def _batch(agent, n=8):
    rng = np.random.default_rng(0)
    k = agent.config.loss.unroll_steps
    targets = Targets(
        actions=jnp.zeros((n, k), jnp.int32),
        value=jnp.asarray(rng.uniform(0, 50, (n, k + 1)), jnp.float32),
        value_mask=jnp.ones((n, k + 1)), reward=jnp.ones((n, k)),
        reward_mask=jnp.ones((n, k)), policy=jnp.full((n, k + 1, 2), 0.5),
        policy_mask=jnp.ones((n, k + 1)))
    return mz.Batch(observation=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
                    targets=targets, weight=jnp.ones(n))


def test_target_network_is_copied_every_period(tiny_config):
    agent = mz.Agent(tiny_config.replace(target_update_period=3))
    state = agent.init(jax.random.key(0))
    initial = state.params
    assert _leaves_equal(state.target_params, initial)
    batch = _batch(agent)
    for step in (1, 2):
        state, _ = agent.learn(state, batch)
        assert int(state.step) == step
        assert _leaves_equal(state.target_params, initial)
        assert not _leaves_equal(state.params, initial)
    state, _ = agent.learn(state, batch)
    assert _leaves_equal(state.target_params, state.params)


def test_target_network_moving_average(tiny_config):
    agent = mz.Agent(tiny_config.replace(target_update_period=0,
                                        target_ema=0.75))
    state = agent.init(jax.random.key(0))
    old = state.target_params
    state, _ = agent.learn(state, _batch(agent))
    expected = jax.tree.map(lambda t, p: 0.75 * t + 0.25 * p, old, state.params)
    for x, y in zip(jax.tree.leaves(state.target_params), jax.tree.leaves(expected),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_no_target_network_keeps_no_copy(tiny_config):
    agent = mz.Agent(tiny_config.replace(target_update_period=0))
    assert agent.init(jax.random.key(0)).target_params is None


def test_temperature_schedule_by_progress(tiny_config):
    cfg = tiny_config.replace(temperature_schedule=((0.5, 0.5), (0.75, 0.25)),
                              gumbel_scale=2.0, exploration_repeat_probability=0.8,
                              exploration_epsilon=0.4)
    progress = (0.0, 0.49, 0.5, 0.74, 0.75, 1.0)
    assert [float(Exploration.scheduled(cfg, p).temperature) for p in progress] == \
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    late = Exploration.scheduled(cfg, 0.8)
    assert float(late.temperature) == 0.25
    assert float(late.gumbel_scale) == 0.5  # 2.0 * 0.25 / 1.0
    assert float(late.dirichlet_fraction) == cfg.search.dirichlet_fraction
    assert float(late.repeat_probability) == np.float32(0.2)  # 0.8 * 0.25 / 1.0
    assert float(late.epsilon) == np.float32(0.1)  # 0.4 * 0.25 / 1.0
    assert float(Exploration.scheduled(cfg, 0.1).repeat_probability) == np.float32(0.8)
    hotter = cfg.replace(temperature_schedule=((0.5, 2.0),))
    assert float(Exploration.scheduled(hotter, 0.6).repeat_probability) == np.float32(0.8)
    no_schedule = Exploration.scheduled(tiny_config, 0.9)
    assert float(no_schedule.temperature) == tiny_config.acting.temperature
    assert float(no_schedule.gumbel_scale) == tiny_config.search.gumbel_scale


def test_greedy_rollouts_do_not_depend_on_the_key(tiny_agent):
    """greedy=True is Exploration.greedy(): no noise, temperature 0, whatever the key."""
    state = tiny_agent.init(jax.random.key(0))
    env_state = tiny_agent.reset(jax.random.key(1))
    with pytest.raises(ValueError, match="either greedy"):
        tiny_agent.rollout(state, env_state, jax.random.key(2), greedy=True,
                           exploration=Exploration.greedy())
    _, greedy_a = tiny_agent.rollout(state, env_state, jax.random.key(2), greedy=True)
    _, greedy_b = tiny_agent.rollout(state, env_state, jax.random.key(3),
                                     exploration=Exploration.greedy())
    np.testing.assert_array_equal(greedy_a.action, greedy_b.action)


@pytest.mark.parametrize("overrides, expected", [
    ({"temperature_schedule": ((0.5, 0.5), (0.4, 0.25))}, "thresholds increasing"),
    ({"temperature_schedule": ((0.5, -1.0),)}, "temperature -1.0"),
    ({"temperature_schedule": (0.5,)}, r"temperature_schedule=\(0\.5,\): 0\.5 is not a"),
    ({"priority_alpha": -1.0}, "priority_alpha=-1.0: expected a value >= 0"),
    ({"priority_beta": 1.5}, r"priority_beta=1.5: expected a value in \[0, 1\]"),
    ({"priority_epsilon": 0.0}, "priority_epsilon=0.0: expected a value > 0"),
    ({"reanalyze_fraction": 1.5}, r"reanalyze_fraction=1.5: expected a value in \[0, 1\]"),
    ({"reanalyze_policy_fraction": -0.1}, "reanalyze_policy_fraction=-0.1"),
    ({"target_ema": 1.0}, r"target_ema=1.0: expected a value in \[0, 1\)"),
    ({"target_ema": 0.9, "target_update_period": 10}, "one way to update the target"),
    ({"target_update_period": -1}, "target_update_period=-1"),
])
def test_bad_machinery_fields_are_named(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        validate(mz.cartpole(**overrides))


def test_prioritised_update_reports_its_metrics(tiny_config):
    cfg = tiny_config.replace(priority_alpha=1.0, priority_beta=0.5,
                              priority_beta_anneal_steps=4, reanalyze_fraction=0.5,
                              target_update_period=2)
    agent = mz.Agent(cfg)
    state = agent.init(jax.random.key(0))
    buffer = agent.init_replay()
    env_state = agent.reset(jax.random.key(1))
    for i in range(3):
        env_state, traj = agent.rollout(state, env_state, jax.random.key(i))
        buffer = agent.add(buffer, traj)
    assert agent.ready_to_learn(buffer)
    state, buffer, metrics = agent.update(state, buffer, jax.random.key(5))
    assert int(state.step) == cfg.learner.updates_per_iteration
    for name in ("priority_mean", "priority_max", "importance_weight_min",
                 "importance_weight_mean", "reanalyze_value_change",
                 "reanalyze_policy_change", "loss"):
        assert np.isfinite(float(metrics[name])), name
    assert 0 < float(metrics["importance_weight_min"]) <= 1
    assert float(metrics["priority_max"]) >= float(metrics["priority_mean"])
    # beta anneals linearly from 0.5 to 1 over 4 learner steps.
    assert float(agent.priority_beta(jnp.int32(2))) == pytest.approx(0.75)
    assert float(agent.priority_beta(jnp.int32(10))) == 1.0


def test_priorities_written_back_are_the_value_errors_by_hand(tiny_config):
    """One learner step on a hand-made buffer: rewards 1, stored root values 7, no episode end.

    Every window's z_0 = 1 + g + g^2 + g^3 * 7 (n = 3, g = 0.997); a fresh network's
    root value is 0, so each sampled start's priority becomes |0 - z_0| + 1e-3 and
    every other start keeps the initial 1.0, which new data would now get too.
    """
    cfg = tiny_config.replace(priority_alpha=1.0, priority_beta=1.0,
                              updates_per_iteration=1, target_update_period=0)
    agent = mz.Agent(cfg)
    state = agent.init(jax.random.key(0))
    b, t = cfg.acting.num_envs, cfg.replay_length
    traj = mz.selfplay.Trajectory(
        observation=jax.random.normal(jax.random.key(1), (b, t, 4)),
        action=jnp.zeros((b, t), jnp.int32), reward=jnp.ones((b, t)),
        terminated=jnp.zeros((b, t), bool), truncated=jnp.zeros((b, t), bool),
        search_policy=jnp.full((b, t, 2), 0.5), root_value=jnp.full((b, t), 7.0),
        final_value=jnp.zeros((b, t)), final_observation=jnp.zeros((b, t, 4)),
        episode_return=jnp.zeros((b, t)),
        episode_length=jnp.zeros((b, t), jnp.int32))
    buffer = agent.add(agent.init_replay(), traj)
    step_key = jax.random.split(jax.random.key(5), 1)[0]  # update's key for its one step
    sampled = agent.make_batch(buffer, step_key, state)
    window = mz.replay.sample(buffer, step_key, cfg.learner.batch_size, cfg.loss.window_length,
                              priority_alpha=1.0)
    starts = np.asarray(window.stream), np.asarray(window.position)
    state, buffer, metrics = agent.update(state, buffer, jax.random.key(5))  # donates buffer
    g = 0.997
    z0 = 1 + g + g**2 + g**3 * 7.0  # 29.863...
    np.testing.assert_allclose(sampled.targets.value[:, 0], z0, rtol=1e-6)
    expected = np.ones((b, t), np.float32)
    expected[starts] = z0 + 1e-3
    np.testing.assert_allclose(buffer.priority, expected, rtol=1e-4)
    assert float(buffer.max_priority) == pytest.approx(z0 + 1e-3, rel=1e-4)
    assert float(metrics["priority_mean"]) == pytest.approx(z0 + 1e-3, rel=1e-4)
    # Equal priorities when it sampled: uniform probabilities, every weight 1.
    assert float(metrics["importance_weight_min"]) == 1.0


def _terminated_window():
    """Rows 0..5 (K = 3, n = 2), termination after row 1; stored policies arbitrary."""
    w = 6
    term = np.zeros(w, bool)
    term[1] = True
    return Window(
        observation=jnp.ones((1, 4)), action=jnp.zeros((1, w), jnp.int32),
        reward=jnp.ones((1, w)), terminated=jnp.asarray(term)[None],
        truncated=jnp.zeros((1, w), bool),
        search_policy=jnp.full((1, w, 2), 0.5), root_value=jnp.full((1, w), 9.0),
        final_value=jnp.zeros((1, w)), stream=jnp.zeros(1, jnp.int32),
        position=jnp.zeros(1, jnp.int32), weight=jnp.ones(1))


def test_no_policy_loss_past_a_termination_but_absorbing_value_and_reward(tiny_config):
    """Past the end only the absorbing targets (value 0, reward 0) are trained on."""
    agent = mz.Agent(tiny_config.replace(unroll_steps=3, td_steps=2))
    params = agent.init(jax.random.key(0)).params
    # A non-uniform policy head, so that the policy loss depends on the target.
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + jnp.array([1.0, 0.0]) if "prediction" in str(path)
        and "Dense_0" in str(path) and "bias" in str(path) and "MLP" not in str(path)
        else x, params)
    window = _terminated_window()

    @jax.jit  # op by op, every op of the targets and the unroll would compile alone
    def loss(window):
        t = window_targets(window, discount=0.5, td_steps=2, unroll_steps=3)
        batch = mz.Batch(observation=window.observation, targets=t, weight=jnp.ones(1))
        return agent.learner.loss(params, batch)[1], t

    base, t = loss(window)
    np.testing.assert_allclose(t.value[0], [1.5, 1, 0, 0])  # z_0 = 1 + 0.5 * 1, then absorbing
    np.testing.assert_allclose(t.reward[0], [1, 1, 0])
    # Changing the stored policies or values past the termination changes nothing.
    changed = window.replace(search_policy=window.search_policy.at[:, 2:].set(
        jnp.array([1.0, 0.0])), root_value=window.root_value.at[:, 2:].set(-40.0))
    other, _ = loss(changed)
    for name in ("value_loss", "policy_loss", "reward_loss"):
        assert float(other[name]) == float(base[name]), name
    # ... while the policy before it does count.
    before = window.replace(search_policy=window.search_policy.at[:, 1].set(
        jnp.array([1.0, 0.0])))
    assert float(loss(before)[0]["policy_loss"]) != float(base["policy_loss"])
