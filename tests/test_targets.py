"""n-step targets checked against values computed by hand.

Setting for every case: discount 0.5, n = 2, K = 3, so windows have 6 rows with
rewards 1..6 and search root values 10..60.
"""

import jax.numpy as jnp
import numpy as np

from muzero_jax.replay import Window
from muzero_jax.targets import window_targets

GAMMA, N, K = 0.5, 2, 3


def _window(terminated=(), truncated=(), final_value=None):
    w = K + N + 1
    term = np.zeros(w, bool)
    trunc = np.zeros(w, bool)
    term[list(terminated)] = True
    trunc[list(truncated)] = True
    policy = np.tile(np.array([[0.25, 0.75]]), (w, 1)) * np.arange(1, w + 1)[:, None] / w
    return Window(
        observation=jnp.zeros((1, 4)),
        action=jnp.arange(w, dtype=jnp.int32)[None] % 2,
        reward=jnp.arange(1.0, w + 1)[None],
        terminated=jnp.asarray(term)[None],
        truncated=jnp.asarray(trunc)[None],
        search_policy=jnp.asarray(policy, jnp.float32)[None],
        root_value=jnp.arange(10.0, 10.0 * (w + 1), 10.0)[None],
        final_value=jnp.asarray(np.zeros(w) if final_value is None else final_value,
                                jnp.float32)[None],
        stream=jnp.zeros(1, jnp.int32), position=jnp.zeros(1, jnp.int32),
        weight=jnp.ones(1),
    )


def _targets(**kw):
    t = window_targets(_window(**kw), discount=GAMMA, td_steps=N, unroll_steps=K)
    return {k: np.asarray(v[0]) for k, v in t.items() if k != "extra"}


def test_value_target_without_episode_end():
    t = _targets()
    # z_k = r_k + 0.5 r_{k+1} + 0.25 v_{k+2}
    np.testing.assert_allclose(t["value"], [1 + 1 + 7.5, 2 + 1.5 + 10, 3 + 2 + 12.5,
                                            4 + 2.5 + 15])
    np.testing.assert_array_equal(t["value_mask"], 1)
    np.testing.assert_allclose(t["reward"], [1, 2, 3])
    np.testing.assert_array_equal(t["reward_mask"], 1)
    np.testing.assert_array_equal(t["policy_mask"], 1)
    np.testing.assert_array_equal(t["actions"], [0, 1, 0])
    np.testing.assert_allclose(t["policy"], np.asarray(_window().search_policy[0, :K + 1]))


def test_value_target_stops_at_termination_and_is_absorbing_after():
    t = _targets(terminated=[1])
    # z_0 = 1 + 0.5 * 2 (the episode ends after row 1); z_1 = 2; then absorbing.
    np.testing.assert_allclose(t["value"], [2, 2, 0, 0])
    np.testing.assert_array_equal(t["value_mask"], [1, 1, 1, 1])
    np.testing.assert_array_equal(t["policy_mask"], [1, 1, 0, 0])
    # r^1, r^2 predict rows 0 and 1; r^3 lies past the end: absorbing reward 0.
    np.testing.assert_allclose(t["reward"], [1, 2, 0])
    np.testing.assert_array_equal(t["reward_mask"], [1, 1, 1])


def test_value_target_bootstraps_at_truncation_mid_window():
    t = _targets(truncated=[1], final_value=[0, 100, 0, 0, 0, 0])
    # z_0 = 1 + 0.5 (2 + 0.5 * 100) = 27; z_1 = 2 + 0.5 * 100 = 52; the rest unknown.
    np.testing.assert_allclose(t["value"][:2], [27, 52])
    np.testing.assert_array_equal(t["value_mask"], [1, 1, 0, 0])
    np.testing.assert_array_equal(t["policy_mask"], [1, 1, 0, 0])
    np.testing.assert_allclose(t["reward"][:2], [1, 2])
    np.testing.assert_array_equal(t["reward_mask"], [1, 1, 0])


def test_termination_inside_the_bootstrap_horizon():
    t = _targets(terminated=[3])
    # z_0, z_1 bootstrap from v_2 = 30, v_3 = 40; z_2 = 3 + 0.5 * 4; z_3 = 4.
    np.testing.assert_allclose(t["value"], [9.5, 13.5, 5, 4])
    np.testing.assert_array_equal(t["value_mask"], 1)
    np.testing.assert_array_equal(t["policy_mask"], 1)


def test_truncation_inside_the_bootstrap_horizon():
    t = _targets(truncated=[2], final_value=[0, 0, 100, 0, 0, 0])
    # z_1 = 2 + 0.5 (3 + 0.5 * 100) = 28.5; z_2 = 3 + 0.5 * 100 = 53; z_3 unknown.
    np.testing.assert_allclose(t["value"][:3], [9.5, 28.5, 53])
    np.testing.assert_array_equal(t["value_mask"], [1, 1, 1, 0])
    np.testing.assert_array_equal(t["reward_mask"], [1, 1, 1])


def test_the_first_end_decides_what_follows():
    # Terminated at row 0, then the next episode is truncated at row 2: everything
    # after row 0 is still the first episode's absorbing state.
    t = _targets(terminated=[0], truncated=[2], final_value=[0, 0, 100, 0, 0, 0])
    np.testing.assert_allclose(t["value"], [1, 0, 0, 0])
    np.testing.assert_array_equal(t["value_mask"], 1)
    np.testing.assert_array_equal(t["policy_mask"], [1, 0, 0, 0])
    np.testing.assert_allclose(t["reward"], [1, 0, 0])
    np.testing.assert_array_equal(t["reward_mask"], 1)


def test_bootstrap_values_can_be_replaced():
    w = _window()
    fresh = jnp.full_like(w.root_value, 4.0)
    t = window_targets(w, discount=GAMMA, td_steps=N, unroll_steps=K, bootstrap_value=fresh)
    np.testing.assert_allclose(t.value[0], [1 + 1 + 1, 2 + 1.5 + 1, 3 + 2 + 1, 4 + 2.5 + 1])
