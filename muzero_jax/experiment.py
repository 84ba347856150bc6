"""What every experiment script does: parse flags, train into a run directory, evaluate, summarise.

`experiments/train.py` (any env), `experiments/cartpole.py`,
`experiments/atari.py` and `experiments/board.py` are thin: they name their default
preset, their default run directory and how to evaluate, and call `main`. So all
take the same flags (`Flags`: `--env`, `--preset`, `--seed`, `--out`, `--resume DIR`,
`--total-env-steps`, `--eval-episodes`, and `--STAGE.FIELD VALUE` for every config
field), write the same run directory (config.json, checkpoints/, tensorboard/,
metrics.csv, curves.png) and the same `summary.json` keys, and exit with code 2
and one line, never a traceback, on bad input, before anything compiles.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Annotated

import jax
import numpy as np
import tyro

from muzero_jax import checkpoint, cli, compile_stats, distributed, envs, presets, smoke
from muzero_jax import config as config_lib
from muzero_jax.config import Config, ConfigError
from muzero_jax.evaluate import evaluate_final, solve_threshold
from muzero_jax.loop import SWEEPABLE
from muzero_jax.presets import PRESETS
from muzero_jax.train import TrainResult, limit_malloc_arenas, train

_IMPORTED = time.perf_counter()

# evaluate(result, config) -> the returns of the final greedy episodes, and what was played.
Evaluate = Callable[[TrainResult, Config], tuple[np.ndarray, str]]


def evaluate_named_env(result: TrainResult, config: Config) -> tuple[np.ndarray, str]:
    """The default final evaluation: `evaluate.evaluate_final` on the trained agent (a run
    that stopped on a confirming evaluation already played it: its returns)."""
    if result.final_eval is not None:
        return result.final_eval
    return evaluate_final(result.agent, result.state, config)


# The preset for small vector envs without a preset of their own.
CLASSIC_PRESET = "classic"
# The preset for Box-action envs.
CONTROL_PRESET = "control"
CARTPOLE_IDS = ("jax/CartPole-v1", "CartPole-v1", "gymnax/CartPole-v1")


def preset_for_env(env_id: str) -> str:
    """The preset that suits `env_id`'s family, used when no --preset is given."""
    if env_id in CARTPOLE_IDS:
        return "cartpole"
    if env_id.startswith("ALE/"):
        return "atari_tiny"
    if env_id.startswith("pgx/") and env_id[len("pgx/"):] in PRESETS:
        return env_id[len("pgx/"):]  # the board game's own preset
    if env_id.startswith("gymnax/") and env_id.endswith("-MinAtar"):
        return "minatar" if "minatar" in PRESETS else CLASSIC_PRESET
    if envs.has_box_actions(env_id):
        return CONTROL_PRESET
    return CLASSIC_PRESET


def preset_config(preset: str, env_id: str | None, overrides: dict | None = None) -> Config:
    """The preset `preset` for `env_id` (None: the preset's own env), the flags' defaults.

    The preset is built for the id, so that nothing of the env it was tuned on (its
    solve return) carries over; on an env it was not tuned on (`presets.tuned_for`) the
    time limit, discount, budget and supports come from the env itself
    (`envs.fit_to_env`: what its spec declares, else a short random rollout), before
    anything compiles.
    """
    overrides = dict(overrides or {})
    if env_id is not None:
        overrides["env"] = env_id
    config = PRESETS[preset](**overrides)
    if env_id is None or presets.tuned_for(env_id):
        return config
    try:
        return envs.fit_to_env(config)
    except (ConfigError, ValueError):  # a bad id or space: the agent's check names it
        return config


PRESET_RULE = (f"without --preset: cartpole for {', '.join(CARTPOLE_IDS)}; atari_tiny for "
               f"ALE/<Game>-v5; {preset_for_env('gymnax/Breakout-MinAtar')} for "
               f"gymnax/<game>-MinAtar; {CONTROL_PRESET} for Box-action envs; "
               f"{CLASSIC_PRESET} for any other id")


