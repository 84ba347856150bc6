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
