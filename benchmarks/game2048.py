"""2048: Stochastic MuZero beside plain MuZero and AlphaZero mode (`--only 2048`).

One cold process per variant and seed (`experiments/train.py --env pgx/2048 --preset
2048` and the variant's flags, compilation included, no persistent compile cache), one
after another so that runs do not share the cores:

- stochastic: the preset as it is (chance nodes, `mctx.stochastic_muzero_policy`);
- plain: the same networks, search budget and env steps without the chance machinery;
- alphazero: the same with pgx's real step searched in place of a learned model; the
  tree samples one tile per expansion (the key mctx hands the step) and keeps it as if
  it were the only outcome: an open-loop sample, not an expectation over tiles;
- stochastic_gumbel and plain_gumbel: the first two searched with Gumbel MuZero's
  selection (`search.policy` "stochastic_gumbel" and "gumbel") instead of PUCT.

The score is summary.json's greedy evaluation of 100 games (the training script's own);
the highest tile comes from 100 more greedy games of the final parameters played here
(`greedy_games`, written to the run's `tiles.json` before its checkpoints are dropped).
Beside them, players without learning (`benchmarks.random_2048`: random, a fixed
order of moves, greedy merging); the bar is 4x the random player's score. A run
directory holding the same finished run is read, not trained again.
"""

from __future__ import annotations

import json
import os

import numpy as np

from benchmarks import minatar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_ID = "pgx/2048"
GAMES = 100  # final greedy games, for the score and for the highest tile
DEFAULT_SEEDS = 3
_PLAIN = ("--network.chance_outcomes", "0", "--search.policy", "muzero")
VARIANTS = {"stochastic": (), "plain": _PLAIN,
            # No learned model: no unroll and no reward labels for it.
            "alphazero": ("--search.mode", "alphazero", "--loss.unroll_steps", "0",
                          "--loss.counterfactual_rewards", "false", *_PLAIN),
            # The same pair searched by Gumbel MuZero's selection instead of PUCT.
            "stochastic_gumbel": ("--search.policy", "stochastic_gumbel"),
            "plain_gumbel": ("--network.chance_outcomes", "0", "--search.policy", "gumbel")}
# (stochastic, plain) variants that differ only in the chance machinery.
PAIRS = (("stochastic", "plain"), ("stochastic_gumbel", "plain_gumbel"))
BASELINES = os.path.join(ROOT, "benchmarks", "results", "stochastic-search")
PLAYER_NAMES = {"random": "random legal player", "order": "fixed order (left, up, right, down)",
                "merge": "greedy merge (one ply, real step)"}


def default_steps() -> int:
    from muzero_jax.presets import play_2048

    return play_2048().run.total_env_steps


