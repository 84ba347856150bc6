"""Atari throughput: frames per second of self-play and of learning, for a preset.

    python benchmarks/atari_throughput.py [--preset tiny|paper] [--env ALE/Breakout-v5]

Self-play: `agent.rollout` of the preset's B games x T steps (host ALE, one jitted
batched search per step); agent steps/s and emulator frames/s (x frame_skip).
Learning: `agent.update` (updates_per_iteration learner steps in one compiled
scan) on a replay buffer filled by self-play; updates/s and sampled positions/s
(x batch_size). Compilation is excluded (one warm-up call each); prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402

import muzero_jax as mz  # noqa: E402
from muzero_jax import replay  # noqa: E402

PRESETS = {"tiny": mz.atari_tiny, "paper": mz.atari_paper}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--rollouts", type=int, default=4, help="timed rollouts")
    parser.add_argument("--updates", type=int, default=4, help="timed update calls")
    args = parser.parse_args(argv)

    config = PRESETS[args.preset](env=args.env)
    agent = mz.Agent(config)
    state = agent.init(jax.random.key(0))
    env_state = agent.reset(jax.random.key(1))
    buffer = agent.init_replay()
    key = jax.random.key(2)

    def rollout():
        nonlocal env_state, buffer, key
        key, k = jax.random.split(key)
        env_state, trajectory = agent.rollout(state, env_state, k)
        buffer = agent.add(buffer, trajectory)
        jax.block_until_ready(buffer)

    rollout()  # compiles
    start = time.perf_counter()
    for _ in range(args.rollouts):
        rollout()
    selfplay_seconds = time.perf_counter() - start
    steps = args.rollouts * config.num_envs * config.rollout_length
    while not agent.ready_to_learn(buffer):
        rollout()

    state, _ = agent.update(state, buffer, jax.random.key(3))  # compiles
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(args.updates):
        state, _ = agent.update(state, buffer, jax.random.key(4 + i))
    jax.block_until_ready(state)
    learn_seconds = time.perf_counter() - start
    updates = args.updates * config.updates_per_iteration

    row = {
        "preset": args.preset,
        "device": jax.devices()[0].device_kind,
        "B x T": f"{config.num_envs} x {config.rollout_length}",
        "selfplay steps/s": steps / selfplay_seconds,
        "selfplay frames/s": steps * config.frame_skip / selfplay_seconds,
        "updates/s": updates / learn_seconds,
        "learning positions/s": updates * config.batch_size / learn_seconds,
        "bytes per stored step": replay.bytes_per_position(buffer),
    }
    width = max(map(len, row))
    for name, value in row.items():
        text = f"{value:,.1f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {text}")
    return row


if __name__ == "__main__":
    main()
