"""MinAtar: return against env steps and wall seconds, beside published figures (`--only minatar`).

The table also gives players without learning, measured here on the same env: random
play, and the best single action played throughout (`untrained_players`).

One cold process per game, variant and seed (`experiments/train.py --env
gymnax/<Game>-MinAtar --preset minatar`, compilation included, no persistent compile
cache), one after another so that runs do not share the cores. The learning curve is the
periodic greedy evaluation of metrics.csv (32 episodes); the final figure is
summary.json's greedy evaluation of 100 episodes on gymnax's port with MinAtar's sticky
actions (0.1, the preset's env default) and the env's own time limit.

`--minatar-steps` sets the env-step budget per run, so that a CPU can run a short
version; `--seeds N` runs seeds 0..N-1 of each (3 by default: the table gives the median
and the range, the plot the median curve in a band from the lowest to the highest);
`--minatar-preset` names the variants side by side (`VARIANTS`, default the preset
alone: plain MuZero, EfficientZero's additions one at a time, all three, and two of the
preset's own choices undone, `mlp` and `search_values`); `--minatar-games` the games.
"""

from __future__ import annotations

import csv
import functools
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "train.py")
GAMES = ("Breakout", "Asterix", "Freeway", "SpaceInvaders", "Seaquest")
DEFAULT_STEPS = 2_000_000  # an accelerator's budget per game, a sitting for all four
EVALS_PER_RUN = 10  # periodic evaluations over a run, whatever its budget
DEFAULT_SEEDS = 3

# EfficientZero's additions as flags (docs/efficientzero.md), each variant named for what
# it adds to plain MuZero and spelled as flags over the `minatar` preset, which has taken
# the off-policy correction: one step off n = 10 per 10,000 env steps of age, so that the
# oldest data of the preset's 100,000-position replay bootstraps after one step.
_CONSISTENCY = ("--network.projection_size", "128", "--loss.consistency_loss_weight", "2.0")
# Prefixes of up to 5 rewards of 1 need reward atoms up to h^-1(2) = 8, not the preset's 1.
_VALUE_PREFIX = ("--network.value_prefix", "true", "--network.reward_support_size", "2")
_NO_OFF_POLICY = ("--loss.off_policy_correction_steps", "0")
ADDITIONS = ("consistency", "value_prefix", "off_policy", "efficientzero")
# The variant `--preset minatar` is, flag for flag: run on every game beside plain.
PRESET_VARIANT = "off_policy"
VARIANTS = {"plain": _NO_OFF_POLICY, "consistency": _CONSISTENCY + _NO_OFF_POLICY,
            "value_prefix": _VALUE_PREFIX + _NO_OFF_POLICY, "off_policy": (),
            "efficientzero": _CONSISTENCY + _VALUE_PREFIX,
            # h as an MLP on the flattened planes, as g and f: the preset's choice of a
            # conv h, measured.
            "mlp": ("--network.kind", "mlp", *_NO_OFF_POLICY),
            # value targets bootstrap from the search values stored while acting (the
            # paper's MuZero without Reanalyze) instead of a target network's h and f on
            # every bootstrap position: the preset's choice of a target network, measured.
            "search_values": ("--learner.target_update_period", "0", *_NO_OFF_POLICY)}

# Returns at the given budgets: the MinAtar paper (Young & Tian 2019, training
# average, read off its curves) and gymnax's PPO baselines.
PUBLISHED = (
    ("MinAtar paper, DQN (training average)", "5M frames",
     {"Asterix": 17, "Breakout": 10, "Freeway": 50, "SpaceInvaders": 43}),
    ("MinAtar paper, AC(lambda)", "5M frames",
     {"Asterix": 19, "Breakout": 17.5, "Freeway": 47, "SpaceInvaders": 185}),
    ("gymnax baselines, PPO", "10M steps",
     {"Asterix": 15, "Breakout": 28, "Freeway": 58, "SpaceInvaders": 131}),
)


class NothingFinished(RuntimeError):
    """A report of finished runs (`benchmark(finished_only=True)`) found none."""


