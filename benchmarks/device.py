"""Accelerator figures in one run of under five minutes (`--only device`, benchmarks/device.sh).

Three parts, in this order, each timing the library's own jitted calls after a warm-up
call whose seconds (compilation included) are reported apart; every call is followed
by `jax.block_until_ready` (benchmarks/timing.py):

  search   simulations/s of `Agent.act` (PUCT and Gumbel, 50 simulations) at batch 256 to
           8192, beside the network alone: the same number of `recurrent_inference`
           calls chained in a `lax.scan` (`run.make_network_only`). The network is the
           board ResNet that the `minatar` preset names for an accelerator
           (`--network.kind board`) on Breakout-MinAtar's 10x10x4 planes.
  learner  updates/s of `Agent.learn` (one optimizer step, K unroll steps) for the
           `atari_paper` ResNet (96x96 RGB, 32 frames of history, batch 1024), the
           MinAtar board ResNet and the pgx Go 9x9 and chess board ResNets. Batches are
           random arrays of the exact shapes and dtypes `Agent.make_batch` returns
           (`jax.eval_shape`), so no emulator or ROM is needed: the figure is the
           learner's, not the sampler's.
  minatar  a short learning run of the `minatar` preset on gymnax's Breakout-MinAtar:
           self-play (`Agent.rollout`), `Agent.add` and `Agent.update` in a Python loop
           until its share of the time budget is spent, with a greedy evaluation
           (`evaluate_jax`) at regular wall-clock intervals: the return curve against
           env steps and seconds.

A time budget (`budget_seconds`) bounds the whole section: a part or row that would
start with less than RESERVE_SECONDS left is recorded as skipped, and the learning run
takes what the first two parts left. `tiny` runs every part at toy sizes (a few
iterations, small batches and networks), for the CPU test (tests/test_device.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import muzero_jax as mz
from muzero_jax import envs, history
from muzero_jax.evaluate import evaluate_jax

RESERVE_SECONDS = 20.0  # what a row or the final evaluation may take on a GPU
# Each part's share of the budget, cumulative: the search ends its rows by 40% of it,
# the learner by 70%, the learning run has the rest.
PART_UNTIL = {"search": 0.4, "learner": 0.7}
ATARI_ACTIONS = 18


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to measure, at the device's sizes or the CPU test's."""

    tiny: bool
    simulations: int
    search_batches: tuple[int, ...]
    learners: tuple[str, ...]
    learner_batches: dict
    repeats: int
    min_repeat_seconds: float
    minatar_seconds: float
    minatar_max_iterations: int
    eval_episodes: int
    evals: int


def make_plan(tiny: bool) -> Plan:
    learners = ("atari_paper", "minatar_board", "go_9x9", "chess")
    if tiny:
        # One network of each kind (resnet, board): the rows differ only in sizes.
        return Plan(tiny=True, simulations=2, search_batches=(2,),
                    learners=("atari_paper", "go_9x9"),
                    learner_batches={name: 2 for name in learners}, repeats=2,
                    min_repeat_seconds=0.0, minatar_seconds=math.inf, minatar_max_iterations=3,
                    eval_episodes=2, evals=2)
    return Plan(tiny=False, simulations=50, search_batches=(256, 1024, 4096, 8192),
                learners=learners,
                learner_batches={"atari_paper": 1024, "minatar_board": 1024, "go_9x9": 1024,
                                 "chess": 1024},
                repeats=5, min_repeat_seconds=0.1, minatar_seconds=120.0,
                minatar_max_iterations=100_000, eval_episodes=32, evals=6)


class Budget:
    """Seconds left of the section's budget, and the parts skipped for want of them.

    `part(until)` gives the part now running the share of the budget up to the fraction
    `until` of it (what an earlier part left over comes with it)."""

    def __init__(self, seconds: float):
        self.start = time.perf_counter()
        self.seconds = seconds
        self.deadline = self.start + seconds
        self.skipped: list[str] = []

    def part(self, until: float) -> None:
        self.deadline = self.start + until * self.seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def allows(self, what: str, needs: float = RESERVE_SECONDS) -> bool:
        if self.left() >= needs:
            return True
        self.skipped.append(what)
        return False


