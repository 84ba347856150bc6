"""Benchmarks: how fast we search, play, learn and solve, with one command.

    python -m benchmarks [--quick] [--out DIR]      (or: python benchmarks/run.py)

Writes DIR/speed/<device>.json and DIR/speed/<device>.md (the tables) and, unless
--quick, the solve section's runs and learning curves in DIR/cartpole-solve/<device>/ and
DIR/cartpole-solve/<device>.png, where <device> names the machine, e.g. `cpu-amd-epyc-2c`
(DIR defaults to benchmarks/results). Every figure times the library's own jitted functions
(`Agent.act`, `Agent.rollout`, `Agent.learn`, `Agent.update`, `Model.recurrent_inference`)
after a warm-up call whose time (compilation included) is reported apart; throughputs are
the median over repeats, with the range over repeats beside them.

Sections:
  search     simulations/s of `Agent.act` (50 simulations, PUCT and Gumbel) at batch
             1..1024, beside the same network's cost for the same number of
             `recurrent_inference` calls in a plain `lax.scan`; their ratio is our
             distance from the limit the network sets.
  anatomy    why search costs what it does: tree depths in lock-step, PUCT's per-step
             randomness (not in --quick).
  iteration  where the time of one training iteration goes, by stage.
  guards     what the non-finite guard costs one training iteration of the compiled
             loop (CartPole preset, guarded against unguarded; not in --quick).
  selfplay   env steps/s of `Agent.rollout` (search included).
  learner    updates/s and samples/s of `Agent.learn` (K = 5), and of `Agent.update`.
  solve      time to solve CartPole-v1: experiments/cartpole.py over 5 seeds, cold start.
  atari      Atari-size search and learn (once `atari_tiny` is among the presets).
  envs       self-play env steps/s per env realisation at batch 16, same search: the
             jitted path (jax/CartPole-v1, gymnax/CartPole-v1, gymnax/Breakout-MinAtar)
             beside the host path (Gymnasium's CartPole-v1, sync).
  compile    compile seconds per program of a cold experiments/cartpole.py process.
  scaling    self-play env steps/s and learner updates/s on 1, 2, 4, 8 devices
             (muzero_jax.distributed; forced CPU devices without accelerators).
  soak       RSS against env steps of a 520k-step run after its buffer fills, checkpoints
             on (only with --only soak).
  board      self-play positions/s (search included) on pgx
             Go 9x9 and chess, MuZero and AlphaZero mode (only with --only board).
  minatar    greedy return against env steps and wall seconds on Breakout, Asterix,
             Freeway, SpaceInvaders and Seaquest where gymnax's port runs (gymnax
             MinAtar, preset minatar), beside published
             figures; --minatar-steps N per run, --seeds N (3), --minatar-preset
             plain efficientzero ... side by side, --minatar-games,
             --minatar-variant-games, --minatar-finished-only to report the
             runs finished so far and train none (only with --only minatar).
  device     an accelerator's figures in under five minutes: search at batch 256-8192
             beside the network alone, learner updates/s of the Atari, MinAtar and board
             ResNets, a short MinAtar learning run (only with --only device; --tiny runs
             it at toy sizes; benchmarks/device.sh installs carried wheels first).
  control    greedy return against env steps and wall seconds on Box-action envs
             (Pendulum-v1 on the host and as gymnax/Pendulum-v1, MuJoCo's
             InvertedPendulum-v5; --control-envs for others), default preset, beside
             published SAC figures; --control-steps N per run, --seeds N (3) (only
             with --only control).
  2048       greedy score and highest tile on pgx 2048: the 2048 preset (Stochastic
             MuZero), plain MuZero and AlphaZero mode on pgx's step, beside the random
             player; --game2048-steps N per run, --seeds N (3), --game2048-variants
             (only with --only 2048).

`--only SECTION ...` writes DIR/<sections>/<device>.* instead (`--only compile`:
DIR/compile/<device>.json; `--only envs compile`: DIR/envs-compile/...), so a partial run
never overwrites the full one; `--quick` adds `-quick` to the file names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

import muzero_jax as mz
from benchmarks import (
    anatomy,
    atari,
    board,
    control,
    envs,
    game2048,
    guards,
    machine,
    minatar,
    scaling,
    soak,
    solve,
)
from benchmarks import device as accelerator
from benchmarks.timing import Timing, measure, measure_interleaved, median_ratio
from muzero_jax.evaluate import evaluate_jax

SIMULATIONS = 50
BATCHES = (1, 16, 64, 256, 1024)
QUICK_BATCHES = (256,)
QUICK_SELFPLAY_BATCHES = (16,)  # the preset's, shared with the iteration breakdown
LEARN_BATCHES = (256, 1024)
SEEDS = (0, 1, 2, 3, 4)


class Settings:
    """How hard to measure: repeats per figure and the least time per repeat."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.repeats = 3 if quick else 7
        self.min_repeat_seconds = 0.05 if quick else 0.3
        self.batches = QUICK_BATCHES if quick else BATCHES
        self.selfplay_batches = QUICK_SELFPLAY_BATCHES if quick else BATCHES
        self.learn_batches = LEARN_BATCHES[:1] if quick else LEARN_BATCHES

    def measure(self, fn) -> Timing:
        return measure(fn, repeats=self.repeats, min_repeat_seconds=self.min_repeat_seconds)

    def measure_interleaved(self, fns: dict) -> dict[str, Timing]:
        return measure_interleaved(fns, repeats=self.repeats,
                                   min_repeat_seconds=self.min_repeat_seconds)


