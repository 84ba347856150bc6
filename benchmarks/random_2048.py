"""The uniformly random legal player on pgx 2048: mean score and highest tiles.

    python -m benchmarks.random_2048 [--games 200] [--seed 0] [--out DIR]

Plays `--games` games to their end with a legal action drawn uniformly at each step
through `envs.make("pgx/2048")` (the env protocol the agent sees); the score is the
sum of the merged tiles. Writes `random-2048.json` under DIR (default
benchmarks/results/stochastic-search/).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import machine
from muzero_jax import envs
from muzero_jax.config import Config


def play(num_games: int, seed: int, max_steps: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """(scores `[G]`, highest tile `[G]`) of `num_games` random games, in one jitted loop."""
    env = envs.make(Config().replace(env="pgx/2048"))

    def game(key):
        reset_key, key = jax.random.split(key)
        inner, _ = env.initial(reset_key)

        def cond(carry):
            inner, _, _, steps = carry
            return ~env.terminated(inner) & (steps < max_steps)

        def body(carry):
            inner, score, key, steps = carry
            key, act_key, step_key = jax.random.split(key, 3)
            legal = env.legal_action_mask(inner)
            action = jax.random.categorical(act_key, jnp.where(legal, 0.0, -jnp.inf))
            out = env.transition(inner, action, step_key)
            return out.inner, score + out.reward, key, steps + 1

        inner, score, _, _ = jax.lax.while_loop(
            cond, body, (inner, jnp.float32(0.0), key, jnp.int32(0)))
        return score, 2 ** jnp.max(inner._board)

    scores, tiles = jax.jit(jax.vmap(game))(jax.random.split(jax.random.key(seed), num_games))
    return np.asarray(scores), np.asarray(tiles)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/stochastic-search")
    args = parser.parse_args(argv)
    scores, tiles = play(args.games, args.seed)
    values, counts = np.unique(tiles, return_counts=True)
    result = {"games": args.games, "seed": args.seed, "mean_score": float(scores.mean()),
              "std_score": float(scores.std()), "median_score": float(np.median(scores)),
              "highest_tile": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
              "command": f"python -m benchmarks.random_2048 --games {args.games} "
                         f"--seed {args.seed}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine.describe()}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "random-2048.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("games", "mean_score", "std_score",
                                             "highest_tile")}))
    return result


if __name__ == "__main__":
    main()
