"""The training loop: self-play -> replay -> targets/loss -> optimizer, repeated.

JAX-native envs: `muzero_jax.loop.make_train` compiles whole chunks of iterations
(rollout, replay add, learner updates, greedy evaluation, the solve check) into one
program, for one run or `[S]` runs side by side (seeds, a learning-rate sweep); `train`
calls it chunk by chunk and, between calls, logs, checkpoints and shows progress.
Host envs (Gymnasium, ALE): each iteration makes three calls to compiled programs
(rollout, replay add, `updates_per_iteration` learner steps in one `lax.scan`); the
host counts, logs, sets the acting temperature and decides when to evaluate,
checkpoint or stop.

An evaluation that reaches config.run.solve_return stops a run only once a confirming
evaluation on the final evaluation's env passes (`confirm_solved`); otherwise the run
trains on, and each such evaluation is listed in `TrainResult.early_stops`. The first
non-finite observation, reward, loss or gradient stops training with
`errors.NonFiniteError` before anything from it is checkpointed.

Given a run directory, the loop checkpoints everything it needs to go on
exactly (learner state, replay, env states, RNG key and its own counters and
history) and logs every row to TensorBoard and metrics.csv; `resume=True`
picks the run up from its latest checkpoint. Nothing in the directory changes until
that restore and its checks have passed, so a resume that fails leaves it as it was.
SIGINT and SIGTERM end a run at the end of the current chunk (host envs: iteration)
with a checkpoint, then raise `errors.Interrupted`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from muzero_jax import checkpoint, compile_stats, distributed, envs, support
from muzero_jax.agent import Agent
from muzero_jax.config import Config, ConfigError, validate
from muzero_jax.errors import Interrupted, NonFiniteError
from muzero_jax.evaluate import evaluate_final, evaluate_jax
from muzero_jax.learner import TrainState
from muzero_jax.logger import Logger
from muzero_jax.loop import FAULTS, SWEEPABLE, RunnerState, make_train, run_done, trajectory_fault
from muzero_jax.plot import plot_run
from muzero_jax.replay import ReplayBuffer
from muzero_jax.search import Exploration
from muzero_jax.selfplay import Trajectory


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    agent: the Agent (compiled programs included, for evaluation).
    state: the final learner state.
    buffer: the final replay buffer.
    history: one dict of scalars per logged iteration.
    env_steps, train_steps: totals.
    solved: whether an evaluation reached config.run.solve_return and its confirming
      evaluation (`confirm_solved`) passed: the run stopped early.
    seconds: wall time spent in `train`.
    seed: the run's seed. hyperparameters: a sweep's field and value for this run.
    compile_seconds: seconds compiling each program of the training loop, by name.
    early_stops: each evaluation that reached the solve return and its confirmation:
      {"env_steps", "eval_return", "confirm_return", "confirm_episodes", "confirm_env",
      "confirmed"}, in order (over every session of a resumed run).
    final_eval: the confirming evaluation the run stopped on (`[E]` returns, label),
      which is the final evaluation of the state it returns; None if it did not stop
      on one in this session.
    """

    agent: Agent
    state: TrainState
    buffer: ReplayBuffer
    history: list[dict]
    env_steps: int
    train_steps: int
    solved: bool
    seconds: float
    seed: int | None = None
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    compile_seconds: dict = dataclasses.field(default_factory=dict)
    early_stops: list = dataclasses.field(default_factory=list)
    final_eval: tuple | None = None


Sweep = tuple[str, Sequence[float]]


