"""The training loop: self-play -> replay -> targets/loss -> optimizer, repeated.

`train` is one driver for every env: it runs chunks of iterations through a backend
and, between chunks, logs, checkpoints, shows progress, confirms early stops and
watches for signals. The backends differ only in how a chunk runs:

- `CompiledBackend` (JAX-native envs): `loop.make_train` compiles whole chunks of
  iterations (rollout, replay add, learner updates, greedy evaluation, the solve check)
  into one program, for one run or `[S]` runs side by side (seeds, a learning-rate sweep).
- `HostBackend` (Gymnasium, ALE): a chunk is one iteration of three calls to compiled
  programs (rollout, replay add, `updates_per_iteration` learner steps in one
  `lax.scan`); the host sets the acting temperature and decides when to evaluate.

An evaluation that reaches config.run.solve_return stops a run only once a confirming
evaluation on the final evaluation's env passes (`confirm_solved`); otherwise the run
trains on, and each such evaluation is listed in `TrainResult.early_stops`. The first
non-finite observation, reward, loss or gradient stops training with
`errors.NonFiniteError` before anything from it is checkpointed.

Given a run directory, the driver checkpoints everything a run needs to go on
exactly (learner state, replay, env states, RNG key and its own counters and
history) and logs every row to TensorBoard and metrics.csv; `resume=True`
picks the run up from its latest checkpoint. Nothing in the directory changes until
that restore and its checks have passed, so a resume that fails leaves it as it was.
SIGINT and SIGTERM end a run at the end of the current chunk with a checkpoint, then
raise `errors.Interrupted`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
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

from muzero_jax import checkpoint, compile_stats, distributed, envs, smoke, support
from muzero_jax.agent import Agent
from muzero_jax.config import Config, ConfigError, validate
from muzero_jax.errors import Interrupted, NonFiniteError
from muzero_jax.evaluate import evaluate_final, evaluate_jax
from muzero_jax.learner import TrainState
from muzero_jax.logger import Logger
from muzero_jax.loop import (
    FAULTS,
    RECENT,
    SWEEPABLE,
    RunnerState,
    make_train,
    ready_to_learn,
    record_episodes,
    run_done,
    search_statistics,
    trajectory_fault,
)
from muzero_jax.plot import plot_run
from muzero_jax.replay import ReplayBuffer
from muzero_jax.search import Exploration


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
    seconds: wall time spent in `train`, over every session of a resumed run (the
      earlier ones up to their last checkpoint). earlier_seconds: that part of it
      spent before this session (0 for a fresh run). resumes: how often the run was
      resumed.
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
    earlier_seconds: float = 0.0
    resumes: int = 0


Sweep = tuple[str, Sequence[float]]


def train(config: Config, *, env: envs.Env | None = None,
          seeds: Sequence[int] | None = None, sweep: Sweep | None = None,
          log: Callable[[str], None] | None = print,
          on_iteration: Callable[[dict], None] | None = None, run_dir: str | None = None,
          resume: bool = False, progress: bool | None = None,
          iterations_per_call: int | None = None) -> TrainResult | list[TrainResult]:
    """Trains MuZero on `config.env.id` until `total_env_steps` or a solving evaluation.

    One driver runs chunks of iterations through the env's backend (`make_backend`)
    and, between chunks, logs, checkpoints, confirms early stops and shows progress.
    JAX-native envs run `iterations_per_call` iterations (rollout, replay add, learner
    updates, periodic greedy evaluation and the solve check) per call of one compiled
    program (`loop.make_train`); host envs (Gymnasium, ALE) one iteration per chunk, a
    Python loop over the same jitted pieces.

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
    come back after) log a line at once, finish the current call of the compiled
    program (host envs: the current iteration), save a checkpoint and raise
    `Interrupted`; a second signal raises it at once (`Interrupted.at_once`: the call
    under way goes on in XLA's threads until it ends or the process exits).

    Raises:
      CheckpointError: `resume` without a readable checkpoint, a checkpoint that does
        not fit `config`, a fresh run into a directory that holds checkpoints or an
        earlier run's logs, or a checkpoint that cannot be written (a full disk).
      ConfigError: an unsupported sweep, or seeds/sweeps on a host env.
      Interrupted: SIGINT or SIGTERM (exit code 130 or 143 in the scripts).
    """
    start = time.perf_counter()
    config = smoke.shrink(config, log=log)  # MUZERO_JAX_SMOKE: a budget of seconds
    if run_dir is not None:  # before anything is built or compiled
        checkpoint.check_run_dir(run_dir, resume=resume)
    agent = Agent(config, env)
    if not distributed.is_primary():  # only process 0 logs and writes files
        log, on_iteration = None, None
    backend = make_backend(agent, seeds=seeds, sweep=sweep, log=log,
                           iterations_per_call=iterations_per_call)
    session = _Session(backend, log=log, on_iteration=on_iteration, progress=progress,
                       run_dir=run_dir, resume=resume, start=start)
    compile_before = compile_stats.snapshot()
    backend.init()
    session.open()
    session.run()
    if run_dir is not None and session.history and distributed.is_primary():
        plot_run(run_dir)
    compiled = compile_stats.since(compile_before)
    if log is not None:
        log(compile_stats.format_table(compiled))
    earlier = session.earlier_seconds
    results = [dataclasses.replace(r, earlier_seconds=earlier, resumes=session.meta["resumes"])
               for r in backend.results(session.history,
                                        seconds=earlier + time.perf_counter() - start,
                                        compile_seconds=compile_stats.totals(compiled))]
    return results if backend.multi else results[0]


def make_backend(agent: Agent, *, seeds: Sequence[int] | None = None,
                 sweep: Sweep | None = None, log: Callable[[str], None] | None = None,
                 iterations_per_call: int | None = None) -> Backend:
    """The backend that runs `agent`'s iterations: `CompiledBackend` for a JAX env,
    `HostBackend` for a host env (the agent's actor tells them apart). Raises
    `ConfigError` for seeds, sweeps or several devices on a host env."""
    cfg = agent.config
    if not agent.host:
        multi = seeds is not None or sweep is not None
        return CompiledBackend(agent, make_runs(cfg, seeds, sweep), multi=multi, log=log,
                               iterations_per_call=iterations_per_call)
    if seeds is not None or sweep is not None:
        raise ConfigError(f"seeds and sweeps in one program need a JAX env; "
                          f"{agent.spec.env_id!r} is a host env: run one process per seed")
    if distributed.num_devices(cfg) != 1:
        raise ConfigError(f"num_devices={cfg.run.num_devices}: host envs "
                          f"({agent.spec.env_id!r}) train on one device; expected 1")
    return HostBackend(agent, log=log)


# --- the driver: written once for both backends -------------------------------------


class _Session:
    """One call of `train` around a backend: the run directory (restore, checkpoints,
    logs), the progress bar and lines, the signals and the chunk loop.

    `meta` is what every checkpoint's JSON holds besides the backend's own part:
    iteration (iterations run, over every session), history (the logged rows), seconds
    (training seconds up to the last checkpoint, so that `wall_seconds` goes on across a
    resume), resumes (how often the run was resumed) and last_checkpoint_updates (the
    update count then).
    """

    def __init__(self, backend: Backend, *, log, on_iteration, progress, run_dir, resume,
                 start):
        self.backend, self.cfg = backend, backend.agent.config
        self.log, self.on_iteration = log, on_iteration
        self.show_bar = (progress if progress is not None
                         else (log is not None and sys.stdout.isatty()))
        self.run_dir, self.resume, self.start = run_dir, resume, start
        self.meta = {"iteration": 0, "history": [], "seconds": 0.0, "resumes": 0,
                     "last_checkpoint_updates": 0}
        self.checkpointer, self.logger, self.bar = None, None, None
        self.saved_iteration: int | None = None
        self.last_eval: float | None = None

    @property
    def history(self) -> list[dict]:
        return self.meta["history"]

    def open(self) -> None:
        """Restores a resumed run, then (only once that passed) opens the run directory."""
        backend, cfg, run_dir = self.backend, self.cfg, self.run_dir
        if run_dir is not None:
            reader = checkpoint.open_run(run_dir, cfg, resume=self.resume)  # reads only
            if self.resume:
                try:
                    saved = backend.restore(reader, run_dir)
                finally:
                    reader.close()
                self.meta.update({k: saved[k] for k in self.meta if k in saved})
                self.meta["resumes"] += 1
                if self.log is not None:
                    self.log(f"resumed {run_dir} at iteration {self.meta['iteration']}: "
                             f"{int(np.max(backend.env_steps()))} env steps, "
                             f"{int(np.max(backend.updates()))} updates")
            # The restore and its checks passed: only now does the run directory change.
            self.checkpointer = checkpoint.start_run(
                run_dir, cfg, unreadable=reader.unreadable if self.resume else ())
            if distributed.is_primary():
                self.logger = Logger(run_dir, self.history,
                                     run_key="run" if backend.multi else None)
        self.save_replay = (cfg.run.checkpoint_replay if cfg.run.checkpoint_replay is not None
                            else backend.replay_nbytes() < checkpoint.AUTO_REPLAY_BYTES)
        self.bar = tqdm(total=cfg.run.total_env_steps, initial=int(np.max(backend.env_steps())),
                        unit="step", unit_scale=True, dynamic_ncols=True,
                        disable=not self.show_bar)
        self.earlier_seconds = self.meta["seconds"]
        self.saved_iteration = self.meta["iteration"] if self.resume else None

    def run(self) -> None:
        """Chunks until the backend is finished or a signal came, then the last checkpoint.
        Raises `Interrupted` after a signal (once everything is saved and closed)."""
        backend = self.backend
        stop = _StopSignals(self.log)
        try:
            backend.compile()
            release_free_heap()  # compilation's working memory: about half the peak RSS
            self.last = (time.perf_counter(), backend.env_steps(), backend.updates())
            while not backend.finished() and stop.signum is None:
                self.chunk()
            backend.finish()
            if self.checkpointer is not None and self.saved_iteration != self.meta["iteration"]:
                self.save()
            if self.checkpointer is not None:
                self.checkpointer.wait()  # a write that failed is reported here
        finally:
            stop.restore()
            backend.close()
            _close(self.bar, self.checkpointer, self.logger)
        stop.raise_if_received(self.run_dir, self.meta["iteration"],
                               int(np.max(backend.env_steps())))

    def chunk(self) -> None:
        """One chunk: the backend's iterations (which raise on a fault), their rows, the
        bar, the confirmation of early stops, a checkpoint when due."""
        backend, meta = self.backend, self.meta
        metrics = backend.run_chunk(meta["iteration"] + 1)  # [C, S]
        now, steps, updates = time.perf_counter(), backend.env_steps(), backend.updates()
        ran = int(np.max(np.sum(metrics["active"], axis=0)))
        self.rows(metrics, ran, now, steps, updates)
        meta["iteration"] += ran
        self.bar.update(int(np.max(steps)) - int(np.max(self.last[1])))
        self.last = (now, steps, updates)
        backend.confirm_solves()
        if self.checkpointer is not None and _checkpoint_due(
                self.cfg, int(np.max(updates)), meta["last_checkpoint_updates"]):
            if self.logger is not None:
                self.logger.flush()  # events up to the checkpoint are on disk with it
            self.save()

    def rows(self, metrics: dict, ran: int, now: float, steps: np.ndarray,
             updates: np.ndarray) -> None:
        """The logged rows of a chunk's `[C, S]` metrics, to every sink."""
        last_time, last_steps, last_updates = self.last
        seconds = now - last_time
        runs, multi = self.backend.runs, self.backend.multi
        for i in range(ran):
            for r, run in enumerate(runs):
                m = {k: v[i, r] for k, v in metrics.items()}
                if not m["active"]:
                    continue
                if m["evaluated"]:
                    self.last_eval = float(m["eval_return"])
                if not _logged(m, self.meta["iteration"] + i + 1, self.cfg):
                    continue
                row = _row(m, run, multi,
                           wall_seconds=self.earlier_seconds + last_time - self.start
                           + seconds * (i + 1) / ran,
                           steps_per_second=int(np.max(steps) - np.max(last_steps)) / seconds,
                           updates_per_second=int(updates[r] - last_updates[r]) / seconds)
                self.history.append(row)
                _report(row, logger=self.logger, on_iteration=self.on_iteration, log=self.log,
                        show_bar=self.show_bar)
        if not multi and ran:
            self.bar.set_postfix({
                "return": f"{float(metrics['episodes_return'][ran - 1, 0]):.1f}",
                "updates": int(metrics["train_steps"][ran - 1, 0]),
                **({} if self.last_eval is None else {"eval": f"{self.last_eval:.1f}"})},
                refresh=False)

    def save(self) -> None:
        """A checkpoint of everything the run needs to go on (work in flight finished)."""
        trees = self.backend.checkpoint_trees(self.save_replay)
        meta = self.meta
        self.saved_iteration = meta["iteration"]
        meta["seconds"] = self.earlier_seconds + time.perf_counter() - self.start
        meta["last_checkpoint_updates"] = int(np.max(self.backend.updates()))
        release_free_heap()  # what the last checkpoint's writes and the chunks since freed
        self.checkpointer.save(meta["iteration"], trees, {**meta, **self.backend.meta()})


def _logged(m: dict, iteration: int, cfg: Config) -> bool:
    """Whether iteration `iteration`'s metrics `m` (one run's) make a logged row: every
    log_every-th, each evaluation, a solve, and the last (the CSV ends where training did)."""
    last = bool(m["env_steps"] >= cfg.run.total_env_steps)
    return bool(iteration % cfg.run.log_every == 0 or m["evaluated"] or m["solved"] or last)


# --- backends: what runs a chunk of iterations ----------------------------------------


class CompiledBackend:
    """JAX-native envs: chunks of `iterations_per_call` iterations of `[S]` runs in one
    compiled program (`loop.make_train`'s `run_chunk`), placed by its device layout.

    runs: the runs' {"name", "seed", ...} (`make_runs`); multi: they were asked for as
    seeds or a sweep (results come as a list). The chunk's runs are `runners`
    (`loop.RunnerState`, `[S]` on every leaf).
    """

    def __init__(self, agent: Agent, runs: list[dict], *, multi: bool, log=None,
                 iterations_per_call: int | None = None):
        self.agent, self.runs, self.multi, self.log = agent, runs, multi, log
        self.program = make_train(agent.config, pieces=agent.pieces,
                                  num_iterations=iterations_per_call)
        self.layout = self.program.layout
        self.early_stops: dict[str, list] = {}  # by run name
        self.final_evals: dict[int, tuple] = {}  # by run index
        self.runners: RunnerState | None = None
        self._compiled = None
        self._solved_before = None

    def init(self) -> None:
        # One compiled init, called per run (a vmapped init compiles a far larger program),
        # whose runs are stacked by one compiled program too: eager stacking compiles one
        # small program per leaf shape.
        cfg, program = self.agent.config, self.program
        init = jax.jit(lambda key, lr: jax.tree.map(lambda x: x[None],
                                                    program.init(key, learning_rate=lr)))
        runners = _stack([init(jax.random.key(run["seed"]), jnp.float32(
            run.get("learning_rate", cfg.learner.learning_rate))) for run in self.runs])
        self.runners = self.layout.place(runners)

    def restore(self, reader, run_dir: str) -> dict:
        cfg = self.agent.config
        runners, saved = _restore(reader, self.runners, {
            "runs": self.runs, "num_processes": jax.process_count()}, self.multi, run_dir)
        # `done` as this config has it: a finished run resumed with a bigger
        # total_env_steps goes on (a solved one stays done).
        runners = runners.replace(done=run_done(runners.solved, runners.env_steps, cfg.run))
        self.runners = self.layout.place(runners)
        self.early_stops = saved.get("early_stops", {})
        return saved

    def meta(self) -> dict:
        return {"early_stops": self.early_stops, "runs": self.runs, "stacked": self.multi,
                "num_devices": self.layout.num_devices, "num_processes": jax.process_count()}

    def compile(self) -> None:
        run_chunk = self.layout.jit(self.program.run_chunk, self.runners)
        self._compiled = run_chunk.lower(self.runners, jnp.int32(1)).compile()

    def run_chunk(self, first_iteration: int) -> dict:
        """Up to C iterations; `[C, S]` metrics. Raises `NonFiniteError` or
        `RewardBeyondSupport` before anything of the chunk is logged or saved."""
        agent = self.agent
        self._solved_before = np.asarray(self.runners.solved)
        self.runners, metrics = self._compiled(self.runners, jnp.int32(first_iteration))
        metrics = jax.device_get(metrics)
        _raise_on_fault(self.runners, self.runs, agent.spec.env_id, self.multi)
        support.check_rewards(metrics["reward_abs_max"], agent.config, agent.reward_limit,
                              int(np.max(self.env_steps())), agent.spec.env_id)
        return metrics

    def confirm_solves(self) -> None:
        """Confirms each run the last chunk marked solved (`confirm_solved`); clears
        `solved` and `done` of those that fail, which train on."""
        runners, cfg = self.runners, self.agent.config
        newly = np.flatnonzero(np.asarray(runners.solved) & ~self._solved_before)
        keep = np.ones(len(self.runs), bool)
        for r in newly:
            run, runner = self.runs[r], _take_run(runners, int(r))
            run_cfg = cfg.replace(seed=run["seed"],
                                  **{k: v for k, v in run.items() if k in SWEEPABLE})
            entry, final_eval = _confirm(
                self.agent, self.train_state(runner), run_cfg, env_steps=int(runner.env_steps),
                eval_return=float(runner.last_eval_return), log=self.log,
                name=run["name"] if len(self.runs) > 1 else None)
            self.early_stops.setdefault(run["name"], []).append(entry)
            if entry["confirmed"]:
                self.final_evals[int(r)] = final_eval
            else:
                keep[r] = False
        if not keep.all():
            # No run here has a fault: `run_chunk` raised before confirming.
            solved = runners.solved & jnp.asarray(keep)
            self.runners = self.layout.place(runners.replace(
                solved=solved, done=run_done(solved, runners.env_steps, cfg.run)))

    def finished(self) -> bool:
        return bool(jnp.all(self.runners.done))

    def env_steps(self) -> np.ndarray:
        return np.asarray(self.runners.env_steps)

    def updates(self) -> np.ndarray:
        return np.asarray(self.runners.train_state.step)

    def replay_nbytes(self) -> int:
        return checkpoint.nbytes(self.runners.buffer)

    def checkpoint_trees(self, save_replay: bool) -> dict:
        return _checkpoint_trees(self.runners if self.multi else _first(self.runners),
                                 save_replay)

    def finish(self) -> None:
        pass  # nothing runs between chunks

    def close(self) -> None:
        pass

    def train_state(self, runner: RunnerState) -> TrainState:
        # Replicated parameters as host arrays: evaluation runs on one device.
        return (runner.train_state if self.layout.num_devices == 1
                else distributed.to_host(runner.train_state))

    def results(self, history: list[dict], *, seconds: float,
                compile_seconds: dict) -> list[TrainResult]:
        results = []
        for r, run in enumerate(self.runs):
            runner = _take_run(self.runners, r)
            results.append(TrainResult(
                agent=self.agent, state=self.train_state(runner), buffer=runner.buffer,
                history=[row for row in history if not self.multi or row["run"] == run["name"]],
                env_steps=int(runner.env_steps), train_steps=int(runner.train_state.step),
                solved=bool(runner.solved), seconds=seconds, seed=run["seed"],
                hyperparameters={k: v for k, v in run.items() if k in SWEEPABLE},
                compile_seconds=compile_seconds,
                early_stops=list(self.early_stops.get(run["name"], [])),
                final_eval=self.final_evals.get(r)))
        return results


@functools.partial(jax.jit, static_argnames="check_observations")
def _summarize_rollout(recent: tuple, rollout: dict, *, check_observations: bool) -> dict:
    """A host rollout's episodes, search statistics and first non-finite value, by the
    compiled loop's own functions. `recent`: (returns ring, lengths ring, count);
    `rollout`: the trajectory's `[B, T]` fields (observations None for frames)."""
    returns, lengths, finished = record_episodes(
        *recent, rollout["terminated"] | rollout["truncated"], rollout["episode_return"],
        rollout["episode_length"])
    fault, t = trajectory_fault(rollout["observation"], rollout["final_observation"],
                                rollout["reward"], check_observations=check_observations)
    return {"recent": (returns, lengths, finished), "fault": fault, "fault_t": t,
            "reward_abs_max": jnp.max(jnp.abs(rollout["reward"])),
            **search_statistics(rollout["search_policy"], rollout["root_value"])}


def _ordered(ring: np.ndarray, count: int) -> np.ndarray:
    """A ring of the last `RECENT` episodes (`count` so far), oldest first."""
    return np.roll(ring, -(count % RECENT)) if count >= RECENT else ring[:count]


class HostBackend:
    """Host envs (Gymnasium, ALE): a chunk is one iteration, Python over jitted pieces:
    rollout (a jitted search per step), replay add, `updates_per_iteration` learner
    steps, and an evaluation when due or when the training return reaches the solve
    return. With config.run.act_while_learning the update an iteration starts runs on a
    worker thread while the next rollout searches with `acting`, a copy of the state from
    before it (the update donates `state`); the iteration's evaluation and metrics come
    before the update starts, so they see `state` whole, a solved run starts none, and a
    checkpoint waits for it, so that a resumed run loses no update.
    """

    multi = False

    def __init__(self, agent: Agent, *, log=None):
        cfg = agent.config
        self.agent, self.log = agent, log
        self.runs = [{"name": "run", "seed": cfg.run.seed}]
        self.steps_per_iteration = cfg.acting.num_envs * cfg.acting.rollout_length
        self._ready = jax.jit(functools.partial(ready_to_learn, config=cfg))
        self.learner = (ThreadPoolExecutor(1, thread_name_prefix="learner")
                        if cfg.run.act_while_learning else None)
        self.pending: Future | None = None
        self.pending_env_steps = 0  # the env steps of the iteration the pending update is of
        self.update_metrics: dict = {}  # the latest update's
        self.total_steps, self.solved, self.last_eval_return = 0, False, None
        self.early_stops: list[dict] = []
        self.final_eval = None  # the latest confirming evaluation
        nan = np.full(RECENT, np.nan, np.float32)
        self.recent = (nan, nan.copy(), np.int32(0))

    def init(self) -> None:
        key = jax.random.key(self.agent.config.run.seed)
        self.key, init_key, env_key = jax.random.split(key, 3)
        self.state = self.acting = self.agent.init(init_key)
        self.buffer = self.agent.init_replay()
        self.env_state = self.agent.reset(env_key)
        self._updates = int(self.state.step)

    def restore(self, reader, run_dir: str) -> dict:
        del run_dir
        self.state, self.buffer, self.env_state, self.key, saved = checkpoint.restore_run(
            reader, state=self.state, buffer=self.buffer, env_state=self.env_state,
            key=self.key)
        self.acting, self._updates = self.state, int(self.state.step)
        self.total_steps, self.solved = saved["env_steps"], saved["solved"]
        self.last_eval_return, self.early_stops = saved["last_eval_return"], saved["early_stops"]
        returns, lengths = (np.full(RECENT, np.nan, np.float32) for _ in range(2))
        count = len(saved["recent_returns"])
        returns[:count], lengths[:count] = saved["recent_returns"], saved["recent_lengths"]
        self.recent = (returns, lengths, np.int32(count))
        return saved

    def meta(self) -> dict:
        returns, lengths, count = self.recent
        return {"env_steps": self.total_steps,
                "recent_returns": _ordered(returns, int(count)).tolist(),
                "recent_lengths": _ordered(lengths, int(count)).tolist(),
                "solved": self.solved, "last_eval_return": self.last_eval_return,
                "early_stops": self.early_stops}

    def compile(self) -> None:
        pass  # each piece compiles on its first call

    def run_chunk(self, iteration: int) -> dict:
        """Iteration number `iteration`; `[1, 1]` metrics. Raises `NonFiniteError` or
        `RewardBeyondSupport` before the rollout enters replay."""
        self.key, rollout_key, update_key, eval_key = jax.random.split(self.key, 4)
        stats = self._collect(rollout_key)
        learn = bool(self._ready(self.buffer))
        if learn and self.learner is None:
            self.state, self.buffer, self.update_metrics = self.agent.update(
                self.state, self.buffer, update_key)
            _check_update(self.update_metrics, self.agent.spec.env_id, self.total_steps)
        recent = self._recent_mean(0)
        eval_return = self._evaluate(iteration, recent, eval_key)
        self._updates = int(self.state.step)
        metrics = {"active": True, "evaluated": eval_return is not None,
                   "solved": self.solved, "iteration": iteration,
                   "env_steps": self.total_steps, "train_steps": self._updates,
                   "episodes_return": recent, "episode_length": self._recent_mean(1),
                   "eval_return": np.nan if eval_return is None else eval_return, **stats,
                   **{k: float(v) for k, v in self.update_metrics.items()}}
        if learn and self.learner is not None and not self.solved:
            self._submit(update_key)
        return {k: np.array([[v]]) for k, v in metrics.items()}

    def _collect(self, key) -> dict:
        """collect -> check -> store: one rollout, with the exploration of training
        progress; its search statistics."""
        agent, cfg = self.agent, self.agent.config
        exploration = Exploration.scheduled(
            cfg, self.total_steps / max(cfg.run.total_env_steps, 1))
        self.env_state, trajectory = agent.rollout(
            self.acting if self.learner else self.state, self.env_state, key,
            exploration=exploration)
        self._finish_update()
        frames = agent.spec.frames  # uint8 frames are always finite: not passed, not checked
        rollout = {name: getattr(trajectory, name) for name in (
            "terminated", "truncated", "episode_return", "episode_length", "reward",
            "search_policy", "root_value")}
        rollout.update(observation=None if frames else trajectory.observation,
                       final_observation=None if frames else trajectory.final_observation)
        summary = jax.device_get(_summarize_rollout(self.recent, rollout,
                                                    check_observations=not frames))
        # Non-finite first, as the compiled loop: an inf reward is that, not a large one.
        if summary["fault"]:
            raise NonFiniteError(_fault_message(
                agent.spec.env_id, FAULTS[int(summary["fault"])],
                self.total_steps + int(summary["fault_t"]) * cfg.acting.num_envs))
        support.check_rewards(summary["reward_abs_max"], cfg, agent.reward_limit,
                              self.total_steps + self.steps_per_iteration, agent.spec.env_id)
        self.buffer = agent.add(self.buffer, trajectory)
        self.total_steps += self.steps_per_iteration
        self.recent = summary["recent"]
        return {"root_value": float(summary["root_value"]),
                "policy_entropy": float(summary["policy_entropy"])}

    def _recent_mean(self, which: int) -> float:
        """The mean return (0) or length (1) of the last 100 finished episodes (NaN: none)."""
        values = _ordered(self.recent[which], int(self.recent[2]))
        return float(np.mean(values.astype(np.float64))) if len(values) else float("nan")

    def _evaluate(self, iteration: int, recent: float, key) -> float | None:
        """A greedy evaluation when due, or when the training return `recent` reaches the
        solve return; one that reaches it is confirmed (`confirm_solved`)."""
        agent, cfg = self.agent, self.agent.config
        due = cfg.run.eval_every and iteration % cfg.run.eval_every == 0
        promising = (cfg.run.solve_return is not None and recent >= cfg.run.solve_return
                     and not _confirmation_failed_lately(self.early_stops, self.total_steps,
                                                         cfg))
        if not ((due or promising) and int(self.state.step) > 0):
            return None
        eval_return = float(np.mean(evaluate_jax(agent, self.state, key,
                                                 cfg.run.eval_episodes)))
        self.last_eval_return = eval_return
        if cfg.run.solve_return is not None and eval_return >= cfg.run.solve_return:
            entry, self.final_eval = _confirm(agent, self.state, cfg, env_steps=self.total_steps,
                                              eval_return=eval_return, log=self.log)
            self.early_stops.append(entry)
            self.solved = entry["confirmed"]
        return eval_return

    def _submit(self, key) -> None:
        """Starts the iteration's update on the worker; `acting` keeps the state before it."""
        self.acting = jax.block_until_ready(jax.tree.map(jnp.copy, self.state))
        self.pending_env_steps = self.total_steps
        self.pending = self.learner.submit(
            lambda s, b, k: jax.block_until_ready(self.agent.update(s, b, k)),
            self.state, self.buffer, key)

    def _finish_update(self) -> None:
        if self.pending is not None:
            self.state, self.buffer, self.update_metrics = self.pending.result()
            self.pending = None
            self._updates = int(self.state.step)
            _check_update(self.update_metrics, self.agent.spec.env_id, self.pending_env_steps)

    def confirm_solves(self) -> None:
        pass  # each iteration confirmed its own evaluation

    def finished(self) -> bool:
        return self.total_steps >= self.agent.config.run.total_env_steps or self.solved

    def env_steps(self) -> np.ndarray:
        return np.array([self.total_steps])

    def updates(self) -> np.ndarray:
        return np.array([self._updates])

    def replay_nbytes(self) -> int:
        return checkpoint.nbytes(self.buffer)

    def checkpoint_trees(self, save_replay: bool) -> dict:
        self._finish_update()  # the checkpoint holds the update in flight too
        # Host games (ALE) are live emulators, not arrays: a resumed run starts new ones.
        return {"train_state": self.state, "rng": {"key": self.key},
                **({"replay": self.buffer} if save_replay else {})}

    def finish(self) -> None:
        self._finish_update()

    def close(self) -> None:
        if self.learner is not None:
            self.learner.shutdown(wait=True)

    def results(self, history: list[dict], *, seconds: float,
                compile_seconds: dict) -> list[TrainResult]:
        return [TrainResult(agent=self.agent, state=self.state, buffer=self.buffer,
                            history=history, env_steps=self.total_steps,
                            train_steps=int(self.state.step), solved=self.solved,
                            seconds=seconds, compile_seconds=compile_seconds,
                            early_stops=list(self.early_stops),
                            final_eval=self.final_eval if self.solved else None)]


Backend = CompiledBackend | HostBackend


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


def _confirmation_failed_lately(early_stops: list[dict], env_steps: int, cfg: Config) -> bool:
    """Whether a confirmation failed within the last `eval_every` iterations (10 without
    periodic evaluations): the training return then triggers no evaluation, so a run
    whose training return sits above the solve return does not confirm every iteration."""
    if not early_stops or early_stops[-1]["confirmed"]:
        return False
    since = env_steps - early_stops[-1]["env_steps"]
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
    """SIGINT and SIGTERM while training: noted, with a line to `notify` at once (a chunk
    of a large preset runs for minutes on a CPU), so that the loop stops at the end of
    the current chunk and saves; a second one raises `Interrupted` at once. Installed
    from the main thread only (signal handlers live there), the previous handlers
    restored by `restore`, so that a notebook keeps its Ctrl-C outside `train`."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notify: Callable[[str], None] | None = None):
        self.signum: int | None = None
        self.notify = notify
        self._previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            raise Interrupted(f"{name} again: stopped at once, without a checkpoint of the "
                              f"current chunk; resume from the last one", signum, at_once=True)
        self.signum = signum
        if self.notify is not None:
            try:
                self.notify(f"{name}: stopping at the end of the current chunk, with a "
                            f"checkpoint; {name} again stops at once, without it")
            except RuntimeError:  # the signal came in the middle of a write to that stream
                pass

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


def _return_text(value: float) -> str:
    # NaN here means no episode has ended yet, not a fault: say so rather than print nan.
    return "return      -" if np.isnan(value) else f"return {value:6.1f}"


def _progress_line(row: dict) -> str:
    parts = ([row["run"]] if "run" in row else []) + [
        f"steps {row['env_steps']:>7d}", f"updates {row['train_steps']:>6d}",
        f"t {row['wall_seconds']:6.1f}s", _return_text(row["episodes_return"])]
    if row["eval_return"] is not None:
        parts.append(f"eval {row['eval_return']:6.1f}")
    if "loss" in row:
        parts.append(f"loss {row['loss']:.3f} (v {row['value_loss']:.3f} "
                     f"p {row['policy_loss']:.3f} r {row['reward_loss']:.3f})")
    parts.append(f"{row['env_steps_per_second']:.0f} steps/s "
                 f"{row['updates_per_second']:.0f} upd/s")
    return " | ".join(parts)