def seaquest_runs() -> bool:
    """Whether gymnax's Seaquest-MinAtar port resets and steps here (a few steps, jitted)."""
    try:
        import gymnax
        import jax

        env, params = gymnax.make("Seaquest-MinAtar")
        obs, state = env.reset(jax.random.key(0), params)
        for i in range(3):
            obs, state = env.step(jax.random.key(i), state, 0, params)[:2]
        return obs.shape == (10, 10, 10)
    except Exception:  # noqa: BLE001  any failure of the port: leave the game out
        return False


# MinAtar's full action set, by the index gymnax's `action_set` maps a game's actions to.
_ACTION_NAMES = ("no-op", "left", "up", "right", "down", "fire")


def untrained_players(game: str, episodes: int = 100, seed: int = 0,
                      max_episode_steps: int | None = None) -> dict:
    """Returns of players without learning, through the env the agent trains and is
    evaluated on (MinAtar's sticky actions, gymnax's time limit or `max_episode_steps`):
    a uniformly random action at every step, and each single action played throughout.
    The best single action is the floor a learned policy has to clear: on Freeway,
    "up" alone crosses the road between cars.

    Returns {"episodes", "random": {"mean", "std"}, "single": [{"action", "name", "mean",
    "std"}, one per action]}; all players in one jitted loop, `episodes` each.
    """
    import jax
    import jax.numpy as jnp

    from muzero_jax import envs
    from muzero_jax.config import Config

    env = envs.make(Config().replace(env=dict(id=f"gymnax/{game}-MinAtar",
                                              max_episode_steps=max_episode_steps)))
    num_actions = env.spec.num_actions

    def episode(player, key):  # player -1: random; a >= 0: action a throughout
        reset_key, key = jax.random.split(key)

        # `JaxEnv.step` keeps the time limit and the episode's return, as in evaluation.
        def body(carry):
            state, key, _, _ = carry
            key, act_key = jax.random.split(key)
            action = jnp.where(player < 0, jax.random.randint(act_key, (), 0, num_actions),
                               player)
            state, out = env.step(state, action)
            return state, key, out.terminated | out.truncated, out.episode_return

        carry = (env.reset(reset_key), key, jnp.bool_(False), jnp.float32(0.0))
        return jax.lax.while_loop(lambda c: ~c[2], body, carry)[3]

    players = jnp.arange(-1, num_actions)
    keys = jax.random.split(jax.random.key(seed), episodes)
    returns = np.asarray(jax.jit(jax.vmap(jax.vmap(episode, (None, 0)), (0, None)))(
        players, keys))

    def stats(r):
        return {"mean": float(r.mean()), "std": float(r.std())}

    names = [_ACTION_NAMES[int(a)] for a in np.asarray(env.env.action_set)]
    return {"episodes": episodes, "random": stats(returns[0]),
            "single": [{"action": a, "name": names[a], **stats(returns[a + 1])}
                       for a in range(num_actions)]}


def finished(out: str, env_id: str, env_steps: int, seed: int,
             flags: tuple[str, ...] | None = None) -> bool:
    """Whether `out` holds a finished run of `env_id`, budget and seed (read, not trained
    again, so that a benchmark of many CPU-hours can be completed over several sittings;
    a variant's runs have a directory of their own).

    `flags` (`--preset NAME --STAGE.FIELD VALUE ...`): the run must also have trained
    with their config, every stage but `run`; a finished run of another config raises,
    naming the first field that differs, rather than being read or overwritten. So does
    a run cut off before its end (checkpoints, no summary: `train_cold` resumes it) of
    another env, seed or budget.
    """
    try:
        with open(os.path.join(out, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    same = (config["env"]["id"] == env_id and config["run"]["seed"] == seed
            and config["run"]["total_env_steps"] == env_steps)
    done = os.path.exists(os.path.join(out, "summary.json"))
    if not (done and same or cut_off(out)):
        return False
    kind = "finished run" if done else "run cut off before its end"
    if not same:
        raise RuntimeError(
            f"{out} holds a {kind} of {config['env']['id']}, seed {config['run']['seed']}, "
            f"{config['run']['total_env_steps']:,} env steps; expected {env_id}, seed "
            f"{seed}, {env_steps:,}: move it away to train this one")
    if flags is not None:
        differs = config_difference(config, ("--env.id", env_id, *flags))
        if differs:
            raise RuntimeError(f"{out} holds a {kind} of another config ({differs}); "
                               "move it away to train this one")
    return done


def cut_off(out: str) -> bool:
    """Whether `out` holds checkpoints of a run that did not write its summary (stopped
    by a signal or the end of a sitting)."""
    checkpoints = os.path.join(out, "checkpoints")
    return (not os.path.exists(os.path.join(out, "summary.json"))
            and os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints)))


