"""Win rate against training time, from every checkpoint a board-game run kept.

    python -m benchmarks.board_curve RUN_DIR [--games 50] [--simulations 100]

For each checkpoint in RUN_DIR/checkpoints/ (train with `--run.checkpoint_every N
--run.checkpoint_keep K` to keep enough of them), the greedy agent plays `--games`
games as first and as many as second player against the uniform random player and the
pure-search baseline (`muzero_jax.opponents`, `--simulations` simulations). Prints one
JSON row per checkpoint and writes them all to RUN_DIR/curve.json: the checkpoint (its
iteration), training seconds (compilation included, as the run's clock had it), env
steps, updates, W-D-L per opponent and side, and a score per opponent (wins and half the
draws, over both sides). `benchmarks/results/connect-four/cpu-amd-epyc-2c/` was made with it.
"""

from __future__ import annotations

import argparse
import json
import os

import jax

from muzero_jax import checkpoint, opponents
from muzero_jax.agent import Agent


def curve(run_dir: str, games: int, simulations: int, log=print) -> list[dict]:
    """One row per kept checkpoint of `run_dir` (a one-run board-game directory)."""
    config = checkpoint.load_config(run_dir)
    agent = Agent(config)
    template = agent.init(jax.random.key(0))
    game = agent.env.pgx_env
    player = opponents.agent_player(agent)
    rivals = {"random": opponents.random_player,
              f"search{simulations}": opponents.search_player(game, simulations)}
    checkpointer = checkpoint.Checkpointer(
        os.path.join(run_dir, checkpoint.CHECKPOINT_DIR), create=False)
    rows = []
    try:
        for step in checkpointer.all_steps():
            _, trees, meta = checkpointer.restore({"train_state": template}, step=step)
            state = trees["train_state"]
            row = {"checkpoint": step, "train_seconds": round(meta["seconds"], 1),
                   "env_steps": (meta["iteration"] * config.acting.num_envs
                                 * config.acting.rollout_length),
                   "updates": int(state.step)}
            for i, (name, rival) in enumerate(rivals.items()):
                # The same games at every checkpoint: only the agent changes.
                result = opponents.match(game, player, rival,
                                         jax.random.fold_in(jax.random.key(7), i), games,
                                         player_params=state.params)
                row[name] = result
                # wins + half the draws, over both sides
                row[f"{name}_score"] = sum(side["wins"] + 0.5 * side["draws"]
                                           for side in result.values()) / (2 * games)
            log(json.dumps(row))
            rows.append(row)
    finally:
        checkpointer.close()
    with open(os.path.join(run_dir, "curve.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--games", type=int, default=50, help="games a side per opponent")
    parser.add_argument("--simulations", type=int, default=100,
                        help="simulations of the pure-search baseline")
    args = parser.parse_args(argv)
    return curve(args.run_dir, args.games, args.simulations)


if __name__ == "__main__":
    main()
