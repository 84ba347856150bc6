"""Search: the learned model, or the env's own step, searched with DeepMind's mctx.

`make_search(config.search, model, discount=..., two_player=...)` builds the pure,
jit-able search of a batch of observations: h then f at the root, g then f (scalar
reward and value) inside the tree, through one of mctx's public policies, chosen by
`SearchConfig.policy` in `POLICIES`: `mctx.muzero_policy` (PUCT, Dirichlet noise at
the root, visit-count temperature) or `mctx.gumbel_muzero_policy` (Gumbel top-k with
sequential halving). `make_search_tree` gives the same search's whole tree, to draw it.
Exploration knobs (temperature, noise share, Gumbel scale) are traced arguments, so
training and greedy evaluation share one compiled program. Another variant (chance
nodes through `mctx.stochastic_muzero_policy`, or through `mctx.search` with Gumbel
selection in `stochastic_gumbel`; a per-node action set through `mctx.search`'s
selection functions) is one more entry of `POLICIES`.

Two-player games (`EnvSpec.two_player`): rewards are from the view of the player
who moved and values from the view of the player to move, so every edge backs up
with discount -1 (Q(s, a) = r - v(s')); a terminal state has value 0 and discount 0.
Illegal actions are masked at the root (`invalid_actions`) in every search.

AlphaZero mode (`SearchConfig.mode`): the tree's embeddings are the env's own states
and `make_simulator_recurrent_fn` steps them with the env's `transition` (pgx's real
`step`), so rewards, terminals and legality inside the tree are the game's; f(h(obs))
of the state reached gives the prior (illegal moves at -1e9) and value.

Only mctx's public API is used, its own backup included: a batched rewrite of the
backup took 13-15% off a PUCT search at batch 256 and 2-3% off the CartPole preset's
Gumbel search at batch 16 on 2 CPU cores
(benchmarks/results/search-backward/cpu-amd-epyc-2c.md), too little to own a search
loop beside mctx's. A variant that needs other recurrent functions than
`make_recurrent_fn`'s (chance nodes) adds them beside its `POLICIES` entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import mctx

from muzero_jax import sampled as sampled_lib
from muzero_jax import stochastic as stochastic_lib
from muzero_jax import stochastic_gumbel as stochastic_gumbel_lib
from muzero_jax.config import CHANCE_POLICIES, Config, SearchConfig
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
    root_actions: sampled search (`SearchConfig.sampled_actions` K): the root's K
      actions, `[B, K, D]` float32 (Box) or `[B, K]` int32, of which `action` is the
      index and `search_policy` the `[B, K]` weights; None otherwise.
    """

    action: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    prior_value: chex.Array
    root_actions: chex.Array | None = None


@chex.dataclass(frozen=True)
class Exploration:
    """Acting knobs, as traced scalars so one compiled program serves all settings.

    temperature: visit-count temperature (muzero search); 0 is greedy.
    dirichlet_fraction: share of Dirichlet noise in the root prior (muzero search); with
      sampled search also the share of the root's samples drawn uniformly (`sampled`).
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
        acting = config.acting
        temperature = _at_progress(acting.temperature, acting.temperature_schedule, progress)
        ratio = temperature / acting.temperature if acting.temperature > 0 else temperature
        fall = jnp.minimum(ratio, 1.0)
        return cls(temperature=temperature,
                   dirichlet_fraction=jnp.float32(config.search.dirichlet_fraction),
                   gumbel_scale=jnp.float32(config.search.gumbel_scale) * ratio,
                   repeat_probability=jnp.float32(acting.exploration_repeat_probability) * fall,
                   epsilon=jnp.float32(acting.exploration_epsilon) * fall,
                   opening_plies=jnp.int32(acting.random_opening_plies))

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


@chex.dataclass(frozen=True)
class PrefixEmbedding:
    """A tree node's embedding under a value prefix network (mctx takes any pytree).

    state: `[B, ...]` the hidden state. carry: the LSTM's (c, h), `[B, hidden]` each.
    prefix: `[B]` the value prefix predicted at this node since the last restart (0 at
      the root and at a restart). depth: `[B]` int32, steps from the root.
    """

    state: chex.Array
    carry: tuple
    prefix: chex.Array
    depth: chex.Array


def prefix_root_embedding(model: Model, state: chex.Array) -> PrefixEmbedding:
    """The root's `PrefixEmbedding`: its hidden state, a fresh carry, prefix 0, depth 0."""
    batch = state.shape[0]
    return PrefixEmbedding(state=state, carry=model.initial_carry(batch),
                           prefix=jnp.zeros((batch,), jnp.float32),
                           depth=jnp.zeros((batch,), jnp.int32))