def config_difference(saved: dict, flags: tuple[str, ...]) -> str | None:
    """The first training field (any stage but `run`) where `saved` (a run's
    config.json) differs from the config of `flags`, as "stage.field: saved, expected";
    None where none does. A field `saved` lacks is one added after the run was made,
    whose default keeps the behaviour the run trained with: not a difference."""
    for stage, fields in _resolved(tuple(flags)).items():
        if stage == "run" or not isinstance(fields, dict):
            continue
        if not isinstance(saved.get(stage), dict):
            return f"{stage}: {saved.get(stage)!r}, expected the stage's fields"
        ran = saved[stage]
        for name, value in fields.items():
            if name in ran and ran[name] != value:
                return f"{stage}.{name}: {ran[name]!r}, expected {value!r}"
    return None


@functools.cache
def _resolved(flags: tuple[str, ...]) -> dict:
    """The config of `flags` as config.json holds it (read only: cached)."""
    import dataclasses

    from muzero_jax import cli

    return json.loads(json.dumps(dataclasses.asdict(cli.parse_config(list(flags)))))


def run_dir(out: str, device: str, variant: str, game: str, seed: int) -> str:
    """Where the run of `variant`, `game` and `seed` lies under `out`: this machine's
    directory, `out/minatar/DEVICE/VARIANT/GAME/seedS`, unless only another machine's
    holds it finished (the first by name). A table of many CPU-hours is filled over
    sittings on whichever machines they had, and a run finished anywhere is read, not
    trained again."""
    own = os.path.join(out, "minatar", device, variant, game, f"seed{seed}")
    if os.path.exists(os.path.join(own, "summary.json")):
        return own
    elsewhere = sorted(glob.glob(os.path.join(out, "minatar", "*", variant, game,
                                              f"seed{seed}", "summary.json")))
    return os.path.dirname(elsewhere[0]) if elsewhere else own


def machine_of(run_directory: str) -> str:
    """The machine (device directory) a run directory from `run_dir` lies under."""
    return os.path.normpath(run_directory).split(os.sep)[-4]


def run_game(game: str, out: str, env_steps: int, seed: int = 0,
             extra_args: tuple[str, ...] = (), train: bool = True) -> dict | None:
    """Trains one game in a fresh process, unless `out` holds that run (`finished`);
    returns its summary and learning curve. `train=False`: None where `out` does not
    hold it finished, instead of training it."""
    if finished(out, f"gymnax/{game}-MinAtar", env_steps, seed,
                ("--preset", "minatar", *extra_args)):
        return read_run(out, game, seed)
    if not train:
        return None
    train_cold(["--env", f"gymnax/{game}-MinAtar", "--preset", "minatar", "--seed",
                str(seed), *extra_args], out, env_steps, _steps_per_iteration())
    strip_run(out)
    return read_run(out, game, seed)