class AtariShapedFrames(envs.JaxEnv):
    """Random uint8 observations of the shape an Atari network sees (a stack of frames
    and action planes): gives `Agent` its spec where no emulator or ROM is installed.
    Rewards are 0 and episodes never end; only shapes matter to the learner's timing."""

    def __init__(self, frame_shape: tuple[int, int, int], num_actions: int = ATARI_ACTIONS):
        self.spec = envs.EnvSpec(env_id="atari-shaped-frames", observation_shape=frame_shape,
                                 num_actions=num_actions, observation_dtype="uint8")

    def initial(self, key):
        frame = jax.random.randint(key, self.spec.observation_shape, 0, 256, jnp.int32)
        return jnp.zeros(()), frame

    def transition(self, inner, action, key):
        del action
        _, frame = self.initial(key)
        return envs.Transition(inner=inner, observation=frame, reward=jnp.zeros(()),
                               terminated=jnp.zeros((), bool))


def learner_config(name: str, batch: int, tiny: bool) -> tuple[mz.Config, envs.Env | None]:
    """The config (at `batch`) and, for Atari, the stand-in env of the learner row `name`."""
    if name == "atari_paper":
        preset = mz.atari_tiny if tiny else mz.atari_paper
        # Replay is never filled (the batch is random): a small one keeps init cheap.
        config = preset(batch_size=batch, capacity=4_096, min_size=64)
        frame = (*config.env.frame_size, 1 if config.env.grayscale else 3)
        # Frame histories are kept by the host path alone: the stand-in gives the stack of
        # planes whole (history 0), the same input for h, the same learner step.
        planes = history.planes_shape(frame, config.env.history_length)
        return config.replace(history_length=0), AtariShapedFrames(planes)
    if name == "minatar_board":
        return mz.minatar(network=dict(kind="board"), batch_size=batch), None
    config = mz.presets.board(name, batch_size=batch)
    if tiny:
        config = config.replace(resnet_channels=4, representation_blocks=(1, 0, 0),
                                dynamics_blocks=1, prediction_blocks=0)
    return config, None


def fresh_state(agent: mz.Agent, seed: int = 0) -> mz.TrainState:
    """A fresh learner state with parameters drawn on the host, of the shapes
    `Model.init` gives: kernels LeCun-normal (flax's default), LayerNorm scales 1 and
    every other array N(0, 0.1^2), heads included (a fresh network's heads are zero,
    which would make every tree alike; `run.benchmark_params` adds the same noise).
    Compiling `Model.init` costs more than a learner step on a CPU: this skips it."""
    shapes = jax.eval_shape(agent.model.init, jax.random.key(seed))
    rng = np.random.default_rng(seed)

    def draw(path, shape: jax.ShapeDtypeStruct) -> jax.Array:
        name = jax.tree_util.keystr(path)
        if len(shape.shape) >= 2:
            fan_in = math.prod(shape.shape[:-1])
            value = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape.shape)
        else:
            value = (1.0 if "scale" in name else 0.0) + rng.normal(0.0, 0.1, shape.shape)
        return jnp.asarray(value.astype(shape.dtype))

    return agent.pieces.learner.init(jax.tree_util.tree_map_with_path(draw, shapes))


def random_batch(agent: mz.Agent, state: mz.TrainState, seed: int = 4) -> mz.Batch:
    """A batch of the exact shapes and dtypes `agent.make_batch` returns, filled at random
    on the host: integers are actions in [0, A), uint8 are pixels, floats uniform in
    [0, 1), booleans True."""
    buffer = jax.eval_shape(agent.init_replay)
    shapes = jax.eval_shape(agent.make_batch, buffer, jax.random.key(seed), state)
    rng = np.random.default_rng(seed)

    def fill(shape: jax.ShapeDtypeStruct) -> jax.Array:
        dtype = np.dtype(shape.dtype)
        if dtype == np.uint8:
            return jnp.asarray(rng.integers(0, 256, shape.shape, np.uint8))
        if np.issubdtype(dtype, np.integer):
            return jnp.asarray(rng.integers(0, agent.num_actions, shape.shape).astype(dtype))
        if dtype == np.bool_:
            return jnp.ones(shape.shape, bool)
        return jnp.asarray(rng.random(shape.shape).astype(dtype))

    return jax.tree.map(fill, shapes)


