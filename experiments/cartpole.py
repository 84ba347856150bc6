"""Train MuZero on CartPole-v1 and evaluate it on Gymnasium's own CartPole-v1.

    python experiments/cartpole.py [--seed S] [--out DIR] [--config.FIELD VALUE ...]
    python experiments/cartpole.py --resume DIR [--config.FIELD VALUE ...]

Prints progress while training (a bar on a terminal), stops early once a periodic
greedy evaluation (on our JAX CartPole) reaches the solve return, then plays 100
greedy episodes of `gymnasium.make("CartPole-v1")`. DIR receives config.json,
checkpoints/, tensorboard/, metrics.csv, curves.png and summary.json; `--resume
DIR` continues a stopped run from its latest checkpoint (overrides apply on top
of its config.json, e.g. a larger total_env_steps). Every Config field can be
overridden (`--help` lists them with their defaults).
`wall_seconds` runs from process start to the end of training, compilation
included (JAX's persistent compilation cache is off unless you turn it on);
the final evaluation is timed separately as `eval_seconds`.
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

import numpy as np  # noqa: E402

import muzero_jax as mz  # noqa: E402
from muzero_jax import checkpoint, cli  # noqa: E402


def _seconds_since_process_start() -> float:
    """Wall seconds since this process started (Linux /proc), else since this module loaded."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _START


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: the preset's, 0)")
    parser.add_argument("--out", default=None, help="run directory (default "
                        "runs/cartpole-seedS)")
    parser.add_argument("--total-env-steps", type=int, default=None,
                        help="training budget in env steps (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="final evaluation episodes on gymnasium's CartPole-v1 (default: "
                        "config.final_eval_episodes, 100)")
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the run in DIR from its latest checkpoint")
    cli.add_preset_argument(parser, "cartpole")
    preset = cli.preset_from(argv, "cartpole")
    if preset not in mz.PRESETS:
        parser.error(f"--preset {preset!r}: expected one of {sorted(mz.PRESETS)}")
    cli.add_config_arguments(parser, mz.PRESETS[preset]())
    cli.check_unknown_fields(parser, argv)
    args = parser.parse_args(argv)

    overrides = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.eval_episodes is not None:
        overrides["final_eval_episodes"] = args.eval_episodes
    if args.total_env_steps is not None:
        overrides["total_env_steps"] = args.total_env_steps
    overrides.update(cli.overrides_from(args))
    base = None
    if args.resume is not None:
        if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
            parser.error(f"--out {args.out} and --resume {args.resume}: a resumed run "
                         "stays in its directory; give only --resume")
        try:
            base = checkpoint.load_config(args.resume)
        except checkpoint.CheckpointError as e:
            parser.error(str(e))
    config = cli.build(parser, preset, overrides, base)
    out = args.resume or args.out or os.path.join("runs", f"cartpole-seed{config.seed}")

    try:
        result = mz.train(config, run_dir=out, resume=args.resume is not None)
    except checkpoint.CheckpointError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    wall_seconds = _seconds_since_process_start()

    eval_start = time.perf_counter()
    returns = mz.evaluate_gymnasium(result.agent, result.state, "CartPole-v1",
                                    config.final_eval_episodes, seed=10_000 + config.seed)
    eval_seconds = time.perf_counter() - eval_start

    summary = {
        "env_steps": result.env_steps,
        "train_steps": result.train_steps,
        "wall_seconds": round(wall_seconds, 2),
        "train_seconds": round(result.seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_return_min": float(np.min(returns)),
        "eval_episodes": int(len(returns)),
        "solved": bool(np.mean(returns) >= 475.0),
        "solved_during_training": result.solved,
        "seed": config.seed,
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"eval on gymnasium CartPole-v1: {summary['eval_return_mean']:.1f} "
          f"+- {summary['eval_return_std']:.1f} over {len(returns)} episodes | "
          f"wall {summary['wall_seconds']:.1f}s (compile included) | "
          f"{result.env_steps} env steps | {result.train_steps} updates | "
          f"eval {eval_seconds:.1f}s -> {out}/summary.json")
    return summary


if __name__ == "__main__":
    main()
