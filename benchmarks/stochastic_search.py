"""Cost per simulation of the searches over chance nodes against the plain searches:
`mctx.stochastic_muzero_policy` against `mctx.muzero_policy`, and
`stochastic_gumbel.gumbel_policy` against `mctx.gumbel_muzero_policy`.

    python -m benchmarks.stochastic_search [--out DIR] [--quick]

All four searches run the same small MLP modules (`networks.Dynamics`,
`networks.Prediction`: 2 hidden layers of 64, latent 64, 601-atom value and reward
supports) on 2048's observation size (4x4x31) and A = 4 actions, C = 32 chance codes:

- plain and gumbel: g then f per expanded node;
- stochastic and stochastic_gumbel: the decision function (afterstate dynamics phi,
  then afterstate prediction psi) and the chance function (dynamics g, then f) both
  run at every expanded node, and the node's kind keeps one, over a tree whose nodes
  have A + C children.

Each figure is the median over repeats of one jitted search call (compilation apart),
divided by the number of simulations. One stochastic simulation expands one node, a
decision or a chance node, so it reaches half as deep as a plain simulation does.
Writes `stochastic-search.json` and `.md` under DIR
(default benchmarks/results/stochastic-search/).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import mctx

from benchmarks import machine
from benchmarks.timing import measure_interleaved
from muzero_jax import support
from muzero_jax.networks import Dynamics, Prediction, Representation
from muzero_jax.stochastic_gumbel import gumbel_policy

OBS_SHAPE, A, C, HIDDEN, LATENT, ATOMS = (4, 4, 31), 4, 32, (64, 64), 64, 601
SEARCHES = ("plain", "stochastic", "gumbel", "stochastic_gumbel")
# (search over chance nodes, the plain search it is measured against)
RATIOS = (("stochastic", "plain"), ("stochastic_gumbel", "gumbel"))


class _Net(nn.Module):
    """h, g, f and the stochastic phi, psi: each the repository's MLP modules."""

    def setup(self):
        self.h = Representation(HIDDEN, LATENT)
        self.g = Dynamics(HIDDEN, LATENT, A, ATOMS)
        self.f = Prediction(HIDDEN, A, ATOMS)
        self.phi = Dynamics(HIDDEN, LATENT, A, ATOMS)  # its reward head unused
        self.psi = Prediction(HIDDEN, C, ATOMS)
        self.g_chance = Dynamics(HIDDEN, LATENT, C, ATOMS)

    def __call__(self, obs):
        s = self.h(obs)
        zeros = jnp.zeros((obs.shape[0],), jnp.int32)
        self.g(s, zeros), self.f(s), self.psi(self.phi(s, zeros)[1])
        return self.g_chance(s, zeros)

    def root(self, obs):
        s = self.h(obs)
        return s, *self.f(s)

    def plain(self, s, action):
        reward_logits, next_s = self.g(s, action)
        return next_s, reward_logits, *self.f(next_s)

    def decision(self, s, action):
        after = self.phi(s, action)[1]
        return after, *self.psi(after)

    def chance(self, after, code):
        reward_logits, next_s = self.g_chance(after, code)
        return next_s, reward_logits, *self.f(next_s)


