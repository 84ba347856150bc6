"""Scaling: self-play env steps/s and learner updates/s on 1, 2, 4, 8 devices.

The CartPole preset with `num_devices` N (muzero_jax.distributed): the rollout of
num_envs envs split over N devices (search per shard) and `updates_per_iteration`
learner steps of a batch of batch_size split over them (sampling per shard,
gradients averaged). JAX fixes its device count at start-up, so each N runs in a
fresh process; without N accelerators, N CPU devices are forced
(XLA_FLAGS=--xla_force_host_platform_device_count=N), which share the machine's
cores: on CPU the table shows what the partitioning costs, not a speed-up.

    python -m benchmarks --only scaling
    python -m benchmarks.scaling 4        # one process, 4 devices: prints its JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = (1, 2, 4, 8)
QUICK_DEVICES = (1, 8)
SELFPLAY_ENVS = (16, 128)
QUICK_SELFPLAY_ENVS = (16,)


def measure_devices(count: int, quick: bool) -> dict:
    """Rates on `count` devices (this process must see them): {selfplay, learner} rows."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import muzero_jax as mz
    from benchmarks.timing import measure
    from muzero_jax import distributed

    repeats, min_seconds = (3, 0.05) if quick else (5, 0.3)
    out = {"devices": count, "platform": jax.devices()[0].platform, "selfplay": [],
           "learner": []}

    def place(layout, tree, spec):
        if layout.mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(layout.mesh, spec))

    for envs in (QUICK_SELFPLAY_ENVS if quick else SELFPLAY_ENVS):
        config = mz.cartpole(num_envs=envs, num_devices=count)
        agent = mz.Agent(config)
        layout = distributed.make_layout(config, agent)
        state = agent.init(jax.random.key(0))
        env_state = place(layout, agent.reset(jax.random.key(1)), P(distributed.DATA))
        exploration = agent.training_exploration
        steps = config.acting.rollout_length
        rollout = jax.jit(lambda p, e, k, x, agent=agent, layout=layout, steps=steps:
                          layout.rollout(agent.actor, p, e, k, x, steps))
        t = measure(lambda: rollout(state.params, env_state, jax.random.key(2), exploration),  # noqa: B023
                    repeats=repeats, min_repeat_seconds=min_seconds)
        work = envs * config.acting.rollout_length
        out["selfplay"].append({"envs": envs, "env_steps_per_second": work / t.median_s,
                                "spread": t.spread, "compile_s": t.first_call_s})

    config = mz.cartpole(num_devices=count)
    agent = mz.Agent(config)
    layout = distributed.make_layout(config, agent)
    state = agent.init(jax.random.key(0))
    env_state, buffer = agent.reset(jax.random.key(1)), agent.init_replay()
    while not agent.ready_to_learn(buffer):
        env_state, trajectory = agent.rollout(state, env_state, jax.random.key(3))
        buffer = agent.add(buffer, trajectory)
    if layout.mesh is not None:
        buffer = jax.device_put(buffer, jax.tree.map(
            lambda s: NamedSharding(layout.mesh, s), distributed.stream_specs(buffer),
            is_leaf=lambda x: isinstance(x, P)))
    update = jax.jit(lambda s, b, k: layout.update(agent, s, b, k))
    holder = {"state": jax.tree.map(jnp.copy, state), "buffer": buffer}

    def step():
        holder["state"], holder["buffer"], metrics = update(holder["state"], holder["buffer"],
                                                            jax.random.key(4))
        return metrics

    t = measure(step, repeats=repeats, min_repeat_seconds=min_seconds)
    steps = config.learner.updates_per_iteration
    out["learner"].append({"batch": config.learner.batch_size,
                           "updates_per_second": steps / t.median_s,
                           "samples_per_second": steps * config.learner.batch_size / t.median_s,
                           "spread": t.spread, "compile_s": t.first_call_s})
    return out


def benchmark(settings, log) -> dict:
    """Each device count in a fresh process with that many (forced CPU) devices."""
    rows = []
    for count in (QUICK_DEVICES if settings.quick else DEVICES):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        import jax

        if jax.default_backend() == "cpu":
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                                + f" --xla_force_host_platform_device_count={count}").strip()
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.scaling", str(count)]
            + (["--quick"] if settings.quick else []),
            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"scaling on {count} devices failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        selfplay = ", ".join(f"B={r['envs']}: {r['env_steps_per_second']:,.0f}"
                             for r in row["selfplay"])
        learner = row["learner"][0]
        log(f"  {count} device(s): self-play env steps/s {selfplay}; learner "
            f"{learner['updates_per_second']:,.1f} updates/s (batch {learner['batch']})")
    return {"config": "cartpole preset (Gumbel, 16 simulations, T = 25; batch 256, K = 5, "
                      "25 updates per call)", "rows": rows}


def markdown(sec: dict) -> list[str]:
    if "scaling" not in sec:
        return []
    r = sec["scaling"]
    envs = [s["envs"] for s in r["rows"][0]["selfplay"]]
    lines = ["## Scaling over devices (muzero_jax.distributed)", "",
             f"{r['config']}. Envs and batch are totals, split over the devices; each count "
             f"in a fresh process ({r['rows'][0]['platform']}: forced CPU devices share the "
             "same cores, so these show the cost of partitioning, not a speed-up).", "",
             "| devices | " + " | ".join(f"self-play env steps/s, {b} envs" for b in envs)
             + " | learner updates/s | samples/s |",
             "|---|" + "---|" * (len(envs) + 2)]
    for row in r["rows"]:
        learner = row["learner"][0]
        lines.append(f"| {row['devices']} | " + " | ".join(
            f"{s['env_steps_per_second']:,.0f} (+-{s['spread']:.0%})" for s in row["selfplay"])
            + f" | {learner['updates_per_second']:,.1f} (+-{learner['spread']:.0%}) | "
            f"{learner['samples_per_second']:,.0f} |")
    return lines + [""]


if __name__ == "__main__":
    print(json.dumps(measure_devices(int(sys.argv[1]), "--quick" in sys.argv)))
