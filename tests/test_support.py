import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import support


def test_transform_known_values():
    x = jnp.array([0.0, 3.0, -3.0, 8.0, 99.0])
    # sqrt(4) - 1 = 1, sqrt(9) - 1 = 2, sqrt(100) - 1 = 9, plus eps * x.
    expected = np.array([0.0, 1.003, -1.003, 2.008, 9.099])
    np.testing.assert_allclose(support.transform(x), expected, rtol=1e-6)


def test_inverse_transform_inverts_transform():
    x = jnp.linspace(-5000.0, 5000.0, 2001)
    np.testing.assert_allclose(support.inverse_transform(support.transform(x)), x,
                               rtol=1e-4, atol=1e-3)


def test_two_hot_known_values():
    probs = support.scalar_to_two_hot(jnp.array([0.25, -1.5, 2.0]), 2)
    np.testing.assert_allclose(probs, [
        [0, 0, 0.75, 0.25, 0],
        [0.5, 0.5, 0, 0, 0],  # -1.5: halfway between atoms -2 and -1
        [0, 0, 0, 0, 1.0],  # the top atom: all mass there, nothing past the edge
    ], atol=1e-7)


def test_bottom_edge_atom():
    np.testing.assert_allclose(support.scalar_to_two_hot(jnp.array(-2.0), 2), [1, 0, 0, 0, 0])


def test_values_outside_the_support_clip_to_the_edge_atoms():
    probs = support.scalar_to_support(jnp.array([1e6, -1e6]), 3)
    np.testing.assert_allclose(probs, [[0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0]])


def test_scalar_to_support_of_three():
    # h(3) = 1.003: 0.997 on atom 1, 0.003 on atom 2.
    np.testing.assert_allclose(support.scalar_to_support(jnp.array(3.0), 2),
                               [0, 0, 0, 0.997, 0.003], atol=1e-6)


@pytest.mark.parametrize("size", [2, 20, 300])
def test_round_trip_inside_the_support(size):
    limit = support.max_scalar(size)
    x = jnp.linspace(-limit, limit, 1001)
    probs = support.scalar_to_support(x, size)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    # Logits whose softmax is the two-hot: log of the probabilities.
    back = support.support_to_scalar(jnp.log(jnp.maximum(probs, 1e-30)), size)
    np.testing.assert_allclose(back, x, rtol=2e-4, atol=2e-3)


def test_support_to_scalar_of_a_sharp_atom():
    logits = jnp.full((5,), -1e9).at[4].set(0.0)  # all mass on atom +2
    assert float(support.support_to_scalar(logits, 2)) == pytest.approx(
        float(support.inverse_transform(jnp.float32(2.0))), rel=1e-6)
    assert float(support.inverse_transform(jnp.float32(2.0))) == pytest.approx(7.9523, abs=1e-3)


def test_uniform_logits_mean_zero():
    assert abs(float(support.support_to_scalar(jnp.zeros(41), 20))) < 1e-4


def test_max_scalar_matches_the_paper_support():
    # 601 atoms (S = 300) cover |x| up to h^-1(300): sqrt(58707) - 1 + 58.706 = 300.
    assert support.max_scalar(300) == pytest.approx(58_706, rel=1e-3)


def test_support_to_scalar_rejects_a_wrong_atom_count():
    with pytest.raises(ValueError, match="41"):
        support.support_to_scalar(jnp.zeros(40), 20)


def test_identity_squash_puts_an_outcome_on_its_own_atom():
    # Board games' -1, 0, +1 with S = 1: one atom each, where h spreads a win as
    # 0.585 on the draw's atom and 0.415 on the win's (h(1) = 0.4152).
    outcomes = jnp.array([-1.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(support.scalar_to_support(outcomes, 1, "identity"),
                               [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.5, 0.5]], atol=1e-7)
    np.testing.assert_allclose(support.scalar_to_support(jnp.array(1.0), 1),
                               [0, 0.5848, 0.4152], atol=1e-4)


def test_identity_squash_reads_back_the_expectation():
    probs = jnp.array([0.1, 0.2, 0.7])  # atoms -1, 0, 1: expectation 0.6, no h^-1
    assert float(support.support_to_scalar(jnp.log(probs), 1, "identity")) == pytest.approx(
        0.6, abs=1e-6)
    x = jnp.linspace(-3.0, 3.0, 61)
    back = support.support_to_scalar(
        jnp.log(jnp.maximum(support.scalar_to_support(x, 3, "identity"), 1e-30)), 3,
        "identity")
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_support_sizes_under_each_squash():
    assert support.max_scalar(1, squash="identity") == 1.0
    assert support.size_needed(1.0, "identity") == 1
    assert support.size_needed(333.4, "identity") == 334
    assert support.size_needed(333.4) == 18  # h(333.4) = 17.6
    with pytest.raises(ValueError, match="squash='log': expected one of"):
        support.scalar_to_support(jnp.zeros(2), 1, "log")
