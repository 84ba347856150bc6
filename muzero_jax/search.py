"""Search: the learned model plugged into DeepMind's mctx (SPEC.md, "Search").

`root_fn` is h then f; `recurrent_fn` is g then f, returning scalar reward and
value with the config's discount. `Searcher.__call__` runs `mctx.muzero_policy`
(PUCT, Dirichlet noise at the root, visit-count temperature) or
`mctx.gumbel_muzero_policy` (Gumbel top-k with sequential halving) on a batch of
observations. Exploration knobs (temperature, noise share, Gumbel scale) are
traced arguments, so training and greedy evaluation share one compiled program.

Two-player games (`EnvSpec.two_player`): rewards are from the view of the player
who moved and values from the view of the player to move, so every edge backs up
with discount -1 (Q(s, a) = r - v(s')); a terminal state has value 0 and discount 0.
Illegal actions are masked at the root (`invalid_actions`) in every search.

AlphaZero mode (`Config.mode`): the tree's embeddings are the env's own states and
`make_simulator_recurrent_fn` steps them with the env's `transition` (pgx's real
`step`), so rewards, terminals and legality inside the tree are the game's; f(h(obs))
of the state reached gives the prior (illegal moves at -1e9) and value.

Speed: mctx's backup (`mctx._src.search.backward`) is a `vmap` of a per-tree
`while_loop`. Under `vmap` a while loop whose condition differs across the batch
runs until every tree is done and, on each step, selects between the old and the
new value of its whole carry, here the whole tree (`[B, N]` and `[B, N, A]`
arrays): O(B N A) work per step of the walk up, where the backup itself is O(B).
`batched_backward` is the same backup written for the batch, with masked
scatters of O(B); while it traces, the Searcher swaps it in for mctx's
(`Searcher(batched_backward=False)` keeps mctx's own). The results are the same
bit for bit (tests/test_search.py); benchmarks/ measures the difference.

mctx's PUCT selection adds 1e-7 * U(0, 1) to every child's score to break ties at
random: a threefry draw for every tree at every step of every simulation, which on a
CPU costs more than the rest of a small search (`benchmarks/anatomy.py`).
`Config.tie_break="index"` selects with `puct_by_index` instead, the same score with
ties to the lowest action index, swapped in for mctx's while tracing as the backup is.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator

import chex
import jax
import jax.numpy as jnp
import mctx
from mctx._src import action_selection as mctx_action_selection
from mctx._src import search as mctx_search

from muzero_jax.config import Config
from muzero_jax.networks import Model, Params

RecurrentFn = Callable[[Params, chex.PRNGKey, chex.Array, chex.Array],
                       tuple[mctx.RecurrentFnOutput, chex.Array]]


@chex.dataclass(frozen=True)
class SearchOutput:
    """The result of one batched search.

    action: `[B]` int32, the action to play.
    search_policy: `[B, A]` the policy target (visit distribution for muzero
      search; the improved policy softmax(prior + completed Q) for Gumbel).
    root_value: `[B]` the search's value estimate at the root.
    prior_value: `[B]` the network's value at the root, before search.
    """

    action: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    prior_value: chex.Array


@chex.dataclass(frozen=True)
class Exploration:
    """Acting knobs, as traced scalars so one compiled program serves all settings.

    temperature: visit-count temperature (muzero search); 0 is greedy.
    dirichlet_fraction: share of Dirichlet noise in the root prior (muzero search).
    gumbel_scale: scale of the root Gumbel noise (Gumbel search); 0 is greedy.
    repeat_probability: chance that self-play repeats the action it took on the step
      before instead of the search's (the actors apply it; 0 is greedy).
    epsilon: chance that self-play plays a uniformly random action instead of the
      search's, where it does not repeat (the actors apply it; 0 is greedy).
    opening_plies: int32, the plies at the start of each game that self-play plays
      uniformly at random (JAX actors; 0 is greedy).
    """

    temperature: chex.Array
    dirichlet_fraction: chex.Array
    gumbel_scale: chex.Array
    repeat_probability: chex.Array
    epsilon: chex.Array
    opening_plies: chex.Array = 0

    @classmethod
    def training(cls, config: Config) -> Exploration:
        return cls(temperature=jnp.float32(config.acting.temperature),
                   dirichlet_fraction=jnp.float32(config.search.dirichlet_fraction),
                   gumbel_scale=jnp.float32(config.search.gumbel_scale),
                   repeat_probability=jnp.float32(config.acting.exploration_repeat_probability),
                   epsilon=jnp.float32(config.acting.exploration_epsilon),
                   opening_plies=jnp.int32(config.acting.random_opening_plies))

    @classmethod
    def scheduled(cls, config: Config, progress: float | chex.Array) -> Exploration:
        """Training knobs at `progress` (0..1, a float or a traced `[]` array, as the
        compiled loop passes) through `config.acting.temperature_schedule`.

        The temperature is the last schedule entry whose threshold progress has
        reached, else `config.acting.temperature`. Gumbel search scales gumbel_scale by
        that temperature relative to `config.acting.temperature`, since
        argmax(logits + T g) samples softmax(logits / T). The chances of repeating
        the previous action and of a random one fall in the same ratio (never rise),
        so that late in training self-play plays, and its value targets measure, the
        search's choices.
        """
        temperature = _at_progress(config.acting.temperature, config.acting.temperature_schedule, progress)
        ratio = temperature / config.acting.temperature if config.acting.temperature > 0 else temperature
        fall = jnp.minimum(ratio, 1.0)
        return cls(temperature=temperature,
                   dirichlet_fraction=jnp.float32(config.search.dirichlet_fraction),
                   gumbel_scale=jnp.float32(config.search.gumbel_scale) * ratio,
                   repeat_probability=jnp.float32(config.acting.exploration_repeat_probability) * fall,
                   epsilon=jnp.float32(config.acting.exploration_epsilon) * fall,
                   opening_plies=jnp.int32(config.acting.random_opening_plies))

    @classmethod
    def greedy(cls) -> Exploration:
        return cls(temperature=jnp.float32(0.0), dirichlet_fraction=jnp.float32(0.0),
                   gumbel_scale=jnp.float32(0.0), repeat_probability=jnp.float32(0.0),
                   epsilon=jnp.float32(0.0), opening_plies=jnp.int32(0))


def _at_progress(value: float, schedule, progress) -> jax.Array:
    """`[]` float32: the value of the last (threshold, value) entry of `schedule` whose
    threshold `progress` has reached, else `value`."""
    out = jnp.float32(value)
    for threshold, scheduled in schedule:
        out = jnp.where(progress >= threshold, jnp.float32(scheduled), out)
    return out


def temperature_at(config: Config, progress: float) -> float:
    """The acting temperature at training `progress` (see `Exploration.scheduled`, the
    one place the schedule is read)."""
    return float(Exploration.scheduled(config, progress).temperature)


def make_recurrent_fn(model: Model, discount: float) -> RecurrentFn:
    """mctx's `recurrent_fn`: one step of g, then f, in a single-player MDP."""

    def recurrent_fn(params, rng, action, embedding):
        del rng  # the learned model is deterministic
        out = model.recurrent_inference(params, embedding, action)
        return mctx.RecurrentFnOutput(
            reward=out.reward,
            discount=jnp.full_like(out.reward, discount),
            prior_logits=out.policy_logits,
            value=out.value,
        ), out.state

    return recurrent_fn


