"""Atari: frames per second of self-play and of learning, through the library's own calls.

Self-play is `Agent.rollout` on the preset's B real ALE games x T steps (host
emulators, one jitted batched search per step) plus `Agent.add`; learning is
`Agent.update` (updates_per_iteration learner steps in one compiled scan) on a
replay buffer filled by that self-play, so batches carry the stacks rebuilt
from single frames. `atari_paper` is measured off-CPU only: a paper-size ResNet
step takes minutes on 2 CPU cores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import muzero_jax as mz
from muzero_jax import replay

PRESETS = ("atari_tiny", "atari_paper")


def benchmark(settings, log) -> dict:
    """Frames/s of self-play and of learning, per preset."""
    rows = []
    for name in PRESETS[:1] if settings.quick else PRESETS:
        if name == "atari_paper" and jax.default_backend() == "cpu":
            rows.append({"preset": name, "skipped": "paper-size networks: accelerators only"})
            continue
        rows.append(_benchmark_preset(name, settings, log))
    return {"rows": rows}


def _benchmark_preset(name: str, settings, log) -> dict:
    from benchmarks.run import _timing_record, benchmark_params

    config = mz.PRESETS[name]()
    agent = mz.Agent(config)
    state = benchmark_params(agent)
    env_state = agent.reset(jax.random.key(1))
    buffer = agent.init_replay()
    keys = iter(jax.random.split(jax.random.key(2), 100_000))

    def rollout():
        nonlocal env_state, buffer
        env_state, trajectory = agent.rollout(state, env_state, next(keys))
        buffer = agent.add(buffer, trajectory)
        return buffer

    selfplay = settings.measure(rollout)
    while not agent.ready_to_learn(buffer):
        rollout()
    # update donates its state: give it a copy, self-play keeps acting with `state`.
    learn_state = jax.tree.map(jnp.copy, state)

    def update():
        nonlocal learn_state, buffer
        learn_state, buffer, _ = agent.update(learn_state, buffer, next(keys))
        return learn_state

    learn = settings.measure(update)
    steps = config.acting.num_envs * config.acting.rollout_length
    updates = config.learner.updates_per_iteration
    row = {"preset": name, "games": config.acting.num_envs,
           "simulations": config.search.num_simulations,
           "frame_skip": config.env.frame_skip, "learn_batch": config.learner.batch_size,
           "observation_shape": list(agent.observation_shape),
           "bytes_per_stored_step": replay.bytes_per_position(buffer),
           "selfplay": _timing_record(selfplay, "frames/s", steps * config.env.frame_skip),
           "selfplay_steps": _timing_record(selfplay, "agent steps/s", steps),
           "learn": _timing_record(learn, "updates/s", updates),
           "learn_samples": _timing_record(learn, "samples/s", updates * config.learner.batch_size)}
    log(f"  atari {name}: self-play {row['selfplay']['median']:,.0f} frames/s "
        f"({config.acting.num_envs} games, {config.search.num_simulations} sims), learn "
        f"{row['learn']['median']:,.2f} updates/s = {row['learn_samples']['median']:,.0f} "
        f"samples/s")
    return row


def markdown(section: dict) -> list[str]:
    lines = ["| preset | self-play: frames/s (agent steps/s) | games, sims | learn: updates/s "
             "(samples/s) | batch | bytes per stored step |", "|---|---|---|---|---|---|"]
    for r in section["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['preset']} | skipped: {r['skipped']} | | | | |")
            continue
        lines.append(f"| {r['preset']} | {r['selfplay']['median']:,.0f} "
                     f"({r['selfplay_steps']['median']:,.0f}) | {r['games']}, "
                     f"{r['simulations']} | {r['learn']['median']:,.2f} "
                     f"({r['learn_samples']['median']:,.0f}) | {r['learn_batch']} | "
                     f"{r['bytes_per_stored_step']:,} |")
    return lines
