import functools
import os
import re

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

import muzero_jax as mz


@pytest.mark.parametrize("algorithm", ["muzero", "gumbel"])
def test_search_shapes_and_policy(tiny_config, algorithm):
    agent = mz.Agent(tiny_config.replace(search=algorithm))
    state = agent.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (6, 4))
    out = agent.act(state, jax.random.key(2), obs)
    assert out.action.shape == (6,) and out.action.dtype == jnp.int32
    assert out.search_policy.shape == (6, 2)
    np.testing.assert_allclose(out.search_policy.sum(-1), 1.0, rtol=1e-5)
    assert out.root_value.shape == (6,) and out.prior_value.shape == (6,)


@pytest.mark.parametrize("algorithm", ["muzero", "gumbel"])
def test_invalid_actions_are_never_chosen(tiny_config, algorithm):
    agent = mz.Agent(tiny_config.replace(search=algorithm))
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
    agent = mz.Agent(tiny_config.replace(search="muzero", num_simulations=7))
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
    agent = mz.Agent(tiny_config.replace(search="muzero", num_simulations=16))
    searcher = agent.searcher
    real = searcher.model.recurrent_inference

    def rewarding(params, state, action):
        out = real(params, state, action)
        return out.replace(reward=action.astype(jnp.float32), value=jnp.zeros_like(out.value))

    searcher.model.recurrent_inference = rewarding
    try:
        params = agent.init(jax.random.key(0)).params
        out = jax.jit(searcher.__call__)(params, jax.random.key(1), jnp.zeros((8, 4)),
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


# --- Q normalisation ---------------------------------------------------------------


def _small_tree():
    """Root 0 (V = 1) -a0-> node 1 (V = 2) -a0-> node 2 (V = 5); every a1 unvisited.

    Rewards 1 (root, a0) and 0.5 (node 1, a0), discount 0.5: the visited edges'
    Q are 1 + 0.5 * 2 = 2 and 0.5 + 0.5 * 5 = 3.
    """
    n, a = 3, 2
    zeros = jnp.zeros((n, a))
    visits = zeros.at[0, 0].set(2).at[1, 0].set(1)
    tree = mctx.Tree(
        node_visits=jnp.array([3, 2, 1]), raw_values=jnp.array([1.0, 2.0, 5.0]),
        node_values=jnp.array([1.0, 2.0, 5.0]), parents=jnp.array([-1, 0, 1]),
        action_from_parent=jnp.array([-1, 0, 0]),
        children_index=jnp.full((n, a), -1).at[0, 0].set(1).at[1, 0].set(2),
        children_prior_logits=zeros, children_visits=visits,
        children_rewards=zeros.at[0, 0].set(1.0).at[1, 0].set(0.5),
        children_discounts=jnp.full((n, a), 0.5),
        children_values=zeros.at[0, 0].set(2.0).at[1, 0].set(5.0),
        embeddings=jnp.zeros((n, 1)), root_invalid_actions=jnp.zeros(a), extra_data=None)
    return tree


def test_tree_min_max_normalises_q_by_the_whole_tree():
    from muzero_jax.search import qtransform_by_tree_min_max

    tree = _small_tree()
    # Bounds over the edges' Q {2, 3} and the nodes' V {1, 2, 5}: [1, 5].
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, jnp.int32(0)), [0.25, 0.0])
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, jnp.int32(1)), [0.5, 0.0])
    # mctx's default sees only the root (V = 1) and its child's Q = 2: a0 scores 1.
    np.testing.assert_allclose(mctx.qtransform_by_parent_and_siblings(tree, jnp.int32(0)),
                               [1.0, 0.0])


def _roots(config):
    """An agent, perturbed parameters, 16 CartPole-shaped observations and their mctx roots."""
    agent = mz.Agent(config)
    params = _noisy_params(agent, 7)
    obs = jax.random.normal(jax.random.key(8), (16, 4))
    root_out = agent.model.initial_inference(params, obs)
    root = mctx.RootFnOutput(prior_logits=root_out.policy_logits, value=root_out.value,
                             embedding=root_out.state)
    return agent, params, obs, root


# parent_and_siblings is mctx's own qtransform, passed as is: the two searches with the
# project's own pieces (tree-wide min-max, Gumbel's completed Q) are the ones to pin.
@pytest.mark.parametrize("policy,q_normalisation", [("muzero", "tree_min_max"),
                                                     ("gumbel", "tree_min_max")])