def flag(metavar: str, default: str | None):
    """`tyro.conf.arg` for a script flag: its metavar, and what its default means where the
    value is None unless given (the preset's value then stands)."""
    if default is None:
        return tyro.conf.arg(metavar=metavar)
    return tyro.conf.arg(metavar=metavar, help_behavior_hint=f"(default: {default})")


@dataclasses.dataclass(frozen=True)
class Flags:
    """The flags of every experiment script (`--help` shows these comments)."""

    # env id, of a family --help presets lists
    env: Annotated[str | None, flag("ID", "the preset's")] = None
    preset: Annotated[str, flag("NAME", None)] = "cartpole"  # named configuration to start from
    # random seed, as --run.seed
    seed: Annotated[int | None, flag("INT", "the preset's")] = None
    # run directory
    out: Annotated[str | None, flag("DIR", "runs/<env>-<preset>-seed<S>")] = None
    # continue the run in DIR from its latest checkpoint, flags on top of its config.json
    resume: Annotated[str | None, flag("DIR", "a fresh run")] = None
    # training budget in env steps, as --run.total_env_steps
    total_env_steps: Annotated[int | None, flag("INT", "the preset's")] = None
    # final greedy evaluation episodes, as --run.final_eval_episodes
    eval_episodes: Annotated[int | None, flag("INT", "the preset's")] = None
    # train these seeds side by side in one compiled program (JAX envs)
    seeds: Annotated[tuple[int, ...] | None, flag("S [S ...]", "one run, --seed")] = None
    # one run per comma-separated value of a field, in one program: learning_rate 1e-3,3e-3
    sweep: Annotated[tuple[str, str] | None, flag("FIELD VALUES", "none")] = None
    # reuse compiled programs kept here (JAX's persistent cache); none: compile afresh
    compile_cache: Annotated[str | None, flag("DIR", "~/.cache/muzero_jax/jax")] = (
        compile_stats.DEFAULT_CACHE)
    # several processes (jax.distributed): process 0's address; give all three flags
    coordinator: Annotated[str | None, flag("HOST:PORT", "one process")] = None
    # processes in a multi-process run
    num_processes: Annotated[int | None, flag("N", "one process")] = None
    # this process's index in a multi-process run, 0..N-1
    process_id: Annotated[int | None, flag("I", "one process")] = None
    # a fault's full traceback instead of its one line (also MUZERO_JAX_DEBUG=1)
    debug: bool = False
    # every field of muzero_jax.Config, by stage (--search.num_simulations); defaults are
    # the preset's
    config: Annotated[Config, tyro.conf.arg(name="")] = Config()

    def flag_fields(self) -> dict[str, str]:
        """The config field each shorthand flag sets: {flag attribute: Config field}."""
        return {"env": "env.id", "seed": "run.seed", "total_env_steps": "run.total_env_steps",
                "eval_episodes": "run.final_eval_episodes"}

    def overrides(self) -> dict:
        """The config fields these flags set (those given)."""
        return {field.split(".")[1]: getattr(self, flag)
                for flag, field in self.flag_fields().items() if getattr(self, flag) is not None}

    def conflicts(self, argv: Sequence[str]) -> str | None:
        """A message naming two given flags that set one config field to different
        values (`--env A --env.id B`, or two shorthands of one field), else None."""
        given = given_flags(argv)
        setters: dict[str, tuple[str, object]] = {}  # field -> (flag as typed, value)
        for flag, field in self.flag_fields().items():
            value = getattr(self, flag)
            if value is None:
                continue
            name = "--" + flag.replace("_", "-")
            if field in setters and setters[field][1] != value:
                first, other = setters[field]
                return (f"{first} {other} and {name} {value}: both set {field}; give one "
                        "of them")
            setters.setdefault(field, (name, value))
        for field, (name, value) in setters.items():
            stage, name_in_stage = field.split(".")
            config_value = getattr(getattr(self.config, stage), name_in_stage)
            if f"--{field}" in given and config_value != value:
                return (f"{name} {value} and --{field} {config_value}: both set "
                        f"{field}; give one of them")
        return None


