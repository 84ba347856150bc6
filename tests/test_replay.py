import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import replay
from muzero_jax.selfplay import Trajectory

B, L, T, W = 3, 20, 8, 5


def _trajectory(start):
    """Rows tagged with stream and logical time: reward = 1000 b + t, obs = [t]."""
    t = np.arange(start, start + T)
    b = np.arange(B)[:, None]
    zeros = jnp.zeros((B, T))
    return Trajectory(
        observation=jnp.asarray(np.broadcast_to(t, (B, T))[..., None], jnp.float32),
        action=jnp.asarray((b + t) % 2, jnp.int32),
        reward=jnp.asarray(1000.0 * b + t, jnp.float32),
        terminated=jnp.zeros((B, T), bool), truncated=jnp.zeros((B, T), bool),
        search_policy=jnp.full((B, T, 2), 0.5), root_value=zeros, final_value=zeros,
        final_observation=jnp.zeros((B, T, 1)),
        episode_return=zeros, episode_length=jnp.zeros((B, T), jnp.int32))


def test_add_writes_in_order_and_wraps_around():
    buf = replay.init(B, L, (1,), 2)
    for i in range(3):  # 24 steps into 20 slots: the first 4 are overwritten
        buf = replay.add(buf, _trajectory(i * T))
    assert int(buf.count) == 24
    np.testing.assert_array_equal(buf.reward[1], 1000 + np.r_[20:24, 4:20])
    np.testing.assert_array_equal(buf.priority, 1.0)