def test_make_search_is_mctx_public_policy(tiny_config, policy, q_normalisation):
    """Given the search stage's config alone, make_search searches as mctx's public
    policy called by hand with the same constants, bit for bit (both compiled with the
    root's inference inside, as the library runs them)."""
    from muzero_jax.search import (
        make_recurrent_fn,
        make_search,
        make_search_tree,
        qtransform_by_tree_min_max,
    )

    config = tiny_config.replace(search=policy, num_simulations=12,
                                 q_normalisation=q_normalisation)
    agent, params, obs, _ = _roots(config)
    exploration = mz.Exploration.training(config)
    stage = dict(discount=config.loss.discount)
    key = jax.random.key(9)
    out = jax.jit(make_search(config.search, agent.model, **stage))(params, key, obs,
                                                                     exploration)
    tree = jax.jit(make_search_tree(config.search, agent.model, **stage))(params, key, obs,
                                                                          exploration)
    recurrent_fn = make_recurrent_fn(agent.model, config.loss.discount)
    qtransform = {"tree_min_max": qtransform_by_tree_min_max,
                  "parent_and_siblings": mctx.qtransform_by_parent_and_siblings}

    @jax.jit
    def by_hand(params, key, obs):
        inference = agent.model.initial_inference(params, obs)
        root = mctx.RootFnOutput(prior_logits=inference.policy_logits,
                                 value=inference.value, embedding=inference.state)
        if policy == "gumbel":
            return mctx.gumbel_muzero_policy(params, key, root, recurrent_fn, 12)
        return mctx.muzero_policy(params, key, root, recurrent_fn, 12,
                                  dirichlet_fraction=0.25, dirichlet_alpha=0.25,
                                  temperature=1.0, qtransform=qtransform[q_normalisation])

    expected = by_hand(params, key, obs)
    np.testing.assert_array_equal(out.action, expected.action)
    np.testing.assert_array_equal(out.search_policy, expected.action_weights)
    np.testing.assert_array_equal(out.root_value, expected.search_tree.node_values[:, 0])
    for name in ("node_visits", "parents", "children_visits", "node_values",
                 "children_values"):
        np.testing.assert_array_equal(getattr(tree, name),
                                      getattr(expected.search_tree, name), name)
    assert len(set(np.asarray(out.action).tolist())) == 2  # the trees differ


def test_pyproject_allows_the_pinned_and_the_installed_mctx():
    import tomllib
    from packaging.requirements import Requirement

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        declared = [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]
    (allowed,) = [r.specifier for r in declared if r.name == "mctx"]
    with open(os.path.join(root, "requirements.txt")) as f:
        pinned = re.findall(r"^mctx==([\w.]+)$", f.read(), re.M)
    assert len(pinned) == 1 and pinned[0] in allowed, (pinned, allowed)
    assert mctx.__version__ in allowed, (mctx.__version__, allowed)


def test_q_normalisation_is_chosen_by_the_config(tiny_config):
    config = tiny_config.replace(search="muzero", num_simulations=24)
    agent, params, obs, root = _roots(config)
    mctx_default = mctx.muzero_policy(params, jax.random.key(9), root,
                                      agent.searcher.recurrent_fn, 24,
                                      dirichlet_fraction=0.0, temperature=1.0)
    # A floor on the normalisation's range (EfficientZero's) is mctx's epsilon.
    floored = mctx.muzero_policy(params, jax.random.key(9), root,
                                 agent.searcher.recurrent_fn, 24,
                                 dirichlet_fraction=0.0, temperature=1.0,
                                 qtransform=functools.partial(
                                     mctx.qtransform_by_parent_and_siblings, epsilon=10.0))
    policies = {}
    for name, q_min_range in (("parent_and_siblings", 1e-8), ("tree_min_max", 1e-8),
                              ("parent_and_siblings", 10.0)):
        searcher = mz.Agent(config.replace(q_normalisation=name,
                                    q_min_range=q_min_range)).searcher
        policies[name] = np.asarray(searcher(
            params, jax.random.key(9), obs,
            mz.Exploration(temperature=jnp.float32(1.0), dirichlet_fraction=jnp.float32(0.0),
                           gumbel_scale=jnp.float32(1.0),
                           repeat_probability=jnp.float32(0.0),
                           epsilon=jnp.float32(0.0))).search_policy)
        policies[name, q_min_range] = policies.pop(name)
    np.testing.assert_array_equal(policies["parent_and_siblings", 1e-8],
                                  np.asarray(mctx_default.action_weights))
    assert not np.array_equal(policies["tree_min_max", 1e-8],
                              policies["parent_and_siblings", 1e-8])
    np.testing.assert_array_equal(policies["parent_and_siblings", 10.0],
                                  np.asarray(floored.action_weights))
    assert not np.array_equal(policies["parent_and_siblings", 10.0],
                              policies["parent_and_siblings", 1e-8])


def test_q_min_range_floors_gumbel_completed_q_rescaling(tiny_config):
    # Gumbel's policy target is softmax(logits + sigma(completed Q)), Q min-max rescaled
    # first: with two actions that is 0 and 1 whatever their gap, unless a floor on
    # the range keeps small gaps small.
    config = tiny_config.replace(search="gumbel", num_simulations=8)
    agent, params, obs, root = _roots(config)
    exploration = mz.Exploration(temperature=jnp.float32(1.0),
                                 dirichlet_fraction=jnp.float32(0.0),
                                 gumbel_scale=jnp.float32(1.0),
                                 repeat_probability=jnp.float32(0.0), epsilon=jnp.float32(0.0))
    ours = {q_min_range: np.asarray(
        mz.Agent(config.replace(q_min_range=q_min_range)).searcher(
            params, jax.random.key(9), obs, exploration).search_policy)
        for q_min_range in (1e-8, 10.0)}
    default = np.asarray(mctx.gumbel_muzero_policy(
        params, jax.random.key(9), root, agent.searcher.recurrent_fn, 8).action_weights)
    floored = np.asarray(mctx.gumbel_muzero_policy(
        params, jax.random.key(9), root, agent.searcher.recurrent_fn, 8,
        qtransform=functools.partial(mctx.qtransform_completed_by_mix_value,
                                     epsilon=10.0)).action_weights)
    np.testing.assert_array_equal(ours[1e-8], default)
    np.testing.assert_allclose(ours[10.0], floored, rtol=1e-6, atol=1e-7)
    # the floor softens the targets: less mass on each row's top action
    assert np.mean(ours[10.0].max(-1)) < np.mean(ours[1e-8].max(-1)) - 0.01
