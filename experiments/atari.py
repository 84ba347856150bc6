"""Train MuZero on an Atari game (ALE/<Game>-v5, ale-py) and evaluate it greedily.

    python experiments/atari.py --env ALE/Breakout-v5 --preset tiny --env-steps 2000 --out DIR

`--preset paper` is the paper's configuration (SPEC.md, Atari specifics) for a
GPU or TPU; `--preset tiny` the same pipeline scaled down for a CPU smoke run.
Prints progress while training, then plays `--eval-episodes` greedy episodes on
fresh emulators and writes DIR/summary.json (the keys of experiments/cartpole.py)
and DIR/metrics.csv. `wall_seconds` runs from process start to the end of
training, compilation included; the final evaluation is timed as `eval_seconds`.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from cartpole import _seconds_since_process_start, _write_csv  # noqa: E402

import muzero_jax as mz  # noqa: E402

PRESETS = {"tiny": mz.atari_tiny, "paper": mz.atari_paper}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5", help="an ALE/<Game>-v5 id")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--env-steps", type=int, default=None,
                        help="training budget in agent steps (default: the preset's)")
    parser.add_argument("--max-episode-steps", type=int, default=None,
                        help="episode time limit in agent steps (default: the preset's; "
                        "paper 27,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="final greedy evaluation episodes (default: the preset's)")
    parser.add_argument("--out", default=None, help="directory for summary.json and "
                        "metrics.csv (default runs/atari-<game>-<preset>-seedS)")
    args = parser.parse_args(argv)

    overrides = {"env": args.env, "seed": args.seed}
    if args.env_steps is not None:
        overrides["total_env_steps"] = args.env_steps
    if args.max_episode_steps is not None:
        overrides["max_episode_steps"] = args.max_episode_steps
    if args.eval_episodes is not None:
        overrides["final_eval_episodes"] = args.eval_episodes
    try:
        config = mz.validate(PRESETS[args.preset](**overrides))
        mz.Agent(config)  # checks the game and the config's fit to it, compiling nothing
    except (mz.ConfigError, ValueError) as e:
        parser.error(str(e))
    game = args.env.split("/")[-1].split("-")[0].lower()
    out = args.out or os.path.join("runs", f"atari-{game}-{args.preset}-seed{args.seed}")
    os.makedirs(out, exist_ok=True)

    result = mz.train(config)
    wall_seconds = _seconds_since_process_start()

    eval_start = time.perf_counter()
    returns = mz.evaluate_jax(result.agent, result.state, jax.random.key(10_000 + args.seed),
                              config.final_eval_episodes)
    eval_seconds = time.perf_counter() - eval_start

    summary = {
        "env": args.env,
        "preset": args.preset,
        "env_steps": result.env_steps,
        "train_steps": result.train_steps,
        "wall_seconds": round(wall_seconds, 2),
        "train_seconds": round(result.seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_return_min": float(np.min(returns)),
        "eval_episodes": int(len(returns)),
        "solved": bool(config.solve_return is not None
                       and np.mean(returns) >= config.solve_return),
        "solved_during_training": result.solved,
        "seed": args.seed,
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _write_csv(os.path.join(out, "metrics.csv"), result.history)
    print(f"eval on {args.env}: {summary['eval_return_mean']:.1f} "
          f"+- {summary['eval_return_std']:.1f} over {len(returns)} greedy episodes | "
          f"wall {summary['wall_seconds']:.1f}s (compile included) | "
          f"{result.env_steps} env steps | {result.train_steps} updates | "
          f"eval {eval_seconds:.1f}s -> {out}/summary.json")
    return summary


if __name__ == "__main__":
    main()