def _scalar(logits):
    return support.support_to_scalar(logits, ATOMS // 2, "h")


def searches(num_simulations: int):
    """The net and its four jitted searches of (params, key, obs) -> action weights, by
    name (`SEARCHES`)."""
    net = _Net()

    def root(params, obs):
        s, policy, value = net.apply(params, obs, method=_Net.root)
        return mctx.RootFnOutput(prior_logits=policy, value=_scalar(value), embedding=s)

    def recurrent(params, rng, action, s):
        next_s, r, policy, value = net.apply(params, s, action, method=_Net.plain)
        return mctx.RecurrentFnOutput(reward=_scalar(r), discount=jnp.full_like(_scalar(r), 0.997),
                                      prior_logits=policy, value=_scalar(value)), next_s

    def decision(params, rng, action, s):
        after, chance_logits, q = net.apply(params, s, action, method=_Net.decision)
        return mctx.DecisionRecurrentFnOutput(chance_logits=chance_logits,
                                              afterstate_value=_scalar(q)), after

    def chance(params, rng, code, after):
        next_s, r, policy, value = net.apply(params, after, code, method=_Net.chance)
        reward = _scalar(r)
        return mctx.ChanceRecurrentFnOutput(
            action_logits=policy, value=_scalar(value), reward=reward,
            discount=jnp.full_like(reward, 0.997)), next_s

    def jitted(policy, *tree_fns):
        def search(params, key, obs):
            return policy(params, key, root(params, obs), *tree_fns,
                          num_simulations).action_weights

        return jax.jit(search)

    return net, {"plain": jitted(mctx.muzero_policy, recurrent),
                 "stochastic": jitted(mctx.stochastic_muzero_policy, decision, chance),
                 "gumbel": jitted(mctx.gumbel_muzero_policy, recurrent),
                 "stochastic_gumbel": jitted(gumbel_policy, decision, chance)}


def run(batches, simulations, repeats: int, min_repeat_seconds: float) -> list[dict]:
    rows = []
    for batch in batches:
        for sims in simulations:
            net, fns = searches(sims)
            obs = jax.random.uniform(jax.random.key(1), (batch, *OBS_SHAPE))
            params = net.init(jax.random.key(0), obs)
            key = jax.random.key(2)
            timing = measure_interleaved(
                {name: functools.partial(fn, params, key, obs) for name, fn in fns.items()},
                repeats=repeats, min_repeat_seconds=min_repeat_seconds)
            row = {"batch": batch, "simulations": sims}
            for name, t in timing.items():
                row[f"{name}_ms_per_search"] = 1e3 * t.median_s
                row[f"{name}_us_per_simulation"] = 1e6 * t.median_s / sims
                row[f"{name}_spread"] = t.spread
                row[f"{name}_first_call_s"] = t.first_call_s
            for chance_search, base in RATIOS:
                row[f"{chance_search}_ratio"] = (timing[chance_search].median_s
                                                 / timing[base].median_s)
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
    return rows


def write(rows: list[dict], out: pathlib.Path, argv: dict) -> None:
    about = machine.describe()
    lines = [f"# Searches over chance nodes against plain searches ({about['cpu']}, "
             f"{about['cpu_cores']} cores, mctx {about['versions']['mctx']})", "",
             "Median of one jitted search over interleaved repeats, compilation apart;",
             "microseconds per simulation; spread = (max - min) / median over the repeats",
             "(a shared machine). One stochastic simulation expands a decision or a chance",
             "node: a tree as deep in plies needs about twice the simulations. plain:",
             "`mctx.muzero_policy`; stochastic: `mctx.stochastic_muzero_policy`; gumbel:",
             "`mctx.gumbel_muzero_policy`; stochastic_gumbel: `muzero_jax.stochastic_gumbel`.",
             "", "| batch | simulations | "
             + " | ".join(f"{name} us/sim (spread)" for name in SEARCHES) + " | "
             + " | ".join(f"{a} / {b}" for a, b in RATIOS) + " |",
             "|---:|---:|" + "---:|" * (len(SEARCHES) + len(RATIOS))]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['simulations']} | "
                     + " | ".join(f"{r[f'{name}_us_per_simulation']:.0f} "
                                  f"({r[f'{name}_spread']:.2f})" for name in SEARCHES)
                     + " | " + " | ".join(f"{r[f'{a}_ratio']:.2f}" for a, _ in RATIOS) + " |")
    machine.write_record(out, "stochastic-search", "python -m benchmarks.stochastic_search",
                         argv, rows, lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/stochastic-search")
    parser.add_argument("--quick", action="store_true", help="batch 16, 8 simulations")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    batches, sims = ((16,), (8,)) if args.quick else ((16, 256), (8, 16, 50))
    rows = run(batches, sims, args.repeats, 0.3 if args.quick else 1.0)
    write(rows, pathlib.Path(args.out), vars(args))


if __name__ == "__main__":
    main()