def _timing_record(timing: Timing, unit: str, work_per_call: float) -> dict:
    return {"unit": unit, **{f"{k}": v for k, v in timing.rate(work_per_call).items()},
            "seconds_per_call": timing.median_s, "spread": timing.spread,
            "first_call_seconds": timing.first_call_s, "repeats": timing.repeats,
            "calls_per_repeat": timing.calls_per_repeat, "samples_seconds": timing.samples_s}


def benchmark_params(agent: mz.Agent, seed: int = 0) -> mz.TrainState:
    """A fresh state whose parameters carry noise: a fresh network's heads are zero
    (uniform priors, all values 0), which would make every tree alike."""
    state = agent.init(jax.random.key(seed))
    leaves, treedef = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    noisy = [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return state.replace(params=jax.tree.unflatten(treedef, noisy))


def make_network_only(model, num_calls: int):
    """h then f once, then `num_calls` x (g then f) chained in a `lax.scan`: the network's
    work in one search of `num_calls` simulations, without the tree."""

    @jax.jit
    def network_only(params, obs, actions):  # actions: [num_calls, B]
        root = model.initial_inference(params, obs)

        def step(carry, action):
            state, total = carry
            out = model.recurrent_inference(params, state, action)
            # Use every output, so that XLA cannot drop a head the search needs.
            total = total + out.value + out.reward + out.policy_logits.sum(-1)
            return (out.state, total), None

        (_, total), _ = jax.lax.scan(step, (root.state, root.value), actions)
        return total

    return network_only


def _observations(batch: int, seed: int = 1) -> jax.Array:
    # CartPole-like magnitudes: positions and angles near 0, velocities up to ~1.
    return 0.5 * jax.random.normal(jax.random.key(seed), (batch, 4))


_AGENTS: dict = {}


def agent_for(config: mz.Config) -> tuple[mz.Agent, mz.TrainState]:
    """One Agent (and its compiled programs) per config, shared by the sections."""
    if config not in _AGENTS:
        agent = mz.Agent(config)
        _AGENTS[config] = (agent, benchmark_params(agent), make_network_only(
            agent.model, config.search.num_simulations))
    return _AGENTS[config][:2]


def bench_search(s: Settings, log) -> dict:
    """Simulations/s of Agent.act and of the network alone, and their ratio."""
    rows = []
    for algorithm in ("muzero", "gumbel"):
        config = mz.cartpole(search=algorithm, num_simulations=SIMULATIONS)
        agent, state = agent_for(config)
        network_only = _AGENTS[config][2]
        for batch in s.batches:
            obs = _observations(batch)
            key = jax.random.key(2)
            actions = jax.random.randint(jax.random.key(3), (SIMULATIONS, batch), 0,
                                         agent.num_actions)
            fns = {"search": lambda: agent.act(state, key, obs),  # noqa: B023
                   "network_only": lambda: network_only(state.params, obs, actions)}  # noqa: B023
            t = s.measure_interleaved(fns)
            act, net = t["search"], t["network_only"]
            work = batch * SIMULATIONS
            row = {"algorithm": algorithm, "batch": batch, "simulations": SIMULATIONS,
                   "search": _timing_record(act, "simulations/s", work),
                   "network_only": _timing_record(net, "simulations/s", work),
                   "ratio": median_ratio(act, net)}
            line = (f"  search {algorithm:6s} B={batch:5d}: {work / act.median_s:10,.0f} sims/s "
                    f"(+-{act.spread:.0%}), network only {work / net.median_s:10,.0f} sims/s, "
                    f"ratio {row['ratio']:.2f}, compile {act.first_call_s:.1f}s")
            rows.append(row)
            log(line)
    return {"config": "cartpole preset, num_simulations=50, noisy fresh parameters",
            "rows": rows}


def bench_iteration(s: Settings, log) -> dict:
    """Where the time of one training iteration of the CartPole preset goes, by stage."""
    config = mz.cartpole()
    agent, state = agent_for(config)
    env_state = agent.reset(jax.random.key(4))
    buffer = agent.init_replay()
    for i in range(4):
        env_state, trajectory = agent.rollout(state, env_state, jax.random.key(10 + i))
        buffer = agent.add(buffer, trajectory)
    rollout = s.measure(lambda: agent.rollout(state, env_state, jax.random.key(5)))
    # add donates the buffer: time it on copies and take the copy's cost off.
    add = s.measure(lambda: agent.add(jax.tree.map(jnp.copy, buffer), trajectory))
    copy = s.measure(lambda: jax.tree.map(jnp.copy, buffer))
    evaluation = measure(lambda: evaluate_jax(agent, state, jax.random.key(7),
                                              config.run.eval_episodes),
                         repeats=1 if s.quick else 3, min_repeat_seconds=0.0)
    # update donates its state and buffer (it writes priorities back): give it copies.
    holder = {"state": jax.tree.map(jnp.copy, state), "buffer": jax.tree.map(jnp.copy, buffer)}

    def update():
        holder["state"], holder["buffer"], metrics = agent.update(
            holder["state"], holder["buffer"], jax.random.key(6))
        return metrics

    upd = s.measure(update)
    stages = {
        "rollout": rollout.median_s,
        "replay_add": max(add.median_s - copy.median_s, 0.0),
        "update": upd.median_s,
        "evaluation_per_iteration": evaluation.median_s / config.run.eval_every,
    }
    total = sum(stages.values())
    log("  training iteration (cartpole preset): " + ", ".join(
        f"{k} {1e3 * v:.1f} ms ({v / total:.0%})" for k, v in stages.items()))
    acting, search, learner = config.acting, config.search, config.learner
    return {"config": f"cartpole preset: {acting.num_envs} envs x {acting.rollout_length} "
                      f"steps, {search.policy} {search.num_simulations} sims, "
                      f"{learner.updates_per_iteration} updates of batch {learner.batch_size}, "
                      f"eval of {config.run.eval_episodes} episodes every {config.run.eval_every} "
                      "iterations",
            "seconds": stages, "total_seconds": total, "evaluation_seconds": evaluation.median_s}


def bench_selfplay(s: Settings, log) -> dict:
    """Env steps/s of the jitted rollout (search included) of the CartPole preset."""
    config = mz.cartpole()
    agent, state = agent_for(config)
    rows = []
    for batch in s.selfplay_batches:
        env_state = agent.reset(jax.random.key(4), num_envs=batch)
        key = jax.random.key(5)
        t = s.measure(lambda: agent.rollout(state, env_state, key))  # noqa: B023
        work = batch * config.acting.rollout_length
        rows.append({"batch": batch, "steps": config.acting.rollout_length,
                     "rollout": _timing_record(t, "env steps/s", work)})
        log(f"  self-play B={batch:5d}: {work / t.median_s:10,.0f} env steps/s "
            f"(+-{t.spread:.0%}), compile {t.first_call_s:.1f}s")
    search = config.search
    return {"config": f"cartpole preset: {search.policy} search, {search.num_simulations} "
                      f"simulations, {config.acting.rollout_length} steps per call",
            "rows": rows}


def bench_learner(s: Settings, log) -> dict:
    """Updates/s of Agent.learn (one step) and Agent.update (many steps, sampling included)."""
    rows = []
    for batch in s.learn_batches:
        config = mz.cartpole(batch_size=batch)
        agent, state = agent_for(config)
        env_state = agent.reset(jax.random.key(4))
        buffer = agent.init_replay()
        while not agent.ready_to_learn(buffer):
            env_state, trajectory = agent.rollout(state, env_state, jax.random.key(5))
            buffer = agent.add(buffer, trajectory)
        data = agent.make_batch(buffer, jax.random.key(6), state)
        learn = s.measure(lambda: agent.learn(state, data))  # noqa: B023
        # update donates its state and buffer (it writes priorities back).
        holder = {"state": jax.tree.map(jnp.copy, state), "buffer": buffer}

        def update(agent=agent, holder=holder):
            holder["state"], holder["buffer"], metrics = agent.update(
                holder["state"], holder["buffer"], jax.random.key(7))
            return metrics

        upd = s.measure(update)
        steps = config.learner.updates_per_iteration
        rows.append({"batch": batch, "unroll_steps": config.loss.unroll_steps,
                     "learn": _timing_record(learn, "updates/s", 1),
                     "learn_samples": _timing_record(learn, "samples/s", batch),
                     "update": _timing_record(upd, "updates/s", steps),
                     "updates_per_call": steps})
        log(f"  learner B={batch:5d}: learn {1 / learn.median_s:8,.1f} updates/s "
            f"{batch / learn.median_s:10,.0f} samples/s (+-{learn.spread:.0%}); update "
            f"(sampling + targets included) {steps / upd.median_s:8,.1f} updates/s")
    return {"config": "cartpole preset (K = 5, td_steps = 50), replay filled by self-play",
            "rows": rows}


SOLVE_DIR = "cartpole-solve"


def bench_solve(s: Settings, out: str, device: str, log) -> dict:
    """Time to solve over SEEDS; --quick runs one short seed to check the harness only."""
    if s.quick:
        result = solve.time_to_solve([0], os.path.join(out, SOLVE_DIR, f"{device}-quick"),
                                     ("--total-env-steps", "2000", "--eval-episodes", "2"),
                                     log=log)
        result["note"] = "--quick: one seed, 2000 env steps; a smoke run, not a solve time"
        return result
    result = solve.time_to_solve(list(SEEDS), os.path.join(out, SOLVE_DIR, device), log=log)
    png = f"{SOLVE_DIR}/{device}.png"  # relative to DIR, as the tables' links are
    solve.plot(result, os.path.join(out, png),
               f"experiments/cartpole.py, {len(SEEDS)} seeds, cold start ({device})")
    result["plot"] = png
    return result


PROFILE_CALLS = 5


def profile_search(out: str) -> dict:
    """A jax.profiler trace of warm `Agent.act` calls per search at batch 256 (open
    DIR/<search>/**/perfetto_trace.json.gz in ui.perfetto.dev), and the XLA operations
    that took the most time in it, in ms per call."""
    summary = {"directory": out, "calls": PROFILE_CALLS, "top_ms_per_call": {}}
    for algorithm in ("muzero", "gumbel"):
        agent, state = agent_for(mz.cartpole(search=algorithm, num_simulations=SIMULATIONS))
        obs, key = _observations(256), jax.random.key(2)
        jax.block_until_ready(agent.act(state, key, obs))
        trace_dir = os.path.join(out, algorithm)
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(PROFILE_CALLS):
                jax.block_until_ready(agent.act(state, key, obs))
        labels = loop_labels(agent, state, key, obs)
        summary["top_ms_per_call"][algorithm] = [
            (f"{name} ({labels[name]})" if name in labels else name, ms)
            for name, ms in top_operations(trace_dir, PROFILE_CALLS)]
    return summary


def loop_labels(agent: mz.Agent, state: mz.TrainState, key, obs) -> dict[str, str]:
    """Names the while loops of the compiled `Agent.act` by what their bodies hold: a
    heuristic reading of the optimised HLO (the names are those in the trace)."""
    import re

    try:
        text = agent._act.lower(state.params, key, obs, agent.training_exploration,
                                None).compile().as_text()
    except Exception:  # noqa: BLE001 - labels are a convenience
        return {}
    bodies: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if match:
            current = match.group(1)
            bodies[current] = ""
        elif current is not None:
            bodies[current] += line + "\n"
    labels = {}
    for match in re.finditer(r"%?(while\.\d+) = .*body=%?([\w.\-]+)", text):
        body = bodies.get(match.group(2), "")
        if "_gamma" in body:
            labels[match.group(1)] = "gamma sampling (Dirichlet noise)"
        elif "ynn" in body or "dot(" in body:
            labels[match.group(1)] = "simulation loop: network and tree"
        elif re.search(r"threefry|_uniform|random_bits|_split", body) and body.count("\n") < 40:
            labels[match.group(1)] = "threefry rounds (rolled on CPU)"
        elif "scatter" in body:
            labels[match.group(1)] = "backup walk"
        else:
            labels[match.group(1)] = "selection walk"
    return labels


def top_operations(trace_dir: str, calls: int, count: int = 8) -> list[tuple[str, float]]:
    """The XLA operations with the most time in a Perfetto trace (nested loops include
    their bodies), summed over threads, in ms per call."""
    import collections
    import glob
    import gzip

    paths = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
        return []
    with gzip.open(sorted(paths)[-1]) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    totals: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or threads.get((e["pid"], e["tid"]), "").startswith("python"):
            continue
        if e["name"].startswith(("ThunkExecutor", "$")):
            continue
        totals[e["name"]] += e.get("dur", 0) / 1e3 / calls
    return [(name, round(ms, 3)) for name, ms in totals.most_common(count)]


# --- report --------------------------------------------------------------------------


def _rate(record: dict) -> str:
    return f"{record['median']:,.0f} ({record['min']:,.0f}-{record['max']:,.0f})"


def _or_dash(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    """The results as Markdown tables (what the README's Benchmarks section shows)."""
    m = results["machine"]
    lines = [f"# Benchmarks: {m['name']}", "",
             f"`python -m benchmarks{' --quick' if results['quick'] else ''}` on {m['cpu']} "
             f"({m['cpu_cores']} cores), JAX {m['versions']['jax']} {m['backend']} "
             f"({m['device_kind']}), mctx {m['versions']['mctx']}; load average at start "
             f"{', '.join(f'{x:.1f}' for x in m['load_average'] or [])}; "
             f"{results['seconds']:.0f} s in all.",
             "Throughputs: median over repeats (range over repeats); compilation not included. "
             "Ratios: median over interleaved repeats of search and network-only.",
             ""]
    sec = results["sections"]
    if "search" in sec:
        lines += ["## Search: simulations/s of `Agent.act`, 50 simulations, CartPole network",
                  "", "| search | batch | search sims/s | network-only sims/s | search / network "
                  "| compile s |", "|---|---|---|---|---|---|"]
        for r in sec["search"]["rows"]:
            name = {"muzero": "PUCT (muzero_policy)", "gumbel": "Gumbel"}[r["algorithm"]]
            lines.append(f"| {name} | {r['batch']} | {_rate(r['search'])} | "
                         f"{_rate(r['network_only'])} | {r['ratio']:.2f} | "
                         f"{r['search']['first_call_seconds']:.1f} |")
        lines.append("")
    at_256 = [r for r in sec.get("search", {}).get("rows", []) if r["batch"] == 256]
    if at_256 or "iteration" in sec or "anatomy" in sec:
        lines += ["## Where the time goes", ""]
    if at_256:
        lines += ["Search at batch 256, 50 simulations, ms per call: the tree (selection, "
                  "expansion, backup, loop overhead) is search minus network-only.", "",
                  "| search | search | network only | tree and loops | ratio |",
                  "|---|---|---|---|---|"]
        for r in at_256:
            ours = 1e3 * r["search"]["seconds_per_call"]
            net = 1e3 * r["network_only"]["seconds_per_call"]
            lines.append(f"| {r['algorithm']} | {ours:.2f} | {net:.2f} | {ours - net:.2f} | "
                         f"{r['ratio']:.2f} |")
        lines.append("")
    if "anatomy" in sec:
        lines += anatomy.markdown(sec["anatomy"]) + [""]
    if "iteration" in sec:
        it = sec["iteration"]
        lines += [f"One training iteration ({it['config']}), ms:", "",
                  "| " + " | ".join(it["seconds"]) + " | total |",
                  "|" + "---|" * (len(it["seconds"]) + 1),
                  "| " + " | ".join(f"{1e3 * v:.1f} ({v / it['total_seconds']:.0%})"
                                    for v in it["seconds"].values())
                  + f" | {1e3 * it['total_seconds']:.1f} |", ""]
    if "selfplay" in sec:
        lines += [f"## Self-play: env steps/s of `Agent.rollout` ({sec['selfplay']['config']})",
                  "", "| batch | env steps/s | compile s |", "|---|---|---|"]
        for r in sec["selfplay"]["rows"]:
            lines.append(f"| {r['batch']} | {_rate(r['rollout'])} | "
                         f"{r['rollout']['first_call_seconds']:.1f} |")
        lines.append("")
    if "learner" in sec:
        lines += [f"## Learner ({sec['learner']['config']})", "",
                  "| batch | `learn` updates/s | `learn` samples/s | `update` updates/s "
                  "(sampling and targets included) |", "|---|---|---|---|"]
        for r in sec["learner"]["rows"]:
            lines.append(f"| {r['batch']} | {r['learn']['median']:,.1f} "
                         f"({r['learn']['min']:,.1f}-{r['learn']['max']:,.1f}) | "
                         f"{_rate(r['learn_samples'])} | {r['update']['median']:,.1f} "
                         f"({r['update']['min']:,.1f}-{r['update']['max']:,.1f}) |")
        lines.append("")
    if "solve" in sec:
        r = sec["solve"]
        lines += ["## Time to solve CartPole-v1 (`experiments/cartpole.py`, cold start)", ""]
        if "note" in r:
            lines += [r["note"], ""]
        if r["wall_seconds"]:
            w, e = r["wall_seconds"], r["env_steps"]
            lines += [f"Solved (mean >= 475 on 100 episodes of gymnasium's CartPole-v1): "
                      f"{r['solved']}/{len(r['seeds'])} seeds; wall seconds median "
                      f"{w['median']:.1f} (min {w['min']:.1f}, max {w['max']:.1f}); env steps "
                      f"median {e['median']:,.0f} (min {e['min']:,}, max {e['max']:,}).", ""]
        else:
            lines += [f"Solved: {r['solved']}/{len(r['seeds'])} seeds.", ""]
        lines += ["| seed | wall s (training stopped) | env steps | first eval >= 475: wall s "
                  "| env steps | final eval return | solved |", "|---|---|---|---|---|---|---|"]
        for run in r["runs"]:
            lines.append(f"| {run['seed']} | {run['wall_seconds']:.1f} | {run['env_steps']:,} | "
                         f"{_or_dash(run['first_eval_475_wall_seconds'], '.1f')} | "
                         f"{_or_dash(run['first_eval_475_env_steps'], ',')} | "
                         f"{run['final_eval_return']:.1f} ({run['final_eval_episodes']} ep.) | "
                         f"{'yes' if run['solved'] else 'no'} |")
        if "plot" in r:
            lines += ["", f"![learning curves](../{r['plot']})"]
        lines.append("")
    if "profile" in results:
        p = results["profile"]
        lines += ["## Profile: XLA operations with the most time in `Agent.act`, batch 256", "",
                  f"ms per call, from a `jax.profiler` trace of {p['calls']} calls; the "
                  "profiler's cost per event inflates loops of many small steps, so read it "
                  "for where time goes, not for how much.", "",
                  "| search | operation: ms |", "|---|---|"]
        for algorithm, top in p["top_ms_per_call"].items():
            lines.append(f"| {algorithm} | " + ", ".join(f"`{n}`: {ms:.2f}" for n, ms in top)
                         + " |")
        lines.append("")
    if "atari" in sec:
        lines += ["## Atari network", ""] + atari.markdown(sec["atari"]) + [""]
    if "envs" in sec:
        lines += ["## Self-play per environment: jitted and host paths", ""]
        lines += envs.markdown(sec["envs"]) + [""]
    lines += guards.markdown(sec)
    lines += scaling.markdown(sec)
    lines += soak.markdown(sec)
    titled = (("board", "Board games (pgx): self-play positions/s", board),
              ("minatar", "MinAtar: return against env steps and wall seconds", minatar),
              ("device", "Accelerator: search, learner and a short MinAtar run", accelerator),
              ("control", "Continuous control: return against env steps and wall seconds",
               control),
              ("2048", "2048: Stochastic MuZero, plain MuZero and AlphaZero mode", game2048))
    for name, title, module in titled:
        if name in sec:
            lines += [f"## {title}", ""] + module.markdown(sec[name]) + [""]
    return "\n".join(lines)


SECTIONS = ("search", "anatomy", "iteration", "guards", "selfplay", "learner", "solve", "atari",
            "envs", "compile", "scaling", "soak", "board", "minatar", "device", "control",
            "2048")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="muzero_jax benchmarks (see benchmarks/run.py)")
    parser.add_argument("--quick", action="store_true",
                        help="a subset, for a smoke check (under two minutes on 2 cores)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"),
                        help="root of the results: DIR/speed/<device>.json/.md for the full "
                             "run, DIR/<sections>/<device>.* with --only (default "
                             "benchmarks/results)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=None,
                        help="run only these sections (default: all)")
    parser.add_argument("--minatar-steps", type=int, default=minatar.DEFAULT_STEPS,
                        help="env steps per game of the minatar section (default "
                             f"{minatar.DEFAULT_STEPS:,}; a CPU runs a short version)")
    parser.add_argument("--seeds", type=int, default=minatar.DEFAULT_SEEDS,
                        help="minatar and control: seeds 0..N-1 of every game, variant or "
                             "task (default "
                             f"{minatar.DEFAULT_SEEDS})")
    parser.add_argument("--minatar-preset", nargs="+", choices=tuple(minatar.VARIANTS),
                        default=[minatar.PRESET_VARIANT], metavar="VARIANT",
                        help="minatar: variants side by side, named for what they add to "
                             "plain MuZero (" + ", ".join(minatar.VARIANTS)
                             + f"; default {minatar.PRESET_VARIANT}, the preset)")
    parser.add_argument("--minatar-games", nargs="+", choices=minatar.GAMES,
                        default=list(minatar.GAMES), metavar="GAME",
                        help="minatar: the games (default all; Seaquest where gymnax's port "
                             "runs)")
    parser.add_argument("--minatar-variant-games", nargs="+", choices=minatar.GAMES,
                        default=None, metavar="GAME",
                        help="minatar: the games the variants other than plain and the "
                             "preset run on "
                             "(default every game of --minatar-games)")
    parser.add_argument("--minatar-finished-only", action="store_true",
                        help="minatar: train nothing; report the runs already finished under "
                             "--out and list the others as missing")
    parser.add_argument("--control-envs", nargs="+", default=list(control.DEFAULT_TASKS),
                        metavar="ENV", help="control: the Box-action env ids (default "
                        + ", ".join(control.DEFAULT_TASKS) + ")")
    parser.add_argument("--control-steps", type=int, default=None,
                        help="control: env steps per run (default: each task's own budget)")
    parser.add_argument("--game2048-steps", type=int, default=None,
                        help="2048: env steps per run (default: the 2048 preset's)")
    parser.add_argument("--game2048-variants", nargs="+", choices=tuple(game2048.VARIANTS),
                        default=list(game2048.VARIANTS), metavar="VARIANT",
                        help="2048: the variants side by side (" + ", ".join(game2048.VARIANTS)
                        + "; default all)")
    parser.add_argument("--tiny", action="store_true",
                        help="the device section at toy sizes: a check of the harness on a CPU")
    parser.add_argument("--device-seconds", type=float, default=250.0,
                        help="time budget of the device section, compilation included "
                             "(default 250)")
    parser.add_argument("--profile", action="store_true",
                        help="also write a jax.profiler trace (Perfetto) of Agent.act at batch "
                             "256 for each search to DIR/<sections>/profile-<device>/")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print(f"--seeds {args.seeds}: expected an integer >= 1", file=sys.stderr)
        sys.exit(2)
    if args.game2048_steps is not None and args.game2048_steps < 1:
        parser.error(f"--game2048-steps={args.game2048_steps}: expected an integer >= 1")
    if args.control_steps is not None and args.control_steps < 1:
        parser.error(f"--control-steps={args.control_steps}: expected an integer >= 1")
    if not args.device_seconds > 0:
        parser.error(f"--device-seconds={args.device_seconds}: expected seconds > 0")

    start = time.perf_counter()
    settings = Settings(args.quick)
    table_dir = os.path.join(args.out, "-".join(args.only) if args.only else "speed")
    os.makedirs(table_dir, exist_ok=True)
    info = machine.describe()
    device = info["name"]
    print(f"benchmarks on {device}: {info['cpu']}, {info['cpu_cores']} cores, "
          f"{info['backend']} ({info['device_kind']}), load {info['load_average']}")
    results = {"machine": info, "quick": args.quick, "sections": {}}
    runners = {
        "search": lambda: bench_search(settings, print),
        "anatomy": lambda: anatomy.benchmark(settings, print, agent_for, _observations,
                                             make_network_only),
        "iteration": lambda: bench_iteration(settings, print),
        "guards": lambda: guards.benchmark(settings, print),
        "selfplay": lambda: bench_selfplay(settings, print),
        "learner": lambda: bench_learner(settings, print),
        "solve": lambda: bench_solve(settings, args.out, device, print),
        "atari": lambda: atari.benchmark(settings, print),
        "envs": lambda: envs.benchmark(settings, print),
        "compile": lambda: soak.cold_start(settings, print),
        "soak": lambda: soak.soak(settings, print),
        "scaling": lambda: scaling.benchmark(settings, print),
        "board": lambda: board.benchmark(settings, print),
        "minatar": lambda: minatar.benchmark(args.out, device, print, args.minatar_steps,
                                             games=tuple(args.minatar_games), seeds=args.seeds,
                                             variants=tuple(args.minatar_preset),
                                             variant_games=args.minatar_variant_games,
                                             finished_only=args.minatar_finished_only),
        "device": lambda: accelerator.benchmark(table_dir, device, print, tiny=args.tiny,
                                                budget_seconds=args.device_seconds),
        "control": lambda: control.benchmark(args.out, device, print,
                                             env_ids=tuple(args.control_envs),
                                             seeds=args.seeds, steps=args.control_steps),
        "2048": lambda: game2048.benchmark(args.out, device, print, args.game2048_steps,
                                           seeds=args.seeds,
                                           variants=tuple(args.game2048_variants)),
    }
    # The soak runs half a million env steps, the board games compile Go and chess, MinAtar
    # trains four games, the device section sizes itself for an accelerator, control
    # trains each task over seeds: only when asked for (--only soak, board, minatar,
    # device, control, 2048).
    sections = args.only or [n for n in SECTIONS if not (args.quick
                                                         and n in ("anatomy", "guards"))
                             and n not in ("soak", "board", "minatar", "device", "control",
                                           "2048")]
    for name in sections:
        print(f"[{name}]")
        section_start = time.perf_counter()
        try:
            results["sections"][name] = runners[name]()
        except minatar.NothingFinished as e:
            print(f"--minatar-finished-only: {e}", file=sys.stderr)
            sys.exit(2)
        results["sections"][name]["section_seconds"] = time.perf_counter() - section_start
    if args.profile:
        results["profile"] = profile_search(os.path.join(table_dir, f"profile-{device}"))
        print(f"[profile] traces in {results['profile']['directory']}: "
              f"{results['profile']['top_ms_per_call']}")
    results["seconds"] = time.perf_counter() - start

    suffix = ("-quick" if args.quick else "") + ("-tiny" if args.tiny else "")
    json_path = os.path.join(table_dir, f"{device}{suffix}.json")
    md_path = os.path.join(table_dir, f"{device}{suffix}.md")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, default=_jsonable)
    table = markdown(results)
    with open(md_path, "w") as f:
        f.write(table)
    print()
    print(table)
    print(f"wrote {json_path} and {md_path} in {results['seconds']:.0f} s")
    return results


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


if __name__ == "__main__":
    main()