def given_flags(argv: Sequence[str]) -> set[str]:
    """The flag names in argv as tyro reads them (`--run.total_env_steps=5` is
    `--run.total_env_steps`)."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            names.add("--" + token.split("=", 1)[0][2:].replace("-", "_"))
    return names


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


def default_out(config: Config, preset: str) -> str:
    """runs/<env id as a file name>-<preset>-seed<S>."""
    env = re.sub(r"[^A-Za-z0-9.]+", "-", config.env.id).strip("-")
    return os.path.join("runs", f"{env}-{preset}-seed{config.run.seed}")


def help_text(description: str, aliases: dict[str, str],
              preset_rule: str | None) -> tuple[str, str]:
    """(what `--help` shows above the flags, what `--help presets` shows): the script's
    description and the presets' names; the env id families and each preset's first
    docstring line."""
    width = max(map(len, list(envs.FAMILIES) + list(PRESETS))) + 2
    names = ", ".join(list(PRESETS) + [f"{a} ({t})" for a, t in aliases.items()])
    short = (f"{description}\n\npresets (--preset; --help presets: what each is, and the "
             f"env ids): {names}" + (f"\n{preset_rule}." if preset_rule else ""))
    lines = ["env ids (--env; muzero_jax.envs.make):"]
    lines += [f"  {name:<{width}}{what}" for name, what in envs.FAMILIES.items()]
    lines += ["", "presets (--preset; muzero_jax.PRESETS):"]
    for name, make in PRESETS.items():
        also = [alias for alias, target in aliases.items() if target == name]
        first = (make.__doc__ or "").strip().split("\n")[0]
        lines.append(f"  {name:<{width}}{first}" + (f" (also: {', '.join(also)})"
                                                    if also else ""))
    if preset_rule:
        lines += ["", preset_rule]
    return short, "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Script:
    """What sets one experiment script apart from another (`main`'s keyword arguments)."""

    description: str  # the script's one-line description, for --help
    # the PRESETS name used without --preset; None: the one that suits the env's family
    default_preset: str | None
    default_out: Callable[[Config, str], str] = default_out  # run directory without --out
    evaluate: Evaluate = evaluate_named_env  # plays the final greedy episodes
    preset_aliases: dict[str, str] = dataclasses.field(default_factory=dict)  # tiny -> ...
    flags_type: type[Flags] = Flags  # Flags, or a subclass with the script's own flags
    # raises ConfigError or ValueError for a config the script cannot run (its env's family)
    check: Callable[[Config], object] | None = None
    preset_overrides: dict | None = None  # fields every preset is built with (board's mode)


def main(argv: Sequence[str] | None, *, description: str, default_preset: str | None,
         default_out: Callable[[Config, str], str] = default_out,
         evaluate: Evaluate = evaluate_named_env,
         preset_aliases: dict[str, str] | None = None,
         flags_type: type[Flags] = Flags,
         check: Callable[[Config], object] | None = None,
         preset_overrides: dict | None = None) -> dict:
    """Runs one experiment from command-line flags (argv; None: sys.argv[1:]); returns
    the summary it writes. The keyword arguments are `Script`'s fields.

    In order, before anything compiles: the flags over the chosen preset (`parse_flags`);
    the config validated, the run directory checked, the script's `check`, the env built
    (`checked_config`). Then `train` (its Agent checks the config against the env), the
    final evaluation and summary.json.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    script = Script(description, default_preset, default_out, evaluate,
                    dict(preset_aliases or {}), flags_type, check, preset_overrides)
    with cli.one_line_errors(cli.debugging(argv)):
        return _main(argv, script)


def _main(argv: list[str], script: Script) -> dict:
    limit_malloc_arenas()  # before JAX starts its threads: a long run's memory stays flat
    # `--env my_package.envs:Maze-v0` imports the user's module as `python -m` would, from
    # the working directory (a script's own directory is what Python puts on sys.path).
    if os.getcwd() not in sys.path:
        sys.path.insert(1, os.getcwd())
    flags, preset = parse_flags(argv, script)
    config, env, num_devices = checked_config(flags, argv, preset, script)
    seeds, sweep = runs_from_flags(flags)
    out = run_dir(flags, config, preset, script.default_out)
    resume = flags.resume is not None
    if seeds is not None or sweep is not None:
        results = train(config, env=env, seeds=seeds, sweep=sweep, run_dir=out,
                        resume=resume)
    else:
        results = [train(config, env=env, run_dir=out, resume=resume)]
    # A resumed run's wall time counts its earlier sessions too (up to their last
    # checkpoint), as its metrics.csv clock does.
    wall_seconds = seconds_since_process_start() + results[0].earlier_seconds
    if not distributed.is_primary():  # process 0 evaluates and writes the summary
        return {}
    if seeds is None and sweep is None:
        summary = evaluate_one(results[0], config, script.evaluate)
    else:
        with open(os.path.join(out, RUNS_NAME), "w") as f:
            json.dump({"seeds": seeds, "sweep": list(sweep) if sweep else None}, f)
        summary = evaluate_runs(results, config, script.evaluate, seeds, sweep)
    summary = {"env": config.env.id, "preset": preset, **summary,
               "wall_seconds": round(wall_seconds, 2), "resumes": results[0].resumes,
               "num_devices": num_devices,
               "num_processes": jax.process_count(), "config": dataclasses.asdict(config)}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_summary(summary, out)
    return summary


def parse_flags(argv: list[str], script: Script) -> tuple[Flags, str]:
    """The flags over the chosen preset's config (or the resumed run's), and the preset's
    name; exits 2 with one line on a bad flag or preset."""
    pre = cli.pre_parse(argv, "--env", "--env.id", "--preset", "--resume")
    base = checkpoint.load_config(pre.resume) if pre.resume is not None else None
    env_id = pre.env or getattr(pre, "env.id") or (base.env.id if base else None)
    if base is not None and env_id != base.env.id:
        # Its networks and saved env states are shaped for its own env (also against the
        # same game under another family, CartPole-v1 for jax/CartPole-v1): restoring
        # would fail on a shape or a state.
        cli.error(f"--env {env_id}: the run in {pre.resume} trained on {base.env.id}; "
                  f"resume it without --env, or start a new run with --out")
    preset = (pre.preset or script.default_preset
              or preset_for_env(env_id or Config().env.id))
    aliases = script.preset_aliases
    names = sorted(PRESETS) + sorted(aliases)
    if preset not in names:
        cli.error(f"--preset {preset!r}: expected one of {names}")
    preset = aliases.get(preset, preset)
    try:
        default_config = base or preset_config(preset, env_id, script.preset_overrides)
    except ConfigError as e:
        cli.error(f"--preset {preset}: {e}")
    short, details = help_text(script.description, aliases,
                               PRESET_RULE if script.default_preset is None else None)
    default = script.flags_type(preset=preset, config=default_config)
    flags = cli.parse(script.flags_type, argv, default=default, description=short,
                      details=details)
    return flags, preset


def checked_config(flags: Flags, argv: list[str], preset: str, script: Script):
    """(config, env, device count): the flags' config, validated, its run directory
    checked and its environment built, before anything compiles; exits 2 with one line
    on what the run cannot use."""
    if (flags.resume is not None and flags.out is not None
            and os.path.abspath(flags.out) != os.path.abspath(flags.resume)):
        cli.error(f"--out {flags.out} and --resume {flags.resume}: a resumed run stays in "
                  "its directory; give only --resume")
    compile_stats.use_cache(flags.compile_cache)
    conflict = flags.conflicts(argv)
    if conflict is not None:
        cli.error(conflict)
    runs_from_flags(flags)  # a bad --seeds or --sweep is said before anything is built
    try:
        distributed.initialize(flags.coordinator, flags.num_processes, flags.process_id)
        # Devices first: validation's divisibility check would otherwise ask for totals
        # that divide by a device count this machine cannot give.
        distributed.check_visible(flags.config.run.num_devices)
        # MUZERO_JAX_SMOKE shrinks the budget here, so that the run directory, the
        # evaluation and summary.json hold the config that train runs.
        config = config_lib.validate_budget(
            smoke.shrink(cli.build(flags.config, **flags.overrides())))
        check_run_dir(flags, config, preset, script.default_out)
        if script.check is not None:
            script.check(config)
        # Built once, here, so that an id or a space the env cannot take is said before
        # anything else is built; train's Agent then checks the config against it.
        env = envs.make(config)
        return config, env, distributed.num_devices(config)
    except (ConfigError, ValueError) as e:
        cli.error(str(e))


def evaluate_one(result: TrainResult, config: Config, evaluate: Evaluate) -> dict:
    """The summary of one run: its final greedy evaluation and its counts."""
    eval_start = time.perf_counter()
    returns, eval_label = evaluate(result, config)
    returns = np.asarray(returns)
    eval_seconds = time.perf_counter() - eval_start
    # The env's own bar (Gymnasium's reward_threshold) where it has one, else the config's.
    threshold = solve_threshold(result.agent, config)
    return {
        "env_steps": result.env_steps, "train_steps": result.train_steps,
        "train_seconds": round(result.seconds, 2), "eval_seconds": round(eval_seconds, 2),
        **_returns_summary(returns, eval_label, threshold),
        "compile_seconds": result.compile_seconds,
        "solved_during_training": result.solved, "early_stop": result.early_stops,
        "seed": config.run.seed,
    }


def _returns_summary(returns: np.ndarray, eval_label: str, threshold: float | None) -> dict:
    return {"eval_return_mean": float(np.mean(returns)),
            "eval_return_std": float(np.std(returns)),
            "eval_return_min": float(np.min(returns)), "eval_episodes": int(len(returns)),
            "eval_env": eval_label,
            "solved": bool(threshold is not None and np.mean(returns) >= threshold)}


def evaluate_runs(results: list[TrainResult], config: Config, evaluate: Evaluate,
                  seeds, sweep) -> dict:
    """The summary of several runs of one program: an entry each and their aggregate."""
    threshold = solve_threshold(results[0].agent, config)
    eval_start = time.perf_counter()
    entries = []
    for result in results:
        run_config = config.replace(seed=result.seed, **result.hyperparameters)
        start = time.perf_counter()
        returns, eval_label = evaluate(result, run_config)
        entries.append({
            "seed": result.seed, **result.hyperparameters,
            "env_steps": result.env_steps, "train_steps": result.train_steps,
            **_returns_summary(np.asarray(returns), eval_label, threshold),
            "eval_seconds": round(time.perf_counter() - start, 2),
            "solved_during_training": result.solved, "early_stop": result.early_stops})
        print(f"seed {result.seed}"
              + "".join(f" {k} {v:g}" for k, v in result.hyperparameters.items())
              + f": eval on {eval_label}: {entries[-1]['eval_return_mean']:.1f} "
              f"+- {entries[-1]['eval_return_std']:.1f} | {result.env_steps} env steps")
    means = [e["eval_return_mean"] for e in entries]
    return {
        "seeds": seeds, "sweep": list(sweep) if sweep else None,
        "train_seconds": round(results[0].seconds, 2),
        "eval_seconds": round(time.perf_counter() - eval_start, 2),
        "compile_seconds": results[0].compile_seconds,
        "aggregate": {"eval_return_median": float(np.median(means)),
                      "eval_return_min": float(np.min(means)),
                      "eval_return_max": float(np.max(means)),
                      "solved": sum(e["solved"] for e in entries), "runs": len(entries)},
        "runs": entries,
    }


def print_summary(summary: dict, out: str) -> None:
    """The summary's last line on stdout: the evaluation, the time, where it was written."""
    wall = f"wall {summary['wall_seconds']:.1f}s (compile included)"
    if "aggregate" in summary:
        agg = summary["aggregate"]
        print(f"{agg['solved']}/{agg['runs']} solved | eval median "
              f"{agg['eval_return_median']:.1f} (min {agg['eval_return_min']:.1f}, max "
              f"{agg['eval_return_max']:.1f}) | {wall} | eval "
              f"{summary['eval_seconds']:.1f}s -> {out}/summary.json")
        return
    print(f"eval on {summary['eval_env']}: {summary['eval_return_mean']:.1f} "
          f"+- {summary['eval_return_std']:.1f} over {summary['eval_episodes']} greedy "
          f"episodes | {wall} | {summary['env_steps']} env steps | {summary['train_steps']} "
          f"updates | eval {summary['eval_seconds']:.1f}s -> {out}/summary.json")