def train_cold(args: list[str], out: str, env_steps: int, steps_per_iteration: int) -> None:
    """`experiments/train.py ARGS` for `env_steps` into `out`, in a fresh process
    (compilation included, no persistent compile cache), with about `EVALS_PER_RUN`
    periodic evaluations; raises with the tail of its stderr if it fails.

    A run `cut_off` in `out` (the caller's `finished` has checked that it is this one)
    is resumed from its last checkpoint instead (`--resume`), so that a run longer than
    a sitting goes on in the next; its `wall_seconds` then count the earlier sittings up
    to that checkpoint and one more start-up, and summary.json's `resumes` says so.
    """
    if cut_off(out):
        command = [sys.executable, SCRIPT, "--resume", out, "--compile-cache", "none"]
    else:
        eval_every = max(1, env_steps // (EVALS_PER_RUN * steps_per_iteration))
        command = [sys.executable, SCRIPT, *args, "--out", out, "--total-env-steps",
                   str(env_steps), "--compile-cache", "none", "--run.eval_every",
                   str(eval_every), "--run.log_every", str(eval_every)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")


def strip_run(out: str) -> None:
    """What a committed run directory keeps: its config, metrics and summary; not its
    checkpoints (replay included), TensorBoard event files or curves.png (`python -m
    muzero_jax.plot RUN_DIR` redraws it)."""
    for bulky in ("checkpoints", "tensorboard"):
        shutil.rmtree(os.path.join(out, bulky), ignore_errors=True)
    if os.path.exists(os.path.join(out, "curves.png")):
        os.remove(os.path.join(out, "curves.png"))


def read_run(out: str, game: str, seed: int) -> dict:
    """A finished run directory's summary and its eval curve (clock from process start)."""
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    # metrics.csv times run from the start of train(); shift them to process start, the
    # clock of summary.json's wall_seconds, so that the curves include start-up.
    startup = summary["wall_seconds"] - summary["train_seconds"]
    curve = [{"wall_seconds": round(float(r["wall_seconds"]) + startup, 2),
              "env_steps": int(r["env_steps"]), "eval_return": float(r["eval_return"])}
             for r in rows if r.get("eval_return") not in (None, "", "None", "nan")]
    return {"game": game, "seed": seed, "variant": "plain", "run_dir": out,
            "wall_seconds": summary["wall_seconds"], "env_steps": summary["env_steps"],
            "train_steps": summary["train_steps"], "resumes": summary.get("resumes", 0),
            "final_eval_return": summary["eval_return_mean"],
            "final_eval_std": summary["eval_return_std"],
            "final_eval_episodes": summary["eval_episodes"], "curve": curve}


def _steps_per_iteration() -> int:
    from muzero_jax.presets import minatar

    config = minatar()
    return config.acting.num_envs * config.acting.rollout_length


def benchmark(out: str, device: str, log, env_steps: int = DEFAULT_STEPS,
              games=GAMES, seeds: int = DEFAULT_SEEDS, variants=(PRESET_VARIANT,),
              variant_games=None, finished_only: bool = False) -> dict:
    """Runs every game, variant and seed for `env_steps` (the variants other than plain
    and the preset only on `variant_games`, default every game), draws the curves,
    returns the section's record.

    `finished_only`: trains nothing; the table and curves are drawn from the runs already
    finished under `out`, and the record lists the others as `missing` (a benchmark of
    many CPU-hours, reported as it stands between sittings).
    """
    if "Seaquest" in games and not seaquest_runs():
        log("  Seaquest: gymnax's port does not run here; left out")
        games = tuple(g for g in games if g != "Seaquest")
    runs, missing = [], []
    for game in games:
        for variant in variants:
            if (variant not in ("plain", PRESET_VARIANT) and variant_games is not None
                    and game not in variant_games):
                continue
            for seed in range(seeds):
                directory = run_dir(out, device, variant, game, seed)
                run = run_game(game, directory, env_steps, seed, VARIANTS[variant],
                               train=not finished_only)
                if run is None:
                    missing.append(f"{game} {variant} seed {seed}")
                    continue
                run = dict(run, variant=variant, machine=machine_of(directory))
                log(f"  {game:14s} {variant:13s} seed {seed}: {run['env_steps']:,} env steps "
                    f"in {run['wall_seconds']:.0f} s on {run['machine']}, greedy return "
                    f"{run['final_eval_return']:.1f} +- {run['final_eval_std']:.1f} "
                    f"({run['final_eval_episodes']} episodes)")
                runs.append(run)
    if missing:
        log(f"  not finished yet, left out: {', '.join(missing)}")
    if not runs:
        raise NothingFinished(f"no finished MinAtar run under "
                              f"{os.path.join(out, 'minatar', device)} to report: run "
                              "without --minatar-finished-only to train them")
    untrained = {}
    for game in dict.fromkeys(r["game"] for r in runs):
        untrained[game] = players = untrained_players(game)
        best = best_single_action(players)
        log(f"  {game:14s} without learning: random {players['random']['mean']:.2f}, "
            f"{best['name']} throughout {best['mean']:.2f} ({players['episodes']} episodes)")
    png = f"minatar/{device}.png"  # relative to `out`, as the tables' links are
    os.makedirs(os.path.dirname(os.path.join(out, png)), exist_ok=True)
    plot(runs, os.path.join(out, png), game_lines={
        game: untrained_lines(players) for game, players in untrained.items()})
    return {"config": f"preset minatar, seeds 0-{seeds - 1}, {env_steps:,} env steps per run, "
                      "MinAtar's sticky actions (0.1), cold process each (compilation "
                      "included)",
            "env_steps_budget": env_steps, "variants": list(variants),
            "variant_flags": {v: " ".join(VARIANTS[v]) for v in variants},
            "seeds": seeds, "runs": runs, "missing": missing, "untrained": untrained,
            "plot": png}


def best_single_action(players: dict) -> dict:
    """The single action of `untrained_players`' result that scored most."""
    return max(players["single"], key=lambda p: p["mean"])


def untrained_lines(players: dict) -> list[tuple[str, float]]:
    """`untrained_players`' random play and best single action as (label, return) lines
    (the same labels on every game, for one legend; the table names the action)."""
    return [("random play", players["random"]["mean"]),
            ("best single action", best_single_action(players)["mean"])]


def helps(variant_runs: list[dict], plain_runs: list[dict]) -> dict:
    """The rule a preset takes an addition by: over the seeds both have, its median
    final return is higher than plain's and it is higher than plain's run of the same
    seed on most of them (2 of 3). Returns {"helps", "higher", "seeds", "median",
    "plain_median", "plain_seeds", "at_worst", "at_best"}: the last two are the rule's
    answer over all of plain's seeds once the addition's missing ones have run, had they
    all scored below everything or above everything."""
    plain = {r["seed"]: r["final_eval_return"] for r in plain_runs}
    mine = {r["seed"]: r["final_eval_return"] for r in variant_runs}
    seeds = sorted(plain.keys() & mine.keys())
    if not seeds:
        return {"helps": False, "higher": 0, "seeds": 0, "median": None, "plain_median": None,
                "plain_seeds": len(plain), "at_worst": False, "at_best": True}
    out = {**_rule(mine, plain, seeds), "plain_seeds": len(plain)}
    left = plain.keys() - mine.keys()
    for name, fill in (("at_worst", -np.inf), ("at_best", np.inf)):
        filled = {**{s: fill for s in left}, **mine}
        out[name] = _rule(filled, plain, sorted(plain))["helps"]
    return out


def _rule(mine: dict, plain: dict, seeds: list) -> dict:
    higher = sum(mine[s] > plain[s] for s in seeds)
    median = float(np.median([mine[s] for s in seeds]))
    plain_median = float(np.median([plain[s] for s in seeds]))
    return {"helps": bool(median > plain_median and 2 * higher > len(seeds)),
            "higher": higher, "seeds": len(seeds), "median": median,
            "plain_median": plain_median}


def verdict(v: dict, seeds: int) -> str:
    """`helps`'s result `v` in words, for a benchmark of `seeds` seeds of which `v`
    compares `v["seeds"]`: decided once every seed has run, or earlier where plain has
    run them all and no result of the seeds left can change the answer; open otherwise."""
    if v["seeds"] >= seeds:
        return "helps" if v["helps"] else "does not help"
    left = seeds - v["seeds"]
    whatever = f"whatever the {left} seed{'s' * (left > 1)} left give"
    if 2 * (v["higher"] + left) <= seeds:
        return (f"does not help, {whatever} (at most {v['higher'] + left} of {seeds} can "
                "be higher)")
    if v.get("plain_seeds", 0) >= seeds:
        if v["at_worst"]:
            return f"helps, {whatever}"
        if not v["at_best"]:
            return f"does not help, {whatever}"
    return f"open ({v['seeds']} of {seeds} seeds run)"


def _groups(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (game, variant), in the order they came."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["game"], run.get("variant", "plain")), []).append(run)
    return groups


def band(runs: list[dict], x: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """The seeds' curves as (x, median, lowest, highest) at the periodic evaluations of
    the seed that evaluated least often.

    A seed that evaluated at other env steps (another `--run.eval_every`) is read off its
    curve by linear interpolation there, held at its ends; `x` "wall_seconds" takes the
    median of the seeds' clocks at those env steps, interpolated the same way.
    """
    sparse = min(runs, key=lambda r: len(r["curve"]))["curve"]
    steps = [float(p["env_steps"]) for p in sparse]

    def at(run: dict, key: str) -> np.ndarray:
        return np.interp(steps, [p["env_steps"] for p in run["curve"]],
                         [p[key] for p in run["curve"]])

    returns = np.stack([at(r, "eval_return") for r in runs])
    xs = steps if x == "env_steps" else np.median(
        np.stack([at(r, x) for r in runs]), axis=0).tolist()
    return ([float(v) for v in xs], np.median(returns, axis=0).tolist(),
            returns.min(axis=0).tolist(), returns.max(axis=0).tolist())


def plot(runs: list[dict], path: str, title: str = "{}-MinAtar", ylabel: str = "greedy return",
         lines: tuple[tuple[str, float], ...] | list = (),
         game_lines: dict[str, list[tuple[str, float]]] | None = None) -> None:
    """Greedy eval return against env steps (top) and wall seconds (bottom), one column per
    game (`title` formats its name), one colour per variant: the median over seeds in a
    band from the lowest seed to the highest, the final 100-episode evaluations as points
    at the runs' ends, and `lines` (label, value) as dotted horizontal lines, with a
    game's own `game_lines` after them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(runs)
    games = list(dict.fromkeys(r["game"] for r in runs))
    variants = list(dict.fromkeys(r.get("variant", "plain") for r in runs))
    fig, axes = plt.subplots(2, len(games), figsize=(3.6 * len(games), 6), squeeze=False)
    for col, game in enumerate(games):
        for colour, variant in enumerate(variants):
            group = groups.get((game, variant))
            if not group:
                continue
            for row, x in enumerate(("env_steps", "wall_seconds")):
                ax = axes[row, col]
                xs, median, low, high = band(group, x)
                ax.plot(xs, median, marker=".", color=f"C{colour}",
                        label=f"{variant} ({len(group)} seed{'s' * (len(group) > 1)})")
                ax.fill_between(xs, low, high, color=f"C{colour}", alpha=0.2)
                ax.plot([r[x] for r in group], [r["final_eval_return"] for r in group], "o",
                        color=f"C{colour}", markersize=3)
        for row, x in enumerate(("env_steps", "wall_seconds")):
            for i, (label, value) in enumerate([*lines, *(game_lines or {}).get(game, ())]):
                axes[row, col].axhline(value, color="k", linestyle=":", alpha=1 - 0.3 * i,
                                       label=label)
            axes[row, col].set_xlabel("env steps" if x == "env_steps"
                                      else "wall seconds since process start")
            axes[row, col].set_xlim(left=0)
            axes[row, col].grid(alpha=0.3)
        axes[0, col].set_title(title.format(game))
    axes[0, 0].set_ylabel(ylabel)
    axes[1, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def wall_cell(run: dict) -> str:
    """A run's wall seconds for a table, marked where the run was resumed."""
    resumes = run.get("resumes", 0)
    return f"{run['wall_seconds']:.0f}" + (f" (resumed {resumes}x)" if resumes else "")


def _median_range(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def markdown(section: dict) -> list[str]:
    groups = _groups(section["runs"])
    games = [g for g in GAMES if any(key[0] == g for key in groups)]
    variants = list(dict.fromkeys(key[1] for key in groups))
    lines = [f"Greedy return ({section['config']}); published figures as their sources give "
             "them, at their own (much larger) budgets; ours the median over seeds of the "
             "final 100-episode evaluations [lowest, highest]:", "",
             "| source | budget | " + " | ".join(games) + " |",
             "|---|---|" + "---|" * len(games)]
    for source, budget, figures in PUBLISHED:
        lines.append(f"| {source} | {budget} | " + " | ".join(
            f"{figures[g]:g}" if g in figures else "-" for g in games) + " |")
    untrained = section.get("untrained", {})
    if untrained:
        episodes = next(iter(untrained.values()))["episodes"]
        lines.append(f"| random play | {episodes} episodes | " + " | ".join(
            f"{untrained[g]['random']['mean']:.1f}" if g in untrained else "-"
            for g in games) + " |")
        best = {g: best_single_action(p) for g, p in untrained.items()}
        lines.append(f"| the best single action, played throughout | {episodes} episodes | "
                     + " | ".join(f"{best[g]['mean']:.1f} ({best[g]['name']})" if g in best
                                  else "-" for g in games) + " |")
    for variant in variants:
        cells = [_median_range([r["final_eval_return"] for r in groups[(g, variant)]])
                 if (g, variant) in groups else "-" for g in games]
        name = f"{variant} (the preset)" if variant == PRESET_VARIANT else variant
        lines.append(f"| muzero_jax `minatar` {name}, greedy, 100 episodes | "
                     f"{section['env_steps_budget']:,} steps | " + " | ".join(cells) + " |")
    flags = section.get("variant_flags", {})
    if any(flags.values()):
        lines += [""] + [f"- {v}: `{f}`" for v, f in flags.items() if f]
    verdicts = []
    for (game, variant), group in groups.items():
        if variant not in ADDITIONS or (game, "plain") not in groups:
            continue
        v = helps(group, groups[(game, "plain")])
        if v["seeds"]:
            verdicts.append(f"- {variant} on {game}: median {v['median']:.1f} against "
                            f"plain's {v['plain_median']:.1f}, higher on {v['higher']}/"
                            f"{v['seeds']} seeds: {verdict(v, section.get('seeds', v['seeds']))}")
    if verdicts:
        lines += ["", "An addition helps where its median over the seeds is higher than "
                  "plain's and it is higher than plain's run of the same seed on most "
                  "seeds:", ""] + verdicts
    # Runs filled in over sittings may come from machines of different speeds: then each
    # row names its own, as its wall time is that machine's.
    machines = sorted({r["machine"] for r in section["runs"] if r.get("machine")})
    several = len(machines) > 1
    if several:
        lines += ["", f"The runs come from {len(machines)} machines ({', '.join(machines)}); "
                  "each run's wall time is its own machine's."]
    lines += ["", "| game | variant | seed | " + "machine | " * several + "env steps | "
              "wall s (compile included) | env steps/s | final greedy return (100 ep.) | "
              "best periodic eval (32 ep.): return at env steps |",
              "|---|---|---|---|---|---|---|---|" + "---|" * several]
    for (game, variant), group in sorted(groups.items(), key=lambda kv: (
            games.index(kv[0][0]), variants.index(kv[0][1]))):
        for r in group:
            best = max(r["curve"], key=lambda p: p["eval_return"], default=None)
            machine = f"{r.get('machine', '-')} | " if several else ""
            lines.append(f"| {game} | {variant} | {r['seed']} | {machine}{r['env_steps']:,} | "
                         f"{wall_cell(r)} | {r['env_steps'] / r['wall_seconds']:.0f} | "
                         f"{r['final_eval_return']:.1f} +- {r['final_eval_std']:.1f} | "
                         + (f"{best['eval_return']:.1f} at {best['env_steps']:,}" if best
                            else "-") + " |")
    if section.get("missing"):
        lines += ["", "Not finished yet, left out of the table and curves: "
                  + ", ".join(section["missing"]) + "."]
    lines += ["", f"![MinAtar curves](../{section['plot']})"]
    return lines