# Prior logit of an illegal move inside an AlphaZero tree: never selected while a legal
# one is left, and finite, so that softmax stays defined where every move is masked.
ILLEGAL_LOGIT = -1e9


def make_simulator_recurrent_fn(model: Model, env, discount: float) -> RecurrentFn:
    """mctx's `recurrent_fn` on the env's real dynamics (AlphaZero mode).

    The embedding is a `[B]` batch of the env's inner states (`JaxEnv`: `transition`,
    `legal_action_mask`). A step gives the mover's reward; the state reached is
    valued by f(h(observation)) unless the game ended there (value 0, discount 0);
    `discount` (-1 for two-player games) applies between other plies.
    """
    from muzero_jax.envs.base import to_float

    def recurrent_fn(params, rng, action, embedding):
        keys = jax.random.split(rng, action.shape[0])
        out = jax.vmap(env.transition)(embedding, action, keys)
        legal = jax.vmap(env.legal_action_mask)(out.inner)
        inference = model.initial_inference(params, to_float(out.observation))
        terminated = jnp.asarray(out.terminated, bool)
        return mctx.RecurrentFnOutput(
            reward=jnp.asarray(out.reward, jnp.float32),
            discount=jnp.where(terminated, 0.0, discount).astype(jnp.float32),
            prior_logits=jnp.where(legal, inference.policy_logits, ILLEGAL_LOGIT),
            value=jnp.where(terminated, 0.0, inference.value),
        ), out.inner

    return recurrent_fn