def make_prefix_recurrent_fn(model: Model, discount: float) -> RecurrentFn:
    """mctx's `recurrent_fn` for a value prefix network (EfficientZero).

    The edge's reward is the child's prefix less the parent's. As in EfficientZero's
    search, a node at a depth that is a multiple of `lstm_horizon_len` restarts the
    prefix for its children: its carry is reset and its prefix counts as 0 (the
    unroll it was trained on restarts there too).
    """

    def recurrent_fn(params, rng, action, embedding):
        del rng  # the learned model is deterministic
        out, carry = model.prefix_inference(params, embedding.state, action, embedding.carry)
        depth = embedding.depth + 1
        carry, restart = model.restart_prefix(carry, depth)
        child = PrefixEmbedding(state=out.state, carry=carry,
                                prefix=jnp.where(restart, 0.0, out.reward), depth=depth)
        return mctx.RecurrentFnOutput(
            reward=out.reward - embedding.prefix,
            discount=jnp.full_like(out.reward, discount),
            prior_logits=out.policy_logits,
            value=out.value,
        ), child

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

# One of mctx's policies on a batch of roots:
# (search config, params, key, root, recurrent_fn, exploration, invalid_actions) -> output.
PolicyFn = Callable[[SearchConfig, Params, chex.PRNGKey, mctx.RootFnOutput, RecurrentFn,
                     Exploration, chex.Array | None], mctx.PolicyOutput]


def puct(search: SearchConfig, params: Params, key: chex.PRNGKey,
         root: mctx.RootFnOutput, recurrent_fn: RecurrentFn, exploration: Exploration,
         invalid_actions: chex.Array | None) -> mctx.PolicyOutput:
    """`mctx.muzero_policy` with the config's PUCT constants and Q normalisation.

    At temperature 0 mctx breaks visit-count ties at random; greedy play should be
    reproducible, so there ties go to the higher Q value instead.
    """
    out = mctx.muzero_policy(
        params, key, root, recurrent_fn, search.num_simulations,
        invalid_actions=invalid_actions, max_depth=search.max_depth,
        **_puct_constants(search, exploration))
    return _greedy_ties_by_q(out, exploration)


def _puct_constants(search: SearchConfig, exploration: Exploration) -> dict:
    """PUCT's keyword arguments of mctx's muzero and stochastic policies."""
    return dict(pb_c_init=search.pb_c_init, pb_c_base=search.pb_c_base,
                dirichlet_fraction=exploration.dirichlet_fraction,
                dirichlet_alpha=search.dirichlet_alpha, temperature=exploration.temperature,
                qtransform=functools.partial(_QTRANSFORMS[search.q_normalisation],
                                             epsilon=search.q_min_range))


def _greedy_ties_by_q(out: mctx.PolicyOutput, exploration: Exploration) -> mctx.PolicyOutput:
    """At temperature 0, the most visited action with ties to the higher Q (mctx breaks
    them at random)."""
    summary = out.search_tree.summary()
    most = summary.visit_counts == summary.visit_counts.max(-1, keepdims=True)
    greedy = jnp.argmax(jnp.where(most, summary.qvalues, -jnp.inf), axis=-1)
    return out.replace(action=jnp.where(exploration.temperature > 0, out.action, greedy))


def gumbel(search: SearchConfig, params: Params, key: chex.PRNGKey,
           root: mctx.RootFnOutput, recurrent_fn: RecurrentFn, exploration: Exploration,
           invalid_actions: chex.Array | None) -> mctx.PolicyOutput:
    """`mctx.gumbel_muzero_policy`, its completed-Q transform floored at `q_min_range`
    (whose default, 1e-8, is mctx's own)."""
    return mctx.gumbel_muzero_policy(
        params, key, root, recurrent_fn, search.num_simulations,
        invalid_actions=invalid_actions, max_depth=search.max_depth,
        **_gumbel_constants(search, exploration))


def _gumbel_constants(search: SearchConfig, exploration: Exploration) -> dict:
    """Gumbel's keyword arguments of mctx's Gumbel policy and `stochastic_gumbel`'s."""
    return dict(max_num_considered_actions=search.max_num_considered_actions,
                gumbel_scale=exploration.gumbel_scale,
                qtransform=functools.partial(mctx.qtransform_completed_by_mix_value,
                                             epsilon=search.q_min_range))


