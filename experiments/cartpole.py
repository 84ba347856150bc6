"""Train MuZero on CartPole-v1 and evaluate it on Gymnasium's own CartPole-v1.

    python experiments/cartpole.py [--seed S] [--out DIR] [--preset NAME]
                                   [--set FIELD=VALUE ...]

Prints progress while training, stops early once a periodic greedy evaluation
(on our JAX CartPole) reaches the solve return, then plays 100 greedy episodes of
`gymnasium.make("CartPole-v1")` and writes DIR/summary.json and DIR/metrics.csv.
`wall_seconds` runs from process start to the end of training, compilation
included (JAX's persistent compilation cache is off unless you turn it on);
the final evaluation is timed separately as `eval_seconds`.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import ast  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import muzero_jax as mz  # noqa: E402


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default=None, help="directory for summary.json and "
                        "metrics.csv (default runs/cartpole-seedS)")
    parser.add_argument("--total-env-steps", type=int, default=None,
                        help="training budget in env steps (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, default=100,
                        help="final evaluation episodes on gymnasium's CartPole-v1")
    parser.add_argument("--preset", default="cartpole",
                        choices=sorted(mz.PRESETS),
                        help="the configuration preset (default cartpole)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set priority_alpha=1.0 "
                        "(Python literal; repeatable)")
    args = parser.parse_args(argv)

    overrides = {"seed": args.seed, "final_eval_episodes": args.eval_episodes}
    if args.total_env_steps is not None:
        overrides["total_env_steps"] = args.total_env_steps
    try:
        overrides.update(_parse_overrides(args.set))
        config = mz.validate(mz.PRESETS[args.preset](**overrides))
        if config.env != "CartPole-v1":
            raise ValueError(f"--preset {args.preset}: its env is {config.env!r}; this "
                             "script trains and evaluates CartPole-v1")
    except (mz.ConfigError, ValueError, TypeError) as e:
        parser.error(str(e))
    out = args.out or os.path.join("runs", f"cartpole-seed{args.seed}")
    os.makedirs(out, exist_ok=True)

    result = mz.train(config)
    wall_seconds = _seconds_since_process_start()

    eval_start = time.perf_counter()
    returns = mz.evaluate_gymnasium(result.agent, result.state, "CartPole-v1",
                                    config.final_eval_episodes, seed=10_000 + args.seed)
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
        "seed": args.seed,
        "preset": args.preset,
        "overrides": args.set,
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _write_csv(os.path.join(out, "metrics.csv"), result.history)
    print(f"eval on gymnasium CartPole-v1: {summary['eval_return_mean']:.1f} "
          f"+- {summary['eval_return_std']:.1f} over {len(returns)} episodes | "
          f"wall {summary['wall_seconds']:.1f}s (compile included) | "
          f"{result.env_steps} env steps | {result.train_steps} updates | "
          f"eval {eval_seconds:.1f}s -> {out}/summary.json")
    return summary


def _parse_overrides(items: list[str]) -> dict:
    """`["a=1", "b=(0.5, 0.5)"]` -> {"a": 1, "b": (0.5, 0.5)}; values are Python literals."""
    fields = {f.name for f in dataclasses.fields(mz.Config)}
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"the Config fields ({', '.join(sorted(fields))})")
        try:
            overrides[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[name] = text  # a bare string, e.g. search=muzero
    return overrides


def _write_csv(path: str, rows: list[dict]) -> None:
    fields = sorted({k for row in rows for k in row}, key=lambda k: (k not in rows[0], k)) \
        if rows else []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