def qtransform_by_tree_min_max(tree: mctx.Tree, node_index: chex.Numeric, *,
                               epsilon: float = 1e-8) -> chex.Array:
    """Q-values of a node's children, min-max normalised over the whole tree (paper).

    The paper (Appendix B) normalises Q(s, a) by the smallest and largest value
    seen in the search tree; mctx's default for `muzero_policy`,
    `qtransform_by_parent_and_siblings`, uses only the node's own value and its
    children's. Here the bounds run over every visited edge's
    Q = r + discount * V(child) (the paper's text) and every visited node's V
    (its pseudocode's `MinMaxStats.update(node.value())`), as they stand now.
    Unvisited children score 0, as in the paper's `ucb_score`.

    Args:
      tree: one, unbatched, mctx tree (mctx vmaps action selection over the batch).
      node_index: `[]` int, the node whose children are scored.
      epsilon: the smallest denominator (bounds still equal give scores of 0).

    Returns:
      `[A]` normalised Q-values in [0, 1].
    """
    chex.assert_shape(node_index, ())
    edge_q = tree.children_rewards + tree.children_discounts * tree.children_values
    edge_seen = tree.children_visits > 0  # [N, A]
    node_seen = tree.node_visits > 0  # [N]
    inf = jnp.inf
    low = jnp.minimum(jnp.min(jnp.where(edge_seen, edge_q, inf)),
                      jnp.min(jnp.where(node_seen, tree.node_values, inf)))
    high = jnp.maximum(jnp.max(jnp.where(edge_seen, edge_q, -inf)),
                       jnp.max(jnp.where(node_seen, tree.node_values, -inf)))
    visits = tree.children_visits[node_index]
    normalised = (tree.qvalues(node_index) - low) / jnp.maximum(high - low, epsilon)
    return jnp.where(visits > 0, normalised, 0.0)


_QTRANSFORMS = {"tree_min_max": qtransform_by_tree_min_max,
                "parent_and_siblings": mctx.qtransform_by_parent_and_siblings}