def train(config: Config, *, env: envs.Env | None = None,
          seeds: Sequence[int] | None = None, sweep: Sweep | None = None,
          log: Callable[[str], None] | None = print,
          on_iteration: Callable[[dict], None] | None = None, run_dir: str | None = None,
          resume: bool = False, progress: bool | None = None,
          iterations_per_call: int | None = None) -> TrainResult | list[TrainResult]:
    """Trains MuZero on `config.env.id` until `total_env_steps` or a solving evaluation.

    JAX-native envs train in one compiled program (`loop.make_train`) that runs
    `iterations_per_call` iterations (rollout, replay add, learner updates, periodic
    greedy evaluation and the solve check) per call; between calls the host logs,
    checkpoints and shows progress. Host envs (Gymnasium, ALE) keep a Python loop
    over the same jitted pieces.

    Args:
      config: the configuration (validated before anything compiles).
      env: the environment object (a `muzero_jax.envs.JaxEnv` or `HostEnv`); default
        `envs.make(config)` from the id `config.env.id`.
      seeds: train one run per seed side by side in one program (JAX envs); each
        stops on its own once solved. Returns a list of results, one per run.
      sweep: (field, values): one run per value (per seed) of a config field that
        changes no shapes; supported: `loop.SWEEPABLE` (the learning rate).
      log: where progress lines go (None: silent).
      on_iteration: called with each logged row of metrics.
      run_dir: if given, the run's directory: config.json, checkpoints/ (every
        `checkpoint_every` updates, at the end of a call, and at the end),
        tensorboard/ (one run per seed with `seeds`), metrics.csv (with a `run` and
        `seed` column with `seeds`) and, at the end, curves.png.
      resume: continue from the latest checkpoint in `run_dir` (the same
        parameters, replay, env states, RNG and counters; with the replay buffer
        checkpointed, the run ends exactly as if it had never stopped).
      progress: show a tqdm bar instead of progress lines (None: when stdout is a
        terminal and `log` is set).
      iterations_per_call: iterations per call of the compiled program (default
        config.run.log_every); checkpoints fall between calls.

    SIGINT and SIGTERM (from the main thread, while training: the previous handlers
    come back after) finish the current call of the compiled program (host envs: the
    current iteration), save a checkpoint and raise `Interrupted`; a second signal
    raises it at once.

    Raises:
      CheckpointError: `resume` without a readable checkpoint, a checkpoint that does
        not fit `config`, a fresh run into a directory that holds checkpoints or an
        earlier run's logs, or a checkpoint that cannot be written (a full disk).
      ConfigError: an unsupported sweep, or seeds/sweeps on a host env.
      Interrupted: SIGINT or SIGTERM (exit code 130 or 143 in the scripts).
    """
    start = time.perf_counter()
    if run_dir is not None:  # before anything is built or compiled
        checkpoint.check_run_dir(run_dir, resume=resume)
    agent = Agent(config, env)
    multi = seeds is not None or sweep is not None
    primary = distributed.is_primary()  # only process 0 logs and writes files
    if not primary:
        log, on_iteration = None, None
    if agent.host:
        if multi:
            raise ConfigError(f"seeds and sweeps in one program need a JAX env; "
                              f"{agent.spec.env_id!r} is a host env: run one process per seed")
        if distributed.num_devices(config) != 1:
            raise ConfigError(f"num_devices={config.run.num_devices}: host envs "
                              f"({agent.spec.env_id!r}) train on one device; expected 1")
        return _train_host(agent, log=log, on_iteration=on_iteration, run_dir=run_dir,
                           resume=resume, progress=progress)
    cfg = agent.config
    runs = make_runs(cfg, seeds, sweep)
    program = make_train(cfg, agent=agent, num_iterations=iterations_per_call)
    compile_before = compile_stats.snapshot()

    # One compiled init, called per run (a vmapped init compiles a far larger program),
    # whose runs are stacked by one compiled program too: eager stacking compiles one
    # small program per leaf shape.
    init = jax.jit(lambda key, lr: jax.tree.map(lambda x: x[None],
                                                program.init(key, learning_rate=lr)))
    runners = _stack([
        init(jax.random.key(run["seed"]),
             jax.numpy.float32(run.get("learning_rate", cfg.learner.learning_rate))) for run in runs])
    layout = program.layout
    runners = layout.place(runners)
    meta = {"iteration": 0, "history": [], "seconds": 0.0, "last_checkpoint_updates": 0,
            "early_stops": {}, "runs": runs, "stacked": multi, "num_devices": layout.num_devices,
            "num_processes": jax.process_count()}

    checkpointer, logger = None, None
    if run_dir is not None:
        reader = checkpoint.open_run(run_dir, cfg, resume=resume)  # reads only
        if resume:
            try:
                runners, meta = _restore(reader, runners, meta, multi, run_dir)
            finally:
                reader.close()
            # `done` as this config has it: a finished run resumed with a bigger
            # total_env_steps goes on (a solved one stays done).
            runners = runners.replace(done=run_done(runners.solved, runners.env_steps, cfg))
            runners = layout.place(runners)
            if log is not None:
                log(f"resumed {run_dir} at iteration {meta['iteration']}: "
                    f"{int(jax.numpy.max(runners.env_steps))} env steps, "
                    f"{int(jax.numpy.max(runners.train_state.step))} updates")
        # The restore and its checks passed: only now does the run directory change.
        checkpointer = checkpoint.start_run(run_dir, cfg,
                                            unreadable=reader.unreadable if resume else ())
        if primary:
            logger = Logger(run_dir, meta["history"], run_key="run" if multi else None)
    save_replay = (cfg.run.checkpoint_replay if cfg.run.checkpoint_replay is not None
                   else checkpoint.nbytes(runners.buffer) < checkpoint.AUTO_REPLAY_BYTES)
    show_bar = progress if progress is not None else (log is not None and sys.stdout.isatty())
    bar = tqdm(total=cfg.run.total_env_steps, initial=int(jax.numpy.max(runners.env_steps)),
               unit="step", unit_scale=True, dynamic_ncols=True, disable=not show_bar)

    earlier_seconds = meta["seconds"]
    saved_iteration = meta["iteration"] if resume else None

    def save(runners) -> None:
        nonlocal saved_iteration
        saved_iteration = meta["iteration"]
        meta["seconds"] = earlier_seconds + time.perf_counter() - start
        meta["last_checkpoint_updates"] = int(jax.numpy.max(runners.train_state.step))
        trees = _checkpoint_trees(runners if multi else _first(runners), save_replay)
        release_free_heap()  # what the last checkpoint's writes and the chunks since freed
        checkpointer.save(meta["iteration"], trees, meta)

    stop = _StopSignals()
    try:
        run_chunk = layout.jit(program.run_chunk, runners)
        compiled = run_chunk.lower(runners, jax.numpy.int32(1)).compile()
        release_free_heap()  # compilation's working memory: about half the peak RSS
        history = meta["history"]
        last_time = time.perf_counter()
        last_steps = int(jax.numpy.max(runners.env_steps))
        last_updates = [int(u) for u in np.asarray(runners.train_state.step)]
        final_evals: dict[int, tuple] = {}
        while not bool(jax.numpy.all(runners.done)) and stop.signum is None:
            solved_before = np.asarray(runners.solved)
            runners, metrics = compiled(runners, jax.numpy.int32(meta["iteration"] + 1))
            metrics = jax.device_get(metrics)
            _raise_on_fault(runners, runs, agent.spec.env_id, multi)
            support.check_rewards(metrics["reward_abs_max"], cfg, agent.reward_limit,
                                  int(np.max(np.asarray(runners.env_steps))), agent.spec.env_id)
            now = time.perf_counter()
            active = metrics["active"]  # [C, S]
            ran = int(np.max(np.sum(active, axis=0)))
            steps_now = int(np.max(np.asarray(runners.env_steps)))
            chunk_seconds = now - last_time
            for i in range(ran):
                iteration = meta["iteration"] + i + 1
                for r, run in enumerate(runs):
                    if not active[i, r]:
                        continue
                    m = {k: v[i, r] for k, v in metrics.items()}
                    last = bool(m["env_steps"] >= cfg.run.total_env_steps)
                    if not (iteration % cfg.run.log_every == 0 or m["evaluated"] or m["solved"]
                            or last):
                        continue
                    row = _row(m, run, multi, wall_seconds=earlier_seconds + last_time - start
                               + chunk_seconds * (i + 1) / ran,
                               steps_per_second=(steps_now - last_steps) / chunk_seconds,
                               updates_per_second=(int(np.asarray(
                                   runners.train_state.step)[r]) - last_updates[r])
                               / chunk_seconds)
                    history.append(row)
                    _report(row, logger=logger, on_iteration=on_iteration, log=log,
                            show_bar=show_bar)
            meta["iteration"] += ran
            bar.update(steps_now - last_steps)
            last_time, last_steps = now, steps_now
            last_updates = [int(u) for u in np.asarray(runners.train_state.step)]
            runners = _confirm_solves(agent, runners, solved_before, runs, meta, final_evals,
                                      log=log, layout=layout)
            updates = max(last_updates)
            if checkpointer is not None and _checkpoint_due(
                    cfg, updates, meta["last_checkpoint_updates"]):
                if logger is not None:
                    logger.flush()  # events up to the checkpoint are on disk with it
                save(runners)
        if checkpointer is not None and saved_iteration != meta["iteration"]:
            save(runners)
        if checkpointer is not None:
            checkpointer.wait()  # a write that failed is reported here
    finally:
        stop.restore()
        _close(bar, checkpointer, logger)
    stop.raise_if_received(run_dir, meta["iteration"], int(jax.numpy.max(runners.env_steps)))
    if run_dir is not None and history and primary:
        plot_run(run_dir)
    compile_seconds = compile_stats.totals(compile_stats.since(compile_before))
    if log is not None:
        log(compile_stats.format_table(compile_stats.since(compile_before)))

    seconds = time.perf_counter() - start
    results = []
    for r, run in enumerate(runs):
        runner = _take_run(runners, r)
        results.append(TrainResult(
            # Replicated parameters as host arrays: evaluation runs on one device.
            agent=agent, state=(runner.train_state if layout.num_devices == 1
                                else distributed.to_host(runner.train_state)), buffer=runner.buffer,
            history=[row for row in history if not multi or row["run"] == run["name"]],
            env_steps=int(runner.env_steps), train_steps=int(runner.train_state.step),
            solved=bool(runner.solved), seconds=seconds, seed=run["seed"],
            hyperparameters={k: v for k, v in run.items() if k in SWEEPABLE},
            compile_seconds=compile_seconds,
            early_stops=list(meta["early_stops"].get(run["name"], [])),
            final_eval=final_evals.get(r)))
    return results if multi else results[0]


