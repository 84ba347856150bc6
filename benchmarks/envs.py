"""Self-play speed per environment realisation: the jitted path against the host path.

`Agent.rollout` (search included) of the CartPole preset's agent, 16 envs x 25
steps, Gumbel search with 16 simulations, on:

- `jax/CartPole-v1`: Gymnasium's functional CartPole in JAX, stepped inside the
  compiled `lax.scan` with the search;
- `gymnax/CartPole-v1`: gymnax's CartPole, the same way;
- `CartPole-v1`: Gymnasium's numpy CartPole, 16 envs in one process
  (`gymnasium.make_vec`, sync), stepped from Python, one jitted batched search per
  step: what any `gymnasium.make` id costs;
- `gymnax/Breakout-MinAtar`: a MinAtar game through the jitted path (10 x 10 x 4
  planes, which this benchmark's MLP sees flattened, to keep the rows comparable).

The same batch and the same search on every row, the repeats interleaved, so the
ratios are the price of each realisation. The host row times rollouts on envs that
keep running across repeats (host envs are live objects), as training does.
"""

from __future__ import annotations

import jax

import muzero_jax as mz

ENVS = (("jax/CartPole-v1", "jitted"), ("gymnax/CartPole-v1", "jitted"),
        ("CartPole-v1", "host, sync"), ("gymnax/Breakout-MinAtar", "jitted"))
BATCH = 16


def benchmark(settings, log) -> dict:
    """Env steps/s of `Agent.rollout` per env id, at batch BATCH, repeats interleaved (so
    that a change of load on a shared machine weighs on every row alike)."""
    from benchmarks.run import _timing_record, benchmark_params

    fns, agents = {}, {}
    for env_id, _ in ENVS:
        config = mz.cartpole(env=env_id, num_envs=BATCH)
        agent = mz.Agent(config)
        holder = {"env_state": agent.reset(jax.random.key(4)),
                  "keys": iter(jax.random.split(jax.random.key(5), 100_000))}
        state = benchmark_params(agent)

        def rollout(agent=agent, state=state, holder=holder):
            holder["env_state"], trajectory = agent.rollout(state, holder["env_state"],
                                                            next(holder["keys"]))
            return trajectory

        fns[env_id], agents[env_id] = rollout, agent
    timings = settings.measure_interleaved(fns)
    rows = []
    for env_id, path in ENVS:
        t, agent = timings[env_id], agents[env_id]
        work = BATCH * agent.config.acting.rollout_length
        rows.append({"env": env_id, "path": path, "batch": BATCH,
                     "steps": agent.config.acting.rollout_length,
                     "observation_shape": list(agent.observation_shape),
                     "rollout": _timing_record(t, "env steps/s", work)})
        log(f"  {env_id:24s} ({path:10s}) B={BATCH}: {work / t.median_s:10,.0f} env steps/s "
            f"(+-{t.spread:.0%}), first call {t.first_call_s:.1f}s")
    config = agents[ENVS[0][0]].config
    search = config.search
    return {"config": f"cartpole preset: {search.policy} search, {search.num_simulations} "
                      f"simulations, {config.acting.rollout_length} steps per call; repeats "
                      "interleaved", "rows": rows}


def markdown(section: dict) -> list[str]:
    base = section["rows"][0]["rollout"]["median"]
    lines = [f"Env steps/s of `Agent.rollout` ({section['config']}):", "",
             "| env | path | observation | batch | env steps/s | vs jax/CartPole-v1 | "
             "first call s |", "|---|---|---|---|---|---|---|"]
    for r in section["rows"]:
        rate = r["rollout"]
        lines.append(f"| `{r['env']}` | {r['path']} | {'x'.join(map(str, r['observation_shape']))}"
                     f" | {r['batch']} | {rate['median']:,.0f} ({rate['min']:,.0f}-"
                     f"{rate['max']:,.0f}) | {rate['median'] / base:.2f} | "
                     f"{rate['first_call_seconds']:.1f} |")
    return lines
