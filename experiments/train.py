"""Train MuZero on any environment and evaluate it greedily on the env you named.

    python experiments/train.py --env ID [--preset NAME] [--seed S] [--out DIR]
        [--total-env-steps N] [--eval-episodes N] [--STAGE.FIELD VALUE ...]
    python experiments/train.py --resume DIR [--STAGE.FIELD VALUE ...]

ID is any id of muzero_jax.envs's rule: `jax/CartPole-v1` (a registered JAX
env), `gymnax/Breakout-MinAtar`, `ALE/Pong-v5`, or a Gymnasium id
(`CartPole-v1`, `Acrobot-v1`, `my_package.envs:Maze-v0`). Without --preset the
preset suits the env's family (`--help` lists families and presets). Prints
progress while training, then plays --eval-episodes greedy episodes on the env
you named (its Gymnasium form where it has one). DIR receives config.json,
checkpoints/, tensorboard/, metrics.csv, curves.png and summary.json; `--resume
DIR` continues a stopped run from its latest checkpoint (overrides apply on top
of its config.json). `wall_seconds` runs from process start to the end of
training, compilation included; the final evaluation is timed as `eval_seconds`.
"""

from __future__ import annotations

from muzero_jax import experiment


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(argv, description=__doc__.split("\n\n")[0], default_preset=None)


if __name__ == "__main__":
    main()