def _measure(plan: Plan, fns: dict) -> dict:
    from benchmarks.timing import measure_interleaved

    return measure_interleaved(fns, repeats=plan.repeats,
                               min_repeat_seconds=plan.min_repeat_seconds)


def search_config(algorithm: str, plan: Plan) -> mz.Config:
    config = mz.minatar(network=dict(kind="board"), search=algorithm,
                        num_simulations=plan.simulations)
    if plan.tiny:
        config = config.replace(resnet_channels=4)
    return config


def bench_search(plan: Plan, budget: Budget, log) -> dict:
    """Simulations/s of `Agent.act` beside the network alone, per search and batch."""
    from benchmarks.run import _timing_record, make_network_only

    rows = []
    for algorithm in ("muzero", "gumbel"):
        agent = mz.Agent(search_config(algorithm, plan))
        state = fresh_state(agent)
        network_only = make_network_only(agent.model, plan.simulations)
        for batch in plan.search_batches:
            if not budget.allows(f"search {algorithm} batch {batch}"):
                continue
            # MinAtar planes are 0/1: a quarter of them on, as a mid-game board.
            obs = jax.random.bernoulli(jax.random.key(1), 0.25,
                                       (batch, *agent.observation_shape)).astype(jnp.float32)
            key = jax.random.key(2)
            actions = jax.random.randint(jax.random.key(3), (plan.simulations, batch), 0,
                                         agent.num_actions)
            t = _measure(plan, {
                "search": lambda: agent.act(state, key, obs),  # noqa: B023
                "network_only": lambda: network_only(state.params, obs, actions)})  # noqa: B023
            act, net = t["search"], t["network_only"]
            work = batch * plan.simulations
            rows.append({"algorithm": algorithm, "batch": batch,
                         "simulations": plan.simulations,
                         "search": _timing_record(act, "simulations/s", work),
                         "network_only": _timing_record(net, "simulations/s", work),
                         "ratio": act.median_s / net.median_s})
            log(f"  search {algorithm:6s} B={batch:5d}: {work / act.median_s:12,.0f} sims/s, "
                f"network only {work / net.median_s:12,.0f} sims/s; first calls "
                f"{act.first_call_s:.1f} s and {net.first_call_s:.1f} s")
    network = search_config("gumbel", plan).network
    return {"config": f"minatar preset, network kind {network.kind} "
                      f"({network.resnet_channels} channels), {plan.simulations} simulations, "
                      "Breakout-MinAtar planes, noisy fresh parameters",
            "rows": rows}


def bench_learner(plan: Plan, budget: Budget, log) -> dict:
    """Updates/s of `Agent.learn` on a random batch of the real shapes, per network."""
    from benchmarks.run import _timing_record

    rows = []
    for name in plan.learners:
        if not budget.allows(f"learner {name}"):
            continue
        batch = plan.learner_batches[name]
        config, env = learner_config(name, batch, plan.tiny)
        agent = mz.Agent(config, env=env)
        state = fresh_state(agent)
        data = random_batch(agent, state)
        t = _measure(plan, {"learn": lambda: agent.learn(state, data)})["learn"]  # noqa: B023
        net = config.network
        params = sum(x.size for x in jax.tree.leaves(state.params))
        rows.append({"network": name, "kind": net.kind, "batch": batch,
                     "unroll_steps": config.loss.unroll_steps,
                     "observation_shape": list(agent.observation_shape),
                     "num_actions": agent.num_actions, "parameters": int(params),
                     "learn": _timing_record(t, "updates/s", 1),
                     "learn_samples": _timing_record(t, "samples/s", batch)})
        log(f"  learner {name:13s} ({net.kind}, {params:,} parameters) B={batch}: "
            f"{1 / t.median_s:8,.2f} updates/s, {batch / t.median_s:10,.0f} samples/s; "
            f"first call {t.first_call_s:.1f} s")
    return {"config": "Agent.learn, one optimizer step on a random batch of the shapes "
                      "Agent.make_batch returns; noisy fresh parameters", "rows": rows}