def greedy_games(agent, state, num_games: int, seed: int,
                 max_steps: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(scores `[G]`, highest tiles `[G]`) of `num_games` games played to their end by
    the agent's greedy search on `agent.env`, side by side (one search of `[G]` a move)."""
    import jax
    import jax.numpy as jnp

    env = agent.env
    alphazero = agent.config.search.mode == "alphazero"

    @jax.jit
    def move(inner, obs, score, done, key):
        act_key, step_key = jax.random.split(key)
        out = agent.act(state, act_key, obs, greedy=True,
                        invalid_actions=~jax.vmap(env.legal_action_mask)(inner),
                        embedding=inner if alphazero else None)
        step = jax.vmap(env.transition)(inner, out.action,
                                        jax.random.split(step_key, num_games))

        def keep(new, old):  # finished games keep their last state while others play on
            return jnp.where(done.reshape(done.shape + (1,) * (new.ndim - 1)), old, new)

        inner = jax.tree.map(keep, step.inner, inner)
        obs = keep(step.observation, obs)
        score = score + jnp.where(done, 0.0, step.reward)
        return inner, obs, score, done | step.terminated

    key = jax.random.key(seed)
    key, reset_key = jax.random.split(key)
    inner, obs = jax.vmap(env.initial)(jax.random.split(reset_key, num_games))
    score, done = jnp.zeros(num_games), jnp.zeros(num_games, bool)
    for _ in range(max_steps):
        key, move_key = jax.random.split(key)
        inner, obs, score, done = move(inner, obs, score, done, move_key)
        if bool(done.all()):
            break
    tiles = 2 ** np.asarray(inner._board).max(axis=-1)
    return np.asarray(score), tiles


def tile_counts(tiles) -> dict[str, int]:
    values, counts = np.unique(np.asarray(tiles), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def write_tiles(run_dir: str, num_games: int = GAMES, seed: int = 20_000) -> dict:
    """Plays `num_games` greedy games with the run's latest checkpoint; writes and
    returns `tiles.json` (scores and the highest tile's distribution)."""
    from muzero_jax import evaluate

    _, agent, _, runs = evaluate.load_runs(run_dir, None)
    scores, tiles = greedy_games(agent, runs[0][1], num_games, seed)
    record = {"games": num_games, "seed": seed, "mean_score": float(scores.mean()),
              "std_score": float(scores.std()), "highest_tile": tile_counts(tiles)}
    with open(os.path.join(run_dir, "tiles.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def run_variant(variant: str, out: str, env_steps: int, seed: int) -> dict:
    """Trains one variant and seed in a fresh process and plays its tile games, unless
    `out` holds that run; returns its summary, curve and tiles."""
    flags = ("--preset", "2048", *VARIANTS[variant])
    if not minatar.finished(out, ENV_ID, env_steps, seed, flags):
        minatar.train_cold(["--env", ENV_ID, *flags, "--seed", str(seed), "--eval-episodes",
                            str(GAMES)], out, env_steps, _steps_per_iteration())
    if not os.path.exists(os.path.join(out, "tiles.json")):
        write_tiles(out)
    minatar.strip_run(out)
    return read_variant(variant, out, seed)


def read_variant(variant: str, out: str, seed: int) -> dict:
    run = dict(minatar.read_run(out, "2048", seed), variant=variant)
    with open(os.path.join(out, "tiles.json")) as f:
        run["tiles"] = json.load(f)
    return run


def _steps_per_iteration() -> int:
    from muzero_jax.presets import play_2048

    config = play_2048()
    return config.acting.num_envs * config.acting.rollout_length


def baselines() -> dict[str, dict]:
    """The players without learning (`benchmarks.random_2048`) measured so far, by name."""
    found = {}
    for player in PLAYER_NAMES:
        try:
            with open(os.path.join(BASELINES, f"{player}-2048.json")) as f:
                found[player] = json.load(f)
        except (OSError, ValueError):
            continue
    return found


def benchmark(out: str, device: str, log, env_steps: int | None = None,
              seeds: int = DEFAULT_SEEDS, variants=tuple(VARIANTS)) -> dict:
    """Runs every variant and seed for `env_steps` (default the preset's), draws the
    curves, returns the section's record."""
    env_steps = env_steps or default_steps()
    runs = []
    for variant in variants:
        for seed in range(seeds):
            run_dir = os.path.join(out, "2048", device, f"{variant}-seed{seed}")
            run = run_variant(variant, run_dir, env_steps, seed)
            log(f"  {variant:10s} seed {seed}: {run['env_steps']:,} env steps in "
                f"{run['wall_seconds']:.0f} s, greedy score {run['final_eval_return']:,.0f} "
                f"+- {run['final_eval_std']:,.0f}, highest tiles {run['tiles']['highest_tile']}")
            runs.append(run)
    players = baselines()
    png = f"2048/{device}.png"  # relative to `out`, as the tables' links are
    os.makedirs(os.path.dirname(os.path.join(out, png)), exist_ok=True)
    lines = [(PLAYER_NAMES[p], r["mean_score"]) for p, r in players.items()]
    minatar.plot(runs, os.path.join(out, png), title="{}", ylabel="greedy score", lines=lines)
    seed_range = f"seeds 0-{seeds - 1}" if seeds > 1 else "seed 0"
    return {"config": f"preset 2048, {seed_range}, {env_steps:,} env steps per run, "
                      "cold process each (compilation included)",
            "env_steps_budget": env_steps, "variants": list(variants),
            "variant_flags": {v: " ".join(VARIANTS[v]) for v in variants},
            "baselines": players, "runs": runs, "plot": png}


TILE_COLUMNS = (128, 256, 512, 1024, 2048)


def _tile_cells(counts: dict[str, int]) -> list[str]:
    """Games whose highest tile was <= 128, 256, 512, 1024, >= 2048."""
    total = {c: 0 for c in TILE_COLUMNS}
    for tile, n in counts.items():
        total[min(max(int(tile), TILE_COLUMNS[0]), TILE_COLUMNS[-1])] += n
    return [str(total[c]) for c in TILE_COLUMNS]


def markdown(section: dict) -> list[str]:
    runs = section["runs"]
    seeds = sorted({r["seed"] for r in runs})
    players = section.get("baselines", {})
    random = players.get("random")
    bar = 4 * random["mean_score"] if random else None
    lines = [f"Greedy score over {GAMES} games ({section['config']}); players without "
             "learning (`python -m benchmarks.random_2048 --player P`): "
             + ("; ".join(f"{PLAYER_NAMES[p]} {r['mean_score']:,.0f} +- {r['std_score']:,.0f} "
                          f"over {r['games']} games" for p, r in players.items())
                or "not measured") + ":", "",
             "| variant | " + " | ".join(f"seed {s}" for s in seeds)
             + " | median | wall s per run |", "|---|" + "---|" * (len(seeds) + 2)]
    by_variant: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = r
    for variant, group in by_variant.items():
        cells = [f"{group[s]['final_eval_return']:,.0f} +- {group[s]['final_eval_std']:,.0f}"
                 if s in group else "-" for s in seeds]
        scores = [r["final_eval_return"] for r in group.values()]
        walls = [f"{w:.0f}" for w in sorted(r["wall_seconds"] for r in group.values())]
        resumed = sum(r.get("resumes", 0) > 0 for r in group.values())
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {np.median(scores):,.0f} | "
                     + (walls[0] if walls[0] == walls[-1] else f"{walls[0]}-{walls[-1]}")
                     + (f" ({resumed} resumed)" if resumed else "") + " |")
    flags = section.get("variant_flags", {})
    lines += [""] + [f"- {v}: `--preset 2048 {f}`".rstrip() for v, f in flags.items()]
    if bar is not None:
        lines.append(f"- bar: 4x the random player, {bar:,.0f}")
    for name, other in PAIRS:
        stochastic, plain = by_variant.get(name, {}), by_variant.get(other, {})
        if bar is not None and stochastic:
            met = [s for s, r in stochastic.items() if r["final_eval_return"] >= bar]
            lines.append(f"- {name} at or above the bar: {len(met)}/{len(stochastic)} seeds")
        both = sorted(set(stochastic) & set(plain))
        if both:
            ahead = [s for s in both
                     if stochastic[s]["final_eval_return"] > plain[s]["final_eval_return"]]
            lines.append(f"- {name} above {other}: {len(ahead)}/{len(both)} seeds")
    lines += ["", f"Highest tile over each run's {GAMES} tile games (played apart from the "
              "score's, same greedy search), games per column:", "",
              "| variant | seed | mean score of the tile games | <= 128 | 256 | 512 | 1024 "
              "| >= 2048 |", "|---|---|---|---|---|---|---|---|"]
    for player, r in players.items():
        lines.append(f"| {PLAYER_NAMES[player]} ({r['games']} games) | - | "
                     f"{r['mean_score']:,.0f} | " + " | ".join(_tile_cells(r["highest_tile"]))
                     + " |")
    for r in runs:
        lines.append(f"| {r['variant']} | {r['seed']} | {r['tiles']['mean_score']:,.0f} | "
                     + " | ".join(_tile_cells(r["tiles"]["highest_tile"])) + " |")
    lines += ["", f"![2048 curves](../{section['plot']})"]
    return lines
