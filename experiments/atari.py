"""Train MuZero on an Atari game (ALE/<Game>-v5, ale-py) and evaluate it greedily.

    python experiments/atari.py --env ALE/Breakout-v5 --preset tiny --env-steps 2000 --out DIR
    python experiments/atari.py --resume DIR [--STAGE.FIELD VALUE ...]

`--preset paper` is the paper's configuration (its Atari appendices) for a
GPU or TPU; `--preset tiny` the same pipeline scaled down for a CPU smoke run.
Prints progress while training, then plays `--eval-episodes` greedy episodes on
fresh emulators. DIR receives what experiments/cartpole.py writes (config.json,
checkpoints/, tensorboard/, metrics.csv, curves.png, summary.json with the same
keys); every config field can be overridden (`--help` shows how). Resuming
restores parameters, optimizer, replay (when it was checkpointed), RNG and
counters, and starts new games: emulators are not checkpointed.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated

import muzero_jax as mz
from muzero_jax import experiment


@dataclasses.dataclass(frozen=True)
class AtariFlags(experiment.Flags):
    """experiment.Flags, and two of their own."""

    # training budget in agent steps, as --total-env-steps
    env_steps: Annotated[int | None, experiment.flag("INT", "the preset's")] = None
    # episode time limit in agent steps, as --env.max_episode_steps (paper: 27,000)
    max_episode_steps: Annotated[int | None, experiment.flag("INT", "the preset's")] = None

    def flag_fields(self) -> dict[str, str]:
        return super().flag_fields() | {"env_steps": "run.total_env_steps",
                                        "max_episode_steps": "env.max_episode_steps"}


def check_atari(config: mz.Config) -> None:
    """Refuses an env that is not an Atari game before the Atari preset meets it (its
    sticky actions and frame history would be what the error named)."""
    if not config.env.id.startswith("ALE/"):
        raise mz.ConfigError(
            f"env={config.env.id!r}: experiments/atari.py trains Atari games, ids "
            f"ALE/<Game>-v5 (e.g. ALE/Breakout-v5); experiments/train.py --env "
            f"{config.env.id} trains any other env")


def default_out(config: mz.Config, preset: str) -> str:
    game = config.env.id.split("/")[-1].split("-")[0].lower()
    return os.path.join("runs", f"atari-{game}-{preset}-seed{config.run.seed}")


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(
        argv, description=__doc__.split("\n\n")[0], default_preset="atari_tiny",
        preset_aliases={"tiny": "atari_tiny", "paper": "atari_paper"},
        flags_type=AtariFlags, default_out=default_out, check=check_atari)


if __name__ == "__main__":
    main()