def minatar_run_config(plan: Plan) -> mz.Config:
    config = mz.minatar()
    if plan.tiny:
        config = config.replace(num_envs=4, rollout_length=4, num_simulations=2,
                                max_num_considered_actions=2, hidden_size=8, latent_size=8,
                                batch_size=4, updates_per_iteration=1, min_size=8,
                                max_episode_steps=8, td_steps=2, unroll_steps=2)
    return config


def minatar_run(plan: Plan, seconds: float, log) -> dict:
    """The `minatar` preset on Breakout-MinAtar until `seconds` of wall time have passed
    (compilation and the periodic greedy evaluations included), then a last evaluation;
    returns the curve, with training seconds (compilation apart) beside wall seconds."""
    start = time.perf_counter()
    config = minatar_run_config(plan)
    agent = mz.Agent(config)
    keys = iter(jax.random.split(jax.random.key(config.run.seed), 1_000_000))
    state = agent.init(next(keys))
    env_state, buffer = agent.reset(next(keys)), agent.init_replay()
    first_call, curve = {}, []
    clock = {"train": 0.0, "eval": 0.0}
    env_steps = train_steps = 0

    def timed(name: str, fn, *args):
        begin = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        taken = time.perf_counter() - begin
        if name not in first_call:
            first_call[name] = taken
        else:
            clock["eval" if name == "evaluate" else "train"] += taken
        return out

    def evaluate():
        returns = timed("evaluate", evaluate_jax, agent, state, next(keys),
                        plan.eval_episodes)
        curve.append({"env_steps": env_steps, "train_steps": train_steps,
                      "train_seconds": round(clock["train"], 3),
                      "wall_seconds": round(time.perf_counter() - start, 3),
                      "eval_return": float(np.mean(returns)),
                      "eval_std": float(np.std(returns))})
        log(f"  minatar {env_steps:9,d} env steps, {curve[-1]['wall_seconds']:6.1f} s: greedy "
            f"return {curve[-1]['eval_return']:.2f} ({plan.eval_episodes} episodes)")

    steps = config.acting.num_envs * config.acting.rollout_length
    evaluate()
    eval_interval = seconds / plan.evals
    next_eval = time.perf_counter() - start + eval_interval
    for iteration in range(plan.minatar_max_iterations):
        env_state, trajectory = timed("rollout", agent.rollout, state, env_state, next(keys))
        buffer = timed("add", agent.add, buffer, trajectory)
        env_steps += steps
        if agent.ready_to_learn(buffer):
            state, buffer, _ = timed("update", agent.update, state, buffer, next(keys))
            train_steps += config.learner.updates_per_iteration
        wall = time.perf_counter() - start
        done = wall >= seconds or iteration + 1 == plan.minatar_max_iterations
        if done or wall >= next_eval:
            evaluate()
            next_eval = time.perf_counter() - start + eval_interval
        if done:
            break
    acting, search = config.acting, config.search
    return {"config": f"minatar preset on {config.env.id}: {acting.num_envs} envs x "
                      f"{acting.rollout_length} steps, {search.policy} {search.num_simulations} "
                      f"simulations, {config.learner.updates_per_iteration} updates of batch "
                      f"{config.learner.batch_size} an iteration, network {config.network.kind}",
            "env": config.env.id, "env_steps": env_steps, "train_steps": train_steps,
            "train_seconds": clock["train"], "eval_seconds": clock["eval"],
            "wall_seconds": time.perf_counter() - start,
            "env_steps_per_second": env_steps / max(clock["train"], 1e-9),
            "first_call_seconds": first_call, "eval_episodes": plan.eval_episodes,
            "curve": curve}


