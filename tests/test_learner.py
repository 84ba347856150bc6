import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax.extensions.counterfactual import Counterfactual
from muzero_jax.learner import Batch, Learner, cross_entropy, make_schedule, scale_gradient
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
    k = agent.config.loss.unroll_steps
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
    value_atoms = 2 * cfg.network.value_support_size + 1
    reward_atoms = 2 * cfg.network.reward_support_size + 1
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
    assert float(total) == pytest.approx(tiny_agent.config.learner.weight_decay * float(m["l2"]))


def test_counterfactual_reward_loss_is_gs_reward_for_the_move_not_played(tiny_agent):
    """Each unrolled state's move not played adds the cross-entropy of g's reward for
    it (from the same state as the played move), weighted 1/K like the reward loss."""
    from muzero_jax import support

    model, cfg = tiny_agent.model, tiny_agent.config
    k = cfg.loss.unroll_steps
    rng = np.random.default_rng(1)
    params = tiny_agent.init(jax.random.key(0)).params
    params = jax.tree.map(  # off the zero-initialised heads, so states matter
        lambda x: x + 0.3 * jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
    batch = _batch(tiny_agent)
    n = batch.weight.shape[0]
    counter_action = jnp.asarray(rng.integers(2, size=(n, k)), jnp.int32)
    counter_reward = jnp.asarray(rng.uniform(0, 3, size=(n, k)), jnp.float32)
    counter_mask = jnp.ones((n, k)).at[0, 1].set(0.0)
    with_counter = batch.replace(targets=batch.targets.replace(extra=dict(
        counter_action=counter_action, counter_reward=counter_reward,
        counter_mask=counter_mask)))
    learner = Learner(model, cfg.learner, cfg.loss, (Counterfactual(),))
    total, m = learner.loss(params, with_counter)
    base_total, base = tiny_agent.learner.loss(params, batch)
    assert "counterfactual_reward_loss" not in base

    state = model.initial_inference(params, batch.observation).state
    expected = 0.0
    for i in range(k):
        logits = model.reward_logits(params, state, counter_action[:, i])
        target = support.scalar_to_support(counter_reward[:, i], cfg.network.reward_support_size,
                                           cfg.network.support_squash)
        expected = expected + cross_entropy(target, logits) * counter_mask[:, i] / k
        state = model.recurrent_inference(params, state, batch.targets.actions[:, i]).state
    assert float(m["counterfactual_reward_loss"]) == pytest.approx(
        float(jnp.mean(expected)), rel=1e-5)
    assert float(m["counterfactual_reward_loss"]) > 0.1
    assert float(m["reward_loss"]) == pytest.approx(float(base["reward_loss"]), rel=1e-6)
    assert float(total - base_total) == pytest.approx(
        cfg.loss.reward_loss_weight * float(jnp.mean(expected)), rel=1e-4)


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


def _noisy_params(agent, seed=0):
    """Fresh parameters plus noise, so that every head depends on its input."""
    params = agent.init(jax.random.key(seed)).params
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree.unflatten(treedef, [x + 0.3 * jax.random.normal(k, x.shape)
                                        for x, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("step, expected_ratio", [(1, 1.0), (2, 0.5)])
def test_learner_halves_the_gradient_through_states_g_made_not_the_root(
        tiny_config, monkeypatch, step, expected_ratio):
    """The paper's pseudocode: `hidden_state = scale_gradient(hidden_state, 0.5)` after
    each recurrent step. With only the value loss at unroll step k, h's gradient
    passes k - 1 such states: 1 at k = 1 (the root from h is not scaled), 1/2 at k = 2.
    """
    import muzero_jax as mz
    from muzero_jax import learner as learner_module

    agent = mz.Agent(tiny_config.replace(weight_decay=0.0))  # K = 2
    params = _noisy_params(agent)
    batch = _batch(agent)
    only = jnp.zeros((8, 3)).at[:, step].set(1.0)
    t = batch.targets
    batch = batch.replace(targets=t.replace(value_mask=only,
                                            policy_mask=jnp.zeros_like(t.policy_mask),
                                            reward_mask=jnp.zeros_like(t.reward_mask)))

    def representation_grad():  # jitted: op by op, each of the unroll's ops compiles alone
        grads = jax.jit(jax.grad(lambda p: agent.learner.loss(p, batch)[0]))(params)
        return jax.tree.leaves(grads["params"]["representation"])

    scaled = representation_grad()
    monkeypatch.setattr(learner_module, "scale_gradient", lambda x, scale: x)
    unscaled = representation_grad()
    assert max(float(jnp.abs(g).max()) for g in unscaled) > 1e-4  # a gradient to compare
    for a, b in zip(scaled, unscaled, strict=True):
        np.testing.assert_allclose(a, expected_ratio * b, rtol=1e-5, atol=1e-9)


def _value_head_params(agent, logits):
    """Parameters whose value head outputs `logits` for every hidden state (zero kernel)."""
    params = agent.init(jax.random.key(0)).params
    head = params["params"]["prediction"]["Dense_1"]
    assert not np.any(np.asarray(head["kernel"]))  # zero-initialised: the bias is the output
    return jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.asarray(logits, jnp.float32)
        if "prediction" in str(path) and "'Dense_1'" in str(path) and "bias" in str(path)
        else x, params)


def test_value_target_reaches_the_support_edge_without_clipping(tiny_agent):
    """CartPole's largest return 1 / (1 - 0.997) = 333.3 lands inside the 41-atom support.

    h(333) = sqrt(334) - 1 + 0.333 = 17.6087: two-hot weights 0.3913 on atom 17 and
    0.6087 on atom 18 (indices 37, 38), so the value loss is that cross-entropy against
    the prediction, twice (the root, plus K steps at 1/K each). A target past the edge,
    1000 > h^-1(20) = 483, is clipped onto the top atom (index 40).
    """
    cfg = tiny_agent.config
    assert cfg.network.value_support_size == 20
    logits = 0.1 * np.arange(41)
    log_q = logits - np.log(np.sum(np.exp(logits)))
    params = _value_head_params(tiny_agent, logits)
    batch = _batch(tiny_agent)
    for target, expected_ce in ((333.0, -(0.39133 * log_q[37] + 0.60867 * log_q[38])),
                                (1000.0, -log_q[40])):
        t = batch.targets.replace(value=jnp.full_like(batch.targets.value, target))
        _, m = tiny_agent.learner.loss(params, batch.replace(targets=t))
        assert float(m["value_loss"]) == pytest.approx(2 * expected_ce, rel=1e-4), target


def test_schedule_warms_up_then_decays(tiny_config):
    cfg = tiny_config.replace(learning_rate=1.0, lr_warmup_steps=10, lr_decay_steps=100,
                  lr_end_fraction=0.1)
    schedule = make_schedule(cfg.learner)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(110)) == pytest.approx(0.1)


def test_exponential_schedule_is_the_papers(tiny_config):
    # Paper pseudocode (Atari): lr = 0.05 * 0.1 ** (step / 350k).
    cfg = tiny_config.replace(learning_rate=0.05, lr_decay="exponential",
                  lr_decay_steps=350_000, lr_end_fraction=0.1)
    schedule = make_schedule(cfg.learner)
    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(175_000)) == pytest.approx(0.05 * 0.1**0.5)
    assert float(schedule(700_000)) == pytest.approx(0.0005)


