"""Pictures of one search tree (mctx's `Tree`) with the graphviz Python package.

Each node shows its visit count and value; each edge the action, the prior the
parent gave it, the reward the model predicted and its Q value
(reward + discount * child value). Rendering to PNG needs Graphviz's `dot`
program besides the Python package; without either, `GraphvizMissing` says
what to install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import mctx
import numpy as np

INSTALL = ("drawing search trees needs Graphviz: install the program with "
           "`apt-get install graphviz` (Debian/Ubuntu; `brew install graphviz` on macOS) "
           "and the Python package with `pip install graphviz`")


class GraphvizMissing(RuntimeError):
    """The graphviz Python package or the `dot` program is not installed."""


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def tree_to_graph(tree: mctx.Tree, batch_index: int = 0, *,
                  action_names: Sequence[str] | None = None, chosen_action: int | None = None):
    """A `graphviz.Digraph` of tree `batch_index` of a batched mctx `Tree`.

    Args:
      tree: the search tree, node arrays `[B, N]`, children arrays `[B, N, A]`.
      batch_index: which tree of the batch.
      action_names: labels for the A actions (default: their numbers).
      chosen_action: highlight the root's edge for this action.
    """
    try:
        import graphviz
    except ImportError as e:
        raise GraphvizMissing(INSTALL) from e
    t = {name: np.asarray(getattr(tree, name))[batch_index] for name in (
        "node_visits", "node_values", "children_index", "children_prior_logits",
        "children_rewards", "children_discounts", "children_values")}
    num_actions = t["children_index"].shape[-1]
    names = list(action_names) if action_names is not None else [str(a) for a in
                                                                 range(num_actions)]
    graph = graphviz.Digraph("search_tree", graph_attr={"rankdir": "TB"},
                             node_attr={"shape": "box", "style": "rounded,filled",
                                        "fontname": "Helvetica", "fontsize": "10"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    max_visits = max(int(t["node_visits"].max()), 1)
    stack = [tree.ROOT_INDEX]
    while stack:
        node = stack.pop()
        visits = int(t["node_visits"][node])
        shade = 1.0 - 0.6 * visits / max_visits  # more visits, darker node
        label = (f"{'root' if node == tree.ROOT_INDEX else f'node {node}'}\n"
                 f"N={visits}  V={t['node_values'][node]:.3f}")
        graph.node(str(node), label, fillcolor=f"0.6 {1 - shade:.2f} 1.0")
        prior = _softmax(t["children_prior_logits"][node])
        for action in range(num_actions):
            child = int(t["children_index"][node, action])
            if child == tree.UNVISITED:
                continue
            q = (t["children_rewards"][node, action]
                 + t["children_discounts"][node, action] * t["children_values"][node, action])
            bold = node == tree.ROOT_INDEX and action == chosen_action
            graph.edge(str(node), str(child),
                       label=(f"a={names[action]}\nP={prior[action]:.2f} "
                              f"R={t['children_rewards'][node, action]:.2f}\nQ={q:.3f}"),
                       penwidth="2.5" if bold else "1", color="red" if bold else "black")
            stack.append(child)
    return graph


def render_png(graph, path: str) -> str:
    """Renders `graph` to the PNG file `path` (needs Graphviz's `dot`); returns the path."""
    if shutil.which("dot") is None:
        raise GraphvizMissing(f"the Graphviz `dot` program is not on PATH; {INSTALL}")
    stem, ext = os.path.splitext(os.path.abspath(path))
    if ext.lower() != ".png":
        stem = os.path.abspath(path)
    out = graph.render(filename=stem + ".gv", outfile=stem + ".png", format="png",
                       cleanup=True)
    return out
