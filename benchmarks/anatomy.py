"""Anatomy of a batched search: why search costs what it costs beside its network.

At batch 256, 50 simulations, on the CartPole network:
- tree depth: batched mctx walks all B trees in lock-step, so each simulation's selection
  and backup loops run as many steps as the deepest of the B paths;
- PUCT's per-step randomness: `mctx.muzero_action_selection` adds 1e-7 * uniform noise
  to break ties, which costs a `jax.random.split` and a `uniform` (threefry, whose CPU
  lowering is itself a rolled loop) for every tree at every step of every selection walk.
  The variant below selects by the same score without that noise (and so without the
  split), passed to `mctx.search` as its selection functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mctx
import numpy as np

import muzero_jax as mz

BATCH = 256
SIMULATIONS = 50


def _plain_search(agent: mz.Agent, selection):
    """`mctx.search` with one selection function at root and interior (no root noise)."""

    @jax.jit
    def search(params, key, obs):
        out = agent.model.initial_inference(params, obs)
        root = mctx.RootFnOutput(prior_logits=out.policy_logits, value=out.value,
                                 embedding=out.state)
        tree = mctx.search(params, key, root=root, recurrent_fn=agent.searcher.recurrent_fn,
                           root_action_selection_fn=lambda k, t, n: selection(k, t, n, 0),
                           interior_action_selection_fn=selection,
                           num_simulations=SIMULATIONS)
        return tree.node_values

    return search


def puct_without_noise(rng_key, tree: mctx.Tree, node_index, depth) -> jax.Array:
    """mctx's PUCT score with its default constants and Q transform, without the 1e-7
    tie-break noise: ties go to the lowest action index. `[]` int32."""
    del rng_key
    visits = tree.children_visits[node_index]
    parent_visits = tree.node_visits[node_index]
    c = 1.25 + jnp.log((parent_visits + 19652.0 + 1.0) / 19652.0)
    prior = jax.nn.softmax(tree.children_prior_logits[node_index])
    score = (mctx.qtransform_by_parent_and_siblings(tree, node_index)
             + c * prior * jnp.sqrt(parent_visits) / (visits + 1))
    invalid = tree.root_invalid_actions * (depth == 0)
    return jnp.argmax(jnp.where(invalid, -jnp.inf, score)).astype(jnp.int32)


def _search_tree(agent: mz.Agent, policy, params, key, root) -> mctx.Tree:
    recurrent_fn = agent.searcher.recurrent_fn
    return jax.jit(lambda p, k, r: policy(p, k, r, recurrent_fn, SIMULATIONS).search_tree)(
        params, key, root)


def tree_depths(tree: mctx.Tree) -> dict:
    """Depth of the node each simulation added, and the lock-step walk lengths."""
    parents = np.asarray(tree.parents)
    batch = np.arange(parents.shape[0])
    depth = np.zeros_like(parents)
    for node in range(1, parents.shape[1]):
        depth[:, node] = depth[batch, parents[:, node]] + 1
    added = depth[:, 1:]
    return {"mean_depth": float(added.mean()), "deepest": int(added.max()),
            "mean_of_batch_max_per_simulation": float(added.max(0).mean()),
            # selection and backup each walk the deepest path of the batch
            "lockstep_loop_steps_per_search": int(2 * added.max(0).sum()),
            "loop_steps_per_tree_alone": float(2 * added.sum(1).mean())}


def benchmark(settings, log, agent_for, observations, make_network_only) -> dict:
    rows = []
    for algorithm in ("muzero", "gumbel"):
        config = mz.cartpole(search=algorithm, num_simulations=SIMULATIONS)
        agent, state = agent_for(config)
        obs, key = observations(BATCH), jax.random.key(2)
        out = agent.model.initial_inference(state.params, obs)
        root = mctx.RootFnOutput(prior_logits=out.policy_logits, value=out.value,
                                 embedding=out.state)
        policy = mctx.muzero_policy if algorithm == "muzero" else mctx.gumbel_muzero_policy
        tree = _search_tree(agent, policy, state.params, key, root)
        row = {"algorithm": algorithm, "batch": BATCH, **tree_depths(tree)}
        if algorithm == "muzero":
            plain = _plain_search(agent, mctx.muzero_action_selection)
            quiet = _plain_search(agent, puct_without_noise)
            network_only = make_network_only(agent.model, SIMULATIONS)
            actions = jnp.zeros((SIMULATIONS, BATCH), jnp.int32)
            t = settings.measure_interleaved({
                "act": lambda: agent.act(state, key, obs),  # noqa: B023
                "plain": lambda: plain(state.params, key, obs),  # noqa: B023
                "quiet": lambda: quiet(state.params, key, obs),  # noqa: B023
                "net": lambda: network_only(state.params, obs, actions)})  # noqa: B023
            act, with_noise, without, net = t["act"], t["plain"], t["quiet"], t["net"]
            row.update({"act_ms": 1e3 * act.median_s,
                        "search_puct_ms": 1e3 * with_noise.median_s,
                        "search_puct_without_tiebreak_noise_ms": 1e3 * without.median_s,
                        "network_only_ms": 1e3 * net.median_s})
            log(f"  anatomy PUCT B={BATCH}: act {row['act_ms']:.2f} ms; plain mctx.search "
                f"{row['search_puct_ms']:.2f} ms, without the per-step tie-break noise "
                f"{row['search_puct_without_tiebreak_noise_ms']:.2f} ms; network only "
                f"{row['network_only_ms']:.2f} ms")
        log(f"  anatomy {algorithm} depths: mean {row['mean_depth']:.2f}, deepest "
            f"{row['deepest']}, lock-step loop steps per search "
            f"{row['lockstep_loop_steps_per_search']} (one tree alone: "
            f"{row['loop_steps_per_tree_alone']:.0f})")
        rows.append(row)
    return {"rows": rows}


def markdown(section: dict) -> list[str]:
    lines = ["| search | mean depth | deepest | loop steps per search, lock-step (one tree "
             "alone) |", "|---|---|---|---|"]
    for r in section["rows"]:
        lines.append(f"| {r['algorithm']} | {r['mean_depth']:.2f} | {r['deepest']} | "
                     f"{r['lockstep_loop_steps_per_search']} "
                     f"({r['loop_steps_per_tree_alone']:.0f}) |")
    for r in section["rows"]:
        if "act_ms" in r:
            lines += ["", f"PUCT at batch {r['batch']}, ms per search: `Agent.act` "
                      f"{r['act_ms']:.2f}; plain `mctx.search` with mctx's PUCT selection "
                      f"{r['search_puct_ms']:.2f}; the same without its per-step 1e-7 "
                      f"tie-break noise {r['search_puct_without_tiebreak_noise_ms']:.2f}; "
                      f"network only {r['network_only_ms']:.2f}."]
    return lines
