"""Gumbel MuZero's search over Stochastic MuZero's decision and chance nodes.

`mctx.stochastic_muzero_policy` selects with PUCT at decision nodes and has no Gumbel
counterpart. `gumbel_policy` searches the same tree with `mctx.search` and Gumbel
MuZero's selection (Danihelka et al., "Policy improvement by planning with Gumbel",
ICLR 2022) at decision nodes:

- the root: Gumbel top-k with sequential halving (`mctx.gumbel_muzero_root_action_selection`);
- decision nodes below it: the deterministic selection whose visits follow
  softmax(prior + completed Q) (`mctx.gumbel_muzero_interior_action_selection`);
- chance nodes: argmax sigma / (visits + 1), so that their visits follow sigma, as in
  the Stochastic MuZero paper's pseudocode and mctx's stochastic policy;
- the policy target: softmax(prior + completed Q) at the root, and the action the
  most visited considered action with the best Gumbel + logit + completed Q score.

Every node has A + C children, as in mctx's stochastic policy: a decision node's first
A are actions (its last C have prior -inf and are never selected), a chance node's last
C are codes. Selection and the completed Q of a node read only its own slice
(`node_slice`). Only mctx's public API is used; the tree layout, the chance selection
and the final score of the considered actions are written here, since the mctx code
that holds them is private.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mctx


@chex.dataclass(frozen=True)
class ChanceTreeState:
    """A node's embedding (`[B]` leading axes).

    state: the decision node's hidden state (a chance node holds a stale copy).
    afterstate: the chance node's afterstate (a decision node holds a stale copy).
    is_decision: `[B]` bool, True at decision nodes.
    """

    state: chex.ArrayTree
    afterstate: chex.ArrayTree
    is_decision: chex.Array


def node_slice(tree: mctx.Tree, num_actions: int, decision: bool) -> mctx.Tree:
    """The tree with every node's children cut to its decision slice (the first
    `num_actions`) or its chance slice (the rest); batched or not."""
    cut = (lambda x: x[..., :num_actions]) if decision else (lambda x: x[..., num_actions:])
    return tree.replace(
        children_index=cut(tree.children_index),
        children_prior_logits=cut(tree.children_prior_logits),
        children_visits=cut(tree.children_visits),
        children_rewards=cut(tree.children_rewards),
        children_discounts=cut(tree.children_discounts),
        children_values=cut(tree.children_values),
        root_invalid_actions=cut(tree.root_invalid_actions))


def chance_selection(tree: mctx.Tree, node_index: chex.Array) -> chex.Array:
    """`[]` int32: the code of an (unbatched, chance-sliced) node to expand next, the
    argmax of sigma / (visits + 1)."""
    sigma = jax.nn.softmax(tree.children_prior_logits[node_index])
    return jnp.argmax(sigma / (tree.children_visits[node_index] + 1)).astype(jnp.int32)


def score_considered(considered_visit: chex.Array, gumbel: chex.Array, logits: chex.Array,
                     completed_q: chex.Array, visits: chex.Array) -> chex.Array:
    """`[..., A]` sequential halving's final score: Gumbel + logit + completed Q of the
    actions still considered (visited `considered_visit` times), -inf elsewhere. Logits
    are shifted to a maximum of 0 and the sum floored at -1e9, so that a masked
    logit does not turn into -inf and lose a considered action."""
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    score = jnp.maximum(-1e9, gumbel + logits + completed_q)
    return jnp.where(visits == considered_visit, score, -jnp.inf)


def _masked_logits(logits: chex.Array, invalid_actions: chex.Array | None) -> chex.Array:
    """Logits with the finite minimum at invalid actions (a root where every action is
    invalid still has a defined softmax)."""
    if invalid_actions is None:
        return logits
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    return jnp.where(invalid_actions, jnp.finfo(logits.dtype).min, logits)


def _tree_step(decision_fn, chance_fn, num_actions: int, num_codes: int):
    """mctx's `recurrent_fn` over `ChanceTreeState`: from a decision node the action's
    afterstate (phi, psi: no reward, discount 1, sigma as the prior over the chance
    slice); from a chance node the code's next state (g, f). Both are computed for the
    whole batch and the node's kind picks one (the batch mixes kinds)."""

    def step(params, rng, child, node: ChanceTreeState):
        batch = node.is_decision.shape[0]
        decision, afterstate = decision_fn(params, rng, child, node.state)
        chance, state = chance_fn(params, rng, child - num_actions, node.afterstate)
        value = decision.afterstate_value
        to_chance = mctx.RecurrentFnOutput(
            prior_logits=jnp.concatenate(
                [jnp.full((batch, num_actions), -jnp.inf), decision.chance_logits], -1),
            value=value, reward=jnp.zeros_like(value), discount=jnp.ones_like(value))
        to_decision = mctx.RecurrentFnOutput(
            prior_logits=jnp.concatenate(
                [chance.action_logits, jnp.full((batch, num_codes), -jnp.inf)], -1),
            value=chance.value, reward=chance.reward, discount=chance.discount)

        def pick(from_decision, from_chance):
            where = node.is_decision.reshape((-1,) + (1,) * (from_decision.ndim - 1))
            return jnp.where(where, from_decision, from_chance)

        out = jax.tree.map(pick, to_chance, to_decision)
        return out, ChanceTreeState(state=state, afterstate=afterstate,
                                    is_decision=~node.is_decision)

    return step