def stochastic(search: SearchConfig, params: Params, key: chex.PRNGKey,
               root: mctx.RootFnOutput, recurrent_fn, exploration: Exploration,
               invalid_actions: chex.Array | None) -> mctx.PolicyOutput:
    """`mctx.stochastic_muzero_policy` with PUCT's constants, as `puct`.

    `recurrent_fn` is the pair (decision_recurrent_fn, chance_recurrent_fn) of
    `stochastic.make_tree_fns`. mctx returns the tree with its decision nodes' A
    children (chance nodes' C sliced off), so its summary reads as a plain tree's.
    """
    decision_fn, chance_fn = recurrent_fn
    out = mctx.stochastic_muzero_policy(
        params, key, root, decision_fn, chance_fn, search.num_simulations,
        invalid_actions=invalid_actions, max_depth=search.max_depth,
        **_puct_constants(search, exploration))
    return _greedy_ties_by_q(out, exploration)


def stochastic_gumbel(search: SearchConfig, params: Params, key: chex.PRNGKey,
                      root: mctx.RootFnOutput, recurrent_fn, exploration: Exploration,
                      invalid_actions: chex.Array | None) -> mctx.PolicyOutput:
    """Gumbel MuZero's search over decision and chance nodes
    (`stochastic_gumbel.gumbel_policy`), with `gumbel`'s constants; `recurrent_fn` as
    `stochastic`'s."""
    decision_fn, chance_fn = recurrent_fn
    return stochastic_gumbel_lib.gumbel_policy(
        params, key, root, decision_fn, chance_fn, search.num_simulations,
        invalid_actions=invalid_actions, max_depth=search.max_depth,
        **_gumbel_constants(search, exploration))


# SearchConfig.policy -> the policy that searches.
POLICIES: dict[str, PolicyFn] = {"muzero": puct, "gumbel": gumbel, "stochastic": stochastic,
                                 "stochastic_gumbel": stochastic_gumbel}


def tree_discount(discount: float, two_player: bool) -> float:
    """The discount between a node and its children: -1 in two-player games, where
    each ply changes the point of view; else the return's discount."""
    return -1.0 if two_player else discount


def tree_recurrent_fn(model: Model, *, discount: float, two_player: bool = False,
                      simulator=None, chance_nodes: bool = False,
                      sampled_actions: int = 0) -> RecurrentFn:
    """The tree's step: the learned model's g then f, or the `simulator` env's own;
    `chance_nodes`: the pair of a stochastic model's decision and chance steps
    (`stochastic.make_tree_fns`), for the `CHANCE_POLICIES`; `sampled_actions` K > 0:
    g then f and the child's K samples (`sampled.make_recurrent_fn`)."""
    discount = tree_discount(discount, two_player)
    if sampled_actions:
        return sampled_lib.make_recurrent_fn(model, sampled_actions, discount)
    if chance_nodes:
        return stochastic_lib.make_tree_fns(model, discount)
    if simulator is None and model.value_prefix:
        return make_prefix_recurrent_fn(model, discount)
    if simulator is None:
        return make_recurrent_fn(model, discount)
    return make_simulator_recurrent_fn(model, simulator, discount)


def _run_policy(search: SearchConfig, model: Model, *, discount: float, two_player: bool,
                simulator) -> Callable:
    """(params, key, obs, exploration, invalid_actions, embedding) ->
    (the root's inference, mctx's output)."""
    policy = POLICIES[search.policy]
    num_samples = search.sampled_actions
    recurrent_fn = tree_recurrent_fn(model, discount=discount, two_player=two_player,
                                     simulator=simulator,
                                     chance_nodes=search.policy in CHANCE_POLICIES,
                                     sampled_actions=num_samples)

    def run(params, key, obs, exploration, invalid_actions=None, embedding=None):
        root_out = model.initial_inference(params, obs)
        if num_samples:
            if not sampled_lib.enumerates(model, num_samples):
                # Split only when sampling, so that enumerated actions keep plain keys.
                key, sample_key = jax.random.split(key)
                noise = exploration.dirichlet_fraction
                # The root's noise is in its samples (beta's uniform share); mctx's
                # Dirichlet noise on their priors would add it a second time.
                exploration = exploration.replace(dirichlet_fraction=jnp.zeros_like(noise))
            else:
                sample_key, noise = None, exploration.dirichlet_fraction
            root, invalid_actions = sampled_lib.make_root(
                model, num_samples, root_out, sample_key, noise, invalid_actions)
            return root_out, policy(search, params, key, root, recurrent_fn, exploration,
                                    invalid_actions)
        if simulator is None:
            embedding = (prefix_root_embedding(model, root_out.state) if model.value_prefix
                         else root_out.state)
        elif embedding is None:
            raise ValueError("mode='alphazero' searches env states: pass embedding=")
        if invalid_actions is not None:
            chex.assert_shape(invalid_actions, root_out.policy_logits.shape)
        root = mctx.RootFnOutput(prior_logits=root_out.policy_logits,
                                 value=root_out.value, embedding=embedding)
        return root_out, policy(search, params, key, root, recurrent_fn, exploration,
                                invalid_actions)

    return run