def plot(run: dict, path: str, title: str) -> None:
    """Greedy return against env steps and against training seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    curve = run["curve"]
    for ax, x, label in ((axes[0], "env_steps", "env steps"),
                         (axes[1], "wall_seconds", "wall seconds (compilation included)")):
        ax.plot([p[x] for p in curve], [p["eval_return"] for p in curve], marker="o")
        ax.set_xlabel(label)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"greedy return ({run['eval_episodes']} ep.)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def benchmark(out: str, device: str, log, *, tiny: bool = False,
              budget_seconds: float = 250.0) -> dict:
    """The three parts within `budget_seconds`; writes the learning curve's PNG to `out`."""
    plan = make_plan(tiny)
    budget = Budget(budget_seconds)
    first = jax.devices()[0]
    section = {"device": {"platform": first.platform, "device_kind": first.device_kind,
                          "count": jax.device_count()},
               "tiny": tiny, "budget_seconds": budget_seconds,
               # JSON has no infinity: the tiny plan's unbounded learning run is null.
               "plan": {k: None if isinstance(v, float) and math.isinf(v) else v
                        for k, v in dataclasses.asdict(plan).items()}}
    for name, bench, until in (("search", bench_search, PART_UNTIL["search"]),
                               ("learner", bench_learner, PART_UNTIL["learner"])):
        budget.part(until)
        start = time.perf_counter()
        section[name] = bench(plan, budget, log)
        section[name]["seconds"] = time.perf_counter() - start
    budget.part(1.0)
    # The learning run takes what is left but the last evaluation's reserve.
    seconds = min(plan.minatar_seconds, budget.left() - RESERVE_SECONDS)
    if plan.tiny or budget.allows("minatar run", needs=RESERVE_SECONDS + 10.0):
        start = time.perf_counter()
        run = minatar_run(plan, max(seconds, 0.0), log)
        run["seconds"] = time.perf_counter() - start
        png = f"device-minatar-{device}{'-tiny' if tiny else ''}.png"
        plot(run, os.path.join(out, png), f"{run['env']}, minatar preset ({device})")
        run["plot"] = png
        section["minatar"] = run
    section["skipped"] = budget.skipped
    return section


def _rate(record: dict, spec: str = ",.0f") -> str:
    return (f"{format(record['median'], spec)} ({format(record['min'], spec)}-"
            f"{format(record['max'], spec)})")


def markdown(section: dict) -> list[str]:
    d = section["device"]
    tiny = "; --tiny: toy sizes, a check of the harness, not a measurement"
    lines = [f"Device: {d['device_kind']} ({d['platform']}, {d['count']} device(s))"
             f"{tiny if section['tiny'] else ''}.",
             "", f"### Search: simulations/s ({section['search']['config']})", "",
             "| search | batch | search sims/s | network-only sims/s | search / network | "
             "first call s (search, network) |", "|---|---|---|---|---|---|"]
    for r in section["search"]["rows"]:
        lines.append(f"| {r['algorithm']} | {r['batch']} | {_rate(r['search'])} | "
                     f"{_rate(r['network_only'])} | {r['ratio']:.2f} | "
                     f"{r['search']['first_call_seconds']:.1f}, "
                     f"{r['network_only']['first_call_seconds']:.1f} |")
    lines += ["", f"### Learner ({section['learner']['config']})", "",
              "| network | kind | parameters | observation | batch | K | updates/s | samples/s "
              "| first call s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in section["learner"]["rows"]:
        lines.append(f"| {r['network']} | {r['kind']} | {r['parameters']:,} | "
                     f"{'x'.join(map(str, r['observation_shape']))} | {r['batch']} | "
                     f"{r['unroll_steps']} | {_rate(r['learn'], ',.2f')} | "
                     f"{_rate(r['learn_samples'])} | {r['learn']['first_call_seconds']:.1f} |")
    if "minatar" in section:
        m = section["minatar"]
        calls = ", ".join(f"{k} {v:.1f}" for k, v in m["first_call_seconds"].items())
        lines += ["", f"### Learning run ({m['config']})", "",
                  f"{m['env_steps']:,} env steps and {m['train_steps']:,} updates in "
                  f"{m['wall_seconds']:.1f} s: {m['train_seconds']:.1f} s of training "
                  f"({m['env_steps_per_second']:,.0f} env steps/s), {m['eval_seconds']:.1f} s of "
                  f"evaluation; first calls (compilation included), s: {calls}.", "",
                  "| env steps | updates | training s | wall s | greedy return |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['env_steps']:,} | {p['train_steps']:,} | {p['train_seconds']:.1f} | "
                  f"{p['wall_seconds']:.1f} | {p['eval_return']:.2f} +- {p['eval_std']:.2f} |"
                  for p in m["curve"]]
        lines += ["", f"![MinAtar learning run]({m['plot']})"]
    if section["skipped"]:
        lines += ["", "Skipped for want of time: " + ", ".join(section["skipped"]) + "."]
    return lines

