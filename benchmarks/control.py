"""Continuous control: greedy return against env steps and wall seconds, beside SAC's
published figures (`python -m benchmarks --only control`).

One cold process per task and seed (`experiments/train.py --env ID` with the default
preset for a Box env, compilation included, no persistent compile cache), one after
another so that runs do not share the cores. The learning curve is the periodic greedy
evaluation of metrics.csv; the final figure summary.json's greedy evaluation of 100
episodes (a Gymnasium id on `gymnasium.make(id)` itself, a gymnax id on gymnax's env).

`TASKS` holds each task's budget and, where the project sets one, its bar: a greedy mean
over 100 episodes within the budget's env steps and wall minutes on a 2-core CPU.
`--control-envs` picks tasks (any Box env id: those of `TASKS` keep their budget,
others get `--control-steps`), `--control-steps N` overrides every budget (a short
version on a CPU), `--seeds N` runs seeds 0..N-1 of each. A run directory that already
holds the same finished run (task, seed, budget) is read instead of trained again.
"""

from __future__ import annotations

import json
import os

from benchmarks import minatar

DEFAULT_SEEDS = 3
FINAL_EPISODES = 100
DEFAULT_STEPS = 100_000  # a task without a budget of its own

# id: (env steps, bar: (greedy mean at least, within wall minutes) or None).
TASKS = {
    "Pendulum-v1": (50_000, (-200.0, 15)),
    "gymnax/Pendulum-v1": (50_000, (-200.0, 15)),
    "InvertedPendulum-v5": (100_000, (950.0, 30)),
    "mjx/cartpole_swingup": (100_000, None),
    "Hopper-v5": (300_000, None),
    "HalfCheetah-v5": (300_000, None),
}
DEFAULT_TASKS = ("Pendulum-v1", "gymnax/Pendulum-v1", "InvertedPendulum-v5")

SB3_ZOO = ("https://github.com/DLR-RM/rl-baselines3-zoo/blob/"
           "0088472b8cb622732bdbc4aa3d0d0abde86c67ed/benchmark.md")
CLEANRL = ("https://github.com/vwxyzjn/cleanrl/blob/08d1c0105e41f3ab435a981d3df901ea8d08cdd5/"
           "docs/rl-algorithms/sac.md")
# (source, budget in env steps, {env id: return}): the RL Zoo's one tuned run each, its
# deterministic policy over 750 (Pendulum) or 150 (MuJoCo, -v3) episodes; CleanRL's
# training episodic return over 3 seeds (MuJoCo -v2/-v4). Other versions of an env
# (v3/v4 against v5) share its dynamics and reward; the figures stand beside ours as
# their sources give them.
PUBLISHED = (
    ("RL Zoo SAC (SB3), deterministic", 20_000, {"Pendulum-v1": -157.0}, SB3_ZOO),
    ("RL Zoo SAC (SB3), deterministic", 1_000_000,
     {"Hopper-v5": 2325.5, "HalfCheetah-v5": 9535.5}, SB3_ZOO),
    ("CleanRL SAC, training return, 3 seeds", 1_000_000,
     {"InvertedPendulum-v5": 909.4, "Hopper-v5": 2310.5, "HalfCheetah-v5": 9634.9}, CLEANRL),
)


def published_for(env_id: str) -> list[tuple[str, int, float, str]]:
    """The published figures for `env_id` (a gymnax id reads its Gymnasium twin's):
    (source, budget, return, url)."""
    name = env_id.removeprefix("gymnax/")
    return [(source, budget, figures[name], url) for source, budget, figures, url in PUBLISHED
            if name in figures]


def budget(env_id: str, steps: int | None) -> int:
    """The env steps of one run: `steps` if given, else the task's own budget."""
    return steps or TASKS.get(env_id, (DEFAULT_STEPS, None))[0]


def steps_per_iteration(env_id: str) -> int:
    """Env steps of one training iteration of the default preset for `env_id`."""
    from muzero_jax import experiment

    config = experiment.preset_config(experiment.preset_for_env(env_id), env_id)
    return config.acting.num_envs * config.acting.rollout_length


def run_task(env_id: str, out: str, env_steps: int, seed: int) -> dict:
    """Trains `env_id` in a fresh process, unless `out` holds that run
    (`minatar.finished`); returns
    its summary, curve and bar verdict."""
    if not minatar.finished(out, env_id, env_steps, seed):
        train_task(env_id, out, env_steps, seed)
    return read_task(env_id, out, env_steps)


def train_task(env_id: str, out: str, env_steps: int, seed: int) -> None:
    """Trains `env_id` in a fresh process (compilation included, no compile cache)."""
    minatar.train_cold(["--env", env_id, "--seed", str(seed), "--eval-episodes",
                        str(FINAL_EPISODES)], out, env_steps, steps_per_iteration(env_id))
    minatar.strip_run(out)


def read_task(env_id: str, out: str, env_steps: int) -> dict:
    """A finished run's summary, curve and bar verdict."""
    with open(os.path.join(out, "config.json")) as f:
        seed = json.load(f)["run"]["seed"]
    run = minatar.read_run(out, env_id, seed)
    with open(os.path.join(out, "summary.json")) as f:
        preset = json.load(f)["preset"]
    run = dict(run, env=run.pop("game"), preset=preset)
    del run["variant"]
    task_steps, bar = TASKS.get(env_id, (None, None))
    # A bar is a budget's verdict: a shortened run (--control-steps) gets none.
    run["bar"] = None if bar is None or env_steps != task_steps else {
        "return": bar[0], "minutes": bar[1],
        "met": run["final_eval_return"] >= bar[0] and run["wall_seconds"] <= 60 * bar[1]}
    return run