def run_dir(flags: Flags, config: Config, preset: str,
            default_out: Callable[[Config, str], str] = default_out) -> str:
    """The run directory the flags train into: --resume, --out, else `default_out`
    (with the seeds and the swept field in its name for several runs)."""
    seeds, sweep = runs_from_flags(flags)
    out = flags.resume or flags.out or default_out(config, preset)
    if (seeds is not None or sweep is not None) and not (flags.resume or flags.out):
        out = out.replace(f"-seed{config.run.seed}", "-" + "-".join(
            ([f"seeds{'_'.join(map(str, seeds))}"] if seeds else [])
            + ([f"sweep-{sweep[0]}"] if sweep else [])))
    return out


def check_run_dir(flags: Flags, config: Config, preset: str,
                  default_out: Callable[[Config, str], str] = default_out) -> None:
    """Refuses, with one line and exit 2 before anything compiles, a run directory the
    run cannot use: a fresh run into one holding checkpoints or an earlier run's logs
    or summary, a resume of one without checkpoints (`checkpoint.check_run_dir`)."""
    try:
        checkpoint.check_run_dir(run_dir(flags, config, preset, default_out),
                                 resume=flags.resume is not None)
    except checkpoint.CheckpointError as e:
        cli.error(str(e))


# --- several runs in one program: --seeds and --sweep ---------------------------------
RUNS_NAME = "runs.json"  # a multi-run directory's seeds and sweep, for --resume