def test_sgd_with_momentum_takes_the_papers_steps(tiny_config):
    """SGD, momentum 0.9: the first step is -lr g1, the second -lr (g2 + 0.9 g1)."""
    import muzero_jax as mz
    agent = mz.Agent(tiny_config.replace(optimizer="sgd", learning_rate=0.05,
                             max_grad_norm=None))
    batch = _batch(agent)
    state0 = agent.init(jax.random.key(0))

    @jax.jit  # op by op, each of the unroll's ops would compile alone
    def grad(params):
        return jax.grad(lambda p: agent.learner.loss(p, batch)[0])(params)

    state1, m = agent.learn(state0, batch)
    state2, _ = agent.learn(state1, batch)
    g1, g2 = grad(state0.params), grad(state1.params)
    for p0, p1, p2, a, b in zip(*map(jax.tree.leaves, (state0.params, state1.params,
                                                        state2.params, g1, g2)), strict=True):
        np.testing.assert_allclose(p1 - p0, -0.05 * a, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(p2 - p1, -0.05 * (b + 0.9 * a), rtol=1e-4, atol=1e-7)
    assert np.isfinite(float(m["loss"]))


def test_loss_weights_scale_their_terms(tiny_agent):
    """The total is value_loss_weight * value + policy + reward_loss_weight * reward
    (+ the L2 term), each term as the metrics report it."""
    state = tiny_agent.init(jax.random.key(0))
    batch = _batch(tiny_agent)
    cfg = tiny_agent.config.replace(value_loss_weight=0.25, reward_loss_weight=3.0)
    total, m = Learner(tiny_agent.model, cfg.learner, cfg.loss).loss(state.params, batch)
    expected = (0.25 * float(m["value_loss"]) + float(m["policy_loss"])
                + 3.0 * float(m["reward_loss"]) + cfg.learner.weight_decay * float(m["l2"]))
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert float(m["reward_loss"]) > 0


def test_identity_squash_targets_and_reads_outcomes_on_their_own_atoms(tiny_config):
    """`support_squash="identity"`, S = 1 (board games' outcomes): a target of +1 is
    all on atom +1, so the value loss is -log q(+1) at the root and again over the K
    steps; the value read back is the expectation over atoms -1, 0, 1 (no h^-1)."""
    import muzero_jax as mz

    agent = mz.Agent(tiny_config.replace(support_squash="identity", discount=1.0,
                             value_support_size=1, reward_support_size=1))
    logits = np.array([0.0, 1.0, 2.0])
    q = np.exp(logits) / np.sum(np.exp(logits))
    params = _value_head_params(agent, logits)
    batch = _batch(agent)
    t = batch.targets.replace(value=jnp.ones_like(batch.targets.value),
                              reward=jnp.ones_like(batch.targets.reward))
    _, m = agent.learner.loss(params, batch.replace(targets=t))
    assert float(m["value_loss"]) == pytest.approx(-2 * np.log(q[2]), rel=1e-5)
    # the fresh reward head is uniform over 3 atoms; the target +1 is one of them
    assert float(m["reward_loss"]) == pytest.approx(np.log(3), rel=1e-5)
    inference = agent.model.initial_inference(params, batch.observation)
    np.testing.assert_allclose(inference.value, q[2] - q[0], rtol=1e-5)