def batched_backward(tree: mctx.Tree, leaf_index: chex.Array) -> mctx.Tree:
    """Backs the leaf values up to the roots of a batch of trees, as mctx's `backward`.

    Walks every tree from `leaf_index` to its root together; a tree that has reached
    its root rewrites its old values (at the root) until the slowest one is done.
    The arithmetic is mctx's, in the same order, so the results are identical.

    Args:
      tree: a batch of `B` trees (`node_values: [B, N]`, `children_values: [B, N, A]`...).
      leaf_index: `[B]` int32, the node just expanded in each tree.

    Returns:
      The tree with node values, node visits, children values and children visits
      updated along each path.
    """
    batch = jnp.arange(leaf_index.shape[0])
    leaf_index = jnp.asarray(leaf_index, jnp.int32)
    root = mctx.Tree.ROOT_INDEX

    def not_done(loop_state):
        _, _, index = loop_state
        return jnp.any(index != root)

    def step(loop_state):
        tree, leaf_value, index = loop_state
        active = index != root
        # Finished trees point at their root with action 0: in-bounds reads whose
        # writes below put the old values back.
        parent = jnp.where(active, tree.parents[batch, index], root)
        action = jnp.where(active, tree.action_from_parent[batch, index], 0)
        count = tree.node_visits[batch, parent]
        reward = tree.children_rewards[batch, parent, action]
        new_leaf_value = reward + tree.children_discounts[batch, parent, action] * leaf_value
        old_value = tree.node_values[batch, parent]
        parent_value = (old_value * count + new_leaf_value) / (count + 1.0)
        child_value = tree.node_values[batch, index]
        old_child_value = tree.children_values[batch, parent, action]
        old_child_visits = tree.children_visits[batch, parent, action]
        tree = tree.replace(
            node_values=tree.node_values.at[batch, parent].set(
                jnp.where(active, parent_value, old_value)),
            node_visits=tree.node_visits.at[batch, parent].set(
                jnp.where(active, count + 1, count)),
            children_values=tree.children_values.at[batch, parent, action].set(
                jnp.where(active, child_value, old_child_value)),
            children_visits=tree.children_visits.at[batch, parent, action].set(
                jnp.where(active, old_child_visits + 1, old_child_visits)))
        return (tree, jnp.where(active, new_leaf_value, leaf_value),
                jnp.where(active, parent, index))

    init = (tree, tree.node_values[batch, leaf_index], leaf_index)
    tree, _, _ = jax.lax.while_loop(not_done, step, init)
    return tree


# The mctx release whose private `mctx._src.search.backward` hook `batched_backward`
# replaces (pyproject.toml and requirements.txt pin it; tests/test_search.py checks it).
MCTX_VERSION = "0.0.71"


def puct_by_index(rng_key: chex.PRNGKey, tree: mctx.Tree, node_index: chex.Numeric,
                  depth: chex.Numeric, *, pb_c_init: float = 1.25,
                  pb_c_base: float = 19652.0,
                  qtransform: Callable = mctx.qtransform_by_parent_and_siblings
                  ) -> chex.Array:
    """PUCT's choice at one node of one (unbatched) tree, ties to the lowest action index.

    score(a) = Q(a) + P(a) sqrt(N) / (1 + N(a)) (c1 + log((N + c2 + 1) / c2)) (SPEC.md,
    "Search"), Q normalised by `qtransform`; at the root (depth 0) the tree's invalid
    actions are never chosen. The score is mctx's `muzero_action_selection`'s without
    its random tie-break term, so `rng_key` is unused. Returns the `[]` int32 action.
    """
    del rng_key
    visits = tree.children_visits[node_index]
    parent_visits = tree.node_visits[node_index]
    c = pb_c_init + jnp.log((parent_visits + pb_c_base + 1.0) / pb_c_base)
    prior = jax.nn.softmax(tree.children_prior_logits[node_index])
    score = qtransform(tree, node_index) + c * prior * jnp.sqrt(parent_visits) / (visits + 1)
    invalid = tree.root_invalid_actions * (depth == 0)
    return jnp.argmax(jnp.where(invalid, -jnp.inf, score)).astype(jnp.int32)


class MctxHookError(RuntimeError):
    """A private mctx hook (backup, PUCT selection) is missing or changed: not the pinned mctx."""


