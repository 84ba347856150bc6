from dataclasses import replace

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

import muzero_jax as mz


@pytest.mark.parametrize("algorithm", ["muzero", "gumbel"])
def test_search_shapes_and_policy(tiny_config, algorithm):
    agent = mz.Agent(replace(tiny_config, search=algorithm))
    state = agent.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (6, 4))
    out = agent.act(state, jax.random.key(2), obs)
    assert out.action.shape == (6,) and out.action.dtype == jnp.int32
    assert out.search_policy.shape == (6, 2)
    np.testing.assert_allclose(out.search_policy.sum(-1), 1.0, rtol=1e-5)
    assert out.root_value.shape == (6,) and out.prior_value.shape == (6,)


@pytest.mark.parametrize("algorithm", ["muzero", "gumbel"])
def test_invalid_actions_are_never_chosen(tiny_config, algorithm):
    agent = mz.Agent(replace(tiny_config, search=algorithm))
    state = agent.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (64, 4))
    invalid = jnp.zeros((64, 2), bool).at[:32, 0].set(True).at[32:, 1].set(True)
    out = agent.act(state, jax.random.key(2), obs, invalid_actions=invalid)
    np.testing.assert_array_equal(out.action, np.r_[np.ones(32), np.zeros(32)])
    np.testing.assert_allclose(out.search_policy[:32, 0], 0.0, atol=1e-6)


def test_single_observation_is_unbatched(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    out = tiny_agent.act(state, jax.random.key(1), np.zeros(4, np.float32))
    assert out.action.shape == () and out.search_policy.shape == (2,)


def test_greedy_acting_plays_the_most_visited_action(tiny_config):
    agent = mz.Agent(replace(tiny_config, search="muzero", num_simulations=7))
    state = agent.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (256, 4))
    out = agent.act(state, jax.random.key(2), obs, greedy=True)
    chosen = np.take_along_axis(np.asarray(out.search_policy),
                                np.asarray(out.action)[:, None], axis=1)[:, 0]
    np.testing.assert_array_equal(chosen, np.asarray(out.search_policy).max(axis=1))
    # With the same key, greedy search is reproducible.
    again = agent.act(state, jax.random.key(2), obs, greedy=True)
    np.testing.assert_array_equal(out.action, again.action)


def test_search_prefers_the_action_the_model_rewards(tiny_config):
    """A hand-built model in which action 1 earns reward 1 and action 0 nothing."""
    agent = mz.Agent(replace(tiny_config, search="muzero", num_simulations=16))
    searcher = agent.searcher
    real = searcher.model.recurrent_inference

    def rewarding(params, state, action):
        out = real(params, state, action)
        return out.replace(reward=action.astype(jnp.float32), value=jnp.zeros_like(out.value))

    searcher.model.recurrent_inference = rewarding
    try:
        params = agent.init(jax.random.key(0)).params
        out = searcher(params, jax.random.key(1), jnp.zeros((8, 4)),
                       mz.Exploration.greedy())
    finally:
        del searcher.model.recurrent_inference
    np.testing.assert_array_equal(out.action, 1)
    assert np.all(np.asarray(out.search_policy[:, 1]) > 0.6)
    # The root's value is backed up from the rewards the tree found.
    assert np.all(np.asarray(out.root_value) > 0.5)


def test_wrong_observation_shape_is_named(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected \[B, 4\]"):
        tiny_agent.act(state, jax.random.key(1), np.zeros((2, 5), np.float32))


def _noisy_params(agent, seed):
    """Fresh parameters plus noise, so that priors, values and rewards differ per node."""
    params = agent.init(jax.random.key(seed)).params
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree.unflatten(treedef, [x + 0.3 * jax.random.normal(k, x.shape)
                                        for x, k in zip(leaves, keys, strict=True)])


def test_batched_backward_matches_mctx_backward(tiny_config):
    from mctx._src import search as mctx_search

    from muzero_jax.search import batched_backward

    agent = mz.Agent(replace(tiny_config, search="muzero", num_simulations=12))
    params = _noisy_params(agent, 0)
    obs = jax.random.normal(jax.random.key(2), (16, 4))
    root_out = agent.model.initial_inference(params, obs)
    root = mctx.RootFnOutput(prior_logits=root_out.policy_logits, value=root_out.value,
                             embedding=root_out.state)
    tree = mctx.muzero_policy(params, jax.random.key(3), root, agent.searcher.recurrent_fn,
                              12).search_tree
    # Back up from nodes at every depth, the root included (nothing to do there).
    leaf = jnp.arange(16, dtype=jnp.int32) % 13
    expected = jax.jit(mctx_search.backward)(tree, leaf)
    got = jax.jit(batched_backward)(tree, leaf)
    for name in ("node_values", "node_visits", "children_values", "children_visits"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), name)
    assert not np.array_equal(got.node_visits, tree.node_visits)


@pytest.mark.parametrize("algorithm,max_depth", [("gumbel", None), ("muzero", 3)])
def test_search_results_do_not_depend_on_the_backup_used(tiny_config, algorithm, max_depth):
    from muzero_jax.search import Searcher

    config = replace(tiny_config, search=algorithm, num_simulations=10, max_depth=max_depth)
    agent = mz.Agent(config)
    params = _noisy_params(agent, 4)
    obs = jax.random.normal(jax.random.key(5), (32, 4))
    exploration = mz.Exploration.training(config)
    outs = [jax.jit(Searcher(agent.model, config, batched_backward=b))(
        params, jax.random.key(6), obs, exploration) for b in (True, False)]
    for name in ("action", "search_policy", "root_value"):
        np.testing.assert_array_equal(getattr(outs[0], name), getattr(outs[1], name), name)