def sweep_field(given: str) -> str:
    """The field `--sweep` names, by name or by stage path (learner.learning_rate);
    exits 2 unless a sweep in one program can vary it."""
    name = given.replace("-", "_")
    if "." in name:
        stage, _, name = name.partition(".")
        if stage not in config_lib.STAGES or name not in SWEEPABLE or \
                config_lib.stage_of(name) != stage:
            name = given  # not a path to a sweepable field: refused below
    if name not in SWEEPABLE:
        paths = [config_lib.path_of(field) for field in SWEEPABLE]
        cli.error(f"--sweep {given}: supported fields are {list(SWEEPABLE)} (or {paths}; a "
                  "sweep in one program varies a value that changes no shapes)")
    return name


def runs_from_flags(flags: Flags):
    """(seeds, sweep) from the flags (or a resumed run's runs.json); exits 2 on bad input."""
    seeds = list(flags.seeds) if flags.seeds is not None else None
    sweep = None
    if flags.sweep is not None:
        given, text = flags.sweep
        field = sweep_field(given)
        try:
            sweep = (field, tuple(float(v) for v in text.split(",") if v.strip()))
        except ValueError:
            cli.error(f"--sweep {field} {text!r}: expected comma-separated numbers")
        if not sweep[1]:
            cli.error(f"--sweep {field} {text!r}: expected at least one value")
    if flags.seed is not None and seeds is not None:
        cli.error("--seed and --seeds: give one of them")
    if flags.resume is not None and seeds is None and sweep is None:
        path = os.path.join(flags.resume, RUNS_NAME)
        if os.path.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            seeds = saved.get("seeds")
            sweep = tuple(saved["sweep"]) if saved.get("sweep") else None
    return seeds, sweep