def _check_hook(module, name: str, expected: list[str], purpose: str, avoid: str) -> None:
    """Raises `MctxHookError` unless `module.name` exists and takes `expected` parameters."""
    where = f"{module.__name__}.{name}"
    hook = getattr(module, name, None)
    if hook is None:
        raise MctxHookError(
            f"mctx {mctx.__version__}: {where} is missing; muzero_jax {purpose} there and was "
            f"checked against mctx=={MCTX_VERSION} (pip install mctx=={MCTX_VERSION}, or "
            f"{avoid})")
    params = list(inspect.signature(hook).parameters)
    if params != expected:
        raise MctxHookError(
            f"mctx {mctx.__version__}: {where} takes {params}; expected {expected} as in "
            f"mctx=={MCTX_VERSION} (pip install mctx=={MCTX_VERSION}, or {avoid})")


def check_mctx_hook() -> None:
    """Raises `MctxHookError` unless mctx's search still backs up through `search.backward`.

    `search.search` looks `backward(tree, leaf_index)` up in its module when it is
    traced, which is what lets `_mctx_backward` swap the batched backup in. A
    release that renames or re-signs it would otherwise fall back, silently, to
    the slow path (or fail deep inside tracing).
    """
    _check_hook(mctx_search, "backward", ["tree", "leaf_index"],
                "swaps its batched backup in", "Searcher(..., batched_backward=False)")


def check_mctx_selection_hook() -> None:
    """Raises `MctxHookError` unless mctx's `muzero_policy` still selects through
    `action_selection.muzero_action_selection` with the signature `puct_by_index` has."""
    _check_hook(mctx_action_selection, "muzero_action_selection",
                list(inspect.signature(puct_by_index).parameters),
                "swaps its PUCT selection in for tie_break='index'", "tie_break='noise'")


@contextlib.contextmanager
def _swapped_in(module, name: str, replacement: Callable | None,
                check: Callable[[], None]) -> Iterator[None]:
    """Makes `module.name` be `replacement` (None: leaves it) while tracing inside: mctx
    looks its backup and its PUCT selection up in their modules when it is traced."""
    if replacement is None:
        yield
        return
    check()
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _mctx_selection(selection: Callable | None):
    """Makes mctx's `muzero_policy` select with `selection` (None: mctx's own)."""
    return _swapped_in(mctx_action_selection, "muzero_action_selection", selection,
                       check_mctx_selection_hook)


def _mctx_backward(backward: Callable | None):
    """Makes mctx's search call `backward` (None: mctx's own) while tracing inside."""
    return _swapped_in(mctx_search, "backward", backward, check_mctx_hook)


