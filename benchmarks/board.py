"""Self-play positions/s on pgx board games, search included (`--only board`).

`Agent.rollout` of the Go 9x9 and chess presets (`muzero_jax.presets.board`: the board
ResNet, PUCT search with the preset's simulations) at batch
BATCH, in MuZero mode (learned model in the tree) and AlphaZero mode (pgx's real
step in the tree). A position is one ply of one game, searched and played.
"""

from __future__ import annotations

import jax

import muzero_jax as mz

GAMES = ("go_9x9", "chess")
MODES = ("muzero", "alphazero")
BATCH = 16
STEPS = 8


def benchmark(settings, log, games=GAMES) -> dict:
    """Positions/s of `Agent.rollout` per game and mode, repeats interleaved."""
    from benchmarks.run import _timing_record, benchmark_params

    fns, agents = {}, {}
    for game in games:
        for mode in MODES:
            config = mz.presets.board(game, mode, num_envs=BATCH, rollout_length=STEPS)
            agent = mz.Agent(config)
            holder = {"env_state": agent.reset(jax.random.key(4)),
                      "keys": iter(jax.random.split(jax.random.key(5), 100_000))}
            state = benchmark_params(agent)

            def rollout(agent=agent, state=state, holder=holder):
                holder["env_state"], trajectory = agent.rollout(
                    state, holder["env_state"], next(holder["keys"]))
                return trajectory

            fns[(game, mode)], agents[(game, mode)] = rollout, agent
    timings = settings.measure_interleaved(fns)
    rows = []
    for (game, mode), t in timings.items():
        agent = agents[(game, mode)]
        work = BATCH * STEPS
        rows.append({"game": game, "mode": mode, "batch": BATCH,
                     "simulations": agent.config.search.num_simulations,
                     "network": agent.config.network.kind,
                     "observation_shape": list(agent.observation_shape),
                     "num_actions": agent.num_actions,
                     "rollout": _timing_record(t, "positions/s", work)})
        log(f"  {game:14s} {mode:9s} B={BATCH}: {work / t.median_s:8,.1f} positions/s "
            f"(+-{t.spread:.0%}), first call {t.first_call_s:.1f}s")
    return {"config": f"board presets, {BATCH} games x {STEPS} plies per call, "
                      "PUCT search; repeats interleaved", "rows": rows}


def markdown(section: dict) -> list[str]:
    lines = [f"Self-play positions/s of `Agent.rollout` ({section['config']}):", "",
             "| game | mode | observation | actions | network | simulations | positions/s | "
             "first call s |", "|---|---|---|---|---|---|---|---|"]
    for r in section["rows"]:
        rate = r["rollout"]
        lines.append(f"| {r['game']} | {r['mode']} | {'x'.join(map(str, r['observation_shape']))}"
                     f" | {r['num_actions']} | {r['network']} | {r['simulations']} | "
                     f"{rate['median']:,.1f} ({rate['min']:,.1f}-{rate['max']:,.1f}) | "
                     f"{rate['first_call_seconds']:.1f} |")
    return lines
