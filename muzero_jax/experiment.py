"""What every experiment script does: parse flags, train into a run directory, evaluate, summarise.

`experiments/cartpole.py` and `experiments/atari.py` are thin: they name their
preset, their default run directory and how to evaluate, and call `main`. So
both take the same flags (`--seed`, `--out`, `--total-env-steps`,
`--eval-episodes`, `--resume DIR`, `--preset`, `--config.FIELD VALUE` for every
field), write the same run directory (config.json, checkpoints/, tensorboard/,
metrics.csv, curves.png) and the same `summary.json` keys, and exit with code 2
and a message, never a traceback, on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from muzero_jax import checkpoint, cli
from muzero_jax.config import PRESETS, Config, ConfigError
from muzero_jax.evaluate import evaluate_final, solve_threshold
from muzero_jax.loop import SWEEPABLE
from muzero_jax.train import TrainResult, train

_IMPORTED = time.perf_counter()

# evaluate(result, config) -> the returns of the final greedy episodes, and what was played.
Evaluate = Callable[[TrainResult, Config], tuple[np.ndarray, str]]


def evaluate_named_env(result: TrainResult, config: Config) -> tuple[np.ndarray, str]:
    """The default final evaluation: `evaluate.evaluate_final` on the trained agent."""
    return evaluate_final(result.agent, result.state, config)


def seconds_since_process_start() -> float:
    """Wall seconds since this process started (Linux /proc), else since this module loaded.

    Experiments report this as `wall_seconds` so that interpreter start-up, imports
    and compilation count, as they do for the user waiting on the command.
    """
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def main(argv: Sequence[str] | None, *, description: str, default_preset: str,
         default_out: Callable[[Config, str], str],
         evaluate: Evaluate = evaluate_named_env,
         preset_aliases: dict[str, str] | None = None,
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
         overrides_from_args: Callable[[argparse.Namespace], dict] | None = None,
         check: Callable[[Config], None] | None = None) -> dict:
    """Runs one experiment from command-line flags; returns the summary it writes.

    Args:
      argv: the flags (None: sys.argv[1:]).
      description: the script's one-line description, for --help.
      default_preset: the `PRESETS` name used without `--preset`.
      evaluate: plays the final greedy episodes (default: on the env the config names,
        or its Gymnasium twin).
      default_out: the run directory without `--out`, from the config and preset.
      preset_aliases: short preset names the script accepts (e.g. tiny -> atari_tiny).
      add_arguments: adds the script's own flags.
      overrides_from_args: the config fields those flags set.
      check: raises ConfigError/ValueError for a config the script cannot run,
        before anything compiles.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    aliases = preset_aliases or {}
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: the preset's, 0)")
    parser.add_argument("--out", default=None, help="run directory (default: "
                        "runs/<experiment>-seedS)")
    parser.add_argument("--total-env-steps", type=int, default=None,
                        help="training budget in env steps (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="final greedy evaluation episodes (default: "
                        "config.final_eval_episodes)")
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the run in DIR from its latest checkpoint (flags "
                        "apply on top of DIR/config.json)")
    add_run_arguments(parser)
    if add_arguments is not None:
        add_arguments(parser)
    names = sorted(PRESETS) + sorted(aliases)
    parser.add_argument("--preset", default=default_preset, choices=names,
                        help=f"named configuration to start from (default: {default_preset})")
    preset = cli.preset_from(argv, default_preset)
    if preset not in names:
        parser.error(f"--preset {preset!r}: expected one of {names}")
    preset = aliases.get(preset, preset)
    cli.add_config_arguments(parser, PRESETS[preset]())
    cli.check_unknown_fields(parser, argv)
    args = parser.parse_args(argv)

    overrides = {}
    for flag, field in (("seed", "seed"), ("eval_episodes", "final_eval_episodes"),
                        ("total_env_steps", "total_env_steps")):
        if getattr(args, flag) is not None:
            overrides[field] = getattr(args, flag)
    if overrides_from_args is not None:
        overrides.update(overrides_from_args(args))
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
    if check is not None:
        try:
            check(config)
        except (ConfigError, ValueError) as e:
            parser.error(str(e))
    seeds, sweep = runs_from_args(parser, args)
    if seeds is not None or sweep is not None:
        out = args.resume or args.out or default_out(config, args.preset).replace(
            f"-seed{config.seed}", "-" + "-".join(
                ([f"seeds{'_'.join(map(str, seeds))}"] if seeds else [])
                + ([f"sweep-{sweep[0]}"] if sweep else [])))
        return _main_runs(parser, config, preset, out, args, seeds, sweep, evaluate)
    out = args.resume or args.out or default_out(config, args.preset)

    try:
        result = train(config, run_dir=out, resume=args.resume is not None)
    except checkpoint.CheckpointError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    wall_seconds = seconds_since_process_start()

    eval_start = time.perf_counter()
    returns, eval_label = evaluate(result, config)
    returns = np.asarray(returns)
    eval_seconds = time.perf_counter() - eval_start
    # The env's own bar (Gymnasium's reward_threshold) where it has one, else the config's.
    threshold = solve_threshold(result.agent, config)
    summary = {
        "env": config.env,
        "preset": preset,
        "env_steps": result.env_steps,
        "train_steps": result.train_steps,
        "wall_seconds": round(wall_seconds, 2),
        "train_seconds": round(result.seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_return_min": float(np.min(returns)),
        "eval_episodes": int(len(returns)),
        "eval_env": eval_label,
        "solved": bool(threshold is not None and np.mean(returns) >= threshold),
        "solved_during_training": result.solved,
        "seed": config.seed,
        "compile_seconds": result.compile_seconds,
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"eval on {eval_label}: {summary['eval_return_mean']:.1f} "
          f"+- {summary['eval_return_std']:.1f} over {len(returns)} greedy episodes | "
          f"wall {summary['wall_seconds']:.1f}s (compile included) | "
          f"{result.env_steps} env steps | {result.train_steps} updates | "
          f"eval {eval_seconds:.1f}s -> {out}/summary.json")
    return summary



# --- several runs in one program: --seeds and --sweep ---------------------------------
RUNS_NAME = "runs.json"  # a multi-run directory's seeds and sweep, for --resume


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """`--seeds S [S ...]` and `--sweep FIELD V1,V2,...`: several runs in one program."""
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                        help="train these seeds side by side in one compiled program (JAX "
                        "envs); one run directory, a TensorBoard run and summary entry each")
    parser.add_argument("--sweep", nargs=2, default=None, metavar=("FIELD", "VALUES"),
                        help="one run per comma-separated value of a config field, in one "
                        "program (with --seeds: per seed); supported fields: "
                        + ", ".join(SWEEPABLE))


def runs_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """(seeds, sweep) from the flags (or a resumed run's runs.json); exits 2 on bad input."""
    seeds, sweep = args.seeds, None
    if args.sweep is not None:
        field, text = args.sweep
        if field not in SWEEPABLE:
            parser.error(f"--sweep {field}: supported fields are {list(SWEEPABLE)} (a sweep "
                         "in one program varies a value that changes no shapes)")
        try:
            sweep = (field, tuple(float(v) for v in text.split(",") if v.strip()))
        except ValueError:
            parser.error(f"--sweep {field} {text!r}: expected comma-separated numbers")
        if not sweep[1]:
            parser.error(f"--sweep {field} {text!r}: expected at least one value")
    if args.seed is not None and seeds is not None:
        parser.error("--seed and --seeds: give one of them")
    if args.resume is not None and seeds is None and sweep is None:
        path = os.path.join(args.resume, RUNS_NAME)
        if os.path.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            seeds = saved.get("seeds")
            sweep = tuple(saved["sweep"]) if saved.get("sweep") else None
    return seeds, sweep


def _main_runs(parser, config, preset, out, args, seeds, sweep, evaluate) -> dict:
    try:
        results = train(config, seeds=seeds, sweep=sweep, run_dir=out,
                        resume=args.resume is not None)
    except checkpoint.CheckpointError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except ConfigError as e:
        parser.error(str(e))
    wall_seconds = seconds_since_process_start()
    with open(os.path.join(out, RUNS_NAME), "w") as f:
        json.dump({"seeds": seeds, "sweep": list(sweep) if sweep else None}, f)
    threshold = solve_threshold(results[0].agent, config)
    eval_start = time.perf_counter()
    entries = []
    for result in results:
        run_config = dataclasses.replace(config, seed=result.seed, **result.hyperparameters)
        start = time.perf_counter()
        returns, eval_label = evaluate(result, run_config)
        returns = np.asarray(returns)
        entries.append({
            "seed": result.seed, **result.hyperparameters,
            "env_steps": result.env_steps, "train_steps": result.train_steps,
            "eval_return_mean": float(np.mean(returns)),
            "eval_return_std": float(np.std(returns)),
            "eval_return_min": float(np.min(returns)), "eval_episodes": int(len(returns)),
            "eval_env": eval_label, "eval_seconds": round(time.perf_counter() - start, 2),
            "solved": bool(threshold is not None and np.mean(returns) >= threshold),
            "solved_during_training": result.solved})
        print(f"seed {result.seed}"
              + "".join(f" {k} {v:g}" for k, v in result.hyperparameters.items())
              + f": eval on {eval_label}: {entries[-1]['eval_return_mean']:.1f} "
              f"+- {entries[-1]['eval_return_std']:.1f} | {result.env_steps} env steps")
    means = [e["eval_return_mean"] for e in entries]
    summary = {
        "env": config.env, "preset": preset, "seeds": seeds, "sweep": list(sweep) if sweep
        else None, "wall_seconds": round(wall_seconds, 2),
        "train_seconds": round(results[0].seconds, 2),
        "eval_seconds": round(time.perf_counter() - eval_start, 2),
        "compile_seconds": results[0].compile_seconds,
        "aggregate": {"eval_return_median": float(np.median(means)),
                      "eval_return_min": float(np.min(means)),
                      "eval_return_max": float(np.max(means)),
                      "solved": sum(e["solved"] for e in entries), "runs": len(entries)},
        "runs": entries, "config": dataclasses.asdict(config),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    agg = summary["aggregate"]
    print(f"{agg['solved']}/{agg['runs']} solved | eval median {agg['eval_return_median']:.1f} "
          f"(min {agg['eval_return_min']:.1f}, max {agg['eval_return_max']:.1f}) | wall "
          f"{summary['wall_seconds']:.1f}s (compile included) | eval "
          f"{summary['eval_seconds']:.1f}s -> {out}/summary.json")
    return summary
