from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from muzero_jax import support
from muzero_jax.learner import Batch, cross_entropy, make_schedule, scale_gradient
from muzero_jax.targets import Targets


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = jnp.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(scale_gradient(x, 0.5), x)
    grad = jax.grad(lambda x: jnp.sum(scale_gradient(x, 0.5) * 3.0))(x)
    np.testing.assert_allclose(grad, 1.5)


def test_cross_entropy_known_value():
    logits = jnp.log(jnp.array([0.25, 0.75]))
    assert float(cross_entropy(jnp.array([1.0, 0.0]), logits)) == pytest.approx(np.log(4))


def _batch(agent, n=8, seed=0):
    k = agent.config.unroll_steps
    rng = np.random.default_rng(seed)
    obs = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
    policy = rng.dirichlet([1, 1], size=(n, k + 1)).astype(np.float32)
    targets = Targets(
        actions=jnp.asarray(rng.integers(2, size=(n, k)), jnp.int32),
        value=jnp.asarray(rng.uniform(0, 50, size=(n, k + 1)), jnp.float32),
        value_mask=jnp.ones((n, k + 1)),
        reward=jnp.ones((n, k)), reward_mask=jnp.ones((n, k)),
        policy=jnp.asarray(policy), policy_mask=jnp.ones((n, k + 1)))
    return Batch(observation=obs, targets=targets, weight=jnp.ones(n))


def test_fresh_network_loss_is_the_uniform_cross_entropy(tiny_agent):
    """Zero-initialised heads predict uniform distributions over every support."""
    cfg = tiny_agent.config
    state = tiny_agent.init(jax.random.key(0))
    batch = _batch(tiny_agent)
    _, m = tiny_agent.learner.loss(state.params, batch)
    value_atoms = 2 * cfg.value_support_size + 1
    reward_atoms = 2 * cfg.reward_support_size + 1
    # Uniform predictions: each cross-entropy is log(atoms); the root counts once and
    # the K unrolled steps weigh 1/K each, so value and policy sum to 2 log(atoms).
    assert float(m["value_loss"]) == pytest.approx(2 * np.log(value_atoms), rel=1e-5)
    assert float(m["policy_loss"]) == pytest.approx(2 * np.log(2), rel=1e-5)
    assert float(m["reward_loss"]) == pytest.approx(np.log(reward_atoms), rel=1e-5)


def test_masks_and_weights_remove_terms(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    batch = _batch(tiny_agent)
    t = batch.targets
    masked = batch.replace(targets=t.replace(value_mask=jnp.zeros_like(t.value_mask),
                                             reward_mask=jnp.zeros_like(t.reward_mask),
                                             policy_mask=jnp.zeros_like(t.policy_mask)))
    _, m = tiny_agent.learner.loss(state.params, masked)
    assert float(m["value_loss"]) == float(m["policy_loss"]) == float(m["reward_loss"]) == 0.0
    total, m = tiny_agent.learner.loss(state.params, batch.replace(weight=jnp.zeros(8)))
    assert float(total) == pytest.approx(tiny_agent.config.weight_decay * float(m["l2"]))


def test_learning_fits_a_fixed_batch(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    batch = _batch(tiny_agent)
    first = None
    for _ in range(150):
        state, m = tiny_agent.learn(state, batch)
        first = first if first is not None else float(m["loss"])
    assert int(state.step) == 150
    assert float(m["loss"]) < 0.6 * first
    # The value head has moved towards the targets (mean 25 on its support).
    root = tiny_agent.model.initial_inference(state.params, batch.observation)
    err_before = np.abs(np.asarray(batch.targets.value[:, 0])).mean()
    err_after = np.abs(np.asarray(root.value - batch.targets.value[:, 0])).mean()
    assert err_after < 0.5 * err_before
    assert np.isfinite(float(m["grad_norm"]))


def test_gradient_into_dynamics_is_halved(tiny_agent):
    """d(loss)/d(root state) through the unroll is half what it is without scaling."""
    model = tiny_agent.model
    params = tiny_agent.init(jax.random.key(0)).params
    s0 = model.initial_inference(params, jnp.ones((1, 4))).state
    a = jnp.zeros((1,), jnp.int32)

    def reward_after_one_step(s, scale):
        return model.recurrent_inference(params, scale_gradient(s, scale), a).state.sum()

    full = jax.grad(reward_after_one_step)(s0, 1.0)
    half = jax.grad(reward_after_one_step)(s0, 0.5)
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-6)


def test_schedule_warms_up_then_decays(tiny_config):
    cfg = replace(tiny_config, learning_rate=1.0, lr_warmup_steps=10, lr_decay_steps=100,
                  lr_end_fraction=0.1)
    schedule = make_schedule(cfg)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(110)) == pytest.approx(0.1)


def test_sgd_with_momentum_is_selectable(tiny_config):
    import muzero_jax as mz
    agent = mz.Agent(replace(tiny_config, optimizer="sgd", learning_rate=0.05))
    state = agent.init(jax.random.key(0))
    assert any(isinstance(s, optax.TraceState)
               for s in jax.tree.leaves(state.opt_state, is_leaf=lambda x: isinstance(
                   x, optax.TraceState)))
    state, m = agent.learn(state, _batch(agent))
    assert np.isfinite(float(m["loss"]))


def test_value_target_reaches_the_support_edge_without_clipping(tiny_agent):
    # The CartPole value support covers 1 / (1 - 0.997) = 333 (validated by config).
    assert support.max_scalar(tiny_agent.config.value_support_size) >= 333