SearchFn = Callable[..., SearchOutput]


def make_search(search: SearchConfig, model: Model, *, discount: float,
                two_player: bool = False, simulator=None) -> SearchFn:
    """The batched search: a pure function, jit-able.

    Args:
      search: the search stage's config (policy, simulations, constants).
      model: the network's pure functions.
      discount: the return's discount (the tree uses -1 in two-player games).
      two_player: values alternate point of view between plies (`EnvSpec.two_player`).
      simulator: AlphaZero mode: the `JaxEnv` whose real step the tree follows (then
        every call needs the env states as `embedding`); None: the learned model.

    Returns:
      `search_fn(params, key, obs, exploration, invalid_actions=None, embedding=None)`:
      `obs` `[B, *obs_shape]`; `key` consumed; `invalid_actions` optional `[B, A]` bool,
      True where an action is illegal at the root (the learned model's tree masks the
      root only, as the paper); `embedding` the `[B]` env states searched from
      (AlphaZero mode; ignored with the learned model). It returns a `SearchOutput`
      with `[B]` actions and values and `[B, A]` policies.
    """
    run = _run_policy(search, model, discount=discount, two_player=two_player,
                      simulator=simulator)

    def search_fn(params, key, obs, exploration, invalid_actions=None, embedding=None):
        root_out, out = run(params, key, obs, exploration, invalid_actions, embedding)
        return SearchOutput(
            action=out.action.astype(jnp.int32),
            search_policy=out.action_weights,
            root_value=out.search_tree.node_values[:, mctx.Tree.ROOT_INDEX],
            prior_value=root_out.value,
            root_actions=(out.search_tree.embeddings.actions[:, mctx.Tree.ROOT_INDEX]
                          if search.sampled_actions else None))

    return search_fn


def make_search_tree(search: SearchConfig, model: Model, *, discount: float,
                     two_player: bool = False, simulator=None) -> Callable[..., mctx.Tree]:
    """The whole tree of each observation, as `make_search`'s function searches it.

    Same arguments as `make_search`, and its function's. The function returns mctx's
    `Tree` (batch `[B]`, nodes `[B, num_simulations + 1]`): visits, values, rewards,
    priors, children.
    """
    run = _run_policy(search, model, discount=discount, two_player=two_player,
                      simulator=simulator)

    def search_tree(params, key, obs, exploration, invalid_actions=None, embedding=None):
        return run(params, key, obs, exploration, invalid_actions, embedding)[1].search_tree

    return search_tree


class Searcher:
    """`make_search` and `make_search_tree` of a whole `Config`, for callers that also
    read the model, the config or the tree's discount beside the search.

    Args:
      model: the network's pure functions.
      config: the whole config (the search reads `config.search` and
        `config.loss.discount`).
      two_player: back up with discount -1 between plies (`EnvSpec.two_player`).
      simulator: AlphaZero mode: the `JaxEnv` whose real step the tree follows.
    """

    def __init__(self, model: Model, config: Config, *, two_player: bool = False,
                 simulator=None):
        self.model = model
        self.config = config
        self.discount = tree_discount(config.loss.discount, two_player)
        stage = dict(discount=config.loss.discount, two_player=two_player, simulator=simulator)
        self.recurrent_fn = tree_recurrent_fn(model, **stage,
                                              sampled_actions=config.search.sampled_actions)
        self._search = make_search(config.search, model, **stage)
        self.search_tree = make_search_tree(config.search, model, **stage)

    def __call__(self, params: Params, key: chex.PRNGKey, obs: chex.Array,
                 exploration: Exploration, invalid_actions: chex.Array | None = None,
                 embedding=None) -> SearchOutput:
        """`make_search`'s function: `[B]` actions and values, `[B, A]` policies."""
        return self._search(params, key, obs, exploration, invalid_actions, embedding)
