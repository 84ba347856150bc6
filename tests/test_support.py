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