def gumbel_policy(params, rng_key: chex.PRNGKey, root: mctx.RootFnOutput, decision_fn,
                  chance_fn, num_simulations: int, *,
                  invalid_actions: chex.Array | None = None, max_depth: int | None = None,
                  max_num_considered_actions: int = 16, gumbel_scale: chex.Numeric = 1.0,
                  qtransform=mctx.qtransform_completed_by_mix_value) -> mctx.PolicyOutput:
    """Gumbel MuZero's search of a stochastic model (see the module docstring).

    Args as `mctx.stochastic_muzero_policy` (`root` `[B, A]` logits, `[B]` values,
    `[B, ...]` state embeddings; `decision_fn` and `chance_fn` mctx's decision and
    chance recurrent functions; `invalid_actions` `[B, A]` bool), and Gumbel MuZero's
    `max_num_considered_actions`, `gumbel_scale` (0: greedy) and `qtransform`.

    Returns:
      mctx's `PolicyOutput`: `action` `[B]`, `action_weights` `[B, A]` the improved
      policy, `search_tree` cut to the decision slice (`[B, N, A]` children), so that
      its summary reads as a plain tree's.
    """
    batch, num_actions = root.prior_logits.shape
    gumbel_key, search_key = jax.random.split(rng_key)
    logits = _masked_logits(root.prior_logits, invalid_actions)
    gumbel = gumbel_scale * jax.random.gumbel(gumbel_key, logits.shape, logits.dtype)
    # Shapes only: the root's afterstate slot is never read (the root is a decision node).
    dummy_action = jnp.zeros((batch,), jnp.int32)
    shape_out, shape_after = jax.eval_shape(
        lambda: decision_fn(params, rng_key, dummy_action, root.embedding))
    num_codes = shape_out.chance_logits.shape[-1]
    afterstate = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shape_after)
    embedding = ChanceTreeState(state=root.embedding, afterstate=afterstate,
                                is_decision=jnp.ones((batch,), bool))
    no_codes = jnp.ones((batch, num_codes), bool)  # the root is a decision node
    invalid = jnp.zeros((batch, num_actions), bool) if invalid_actions is None \
        else jnp.asarray(invalid_actions, bool)

    def root_selection(key, tree, node_index):
        return mctx.gumbel_muzero_root_action_selection(
            key, node_slice(tree, num_actions, True), node_index,
            num_simulations=num_simulations,
            max_num_considered_actions=max_num_considered_actions, qtransform=qtransform)

    def interior_selection(key, tree, node_index, depth):
        decision = mctx.gumbel_muzero_interior_action_selection(
            key, node_slice(tree, num_actions, True), node_index, depth,
            qtransform=qtransform)
        code = chance_selection(node_slice(tree, num_actions, False), node_index)
        return jnp.where(tree.embeddings.is_decision[node_index], decision,
                         code + num_actions)

    search_tree = mctx.search(
        params=params, rng_key=search_key,
        root=mctx.RootFnOutput(
            prior_logits=jnp.concatenate([logits, jnp.full((batch, num_codes), -jnp.inf)], -1),
            value=root.value, embedding=embedding),
        recurrent_fn=_tree_step(decision_fn, chance_fn, num_actions, num_codes),
        root_action_selection_fn=root_selection,
        interior_action_selection_fn=interior_selection,
        num_simulations=num_simulations, max_depth=max_depth,
        invalid_actions=jnp.concatenate([invalid, no_codes], -1),
        extra_data=mctx.GumbelMuZeroExtraData(root_gumbel=gumbel))

    search_tree = node_slice(search_tree, num_actions, True)
    visits = search_tree.summary().visit_counts
    completed_q = jax.vmap(qtransform, in_axes=[0, None])(search_tree, search_tree.ROOT_INDEX)
    score = score_considered(visits.max(-1, keepdims=True), gumbel, logits, completed_q,
                             visits)
    action = jnp.argmax(jnp.where(invalid, -jnp.inf, score), axis=-1).astype(jnp.int32)
    weights = jax.nn.softmax(_masked_logits(logits + completed_q, invalid_actions))
    return mctx.PolicyOutput(action=action, action_weights=weights, search_tree=search_tree)