def make_runs(config: Config, seeds: Sequence[int] | None, sweep: Sweep | None
              ) -> list[dict]:
    """The runs of one program: [{"name", "seed", (swept field: value)}], seeds outermost."""
    seeds = [config.run.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("seeds=(): expected at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={tuple(seeds)}: expected distinct seeds")
    values: list = [None]
    field = None
    if sweep is not None:
        field, values = sweep
        if field not in SWEEPABLE:
            raise ConfigError(f"sweep of {field!r}: a sweep in one program varies a field "
                              f"that changes no shapes and lives in the state; supported: "
                              f"{list(SWEEPABLE)}")
        values = [float(v) for v in values]
        if not values:
            raise ConfigError(f"sweep of {field!r}: expected at least one value")
        for v in values:
            validate(config.replace(**{field: v}))
    runs = []
    for seed in seeds:
        for value in values:
            run = {"name": f"seed{seed}", "seed": seed}
            if field is not None:
                run["name"] += f"-{field}{value:g}"
                run[field] = value
            runs.append(run)
    return runs


@jax.jit
def _take_run(tree, r):
    """Run `r` of `[S]`-stacked arrays: one compiled program for every leaf, where eager
    indexing compiles one per leaf shape (a cold start's share of its compile time)."""
    return jax.tree.map(lambda x: x[r], tree)


def _first(tree):
    return _take_run(tree, 0)


@jax.jit
def _concatenate_runs(trees: list):
    return jax.tree.map(lambda *xs: jax.numpy.concatenate(xs), *trees)


def _stack(trees: list):
    """`[1]`-stacked runs as one `[S]` stack (a single run as it is), by one compiled
    program kept across calls."""
    return trees[0] if len(trees) == 1 else _concatenate_runs(trees)


def _checkpoint_trees(runner: RunnerState, save_replay: bool) -> dict:
    counters = {name: getattr(runner, name) for name in (
        "iteration", "env_steps", "solved", "done", "last_eval_return", "recent_returns",
        "recent_lengths", "episodes_finished")}
    return {"train_state": runner.train_state, "env_state": runner.env_state,
            "rng": {"key": runner.key}, "counters": counters,
            **({"replay": runner.buffer} if save_replay else {})}


def _restore(checkpointer, runners: RunnerState, meta: dict, multi: bool, run_dir: str):
    template = runners if multi else _first(runners)
    _, trees, saved_meta = checkpointer.restore(_checkpoint_trees(template, True),
                                                required=("train_state", "env_state", "rng"))
    saved_processes = saved_meta.get("num_processes", 1)
    if saved_processes != meta["num_processes"]:
        raise checkpoint.CheckpointError(
            f"{run_dir}: the checkpoint was written by {saved_processes} process(es); this "
            f"run has {meta['num_processes']}: resume with --num-processes "
            f"{saved_processes} (a checkpoint does not reshard across process counts)")
    if saved_meta.get("runs", meta["runs"]) != meta["runs"]:
        raise checkpoint.CheckpointError(
            f"{run_dir}: the checkpoint holds runs {[r['name'] for r in saved_meta['runs']]}; "
            f"expected {[r['name'] for r in meta['runs']]} (resume with the same seeds and "
            f"sweep)")
    if trees["counters"] is None:
        raise checkpoint.CheckpointError(
            f"{run_dir}: the checkpoint predates the compiled training loop (no counters); "
            f"start a fresh run")
    restored = template.replace(
        train_state=trees["train_state"], env_state=trees["env_state"],
        key=trees["rng"]["key"], buffer=(template.buffer if trees["replay"] is None
                                         else trees["replay"]), **trees["counters"])
    if not multi:
        restored = jax.tree.map(lambda x: jax.numpy.asarray(x)[None], restored)
    return restored, dict(meta, **saved_meta)


_UPDATE_FREE = ("active", "evaluated", "solved", "reward_abs_max")


def _row(m: dict, run: dict, multi: bool, *, wall_seconds: float, steps_per_second: float,
         updates_per_second: float) -> dict:
    """One logged row from one iteration's metrics of one run."""
    def number(v):
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and math.isnan(v) else v

    row = {}
    if multi:
        row.update({"run": run["name"], "seed": run["seed"],
                    **{k: v for k, v in run.items() if k in SWEEPABLE}})
    row.update({
        "iteration": int(m["iteration"]), "env_steps": int(m["env_steps"]),
        "train_steps": int(m["train_steps"]), "wall_seconds": wall_seconds,
        "episodes_return": float(m["episodes_return"]),
        "episode_length": float(m["episode_length"]),
        "eval_return": number(m["eval_return"]) if m["evaluated"] else None,
        "env_steps_per_second": steps_per_second, "updates_per_second": updates_per_second,
        "root_value": float(m["root_value"]), "policy_entropy": float(m["policy_entropy"]),
    })
    if int(m["train_steps"]) > 0:  # learner metrics once learning has started
        skip = set(row) | set(_UPDATE_FREE)
        row.update({k: float(v) for k, v in m.items() if k not in skip})
    return row


def _train_host(agent: Agent, *, log, on_iteration, run_dir, resume, progress
                ) -> TrainResult:
    """The host loop (Gymnasium, ALE envs): Python over the same jitted pieces."""
    start = time.perf_counter()
    cfg = agent.config
    key = jax.random.key(cfg.run.seed)
    key, init_key, env_key = jax.random.split(key, 3)
    state = agent.init(init_key)
    buffer = agent.init_replay()
    env_state = agent.reset(env_key)
    loop = LoopState()

    checkpointer, logger = None, None
    if run_dir is not None:
        reader = checkpoint.open_run(run_dir, cfg, resume=resume)  # reads only
        if resume:
            try:
                restored = checkpoint.restore_run(reader, state=state, buffer=buffer,
                                                  env_state=env_state, key=key)
            finally:
                reader.close()
            state, buffer, env_state, key, loop_dict = restored
            loop = LoopState(**loop_dict)
            if log is not None:
                log(f"resumed {run_dir} at iteration {loop.iteration}: "
                    f"{loop.env_steps} env steps, {int(state.step)} updates")
        # The restore passed: only now does the run directory change.
        checkpointer = checkpoint.start_run(run_dir, cfg,
                                            unreadable=reader.unreadable if resume else ())
        logger = Logger(run_dir, loop.history)
    save_replay = (cfg.run.checkpoint_replay if cfg.run.checkpoint_replay is not None
                   else checkpoint.nbytes(buffer) < checkpoint.AUTO_REPLAY_BYTES)
    show_bar = progress if progress is not None else (log is not None and sys.stdout.isatty())
    bar = tqdm(total=cfg.run.total_env_steps, initial=loop.env_steps, unit="step",
               unit_scale=True, dynamic_ncols=True, disable=not show_bar)

    earlier_seconds = loop.seconds
    saved_iteration = loop.iteration if resume else None

    def save(state, buffer, env_state, key) -> None:
        nonlocal saved_iteration
        saved_iteration = loop.iteration
        loop.seconds = earlier_seconds + time.perf_counter() - start
        loop.last_checkpoint_updates = int(state.step)
        release_free_heap()
        # Host games (ALE) are live emulators, not arrays: a resumed run starts new ones.
        checkpointer.save(loop.iteration, {
            "train_state": state, "rng": {"key": key},
            **({} if agent.host else {"env_state": env_state}),
            **({"replay": buffer} if save_replay else {})}, dataclasses.asdict(loop))

    steps_per_iteration = cfg.acting.num_envs * cfg.acting.rollout_length
    metrics: dict = {}
    search_stats: dict = {}
    last_time, last_steps, last_updates = time.perf_counter(), loop.env_steps, int(state.step)
    # config.run.act_while_learning: the update an iteration starts runs on this worker while
    # the next rollout searches with `acting`, a copy of the state from before it (the
    # update donates `state`). The iteration's evaluation and log row come before
    # the update starts, so they see `state` whole, and a solved run starts none; a
    # checkpoint waits for it, so that a resumed run loses no update.
    learner = (ThreadPoolExecutor(1, thread_name_prefix="learner")
               if cfg.run.act_while_learning else None)
    pending: Future | None = None
    acting = state
    final_eval = None  # the confirming evaluation a solved run stops on

    pending_env_steps = 0  # the env steps of the iteration the pending update belongs to

    def finish_update():
        nonlocal pending, state, buffer, metrics
        if pending is not None:
            state, buffer, metrics = pending.result()
            pending = None
            _check_update(metrics, agent.spec.env_id, pending_env_steps)

    stop = _StopSignals()
    try:
        while loop.env_steps < cfg.run.total_env_steps and not loop.solved and stop.signum is None:
            loop.iteration += 1
            key, rollout_key, update_key, eval_key = jax.random.split(key, 4)
            # The acting temperature follows training progress (SPEC.md, "Acting").
            exploration = Exploration.scheduled(
                cfg, loop.env_steps / max(cfg.run.total_env_steps, 1))
            env_state, trajectory = agent.rollout(acting if learner else state, env_state,
                                                  rollout_key, exploration=exploration)
            finish_update()
            # Non-finite first, as the compiled loop: an inf reward is that, not a large one.
            _check_trajectory(trajectory, agent, loop.env_steps)
            support.check_rewards(np.abs(np.asarray(trajectory.reward)), cfg, agent.reward_limit,
                                  loop.env_steps + steps_per_iteration, agent.spec.env_id)
            buffer = agent.add(buffer, trajectory)
            loop.env_steps += steps_per_iteration
            loop.record_episodes(trajectory)
            search_stats = search_statistics(trajectory)

            learn = agent.ready_to_learn(buffer)
            if learn and learner is None:
                state, buffer, metrics = agent.update(state, buffer, update_key)
                _check_update(metrics, agent.spec.env_id, loop.env_steps)

            eval_return = None
            recent = loop.recent_return()
            due = cfg.run.eval_every and loop.iteration % cfg.run.eval_every == 0
            promising = (cfg.run.solve_return is not None and recent >= cfg.run.solve_return
                         and not _confirmation_failed_lately(loop, cfg))
            if (due or promising) and int(state.step) > 0:
                eval_return = float(np.mean(evaluate_jax(agent, state, eval_key,
                                                         cfg.run.eval_episodes)))
                loop.last_eval_return = eval_return
                if cfg.run.solve_return is not None and eval_return >= cfg.run.solve_return:
                    entry, final_eval = _confirm(agent, state, cfg, env_steps=loop.env_steps,
                                                 eval_return=eval_return, log=log)
                    loop.early_stops.append(entry)
                    loop.solved = entry["confirmed"]

            bar.update(steps_per_iteration)
            bar.set_postfix({"return": f"{recent:.1f}", "updates": int(state.step),
                             **({} if loop.last_eval_return is None
                                else {"eval": f"{loop.last_eval_return:.1f}"})}, refresh=False)
            last = loop.env_steps >= cfg.run.total_env_steps  # the CSV ends where training did
            if (loop.iteration % cfg.run.log_every == 0 or eval_return is not None or loop.solved
                    or last):
                now = time.perf_counter()
                updates = int(state.step)
                row = {
                    "iteration": loop.iteration,
                    "env_steps": loop.env_steps,
                    "train_steps": updates,
                    "wall_seconds": earlier_seconds + now - start,
                    "episodes_return": recent,
                    "episode_length": loop.recent_length(),
                    "eval_return": eval_return,
                    "env_steps_per_second": (loop.env_steps - last_steps) / (now - last_time),
                    "updates_per_second": (updates - last_updates) / (now - last_time),
                    **search_stats,
                    **{k: float(v) for k, v in metrics.items()},
                }
                last_time, last_steps, last_updates = now, loop.env_steps, updates
                loop.history.append(row)
                _report(row, logger=logger, on_iteration=on_iteration, log=log,
                        show_bar=show_bar)

            checkpoint_due = checkpointer is not None and _checkpoint_due(
                cfg, int(state.step), loop.last_checkpoint_updates)
            if learn and learner is not None and not loop.solved:
                acting = jax.block_until_ready(jax.tree.map(jnp.copy, state))
                pending_env_steps = loop.env_steps
                pending = learner.submit(
                    lambda s, b, k: jax.block_until_ready(agent.update(s, b, k)),
                    state, buffer, update_key)
            if checkpoint_due:
                finish_update()  # the checkpoint holds this iteration's update too
                logger.flush()  # events up to the checkpoint are on disk with it
                save(state, buffer, env_state, key)

        finish_update()
        if checkpointer is not None and saved_iteration != loop.iteration:
            save(state, buffer, env_state, key)
        if checkpointer is not None:
            checkpointer.wait()  # a write that failed is reported here
    finally:
        stop.restore()
        if learner is not None:
            learner.shutdown(wait=True)
        _close(bar, checkpointer, logger)
    stop.raise_if_received(run_dir, loop.iteration, loop.env_steps)
    if run_dir is not None and loop.history:
        plot_run(run_dir)

    return TrainResult(agent=agent, state=state, buffer=buffer, history=loop.history,
                       env_steps=loop.env_steps, train_steps=int(state.step),
                       solved=loop.solved, seconds=time.perf_counter() - start,
                       early_stops=list(loop.early_stops),
                       final_eval=final_eval if loop.solved else None)


# --- early stops that hold: a solving evaluation is confirmed on the real env ----------


def confirm_solved(agent: Agent, state: TrainState, config: Config
                   ) -> tuple[np.ndarray, str]:
    """The confirming evaluation of a state whose evaluation reached the solve return:
    the final evaluation (`evaluate.evaluate_final`: the Gymnasium twin where there is
    one, config.run.final_eval_episodes episodes, the run's own episode seeds). Returns
    (`[E]` returns, label)."""
    return evaluate_final(agent, state, config)


def _confirm(agent: Agent, state: TrainState, config: Config, *, env_steps: int,
             eval_return: float, log, name: str | None = None) -> tuple[dict, tuple]:
    """Runs `confirm_solved`: (the early-stop entry, (returns, label))."""
    returns, label = confirm_solved(agent, state, config)
    # The bar the evaluation reached, now over the final evaluation's episodes.
    mean, bar = float(np.mean(returns)), config.run.solve_return
    entry = {"env_steps": int(env_steps), "eval_return": float(eval_return),
             "confirm_return": mean, "confirm_episodes": int(len(returns)),
             "confirm_env": label, "confirmed": bool(mean >= bar)}
    if log is not None:
        log(f"{name + ': ' if name else ''}eval {eval_return:.1f} reached the solve return "
            f"{config.run.solve_return:g} at {env_steps} env steps; confirming on {label}: "
            f"{mean:.1f} over {len(returns)} episodes "
            + ("(solved: stopping)" if entry["confirmed"] else f"(below {bar:g}: training on)"))
    return entry, (returns, label)


def _confirm_solves(agent: Agent, runners: RunnerState, solved_before: np.ndarray,
                    runs: list[dict], meta: dict, final_evals: dict, *, log,
                    layout: distributed.Layout) -> RunnerState:
    """Confirms each run the last chunk marked solved; clears `solved`/`done` of those
    that fail, which train on. Records each in meta["early_stops"][run name] and the
    confirmed ones' evaluations in `final_evals` (by run index)."""
    newly = np.flatnonzero(np.asarray(runners.solved) & ~solved_before)
    if not len(newly):
        return runners
    keep = np.ones(len(runs), bool)
    cfg = agent.config
    for r in newly:
        run = runs[r]
        runner = _take_run(runners, int(r))
        state = (runner.train_state if layout.num_devices == 1
                 else distributed.to_host(runner.train_state))
        run_cfg = cfg.replace(seed=run["seed"],
                                      **{k: v for k, v in run.items() if k in SWEEPABLE})
        entry, final_eval = _confirm(agent, state, run_cfg, env_steps=int(runner.env_steps),
                                     eval_return=float(runner.last_eval_return), log=log,
                                     name=run["name"] if len(runs) > 1 else None)
        meta["early_stops"].setdefault(run["name"], []).append(entry)
        if entry["confirmed"]:
            final_evals[int(r)] = final_eval
        else:
            keep[r] = False
    if keep.all():
        return runners
    solved = runners.solved & jnp.asarray(keep)
    # No run here has a fault: `_raise_on_fault` ended training before confirming.
    return layout.place(runners.replace(solved=solved,
                                        done=run_done(solved, runners.env_steps, cfg)))


def _confirmation_failed_lately(loop: LoopState, cfg: Config) -> bool:
    """Whether a confirmation failed within the last `eval_every` iterations (10 without
    periodic evaluations): the training return then triggers no evaluation, so a run
    whose training return sits above the solve return does not confirm every iteration."""
    if not loop.early_stops or loop.early_stops[-1]["confirmed"]:
        return False
    since = loop.env_steps - loop.early_stops[-1]["env_steps"]
    return since < (cfg.run.eval_every or 10) * cfg.acting.num_envs * cfg.acting.rollout_length


# --- non-finite guards ------------------------------------------------------------------


def _fault_message(env_id: str, quantity: str, env_step: int, run: str | None = None) -> str:
    what = {"observation": "the env returned a non-finite observation",
            "reward": "the env returned a non-finite reward",
            "loss": "the loss or its gradient is non-finite"}[quantity]
    hint = ("lower learning_rate, or bound the rewards (max_abs_reward, reward_support_size)"
            if quantity == "loss" else f"check the env's {quantity}s")
    return (f"env {env_id!r}{f' ({run})' if run else ''}: {what} ({quantity}) at env step "
            f"{env_step}; training stopped there and its last checkpoint, from before, is "
            f"intact: {hint}")


def _raise_on_fault(runners: RunnerState, runs: list[dict], env_id: str, multi: bool) -> None:
    """Raises `NonFiniteError` for the first run of a chunk that met a non-finite value."""
    faults = np.asarray(runners.fault)
    if not faults.any():
        return
    steps = np.asarray(runners.fault_step)
    r = min(np.flatnonzero(faults), key=lambda i: steps[i])
    raise NonFiniteError(_fault_message(env_id, FAULTS[int(faults[r])], int(steps[r]),
                                        runs[r]["name"] if multi else None))


# One small program per rollout shape: the compiled loop's own reduction, on the host.
_trajectory_fault = jax.jit(trajectory_fault, static_argnames="check_observations")


def _check_trajectory(trajectory: Trajectory, agent: Agent, env_steps: int) -> None:
    """Raises `NonFiniteError` for a host rollout's first non-finite observation or
    reward (`loop.trajectory_fault`; `env_steps`: the count before the rollout)."""
    frames = agent.spec.frames  # uint8 frames are always finite: not passed, not checked
    code, t = jax.device_get(_trajectory_fault(
        None if frames else trajectory.observation,
        None if frames else trajectory.final_observation, trajectory.reward,
        check_observations=not frames))
    if code:
        num_envs = np.shape(trajectory.reward)[0]
        raise NonFiniteError(_fault_message(agent.spec.env_id, FAULTS[int(code)],
                                            env_steps + int(t) * num_envs))


def _check_update(metrics: dict, env_id: str, env_steps: int) -> None:
    """Raises `NonFiniteError` if an update's loss or gradient norm is non-finite."""
    if not (math.isfinite(float(metrics["loss"]))
            and math.isfinite(float(metrics["grad_norm"]))):
        raise NonFiniteError(_fault_message(env_id, "loss", env_steps))


def _report(row: dict, *, logger, on_iteration, log, show_bar: bool) -> None:
    """A logged row to every sink: the run directory's logs, the caller, the terminal."""
    if logger is not None:
        logger.write(row)
    if on_iteration is not None:
        on_iteration(row)
    if log is not None and not show_bar:
        log(_progress_line(row))


def _glibc(name: str) -> Callable[..., int] | None:
    """glibc's function `name` in this process, or None (macOS, musl, Windows)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) on Windows
        return None


_MALLOC_TRIM = _glibc("malloc_trim")


def release_free_heap() -> None:
    """Hands the C heap's free pages back to the OS (glibc's `malloc_trim`; else nothing).

    glibc keeps what a process frees in its arenas (one per thread: orbax writes
    checkpoints from threads) and hands it out again only to requests that fit, so
    without this a long run's resident memory creeps up with nothing leaked: a
    CartPole run at 50,000 env steps was 1,318 MB resident with 674 MB in use, most
    of the rest compilation's working memory. Called after compiling and at each
    checkpoint (milliseconds).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(count: int = 2) -> bool:
    """Caps glibc's malloc arenas at `count` (`mallopt(M_ARENA_MAX)`); elsewhere nothing.

    glibc gives threads arenas of their own, up to 8 per core, and memory freed in one
    arena serves only requests made there, so XLA's and orbax's threads each hold
    pages the others cannot reuse: a CartPole soak (soak benchmark, 500,000 env steps
    after its buffer filled) grew 8.5% with glibc's default, 0.4% with this called at
    process start (2.1% with MALLOC_ARENA_MAX=1, 2.7% with 2, set in the environment;
    one run each, one sitting). It acts on arenas made afterwards, so call it before
    JAX starts its threads (the experiment scripts do, first thing). Returns whether
    it took effect.
    """
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, count))


