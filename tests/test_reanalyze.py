"""Reanalyze targets computed by hand.

One stream of 8 positions with reward t and observation [t] at logical time t;
discount 0.5, n = 2, K = 1, so windows have W = 4 rows.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import replay
from muzero_jax.reanalyze import reanalyze
from muzero_jax.selfplay import Trajectory
from muzero_jax.targets import window_targets

GAMMA, N, K, W = 0.5, 2, 1, 4
# Jitted: called op by op, each of these compiles dozens of small programs.
_sample = jax.jit(replay.sample, static_argnums=(2, 3))
_targets = jax.jit(functools.partial(window_targets, discount=GAMMA, td_steps=N,
                                     unroll_steps=K))


def _buffer():
    t = np.arange(8, dtype=np.float32)[None]
    traj = Trajectory(
        observation=jnp.asarray(t[..., None]), action=jnp.zeros((1, 8), jnp.int32),
        reward=jnp.asarray(t), terminated=jnp.zeros((1, 8), bool),
        truncated=jnp.zeros((1, 8), bool),
        search_policy=jnp.tile(jnp.array([0.9, 0.1]), (1, 8, 1)),
        root_value=jnp.full((1, 8), 50.0), final_value=jnp.zeros((1, 8)),
        final_observation=jnp.asarray(t[..., None]),
        episode_return=jnp.zeros((1, 8)), episode_length=jnp.zeros((1, 8), jnp.int32))
    return jax.jit(replay.add)(replay.init(1, 8, (1,), 2), traj)


def _windows(buf, starts):
    """Windows starting at the given slots of stream 0 (uniform weights)."""
    return _windows_at(buf, tuple(starts))


@functools.partial(jax.jit, static_argnums=1)
def _windows_at(buf, starts):
    w = replay.sample(buf, jax.random.key(0), len(starts), W)
    slots = replay.window_slots(jnp.asarray(starts), W, buf.length)
    take = lambda x: x[0][slots]  # noqa: E731
    return w.replace(
        observation=buf.observation[0, jnp.asarray(starts)], action=take(buf.action),
        reward=take(buf.reward), terminated=take(buf.terminated),
        truncated=take(buf.truncated), search_policy=take(buf.search_policy),
        root_value=take(buf.root_value), final_value=take(buf.final_value),
        stream=jnp.zeros(len(starts), jnp.int32), position=jnp.asarray(starts, jnp.int32))


def value_fn(obs):
    """A tiny known model: the value of observation [t] is 100 + t."""
    return 100.0 + obs[:, 0]


def policy_fn(obs):
    """... and its search policy there is [t / 10, 1 - t / 10]."""
    return jnp.stack([obs[:, 0] / 10, 1 - obs[:, 0] / 10], axis=-1)


def test_reanalyzed_targets_by_hand():
    buf = _buffer()
    window = _windows(buf, [1, 3])
    boot, _, policy, stats = jax.jit(functools.partial(
        reanalyze, value_fn=value_fn, policy_fn=policy_fn, num_values=1, num_policies=1,
        td_steps=N, unroll_steps=K))(buf, window)
    targets = _targets(window.replace(search_policy=policy), bootstrap_value=boot)
    # Window 0 starts at t = 1: z_0 = 1 + 0.5 * 2 + 0.25 * v(o_3) = 2 + 0.25 * 103 = 27.75,
    # z_1 = 2 + 0.5 * 3 + 0.25 * v(o_4) = 3.5 + 0.25 * 104 = 29.5.
    np.testing.assert_allclose(targets.value[0], [27.75, 29.5])
    # Its policy targets at t = 1, 2 come from the fresh search.
    np.testing.assert_allclose(targets.policy[0], [[0.1, 0.9], [0.2, 0.8]], rtol=1e-6)
    # Window 1 (t = 3) is not reanalyzed: stored root values 50 and stored policies.
    np.testing.assert_allclose(targets.value[1], [3 + 2 + 12.5, 4 + 2.5 + 12.5])
    np.testing.assert_allclose(targets.policy[1], [[0.9, 0.1], [0.9, 0.1]])
    # |fresh - stored| values: |103 - 50|, |104 - 50|; policies move by 0.8 and 0.7.
    assert float(stats["reanalyze_value_change"]) == pytest.approx(53.5)
    assert float(stats["reanalyze_policy_change"]) == pytest.approx(0.75)


def test_fresh_values_without_fresh_policies():
    buf = _buffer()
    window = _windows(buf, [2, 0])
    boot, _, policy, stats = jax.jit(functools.partial(
        reanalyze, value_fn=value_fn, policy_fn=None, num_values=2, num_policies=0,
        td_steps=N, unroll_steps=K))(buf, window)
    # Rows n..n+K = 2, 3 of each window hold the fresh values of o_{start+2}, o_{start+3}.
    np.testing.assert_allclose(boot, [[50, 50, 104, 105], [50, 50, 102, 103]])
    np.testing.assert_array_equal(policy, window.search_policy)
    assert "reanalyze_policy_change" not in stats


def test_reanalyze_rejects_more_policies_than_values():
    buf = _buffer()
    with pytest.raises(ValueError, match="num_policies=2, num_values=1"):
        reanalyze(buf, _windows(buf, [0, 1]), value_fn=value_fn, policy_fn=policy_fn,
                  num_values=1, num_policies=2, td_steps=N, unroll_steps=K)


def test_agent_reanalyzes_with_a_fresh_network(tiny_config):
    """Zero-initialised heads: every fresh value is 0 and every fresh policy uniform.

    So with a whole batch reanalyzed, each value target is the bare discounted
    reward sum, where the stored root values (7) would have added 7 gamma^n.
    """
    import muzero_jax as mz

    cfg = tiny_config.replace(reanalyze_fraction=1.0,
                              reanalyze_policy_fraction=1.0, target_update_period=0)
    agent = mz.Agent(cfg)
    state = agent.init(jax.random.key(0))
    b, t = cfg.acting.num_envs, cfg.replay_length
    traj = Trajectory(
        observation=jax.random.normal(jax.random.key(1), (b, t, 4)),
        action=jnp.zeros((b, t), jnp.int32), reward=jnp.ones((b, t)),
        terminated=jnp.zeros((b, t), bool), truncated=jnp.zeros((b, t), bool),
        search_policy=jnp.tile(jnp.array([1.0, 0.0]), (b, t, 1)),
        root_value=jnp.full((b, t), 7.0), final_value=jnp.zeros((b, t)),
        final_observation=jnp.zeros((b, t, 4)),
        episode_return=jnp.zeros((b, t)), episode_length=jnp.zeros((b, t), jnp.int32))
    buf = agent.add(agent.init_replay(), traj)
    with pytest.raises(ValueError, match="pass the TrainState"):
        agent.make_batch(buf, jax.random.key(2))
    batch = agent.make_batch(buf, jax.random.key(2), state)
    g, n = cfg.loss.discount, cfg.loss.td_steps
    reward_sum = sum(g**j for j in range(n))
    np.testing.assert_allclose(batch.targets.value, reward_sum, rtol=1e-5)
    np.testing.assert_allclose(batch.targets.policy, 0.5, atol=1e-6)
    stored = tiny_config.replace(target_update_period=0)
    plain = mz.Agent(stored).make_batch(buf, jax.random.key(2))
    np.testing.assert_allclose(plain.targets.value, reward_sum + g**n * 7.0, rtol=1e-5)


def _value_head(params, atom):
    """`params` with a value head that puts all its mass on `atom` for every state."""
    head = params["params"]["prediction"]["Dense_1"]
    logits = jnp.full(head["bias"].shape, -1e9).at[atom].set(0.0)
    return jax.tree_util.tree_map_with_path(
        lambda path, x: (jnp.zeros_like(x) if "kernel" in str(path) else logits)
        if "prediction" in str(path) and "'Dense_1'" in str(path) else x, params)


@pytest.mark.parametrize("fresh_by", ["target_network", "reanalyze"])
def test_value_target_at_a_time_limit_moves_with_the_fresh_network(tiny_config, fresh_by):
    """Episodes truncated at a 5-step limit; then the network giving fresh values changes.

    Every value becomes V1 = h^-1(2) (all mass on atom +2) where it was V0 (a fresh
    network's). Target z_k then moves by g^d (V1 - V0): d = n where the n-step sum
    runs through, and d = r - k + 1 where it stops at a truncation on row r, whose
    bootstrap is the value of the observation the episode ended on. A value kept
    from acting time would not move there at all.
    """
    import muzero_jax as mz

    machinery = ({"target_update_period": 100} if fresh_by == "target_network" else
                 {"target_update_period": 0, "reanalyze_fraction": 1.0,
                  "reanalyze_policy_fraction": 0.0})
    cfg = tiny_config.replace(max_episode_steps=5, **machinery)
    agent = mz.Agent(cfg)
    state = agent.init(jax.random.key(0))
    buffer, env_state = agent.init_replay(), agent.reset(jax.random.key(1))
    for i in range(4):
        env_state, traj = agent.rollout(state, env_state, jax.random.key(2 + i))
        assert not np.any(np.asarray(traj.terminated))  # CartPole cannot fall in 5 steps
        buffer = agent.add(buffer, traj)
    size = cfg.network.value_support_size
    v1 = float(mz.support.inverse_transform(jnp.float32(2.0)))
    if fresh_by == "target_network":
        changed = state.replace(target_params=_value_head(state.target_params, size + 2))
    else:
        changed = state.replace(params=_value_head(state.params, size + 2))
    v0 = float(agent.model.initial_inference(state.params, jnp.zeros((1, 4))).value[0])
    key = jax.random.key(9)
    before = agent.make_batch(buffer, key, state)
    after = agent.make_batch(buffer, key, changed)
    # The windows both batches were built from (same key, sampling ignores the network).
    window = _sample(buffer, key, cfg.learner.batch_size, cfg.loss.window_length)
    truncated = np.asarray(window.truncated)
    n, g = cfg.loss.td_steps, cfg.loss.discount
    mask = np.asarray(before.targets.value_mask)
    moved = np.asarray(after.targets.value - before.targets.value)
    at_truncation = 0
    for i in range(cfg.learner.batch_size):
        for k in range(cfg.loss.unroll_steps + 1):
            if not mask[i, k]:
                continue
            ends = np.flatnonzero(truncated[i, k:k + n])
            d = ends[0] + 1 if len(ends) else n
            at_truncation += bool(len(ends))
            assert moved[i, k] == pytest.approx(g**d * (v1 - v0), rel=1e-4), (i, k, d)
    assert at_truncation >= 10  # the time limit is inside many of the targets
