"""Players without learning on pgx 2048: mean score and highest tiles.

    python -m benchmarks.random_2048 [--player random] [--games 200] [--seed 0] [--out DIR]

Plays `--games` games to their end through `envs.make("pgx/2048")` (the env protocol
the agent sees); the score is the sum of the merged tiles. `--player`:

- random: a legal action drawn uniformly at each step;
- order: the first legal action of left, up, right, down (what a greedy search
  plays when the model gives every action the same value: ties go to the lowest);
- merge: the legal action whose slide merges the most, ties drawn at random (one
  ply of lookahead on the real step, the tile it drops ignored).

A learned player has to beat these. Writes `<player>-2048.json` under DIR (default
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

PLAYERS = ("random", "order", "merge")


def play(num_games: int, seed: int, max_steps: int = 20_000,
         player: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """(scores `[G]`, highest tile `[G]`) of `num_games` games of `player`, in one jitted
    loop."""
    env = envs.make(Config().replace(env="pgx/2048"))

    def choose(inner, key):
        legal = env.legal_action_mask(inner)
        if player == "order":
            return jnp.argmax(legal)
        if player == "merge":
            actions = jnp.arange(legal.shape[0])
            merged = jax.vmap(lambda a: env.transition(inner, a, key).reward)(actions)
            noise = jax.random.uniform(key, legal.shape)  # < 1: breaks ties only
            return jnp.argmax(jnp.where(legal, merged + noise, -jnp.inf))
        return jax.random.categorical(key, jnp.where(legal, 0.0, -jnp.inf))

    def game(key):
        reset_key, key = jax.random.split(key)
        inner, _ = env.initial(reset_key)

        def cond(carry):
            inner, _, _, steps = carry
            return ~env.terminated(inner) & (steps < max_steps)

        def body(carry):
            inner, score, key, steps = carry
            key, act_key, step_key = jax.random.split(key, 3)
            out = env.transition(inner, choose(inner, act_key), step_key)
            return out.inner, score + out.reward, key, steps + 1

        inner, score, _, _ = jax.lax.while_loop(
            cond, body, (inner, jnp.float32(0.0), key, jnp.int32(0)))
        return score, 2 ** jnp.max(inner._board)

    scores, tiles = jax.jit(jax.vmap(game))(jax.random.split(jax.random.key(seed), num_games))
    return np.asarray(scores), np.asarray(tiles)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--player", choices=PLAYERS, default="random")
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/stochastic-search")
    args = parser.parse_args(argv)
    scores, tiles = play(args.games, args.seed, player=args.player)
    values, counts = np.unique(tiles, return_counts=True)
    result = {"player": args.player, "games": args.games, "seed": args.seed,
              "mean_score": float(scores.mean()),
              "std_score": float(scores.std()), "median_score": float(np.median(scores)),
              "highest_tile": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
              "command": f"python -m benchmarks.random_2048 --player {args.player} "
                         f"--games {args.games} --seed {args.seed}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine.describe()}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.player}-2048.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("player", "games", "mean_score", "std_score",
                                             "highest_tile")}))
    return result


if __name__ == "__main__":
    main()
