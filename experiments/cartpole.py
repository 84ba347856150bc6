"""Train MuZero on CartPole-v1 and evaluate it on Gymnasium's own CartPole-v1.

    python experiments/cartpole.py [--seed S] [--out DIR] [--STAGE.FIELD VALUE ...]
    python experiments/cartpole.py --resume DIR [--STAGE.FIELD VALUE ...]

`experiments/train.py --env jax/CartPole-v1` with the `cartpole` preset by
default (also for `--env CartPole-v1`, Gymnasium's numpy CartPole on the host).
Prints progress while training (a bar on a terminal) and stops early once a
periodic greedy evaluation (on our JAX CartPole) reaches the solve return and 100
greedy episodes of `gymnasium.make("CartPole-v1")` confirm it; those episodes are
the final evaluation (a run that spends its budget plays them at the end). DIR receives
config.json, checkpoints/, tensorboard/, metrics.csv, curves.png and
summary.json; `--resume DIR` continues a stopped run from its latest checkpoint
(overrides apply on top of its config.json, e.g. a larger total_env_steps).
Every Config field can be overridden (`--help` lists them with their defaults).
`wall_seconds` runs from process start to the end of training, compilation
included (JAX's persistent compilation cache is off unless you turn it on); the
final evaluation is timed separately as `eval_seconds`.
"""

from __future__ import annotations

import os

from muzero_jax import experiment


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(
        argv, description=__doc__.split("\n\n")[0], default_preset="cartpole",
        default_out=lambda config, preset: os.path.join(
            "runs", f"{preset}-seed{config.run.seed}"))


if __name__ == "__main__":
    main()
