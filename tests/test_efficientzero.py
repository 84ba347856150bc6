"""EfficientZero's three additions, hand-computed: the consistency loss and its
stop-gradient, the value prefix's targets and search rewards, the off-policy horizon."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import extensions, replay
from muzero_jax.config import ConfigError, NetworkConfig, validate
from muzero_jax.extensions.consistency import (
    Consistency,
    consistency_loss,
    negative_cosine_similarity,
)
from muzero_jax.networks import Model
from muzero_jax.pieces import make_pieces
from muzero_jax.replay import Window
from muzero_jax.search import Exploration, make_prefix_recurrent_fn, prefix_root_embedding
from muzero_jax.targets import (
    corrected_td_steps,
    horizon_values,
    n_step_values,
    value_prefix_targets,
    window_targets,
)

SMALL = dict(hidden_size=8, latent_size=6, num_hidden_layers=1, value_support_size=3,
             reward_support_size=2)


@pytest.fixture(scope="module")
def prefix_model():
    network = NetworkConfig(**SMALL, value_prefix=True, lstm_hidden_size=4, lstm_horizon_len=2,
                            projection_size=5)
    model = Model(network, num_actions=3, observation_shape=(4,))
    return model, jax.jit(model.init)(jax.random.key(0))


# --- consistency ----------------------------------------------------------------------


def test_negative_cosine_similarity_by_hand():
    prediction = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    target = jnp.array([[1.0, 1.0], [0.0, -1.0], [6.0, 8.0]])
    np.testing.assert_allclose(negative_cosine_similarity(prediction, target),
                               [-1 / np.sqrt(2), 1.0, -1.0], rtol=1e-6)


def test_consistency_gradient_reaches_g_only_and_projection_shapes(prefix_model):
    model, params = prefix_model
    state = jax.random.uniform(jax.random.key(1), (3, 6))
    obs = jax.random.normal(jax.random.key(2), (3, 4))
    shapes = jax.eval_shape(lambda: [model.project(params, state, predict=p)
                                     for p in (False, True)])
    assert [x.shape for x in shapes] == [(3, 5), (3, 5)]

    def total(p, s, o):
        return jnp.sum(consistency_loss(model, p, s, o))

    grads, to_state, to_obs = jax.jit(jax.grad(total, argnums=(0, 1, 2)))(params, state, obs)
    assert np.all(np.asarray(to_obs) == 0.0)  # the target branch: stop-gradient
    assert np.any(np.asarray(to_state) != 0.0)
    # By the parameters: h's (target branch only) get nothing, the predictor something.
    leaves = jax.tree.leaves(grads["params"]["representation"])
    assert all(np.all(np.asarray(x) == 0.0) for x in leaves)
    assert any(np.any(np.asarray(x) != 0.0) for x in jax.tree.leaves(grads["params"]["predictor"]))


def test_projection_flattens_image_states():
    network = NetworkConfig(kind="board", hidden_size=8, latent_size=6, resnet_channels=4,
                            representation_blocks=(1, 0, 0), dynamics_blocks=1,
                            prediction_blocks=0, head_channels=2, action_embedding_size=2,
                            value_support_size=2, reward_support_size=1, projection_size=7)
    model = Model(network, num_actions=3, observation_shape=(5, 5, 2))
    params = jax.eval_shape(model.init, jax.random.key(0))
    shape = jax.eval_shape(lambda p: model.project(
        p, model.initial_inference(p, jnp.ones((2, 5, 5, 2))).state, predict=True), params)
    assert shape.shape == (2, 7)


def test_consistency_targets_are_the_next_rows_observations_masked_past_the_end():
    buffer = replay.init(1, 8, (1,), 2)
    buffer = buffer.replace(observation=jnp.arange(8.0).reshape(1, 8, 1),
                            count=jnp.int32(8))
    window = dataclasses.replace(_window([0, 0, 0], [False, True, False]),
                                 stream=jnp.zeros((1,), jnp.int32),
                                 position=jnp.full((1,), 3, jnp.int32))
    past_end = jnp.array([[False, False, True]])
    out = Consistency(weight=2.0).targets(buffer, window, past_end, past_end, unroll_steps=2)
    np.testing.assert_array_equal(out["consistency_observation"][0, :, 0], [4.0, 5.0])
    np.testing.assert_array_equal(out["consistency_mask"], [[1.0, 0.0]])


# --- value prefix -----------------------------------------------------------------------


def _window(reward, terminated, truncated=None):
    n = len(reward)
    row = lambda x, dtype=jnp.float32: jnp.asarray(x, dtype)[None]  # noqa: E731
    return Window(observation=jnp.zeros((1, 1)), action=jnp.zeros((1, n), jnp.int32),
                  reward=row(reward), terminated=row(terminated, bool),
                  truncated=row(truncated or [False] * n, bool),
                  search_policy=jnp.full((1, n, 2), 0.5), root_value=row([10.0] * n),
                  final_value=jnp.zeros((1, n)), stream=jnp.zeros((1,), jnp.int32),
                  position=jnp.zeros((1,), jnp.int32), weight=jnp.ones((1,)))


def test_value_prefix_targets_across_an_episode_end():
    # K = 4, n = 1: rows 0..5. The episode terminates on row 1: rewards of rows 2, 3 are
    # the absorbing state's (0), so the prefix stays at 1 + 2 = 3.
    window = _window([1.0, 2.0, 5.0, 7.0, 0.0, 0.0], [False, True] + [False] * 4)
    @jax.jit
    def prefixes(window):
        reward = window_targets(window, discount=1.0, td_steps=1, unroll_steps=4).reward
        return reward, value_prefix_targets(reward, 5), value_prefix_targets(reward, 2)

    reward, whole, by_two = prefixes(window)
    np.testing.assert_array_equal(reward, [[1.0, 2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(whole, [[1, 3, 3, 3]])
    # Restarting every 2 steps: steps 1-2 and 3-4 are summed apart.
    np.testing.assert_array_equal(by_two, [[1, 3, 0, 0]])
    _, _, no_end = prefixes(_window([1.0, 2.0, 5.0, 7.0, 0.0, 0.0], [False] * 6))
    np.testing.assert_array_equal(no_end, [[1, 3, 5, 12]])


def test_search_reward_is_the_prefix_difference_and_restarts(prefix_model):
    model, params = prefix_model  # lstm_horizon_len 2
    recurrent_fn = jax.jit(make_prefix_recurrent_fn(model, discount=0.9))
    prefix_inference = jax.jit(model.prefix_inference)
    state = model.initial_inference(params, jnp.ones((2, 4))).state
    root = prefix_root_embedding(model, state)
    a0, a1, a2 = (jnp.array([0, 1]), jnp.array([2, 2]), jnp.array([1, 0]))
    # Perturb the prefix head so that prefixes are non-zero.
    params = jax.tree.map(lambda x: x + 0.1, params)
    out1, child1 = recurrent_fn(params, None, a0, root)
    ref1, carry1 = prefix_inference(params, state, a0, model.initial_carry(2))
    np.testing.assert_allclose(out1.reward, ref1.reward, rtol=1e-6)  # parent prefix 0
    np.testing.assert_array_equal(child1.depth, [1, 1])
    out2, child2 = recurrent_fn(params, None, a1, child1)
    ref2, _ = prefix_inference(params, ref1.state, a1, carry1)
    np.testing.assert_allclose(out2.reward, ref2.reward - ref1.reward, rtol=1e-5, atol=1e-6)
    # Depth 2 = the horizon: the child restarts (carry 0, prefix 0) for its own children.
    np.testing.assert_array_equal(child2.prefix, [0.0, 0.0])
    assert all(np.all(np.asarray(x) == 0.0) for x in child2.carry)
    out3, _ = recurrent_fn(params, None, a2, child2)
    ref3, _ = prefix_inference(params, ref2.state, a2, model.initial_carry(2))
    np.testing.assert_allclose(out3.reward, ref3.reward, rtol=1e-6)
    np.testing.assert_allclose(out3.discount, [0.9, 0.9])


# --- off-policy correction ----------------------------------------------------------


def test_corrected_td_steps_for_given_ages():
    # EfficientZero's Atari figures: n = 5, one step less per 30,000 transitions of age.
    ages = jnp.array([0, 29_999, 30_000, 59_999, 60_000, 90_000, 120_000, 10**7])
    np.testing.assert_array_equal(
        corrected_td_steps(ages, td_steps=5, correction_steps=30_000), [5, 5, 4, 4, 3, 2, 1, 1])


def test_horizon_values_by_hand():
    reward = jnp.array([1.0, 2.0, 4.0, 8.0, 0.0, 0.0])
    boot = jnp.array([0.0, 0.0, 16.0, 32.0, 64.0, 0.0])
    values = jax.jit(lambda done, n: horizon_values(
        reward, done, jnp.zeros(6, bool), boot, jnp.zeros(6), n, discount=0.5, td_steps=3,
        num_values=3))
    # n = 2 of td_steps 3, gamma 0.5: z_0 = 1 + 0.5 * 2 + 0.25 * 16, z_1 = 2 + 2 + 0.25 * 32,
    # z_2 = 4 + 4 + 0.25 * 64.
    np.testing.assert_allclose(values(jnp.zeros(6, bool), 2), [6.0, 12.0, 24.0])
    # n = td_steps is n_step_values: z_0 = 1 + 1 + 1 + 0.125 * 32.
    np.testing.assert_allclose(values(jnp.zeros(6, bool), 3), n_step_values(
        reward, jnp.zeros(6, bool), jnp.zeros(6, bool), boot, jnp.zeros(6), discount=0.5,
        td_steps=3, num_values=3))
    np.testing.assert_allclose(values(jnp.zeros(6, bool), 3)[0], 7.0)
    # A termination on row 1 ends z_0 after two rewards, z_1 after one.
    np.testing.assert_allclose(values(jnp.zeros(6, bool).at[1].set(True), 2)[:2], [2.0, 2.0])


# --- config ---------------------------------------------------------------------------


def test_defaults_off_and_default_parameters_unchanged():
    config = mz.Config()
    assert not config.network.value_prefix and config.network.projection_size == 0
    assert config.loss.consistency_loss_weight == 0 and config.loss.off_policy_correction_steps == 0
    assert extensions.active(config) == ()
    params = jax.eval_shape(Model(NetworkConfig(**SMALL), 2, (4,)).init, jax.random.key(0))
    assert set(params["params"]) == {"representation", "dynamics", "prediction"}


@pytest.mark.parametrize("changes, message", [
    (dict(consistency_loss_weight=2.0), "consistency_loss_weight=2.0 with projection_size=0"),
    (dict(projection_size=8), "consistency_loss_weight=0.0 with projection_size=8"),
    (dict(value_prefix=True, counterfactual_rewards=True), "counterfactual_rewards=True"),
    (dict(lstm_horizon_len=0), "lstm_horizon_len=0"),
    (dict(off_policy_correction_steps=-1), "off_policy_correction_steps=-1"),
    (dict(mode="alphazero", unroll_steps=0, value_prefix=True), "value_prefix/projection_size"),
])
def test_bad_options_refused_in_one_line(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        validate(mz.Config().replace(**changes))
    assert "\n" not in str(info.value)


def test_value_prefix_needs_a_reward_support_for_its_sums():
    config = mz.minatar(value_prefix=True)  # reward support 1 holds |reward| <= 3.3
    with pytest.raises(ConfigError, match="value prefixes of 5 steps reach 5 x 1; expected "
                                          "reward_support_size >= 2"):
        validate(config, max_abs_reward=1.0)
    wide = config.replace(reward_support_size=2)
    validate(wide, max_abs_reward=1.0)
    # The run-time limit: the value support's (1 - 0.99) h^-1(10) = 1.2 as without a prefix,
    # the reward support's h^-1(2) = 8.0 shared by 5 steps' rewards (1.6).
    plain = mz.support.reward_limit(wide.replace(value_prefix=False), 1.0)
    assert plain == pytest.approx(0.01 * mz.support.max_scalar(10))
    assert mz.support.reward_limit(wide, 1.0) == plain
    narrow = wide.replace(lstm_horizon_len=5, unroll_steps=5, value_support_size=30)
    assert mz.support.reward_limit(narrow, 1.0) == pytest.approx(mz.support.max_scalar(2) / 5)


def test_two_player_refuses_value_prefix_before_compiling():
    config = mz.presets.PRESETS["tic_tac_toe"]().replace(value_prefix=True)
    with pytest.raises(ConfigError, match="value_prefix=True: two-player"):
        make_pieces(config)


# --- end to end -----------------------------------------------------------------------


def test_one_training_iteration_with_all_three(tiny_config):
    config = tiny_config.replace(
        network=dict(value_prefix=True, lstm_hidden_size=4, lstm_horizon_len=1,
                     projection_size=4),
        consistency_loss_weight=2.0, off_policy_correction_steps=16)
    assert config.learner.use_target_network  # fresh bootstrap values at each window's n
    pieces = make_pieces(config)
    state = jax.jit(pieces.init)(jax.random.key(0))
    buffer = pieces.init_replay()
    env_state = pieces.actor.reset(jax.random.key(1), config.acting.num_envs)
    rollout = jax.jit(pieces.actor.rollout_fn, static_argnums=4)
    for i in range(2):
        env_state, trajectory = rollout(state.params, env_state, jax.random.key(2 + i),
                                        Exploration.training(config), 8)
        buffer = jax.jit(replay.add)(buffer, trajectory)
    new_state, _, metrics = pieces.jitted_update(state, buffer, jax.random.key(5))
    assert int(new_state.step) == 2
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["consistency_loss"]) != 0.0
    # Windows start at positions 0..10 of 16 per stream, 4 streams: ages 20..60 env
    # steps, so n = 3 - age // 16 is 1 or 2 of td_steps 3.
    assert 1.0 <= float(metrics["td_steps_mean"]) < 3.0
    assert set(new_state.params["params"]) >= {"value_prefix", "projector", "predictor"}