def _checkpoint_due(cfg: Config, updates: int, last_checkpoint_updates: int) -> bool:
    """Whether `updates` crossed a multiple of checkpoint_every since the last checkpoint."""
    every = cfg.run.checkpoint_every
    return bool(every) and updates // every > last_checkpoint_updates // every


def _close(bar, checkpointer, logger) -> None:
    """Ends a run's I/O: the bar, checkpoint writes still in flight, the logs. A failed
    write was reported where it surfaced (`Checkpointer.wait`, `save`); closing after a
    fault must not raise a second error over the first."""
    bar.close()
    try:
        if checkpointer is not None:
            checkpointer.close()
    finally:
        if logger is not None:
            logger.close()


class _StopSignals:
    """SIGINT and SIGTERM while training: noted, so that the loop stops at the end of the
    current chunk and saves; a second one raises `Interrupted` at once. Installed from
    the main thread only (signal handlers live there), the previous handlers restored
    by `restore`, so that a notebook keeps its Ctrl-C outside `train`."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise Interrupted(f"{signal.Signals(signum).name} again: stopped at once, "
                              f"without a checkpoint of the current chunk; resume from the "
                              f"last one", signum)
        self.signum = signum

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def raise_if_received(self, run_dir: str | None, iteration: int, env_steps: int) -> None:
        """Raises `Interrupted` if a signal stopped the run (it ended cleanly otherwise)."""
        if self.signum is None:
            return
        name = signal.Signals(self.signum).name
        saved = (f"checkpoint {iteration} saved; continue with --resume {run_dir}"
                 if run_dir is not None else "nothing saved (no run directory)")
        raise Interrupted(f"{name}: stopped after iteration {iteration} ({env_steps} env "
                          f"steps), {saved}", self.signum)


@dataclasses.dataclass
class LoopState:
    """What the host side of the loop keeps between iterations (checkpointed as JSON).

    iteration, env_steps: counters. recent_returns, recent_lengths: the last 100
    finished episodes. history: the logged rows. solved: a periodic evaluation
    reached the solve return and its confirmation passed. last_eval_return: the latest
    evaluation's mean return. early_stops: the evaluations that reached the solve return
    and their confirmations (`TrainResult.early_stops`).
    last_checkpoint_updates: the update count at the last checkpoint.
    seconds: training seconds, over all sessions, up to the last checkpoint (so
    that `wall_seconds` goes on across a resume).
    """

    iteration: int = 0
    env_steps: int = 0
    recent_returns: list = dataclasses.field(default_factory=list)
    recent_lengths: list = dataclasses.field(default_factory=list)
    history: list = dataclasses.field(default_factory=list)
    solved: bool = False
    last_eval_return: float | None = None
    early_stops: list = dataclasses.field(default_factory=list)
    last_checkpoint_updates: int = 0
    seconds: float = 0.0

    def record_episodes(self, trajectory: Trajectory) -> None:
        done = np.asarray(trajectory.terminated | trajectory.truncated)
        self.recent_returns = (self.recent_returns
                               + np.asarray(trajectory.episode_return)[done].tolist())[-100:]
        self.recent_lengths = (self.recent_lengths
                               + np.asarray(trajectory.episode_length)[done].tolist())[-100:]

    def recent_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    def recent_length(self) -> float:
        return float(np.mean(self.recent_lengths)) if self.recent_lengths else float("nan")


def search_statistics(trajectory: Trajectory) -> dict[str, float]:
    """Mean root value and mean entropy (nats) of the search policy over a `[B, T]` rollout."""
    policy = np.asarray(trajectory.search_policy, np.float64)
    entropy = -np.sum(np.where(policy > 0, policy * np.log(np.maximum(policy, 1e-30)), 0.0),
                      axis=-1)
    return {"root_value": float(np.mean(np.asarray(trajectory.root_value))),
            "policy_entropy": float(np.mean(entropy))}


def _progress_line(row: dict) -> str:
    parts = ([row["run"]] if "run" in row else []) + [
        f"steps {row['env_steps']:>7d}", f"updates {row['train_steps']:>6d}",
        f"t {row['wall_seconds']:6.1f}s", f"return {row['episodes_return']:6.1f}"]
    if row["eval_return"] is not None:
        parts.append(f"eval {row['eval_return']:6.1f}")
    if "loss" in row:
        parts.append(f"loss {row['loss']:.3f} (v {row['value_loss']:.3f} "
                     f"p {row['policy_loss']:.3f} r {row['reward_loss']:.3f})")
    parts.append(f"{row['env_steps_per_second']:.0f} steps/s "
                 f"{row['updates_per_second']:.0f} upd/s")
    return " | ".join(parts)