class Searcher:
    """Batched MuZero search on the learned model.

    Args:
      model: the network's pure functions.
      config: search algorithm, simulations and PUCT/Gumbel constants.
      two_player: back up with discount -1 between plies (`EnvSpec.two_player`).
      simulator: AlphaZero mode: the `JaxEnv` whose real step the tree follows (then
        every call needs the env states as `embedding`); None: the learned model.
      batched_backward: back values up with `batched_backward` (same results as
        mctx's own backup, faster for batches; see the module docstring).
    """

    def __init__(self, model: Model, config: Config, *, two_player: bool = False,
                 simulator=None, batched_backward: bool = True):
        self.model = model
        self.config = config
        self.two_player = two_player
        self.simulator = simulator
        self.discount = -1.0 if two_player else config.loss.discount
        if simulator is None:
            self.recurrent_fn = make_recurrent_fn(model, self.discount)
        else:
            self.recurrent_fn = make_simulator_recurrent_fn(model, simulator, self.discount)
        self.batched_backward = batched_backward
        if batched_backward:
            check_mctx_hook()  # fail here, before anything compiles
        self.selection = None
        if self.selection is not None:
            check_mctx_selection_hook()

    def __call__(self, params: Params, key: chex.PRNGKey, obs: chex.Array,
                 exploration: Exploration,
                 invalid_actions: chex.Array | None = None,
                 embedding=None) -> SearchOutput:
        """Searches from each observation.

        Args:
          params: network parameters.
          key: PRNG key (consumed).
          obs: `[B, *obs_shape]`.
          exploration: temperature, Dirichlet share and Gumbel scale.
          invalid_actions: optional `[B, A]` bool, True where an action is illegal
            at the root (the learned model's tree masks the root only, as the paper).
          embedding: the `[B]` env states searched from (AlphaZero mode; ignored
            with the learned model).

        Returns:
          `SearchOutput` with `[B]` actions and values and `[B, A]` policies.
        """
        root_out, out = self._policy(params, key, obs, exploration, invalid_actions,
                                     embedding)
        if self.config.search.policy == "muzero":
            # At temperature 0 mctx breaks visit-count ties at random; greedy play
            # should be reproducible, so ties go to the higher Q value instead.
            summary = out.search_tree.summary()
            most = summary.visit_counts == summary.visit_counts.max(-1, keepdims=True)
            greedy = jnp.argmax(jnp.where(most, summary.qvalues, -jnp.inf), axis=-1)
            out = out.replace(action=jnp.where(exploration.temperature > 0, out.action, greedy))
        return SearchOutput(
            action=out.action.astype(jnp.int32),
            search_policy=out.action_weights,
            root_value=out.search_tree.node_values[:, out.search_tree.ROOT_INDEX],
            prior_value=root_out.value,
        )

    def search_tree(self, params: Params, key: chex.PRNGKey, obs: chex.Array,
                    exploration: Exploration,
                    invalid_actions: chex.Array | None = None, embedding=None) -> mctx.Tree:
        """The whole search tree of each observation, as `__call__` would search it.

        Same arguments as `__call__`. Returns mctx's `Tree` (batch `[B]`, nodes
        `[B, num_simulations + 1]`): visits, values, rewards, priors, children.
        """
        return self._policy(params, key, obs, exploration, invalid_actions,
                            embedding)[1].search_tree

    def _policy(self, params, key, obs, exploration, invalid_actions, embedding=None):
        root_out = self.model.initial_inference(params, obs)
        if self.simulator is None:
            embedding = root_out.state
        elif embedding is None:
            raise ValueError("mode='alphazero' searches env states: pass embedding=")
        root = mctx.RootFnOutput(prior_logits=root_out.policy_logits,
                                 value=root_out.value, embedding=embedding)
        if invalid_actions is not None:
            chex.assert_shape(invalid_actions, root_out.policy_logits.shape)
        with (_mctx_backward(batched_backward if self.batched_backward else None),
              _mctx_selection(self.selection)):
            out = self._search(params, key, root, exploration, invalid_actions)
        return root_out, out

    def _search(self, params, key, root, exploration, invalid_actions) -> mctx.PolicyOutput:
        cfg = self.config
        if cfg.search.policy == "muzero":
            out = mctx.muzero_policy(
                params, key, root, self.recurrent_fn, cfg.search.num_simulations,
                invalid_actions=invalid_actions, max_depth=cfg.search.max_depth,
                pb_c_init=cfg.search.pb_c_init, pb_c_base=cfg.search.pb_c_base,
                dirichlet_fraction=exploration.dirichlet_fraction,
                dirichlet_alpha=cfg.search.dirichlet_alpha,
                temperature=exploration.temperature,
                qtransform=functools.partial(_QTRANSFORMS[cfg.search.q_normalisation],
                                             epsilon=cfg.search.q_min_range))
        else:
            out = mctx.gumbel_muzero_policy(
                params, key, root, self.recurrent_fn, cfg.search.num_simulations,
                invalid_actions=invalid_actions, max_depth=cfg.search.max_depth,
                max_num_considered_actions=cfg.search.max_num_considered_actions,
                gumbel_scale=exploration.gumbel_scale,
                # mctx's default completed-Q transform, with our floor on its min-max range
                # (q_min_range's default, 1e-8, is mctx's own)
                qtransform=functools.partial(mctx.qtransform_completed_by_mix_value,
                                             epsilon=cfg.search.q_min_range))
        return out
