import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import networks
from muzero_jax.config import Config, NetworkConfig
from muzero_jax.networks import scale_hidden_state


def _jitted(model):
    """`model`'s init and inference functions jitted: op by op, each call compiles dozens
    of small programs."""
    return types.SimpleNamespace(init=jax.jit(model.init),
                                 initial_inference=jax.jit(model.initial_inference),
                                 recurrent_inference=jax.jit(model.recurrent_inference))


@pytest.fixture(scope="module")
def model(tiny_agent):
    return _jitted(tiny_agent.model)


def test_inference_shapes_and_dtypes(model):
    params = model.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (5, 4))
    root = model.initial_inference(params, obs)
    assert root.state.shape == (5, 8) and root.state.dtype == jnp.float32
    assert root.policy_logits.shape == (5, 2)
    assert root.value_logits.shape == (5, 41) and root.value.shape == (5,)
    assert root.reward.shape == (5,)
    step = model.recurrent_inference(params, root.state, jnp.array([0, 1, 0, 1, 1]))
    assert step.state.shape == (5, 8)
    assert step.reward_logits.shape == (5, 5) and step.reward.shape == (5,)


def test_hidden_states_are_min_max_scaled(model):
    params = model.init(jax.random.key(0))
    obs = 10 * jax.random.normal(jax.random.key(1), (7, 4))
    for s in (model.initial_inference(params, obs).state,
              model.recurrent_inference(params, model.initial_inference(params, obs).state,
                                        jnp.ones(7, jnp.int32)).state):
        np.testing.assert_allclose(s.min(axis=1), 0.0, atol=1e-6)
        np.testing.assert_allclose(s.max(axis=1), 1.0, atol=1e-5)


def test_scale_hidden_state_of_a_constant_state_is_finite():
    s = scale_hidden_state(jnp.full((2, 3), 4.0))
    np.testing.assert_array_equal(s, 0.0)


def test_fresh_heads_predict_zero_and_uniform(model):
    params = model.init(jax.random.key(0))
    root = model.initial_inference(params, jnp.ones((3, 4)))
    np.testing.assert_allclose(root.value, 0.0, atol=1e-4)
    np.testing.assert_allclose(jax.nn.softmax(root.policy_logits), 0.5)
    step = model.recurrent_inference(params, root.state, jnp.zeros(3, jnp.int32))
    np.testing.assert_allclose(step.reward, 0.0, atol=1e-4)


def test_actions_change_the_dynamics(model):
    params = model.init(jax.random.key(0))
    s = model.initial_inference(params, jnp.ones((1, 4))).state
    a0 = model.recurrent_inference(params, s, jnp.array([0])).state
    a1 = model.recurrent_inference(params, s, jnp.array([1])).state
    assert np.abs(np.asarray(a0 - a1)).max() > 1e-3


def test_conv_is_flax_conv_with_the_same_parameters():
    """The patch-matmul conv (CPU) keeps nn.Conv's parameter tree and its outputs."""
    import flax.linen as nn

    from muzero_jax.networks import Conv

    x = jax.random.normal(jax.random.key(0), (3, 6, 7, 5))
    for kernel, stride in ((3, 1), (1, 1), (5, 1), (3, 2)):
        ours, flax_conv = Conv(8, kernel, stride), nn.Conv(
            8, (kernel, kernel), strides=(stride, stride), padding="SAME")
        params = flax_conv.init(jax.random.key(1), x)
        assert jax.tree.all(jax.tree.map(
            lambda a, b: a.shape == b.shape and bool((a == b).all()),
            ours.init(jax.random.key(1), x), params))
        np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x),
                                   atol=1e-5)


def test_conv_mlp_network_keeps_flat_hidden_states():
    import muzero_jax as mz
    from muzero_jax.presets import board

    agent = mz.Agent(board("connect_four", network="conv_mlp", resnet_channels=4,
                           representation_blocks=(1, 0, 0), hidden_size=8, latent_size=6))
    model = _jitted(agent.model)
    params = model.init(jax.random.key(0))
    assert "Conv_0" in params["params"]["representation"]
    obs = jnp.zeros((2, 6, 7, 2))
    root = model.initial_inference(params, obs)
    assert root.state.shape == (2, 6) and root.policy_logits.shape == (2, 7)
    step = model.recurrent_inference(params, root.state, jnp.array([0, 6]))
    assert step.state.shape == (2, 6) and step.reward.shape == (2,)


@pytest.mark.parametrize("kind, family", [
    ("mlp", networks.MuZeroNetwork), ("resnet", networks.ResNetMuZeroNetwork),
    ("board", networks.BoardNetwork), ("conv_mlp", networks.ConvMLPNetwork)])
def test_model_reads_the_network_stage_alone(kind, family):
    """`Model` needs the network stage and the env's facts, nothing else; a whole Config
    gives the same model (its network stage)."""
    stage = NetworkConfig(kind=kind, hidden_size=8, latent_size=8, value_support_size=3,
                          reward_support_size=2, resnet_channels=4, dynamics_blocks=1,
                          prediction_blocks=1, head_channels=2,
                          representation_blocks=(1, 0, 0))
    shape = (5,) if kind == "mlp" else (4, 4, 2)
    model = networks.Model(stage, num_actions=3, observation_shape=shape)
    whole = networks.Model(Config().replace(network=stage, num_simulations=3, td_steps=2),
                           num_actions=3, observation_shape=shape)
    assert type(model.network) is family and model.network == whole.network
    params = jax.eval_shape(model.init, jax.random.key(0))
    root = jax.eval_shape(model.initial_inference, params, jnp.zeros((2, *shape)))
    assert root.policy_logits.shape == (2, 3) and root.value_logits.shape == (2, 7)
    step = jax.eval_shape(model.recurrent_inference, params, root.state,
                          jnp.zeros((2,), jnp.int32))
    assert step.reward_logits.shape == (2, 5)