def benchmark(out: str, device: str, log, env_ids=DEFAULT_TASKS, seeds: int = DEFAULT_SEEDS,
              steps: int | None = None) -> dict:
    """Runs every task and seed, draws the curves, returns the section's record."""
    runs = []
    for env_id in env_ids:
        for seed in range(seeds):
            run_dir = os.path.join(out, "control", device, env_id.replace("/", "-"),
                                   f"seed{seed}")
            run = run_task(env_id, run_dir, budget(env_id, steps), seed)
            verdict = "" if run["bar"] is None else (
                " (bar met)" if run["bar"]["met"] else " (bar missed)")
            log(f"  {env_id:20s} seed {seed}: {run['env_steps']:,} env steps in "
                f"{run['wall_seconds']:.0f} s, greedy return {run['final_eval_return']:.1f} "
                f"+- {run['final_eval_std']:.1f} ({run['final_eval_episodes']} episodes)"
                f"{verdict}")
            runs.append(run)
    png = f"control/{device}.png"  # relative to `out`, as the tables' links are
    os.makedirs(os.path.dirname(os.path.join(out, png)), exist_ok=True)
    plot(runs, os.path.join(out, png))
    return {"config": f"default preset for Box envs, seeds 0-{seeds - 1}, cold process each "
                      "(compilation included)",
            "env_ids": list(env_ids), "runs": runs, "plot": png}


def plot(runs: list[dict], path: str) -> None:
    """Greedy eval return against env steps (top) and wall seconds (bottom), one column per
    task: the median over seeds in a band from the lowest seed to the highest, the final
    100-episode evaluations as points, the bar and the published figures as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = list(dict.fromkeys(r["env"] for r in runs))
    fig, axes = plt.subplots(2, len(env_ids), figsize=(3.8 * len(env_ids), 6), squeeze=False)
    for col, env_id in enumerate(env_ids):
        group = [r for r in runs if r["env"] == env_id]
        for row, x in enumerate(("env_steps", "wall_seconds")):
            ax = axes[row, col]
            xs, median, low, high = minatar.band(group, x)
            ax.plot(xs, median, marker=".", color="C0", label=f"muzero_jax ({len(group)} seeds)")
            ax.fill_between(xs, low, high, color="C0", alpha=0.2)
            ax.plot([r[x] for r in group], [r["final_eval_return"] for r in group], "o",
                    color="C0", markersize=3)
            bar = TASKS.get(env_id, (None, None))[1]
            if bar is not None:
                ax.axhline(bar[0], color="k", linestyle=":", label=f"bar {bar[0]:g}")
            for i, (source, steps, value, _) in enumerate(published_for(env_id)):
                ax.axhline(value, color=f"C{i + 1}", linestyle="--",
                           label=f"{source} @ {steps:,}")
            ax.set_xlabel("env steps" if x == "env_steps" else "wall seconds since process start")
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
        axes[0, col].set_title(env_id)
        axes[0, col].legend(fontsize=6)
    axes[0, 0].set_ylabel("greedy return")
    axes[1, 0].set_ylabel("greedy return")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(section: dict) -> list[str]:
    """The section's tables: ours beside the published figures, then each run."""
    lines = [f"Greedy return ({section['config']}); ours the final {FINAL_EPISODES}-episode "
             "evaluation, median over seeds [lowest, highest]; published figures as their "
             "sources give them, at their own budgets:", "",
             "| env | ours | env steps | bar | published (budget) |", "|---|---|---|---|---|"]
    for env_id in section["env_ids"]:
        group = [r for r in section["runs"] if r["env"] == env_id]
        if not group:
            continue
        returns = sorted(r["final_eval_return"] for r in group)
        ours = (f"{returns[len(returns) // 2]:.1f} [{returns[0]:.1f}, {returns[-1]:.1f}]"
                if len(returns) > 1 else f"{returns[0]:.1f}")
        bar = group[0]["bar"]
        bar_cell = "-" if bar is None else (
            f">= {bar['return']:g} in {bar['minutes']} min: "
            f"{sum(r['bar']['met'] for r in group)}/{len(group)} seeds")
        published = "; ".join(f"[{source}]({url}) {value:g} ({steps:,})"
                              for source, steps, value, url in published_for(env_id)) or "-"
        lines.append(f"| {env_id} | {ours} | {group[0]['env_steps']:,} | {bar_cell} | "
                     f"{published} |")
    lines += ["", "| env | seed | env steps | wall s (compile included) | final greedy return | "
              "best periodic eval: return at env steps |", "|---|---|---|---|---|---|"]
    for r in section["runs"]:
        best = max(r["curve"], key=lambda p: p["eval_return"], default=None)
        lines.append(f"| {r['env']} | {r['seed']} | {r['env_steps']:,} | "
                     f"{minatar.wall_cell(r)} | {r['final_eval_return']:.1f} +- "
                     f"{r['final_eval_std']:.1f} | "
                     + (f"{best['eval_return']:.1f} at {best['env_steps']:,}" if best else "-")
                     + " |")
    lines += ["", f"![control curves](../{section['plot']})"]
    return lines