def test_samples_are_whole_valid_windows():
    buf = replay.init(B, L, (1,), 2)
    sample = jax.jit(replay.sample, static_argnums=(2, 3))
    for i in range(5):
        buf = replay.add(buf, _trajectory(i * T))
        count = int(buf.count)
        w = sample(buf, jax.random.key(i), 512, W)
        start = np.asarray(w.observation[:, 0])
        # Consecutive positions of one stream ...
        np.testing.assert_array_equal(
            np.asarray(w.reward), np.asarray(w.reward[:, :1]) + np.arange(W))
        np.testing.assert_array_equal(np.asarray(w.reward[:, 0]) // 1000, np.asarray(w.stream))
        # ... all written, none overwritten, and every valid start reachable.
        assert start.min() == max(count - L, 0)
        assert start.max() == count - W
        assert set(np.asarray(w.stream)) == set(range(B))
        np.testing.assert_array_equal(w.weight, 1.0)


def test_num_windows_counts_valid_starts():
    buf = replay.init(B, L, (1,), 2)
    assert int(replay.num_windows(buf, W)) == 0
    buf = replay.add(buf, _trajectory(0))
    assert int(replay.num_windows(buf, W)) == T - W + 1
    for i in range(1, 4):
        buf = replay.add(buf, _trajectory(i * T))
    assert int(replay.num_windows(buf, W)) == L - W + 1


def test_add_rejects_mismatched_trajectories():
    buf = replay.init(B + 1, L, (1,), 2)
    with pytest.raises(ValueError, match="streams"):
        replay.add(buf, _trajectory(0))


def _full_stream(priority, length=6):
    """One stream of `length` positions, all written once (no wrap), with given priorities."""
    buf = replay.init(1, length, (1,), 2)
    buf = buf.replace(observation=jnp.arange(length, dtype=jnp.float32)[None, :, None],
                      reward=jnp.arange(length, dtype=jnp.float32)[None],
                      priority=jnp.asarray([priority], jnp.float32),
                      count=jnp.int32(length))
    return buf


def test_prioritised_probabilities_and_importance_weights_by_hand():
    # W = 3 in 6 written slots: starts 0..3 are valid; slots 4, 5 hold priority 100
    # but cannot start a window. p = [1, 1, 2, 4], alpha = 1: P = [1, 1, 2, 4] / 8.
    buf = _full_stream([1.0, 1.0, 2.0, 4.0, 100.0, 100.0])

    sample = jax.jit(replay.sample, static_argnums=(2, 3),
                     static_argnames="priority_alpha")
    w = sample(buf, jax.random.key(0), 4000, 3, priority_alpha=1.0, priority_beta=1.0)
    start = np.asarray(w.position)
    counts = np.bincount(start, minlength=6)
    assert counts[4] == counts[5] == 0
    np.testing.assert_allclose(counts[:4] / 4000, [1 / 8, 1 / 8, 2 / 8, 4 / 8], atol=0.025)
    # (N P)^-beta with N = 4 valid starts, beta = 1: [2, 2, 1, 0.5], over the max 2.
    expected = {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.25}
    np.testing.assert_allclose(np.asarray(w.weight), [expected[s] for s in start], rtol=1e-6)
    # The window holds the rows that follow its start.
    np.testing.assert_array_equal(np.asarray(w.reward), start[:, None] + np.arange(3))
    np.testing.assert_array_equal(np.asarray(w.observation[:, 0]), start)
    # beta = 0.5: (N P)^-0.5 = [sqrt 2, sqrt 2, 1, 1 / sqrt 2] over sqrt 2.
    w = sample(buf, jax.random.key(0), 4000, 3, priority_alpha=1.0, priority_beta=0.5)
    expected = {0: 1.0, 1: 1.0, 2: 0.5**0.5, 3: 0.5}
    np.testing.assert_allclose(np.asarray(w.weight),
                               [expected[s] for s in np.asarray(w.position)], rtol=1e-6)


def test_prioritised_sampling_never_draws_an_empty_or_unwritten_slot():
    # 3 streams of 20 slots, 8 written: slots 8..19 are empty but given a huge
    # priority, the last W - 1 written slots cannot start a window, and one valid
    # start has priority 0 (it must never be drawn either).
    buf = replay.add(replay.init(B, L, (1,), 2), _trajectory(0))
    priority = np.ones((B, L), np.float32)
    priority[:, 8:] = 1e6
    priority[1, 2] = 0.0
    buf = buf.replace(priority=jnp.asarray(priority))
    w = replay.sample(buf, jax.random.key(3), 2048, W, priority_alpha=1.0)
    start = np.asarray(w.position)
    assert start.max() <= T - W
    drawn = set(zip(np.asarray(w.stream).tolist(), start.tolist(), strict=True))
    assert (1, 2) not in drawn
    assert len(drawn) == B * (T - W + 1) - 1  # every other valid start appears
    assert np.all(np.asarray(w.weight) > 0) and np.all(np.asarray(w.weight) <= 1)


def test_valid_starts_after_wrapping_around():
    buf = replay.init(B, L, (1,), 2)
    for i in range(3):  # 24 positions into 20 slots: logical 4..23 held
        buf = replay.add(buf, _trajectory(i * T))
    valid = np.asarray(replay.valid_starts(buf, W))[0]
    # Logical starts 4..19 are valid; slot = logical % 20, so slots 0..3 hold 20..23.
    np.testing.assert_array_equal(np.flatnonzero(valid), np.arange(4, 20))


def test_priorities_are_written_back_and_new_data_gets_the_max():
    buf = replay.add(replay.init(B, L, (1,), 2), _trajectory(0))
    buf = replay.update_priorities(buf, jnp.array([0, 2]), jnp.array([1, 3]),
                                   jnp.array([5.0, 0.25]))
    assert float(buf.priority[0, 1]) == 5.0 and float(buf.priority[2, 3]) == 0.25
    assert float(buf.priority[1, 1]) == 1.0
    assert float(buf.max_priority) == 5.0
    buf = replay.add(buf, _trajectory(T))
    np.testing.assert_array_equal(buf.priority[:, T:2 * T], 5.0)


def test_observations_reads_any_slots_of_any_stream():
    buf = replay.init(B, L, (1,), 2)
    for i in range(3):
        buf = replay.add(buf, _trajectory(i * T))
    obs = replay.observations(buf, jnp.array([2, 0]), jnp.array([[0, 19], [3, 4]]))
    assert obs.shape == (2, 2, 1) and obs.dtype == jnp.float32
    # Slots 0..3 hold logical 20..23 after the wrap; slot 19 holds 19.
    np.testing.assert_array_equal(obs[..., 0], [[20, 19], [23, 4]])


def test_final_observations_of_truncated_rows_are_kept_in_a_ring():
    """Truncations every 4th step (a time limit of 4): M = 20 // 4 + 2 = 7 ring slots."""
    buf = replay.init(B, L, (1,), 2, max_episode_steps=4)
    assert buf.final_observation.shape == (B, 7, 1)
    for i in range(4):  # 32 positions into 20 slots: logical 12..31 held
        traj = _trajectory(i * T)
        t = np.arange(i * T, (i + 1) * T)
        truncated = np.broadcast_to(t % 4 == 3, (B, T))
        # The final observation of row t is -(1000 b + t), unlike any stored observation.
        final = -(1000.0 * np.arange(B)[:, None] + t)
        buf = replay.add(buf, traj.replace(truncated=jnp.asarray(truncated),
                                           final_observation=jnp.asarray(final)[..., None]))
    np.testing.assert_array_equal(buf.final_count, 8)
    stream = jnp.array([0, 1, 2, 2, 1])
    position = jnp.array([15, 31, 19, 20, 3])  # held truncations; a plain row; overwritten
    obs, found = replay.final_observations(buf, stream, position)
    np.testing.assert_array_equal(found, [True, True, True, False, False])
    np.testing.assert_array_equal(obs[:3, 0], [-15, -1031, -2019])
    # Rows that were not truncated wrote nothing: the ring holds exactly the last 7.
    np.testing.assert_array_equal(np.sort(np.asarray(buf.final_position[0])),
                                  [7, 11, 15, 19, 23, 27, 31])


def test_ring_size_covers_every_truncation_still_held():
    assert replay.final_slots(20, 4) == 7
    assert replay.final_slots(7_812, 27_000) == 2  # atari_paper: 1M positions / 128 streams
    assert replay.final_slots(20, None) == 20  # no known time limit: one per position
