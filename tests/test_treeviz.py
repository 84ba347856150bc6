import shutil

import jax
import numpy as np
import pytest

from muzero_jax import treeviz


@pytest.fixture(scope="module")
def tree(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    obs = np.zeros((1,) + tiny_agent.observation_shape, np.float32)
    return tiny_agent.search_tree(state, jax.random.key(1), obs)


def test_the_graph_has_every_expanded_node_and_edge(tree, tiny_config):
    graph = treeviz.tree_to_graph(tree, chosen_action=1)
    source = graph.source
    expanded = int(np.sum(np.asarray(tree.node_visits)[0] > 0))
    # the root plus one node per simulation
    assert expanded == tiny_config.search.num_simulations + 1
    assert source.count(" -> ") == expanded - 1  # a tree: one edge into each non-root node
    # The root was visited once by its own expansion and once per simulation.
    assert f"N={tiny_config.search.num_simulations + 1} " in source
    assert "a=1" in source and "color=red" in source


def test_q_on_an_edge_is_reward_plus_discounted_child_value(tree):
    graph = treeviz.tree_to_graph(tree)
    t = jax.tree.map(lambda x: np.asarray(x)[0], tree)
    action = int(np.argmax(t.children_visits[0]))
    q = t.children_rewards[0, action] + t.children_discounts[0, action] * \
        t.children_values[0, action]
    assert f"Q={q:.3f}" in graph.source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_renders_a_png(tree, tmp_path):
    path = treeviz.render_png(treeviz.tree_to_graph(tree), str(tmp_path / "tree.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_missing_dot_says_what_to_install(tree, monkeypatch, tmp_path):
    monkeypatch.setattr(treeviz.shutil, "which", lambda name: None)
    with pytest.raises(treeviz.GraphvizMissing, match="apt-get install graphviz.*pip install "
                                                      "graphviz"):
        treeviz.render_png(treeviz.tree_to_graph(tree), str(tmp_path / "tree.png"))
