"""Train MuZero or AlphaZero on a two-player board game (pgx) and play it against opponents.

    python experiments/board.py --game tic_tac_toe|connect_four|othello|go_9x9|chess \
        [--mode muzero|alphazero] [--seed S] [--out DIR] [--STAGE.FIELD VALUE ...]
    python experiments/board.py --resume DIR [--STAGE.FIELD VALUE ...]

The game's preset (`muzero_jax.presets.board`) trains on `pgx/<game>` through the
same machinery as every experiment (run directory with config.json, checkpoints/,
tensorboard/, metrics.csv, curves.png; `--resume`). Then the greedy agent plays
`--eval-episodes` games as first player and as many as second player against each
opponent (`muzero_jax.opponents`): a uniform random player, the pure-search
baseline (mctx with pgx's real step, uniform prior, random-rollout values,
`--baseline-simulations`), and for tic-tac-toe a perfect minimax player.
summary.json holds the usual keys (`eval_return_mean` is the mean score, +1 win,
0 draw, -1 loss, over all those games) and `opponents`: for each opponent, wins,
draws and losses as first and as second player.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Annotated

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from muzero_jax import cli, experiment, opponents  # noqa: E402
from muzero_jax.config import MODES, Config, ConfigError, from_dict  # noqa: E402
from muzero_jax.presets import BOARD_GAMES  # noqa: E402


@dataclasses.dataclass(frozen=True)
class BoardFlags(experiment.Flags):
    """experiment.Flags, and the board's own."""

    # the game, which picks its preset: tic_tac_toe, connect_four, othello, go_9x9, chess
    game: Annotated[str | None, experiment.flag("GAME", "tic_tac_toe")] = None
    # muzero: the learned model; alphazero: pgx's real step in the search (unroll_steps 0)
    mode: Annotated[str | None, experiment.flag("MODE", "muzero")] = None
    baseline_simulations: int = 100  # simulations of the pure-search opponent

    def flag_fields(self) -> dict[str, str]:
        return super().flag_fields() | {"mode": "search.mode"}

    def overrides(self) -> dict:
        # The mode's own preset is already the default config (`main`); what is left is
        # a config that came from elsewhere (--resume, another --preset).
        extra = {}
        if self.mode is not None:
            extra = {"mode": self.mode}
            if self.mode == "alphazero":
                extra["unroll_steps"] = 0
            elif self.config.loss.unroll_steps == 0:
                extra["unroll_steps"] = 5
        return super().overrides() | extra


def board_evaluation(result, config: Config, baseline_simulations: int,
                     games_per_side: int | None = None) -> dict:
    """{opponent: {"first": {wins, draws, losses}, "second": {...}}} for the trained agent."""
    agent = result.agent
    game = agent.env.pgx_env
    player = opponents.agent_player(agent)
    games = games_per_side or config.run.final_eval_episodes
    rivals = {"random": opponents.random_player,
              f"search{baseline_simulations}": opponents.search_player(
                  game, baseline_simulations)}
    if config.env.id == "pgx/tic_tac_toe":
        rivals["minimax"] = opponents.minimax_player
    key = jax.random.key(config.run.seed + 1)
    out = {}
    for i, (name, rival) in enumerate(rivals.items()):
        start = time.perf_counter()
        out[name] = opponents.match(game, player, rival, jax.random.fold_in(key, i), games,
                                    player_params=result.state.params)
        print(f"vs {name}: as first {out[name]['first']}, as second {out[name]['second']} "
              f"({time.perf_counter() - start:.1f}s)")
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--game", default=None)
    known, rest = pre.parse_known_args(argv)
    if known.game is not None and known.game not in BOARD_GAMES:
        cli.error(f"--game {known.game!r}: expected one of {list(BOARD_GAMES)}")
    game = known.game or "tic_tac_toe"
    mode = cli.pre_parse(rest, "--mode").mode
    if mode is not None and mode not in MODES:
        cli.error(f"--mode {mode!r}: expected one of {list(MODES)}")
    resuming = cli.pre_parse(rest, "--resume").resume is not None
    results = {}

    def baseline_simulations() -> int:
        # tyro has parsed the flag by the time this is called (check, evaluate), so the
        # text is an integer; both spellings are read, as tyro reads them.
        sims = argparse.ArgumentParser(add_help=False)
        sims.add_argument("--baseline-simulations", "--baseline_simulations", default="100")
        return int(sims.parse_known_args(rest)[0].baseline_simulations)

    def check(config):
        """Refuses what board.py cannot train or evaluate, before anything compiles."""
        name = config.env.id[len("pgx/"):] if config.env.id.startswith("pgx/") else None
        if name not in BOARD_GAMES:
            raise ConfigError(
                f"env={config.env.id!r}: experiments/board.py trains pgx board games, "
                f"--game one of {list(BOARD_GAMES)}; experiments/train.py --env "
                f"{config.env.id} trains other envs")
        if name != game and known.game is not None:
            raise ConfigError(f"env={config.env.id!r} and --game {game}: the preset is "
                              f"{game}'s; give one of them")
        if name != game and not resuming:
            raise ConfigError(f"env={config.env.id!r}: board.py takes the game as --game, "
                              f"which picks its preset ({game} without it); give --game "
                              f"{name} instead")
        if baseline_simulations() < 1:
            raise ConfigError(f"--baseline-simulations {baseline_simulations()}: expected "
                              "an integer >= 1")

    def evaluate(result, config):
        results.update(board_evaluation(result, config, baseline_simulations()))
        scores = [s for side in results.values() for part in side.values()
                  for s, n in ((1.0, part["wins"]), (0.0, part["draws"]), (-1.0, part["losses"]))
                  for _ in range(n)]
        return np.asarray(scores), "opponents: " + ", ".join(results)

    def default_out(config, preset):
        return os.path.join("runs", f"board-{game}-{config.search.mode}-seed{config.run.seed}")

    summary = experiment.main(
        rest, description=__doc__.split("\n\n")[0],
        default_preset=None if known.game is None and "--resume" in rest else game,
        flags_type=BoardFlags, evaluate=evaluate, default_out=default_out, check=check,
        # --mode picks the mode's preset, so that flags given on top of it stand
        # even where their value is the other mode's.
        preset_overrides={"mode": mode} if mode is not None else None)
    if "runs" in summary or not results:
        return summary
    summary["opponents"] = results
    out = summary_path(rest, summary, default_out)
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def summary_path(argv, summary, default_out) -> str:
    """Where experiment.main wrote summary.json (the run directory it chose)."""
    flags = cli.pre_parse(argv, "--out", "--resume")
    run_dir = flags.resume or flags.out or default_out(from_dict(summary["config"]),
                                                        summary["preset"])
    return os.path.join(run_dir, "summary.json")


if __name__ == "__main__":
    main()
