import functools
import os
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


@pytest.mark.parametrize("q_normalisation", ["tree_min_max", "parent_and_siblings"])
def test_tie_break_by_index_searches_as_mctx_does_where_nothing_ties(tiny_config,
                                                                      q_normalisation):
    """With priors that differ (noisy heads), no two scores tie, and mctx's 1e-7 noise
    decides nothing: both selections give the same trees, actions and policies."""
    from muzero_jax.search import Searcher

    outs = []
    for tie_break in ("noise", "index"):
        config = replace(tiny_config, search="muzero", num_simulations=16,
                         tie_break=tie_break, q_normalisation=q_normalisation)
        agent = mz.Agent(config)
        params = _noisy_params(agent, 4)
        obs = jax.random.normal(jax.random.key(5), (32, 4))
        searcher = Searcher(agent.model, config)
        outs.append(jax.jit(searcher.search_tree)(params, jax.random.key(6), obs,
                                                  mz.Exploration.training(config)))
    for name in ("node_visits", "children_visits", "node_values", "parents"):
        np.testing.assert_array_equal(getattr(outs[0], name), getattr(outs[1], name), name)


def test_puct_by_index_scores_as_the_paper_and_breaks_ties_to_the_lowest_index():
    from muzero_jax.search import puct_by_index

    tree = _small_tree()
    # Node 1 after 2 visits: a0 visited once with Q = 0.5 + 0.5 * 5 = 3, a1 unvisited.
    # parent_and_siblings: Q in [0, 1] by min-max over node 1's value and visited
    # children's Q: (3 - 2) / (3 - 2) = 1 for a0; a1 takes the parent's 0. Uniform prior.
    qtransform = mctx.qtransform_by_parent_and_siblings
    c1, c2 = 1.25, 19652.0
    c = c1 + np.log((2 + c2 + 1) / c2)
    scores = np.array([1.0 + c * 0.5 * np.sqrt(2) / 2, 0.0 + c * 0.5 * np.sqrt(2) / 1])
    want = int(np.argmax(scores))
    got = puct_by_index(None, tree, 1, 1, pb_c_init=c1, pb_c_base=c2, qtransform=qtransform)
    assert got.dtype == jnp.int32 and int(got) == want == 0
    # Equal scores (no visits, equal priors): the lowest index, every time.
    fresh = tree.replace(children_visits=jnp.zeros_like(tree.children_visits),
                         node_visits=jnp.array([1, 0, 0]))
    assert int(puct_by_index(None, fresh, 2, 2, qtransform=qtransform)) == 0
    # At the root, an invalid lowest index is skipped.
    masked = fresh.replace(root_invalid_actions=jnp.array([1.0, 0.0]))
    assert int(puct_by_index(None, masked, 0, 0, qtransform=qtransform)) == 1


def test_tie_break_is_validated(tiny_config):
    with pytest.raises(mz.ConfigError, match=r"tie_break='first': expected 'noise' or "
                                             r"'index'"):
        mz.validate(replace(tiny_config, tie_break="first"))


# --- the private mctx hook ---------------------------------------------------------


def test_mctx_is_the_pinned_release_and_its_hook_is_used(tiny_config, monkeypatch):
    """batched_backward rides on mctx._src.search.backward: pinned, and really swapped in."""
    import re

    from muzero_jax import search

    assert mctx.__version__ == search.MCTX_VERSION
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("pyproject.toml", "requirements.txt"):
        pins = re.findall(r"mctx\s*([=<>!~]=?)\s*([\w.]+)", open(os.path.join(root, name)).read())
        assert pins == [("==", search.MCTX_VERSION)], (name, pins)
    search.check_mctx_hook()
    calls = []
    real = search.batched_backward

    def spy(tree, leaf_index):
        calls.append(leaf_index.shape)
        return real(tree, leaf_index)

    monkeypatch.setattr(search, "batched_backward", spy)
    agent = mz.Agent(replace(tiny_config, search="muzero", num_simulations=3))
    params = agent.init(jax.random.key(0)).params
    jax.jit(agent.searcher)(params, jax.random.key(1), jnp.zeros((5, 4)),
                            mz.Exploration.greedy())
    assert calls == [(5,)]  # traced once, inside mctx's simulation loop


def test_a_missing_or_changed_hook_fails_loudly(tiny_config, monkeypatch):
    from mctx._src import search as mctx_search

    from muzero_jax import search

    model = mz.Agent(tiny_config).model
    monkeypatch.delattr(mctx_search, "backward")
    with pytest.raises(search.MctxHookError, match=r"search.backward is missing.*"
                                                   r"mctx==0\.0\.71"):
        search.Searcher(model, tiny_config)
    search.Searcher(model, tiny_config, batched_backward=False)  # mctx's own path still works
    monkeypatch.setattr(mctx_search, "backward", lambda tree, leaf, depth: tree, raising=False)
    with pytest.raises(search.MctxHookError, match=r"takes \['tree', 'leaf', 'depth'\]"):
        search.Searcher(model, tiny_config)


def test_a_changed_selection_hook_fails_loudly_and_the_selection_is_swapped_in(
        tiny_config, monkeypatch):
    from mctx._src import action_selection

    from muzero_jax import search

    config = replace(tiny_config, search="muzero", tie_break="index", num_simulations=3)
    calls = []
    real = search.puct_by_index

    def spy(rng_key, tree, node_index, depth, *, pb_c_init=1.25, pb_c_base=19652.0,
            qtransform=None):
        calls.append(depth)
        return real(rng_key, tree, node_index, depth, pb_c_init=pb_c_init,
                    pb_c_base=pb_c_base, qtransform=qtransform)

    monkeypatch.setattr(search, "puct_by_index", spy)
    agent = mz.Agent(config)
    jax.jit(agent.searcher)(agent.init(jax.random.key(0)).params, jax.random.key(1),
                            jnp.zeros((5, 4)), mz.Exploration.greedy())
    assert calls  # traced inside mctx's simulation loop
    assert action_selection.muzero_action_selection is not spy  # and put back
    model = agent.model
    monkeypatch.setattr(action_selection, "muzero_action_selection",
                        lambda rng_key, tree, node_index: 0)
    with pytest.raises(search.MctxHookError, match=r"muzero_action_selection takes "
                                                   r"\['rng_key', 'tree', 'node_index'\]"):
        search.Searcher(model, config)
    search.Searcher(model, replace(config, tie_break="noise"))  # mctx's own still works


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
    """An agent, perturbed parameters, 64 CartPole-shaped observations and their mctx roots."""
    agent = mz.Agent(config)
    params = _noisy_params(agent, 7)
    obs = jax.random.normal(jax.random.key(8), (64, 4))
    root_out = agent.model.initial_inference(params, obs)
    root = mctx.RootFnOutput(prior_logits=root_out.policy_logits, value=root_out.value,
                             embedding=root_out.state)
    return agent, params, obs, root


def test_q_normalisation_is_chosen_by_the_config(tiny_config):
    config = replace(tiny_config, search="muzero", num_simulations=24)
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
        searcher = mz.Agent(replace(config, q_normalisation=name,
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
    config = replace(tiny_config, search="gumbel", num_simulations=8)
    agent, params, obs, root = _roots(config)
    exploration = mz.Exploration(temperature=jnp.float32(1.0),
                                 dirichlet_fraction=jnp.float32(0.0),
                                 gumbel_scale=jnp.float32(1.0),
                                 repeat_probability=jnp.float32(0.0), epsilon=jnp.float32(0.0))
    ours = {q_min_range: np.asarray(
        mz.Agent(replace(config, q_min_range=q_min_range)).searcher(
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
