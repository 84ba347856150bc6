"""The training loop: self-play -> replay -> targets/loss -> optimizer, repeated.

Each iteration makes three calls to compiled programs (rollout, replay add,
`updates_per_iteration` learner steps in one `lax.scan`, which also reanalyzes,
writes priorities back and updates the target network); the host only counts,
logs, sets the acting temperature from training progress and decides when to
evaluate, checkpoint or stop.

Given a run directory, the loop checkpoints everything it needs to go on
exactly (learner state, replay, env states, RNG key and its own counters and
history) and logs every row to TensorBoard and metrics.csv; `resume=True`
picks the run up from its latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import jax
import numpy as np
from tqdm import tqdm

from muzero_jax import checkpoint, envs
from muzero_jax.agent import Agent
from muzero_jax.config import Config
from muzero_jax.evaluate import evaluate_jax
from muzero_jax.learner import TrainState
from muzero_jax.logger import Logger
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
    solved: whether a periodic evaluation reached config.solve_return.
    seconds: wall time spent in `train`.
    """

    agent: Agent
    state: TrainState
    buffer: ReplayBuffer
    history: list[dict]
    env_steps: int
    train_steps: int
    solved: bool
    seconds: float


def train(config: Config, *, env: envs.Env | None = None,
          log: Callable[[str], None] | None = print,
          on_iteration: Callable[[dict], None] | None = None, run_dir: str | None = None,
          resume: bool = False, progress: bool | None = None) -> TrainResult:
    """Trains MuZero on `config.env` until `total_env_steps` or a solving evaluation.

    Args:
      config: the configuration (validated before anything compiles).
      env: the environment object (a `muzero_jax.envs.JaxEnv` or `HostEnv`); default
        `envs.make(config)` from the id `config.env`.
      log: where progress lines go (None: silent).
      on_iteration: called with each logged row of metrics.
      run_dir: if given, the run's directory: config.json, checkpoints/ (every
        `checkpoint_every` updates and at the end), tensorboard/, metrics.csv and,
        at the end, curves.png.
      resume: continue from the latest checkpoint in `run_dir` (the same
        parameters, replay, env states, RNG and counters; with the replay buffer
        checkpointed, the run ends exactly as if it had never stopped).
      progress: show a tqdm bar instead of progress lines (None: when stdout is a
        terminal and `log` is set).

    Raises:
      CheckpointError: `resume` without a usable checkpoint, a checkpoint that does
        not fit `config`, or a fresh run into a directory that holds checkpoints.
    """
    start = time.perf_counter()
    agent = Agent(config, env)
    cfg = agent.config
    key = jax.random.key(cfg.seed)
    key, init_key, env_key = jax.random.split(key, 3)
    state = agent.init(init_key)
    buffer = agent.init_replay()
    env_state = agent.reset(env_key)
    loop = LoopState()

    checkpointer, logger = None, None
    if run_dir is not None:
        checkpointer = checkpoint.open_run(run_dir, cfg, resume=resume)
        if resume:
            restored = checkpoint.restore_run(checkpointer, state=state, buffer=buffer,
                                              env_state=env_state, key=key)
            state, buffer, env_state, key, loop_dict = restored
            loop = LoopState(**loop_dict)
            if log is not None:
                log(f"resumed {run_dir} at iteration {loop.iteration}: "
                    f"{loop.env_steps} env steps, {int(state.step)} updates")
        logger = Logger(run_dir, loop.history)
    save_replay = (cfg.checkpoint_replay if cfg.checkpoint_replay is not None
                   else checkpoint.nbytes(buffer) < checkpoint.AUTO_REPLAY_BYTES)
    show_bar = progress if progress is not None else (log is not None and sys.stdout.isatty())
    bar = tqdm(total=cfg.total_env_steps, initial=loop.env_steps, unit="step",
               unit_scale=True, dynamic_ncols=True, disable=not show_bar)

    earlier_seconds = loop.seconds
    saved_iteration = loop.iteration if resume else None

    def save(state, buffer, env_state, key) -> None:
        nonlocal saved_iteration
        saved_iteration = loop.iteration
        loop.seconds = earlier_seconds + time.perf_counter() - start
        loop.last_checkpoint_updates = int(state.step)
        # Host games (ALE) are live emulators, not arrays: a resumed run starts new ones.
        checkpointer.save(loop.iteration, {
            "train_state": state, "rng": {"key": key},
            **({} if agent.host else {"env_state": env_state}),
            **({"replay": buffer} if save_replay else {})}, dataclasses.asdict(loop))

    steps_per_iteration = cfg.num_envs * cfg.rollout_length
    metrics: dict = {}
    search_stats: dict = {}
    last_time, last_steps, last_updates = time.perf_counter(), loop.env_steps, int(state.step)
    try:
        while loop.env_steps < cfg.total_env_steps and not loop.solved:
            loop.iteration += 1
            key, rollout_key, update_key, eval_key = jax.random.split(key, 4)
            # The acting temperature follows training progress (SPEC.md, "Acting").
            exploration = Exploration.scheduled(
                cfg, loop.env_steps / max(cfg.total_env_steps, 1))
            env_state, trajectory = agent.rollout(state, env_state, rollout_key,
                                                  exploration=exploration)
            buffer = agent.add(buffer, trajectory)
            loop.env_steps += steps_per_iteration
            loop.record_episodes(trajectory)
            search_stats = search_statistics(trajectory)

            if agent.ready_to_learn(buffer):
                state, buffer, metrics = agent.update(state, buffer, update_key)

            eval_return = None
            recent = loop.recent_return()
            due = cfg.eval_every and loop.iteration % cfg.eval_every == 0
            promising = cfg.solve_return is not None and recent >= cfg.solve_return
            if (due or promising) and int(state.step) > 0:
                eval_return = float(np.mean(evaluate_jax(agent, state, eval_key,
                                                         cfg.eval_episodes)))
                loop.solved = cfg.solve_return is not None and eval_return >= cfg.solve_return
                loop.last_eval_return = eval_return

            bar.update(steps_per_iteration)
            bar.set_postfix({"return": f"{recent:.1f}", "updates": int(state.step),
                             **({} if loop.last_eval_return is None
                                else {"eval": f"{loop.last_eval_return:.1f}"})}, refresh=False)
            last = loop.env_steps >= cfg.total_env_steps  # the CSV ends where training did
            if (loop.iteration % cfg.log_every == 0 or eval_return is not None or loop.solved
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
                if logger is not None:
                    logger.write(row)
                if on_iteration is not None:
                    on_iteration(row)
                if log is not None and not show_bar:
                    log(_progress_line(row))

            if checkpointer is not None and cfg.checkpoint_every and (
                    int(state.step) // cfg.checkpoint_every
                    > loop.last_checkpoint_updates // cfg.checkpoint_every):
                logger.flush()  # events up to the checkpoint are on disk with it
                save(state, buffer, env_state, key)

        if checkpointer is not None and saved_iteration != loop.iteration:
            save(state, buffer, env_state, key)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.wait()
            checkpointer.close()
        if logger is not None:
            logger.close()
    if run_dir is not None and loop.history:
        plot_run(run_dir)

    return TrainResult(agent=agent, state=state, buffer=buffer, history=loop.history,
                       env_steps=loop.env_steps, train_steps=int(state.step),
                       solved=loop.solved, seconds=time.perf_counter() - start)


@dataclasses.dataclass
class LoopState:
    """What the host side of the loop keeps between iterations (checkpointed as JSON).

    iteration, env_steps: counters. recent_returns, recent_lengths: the last 100
    finished episodes. history: the logged rows. solved: a periodic evaluation
    reached the solve return. last_eval_return: the latest one's mean return.
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
    parts = [f"steps {row['env_steps']:>7d}", f"updates {row['train_steps']:>6d}",
             f"t {row['wall_seconds']:6.1f}s", f"return {row['episodes_return']:6.1f}"]
    if row["eval_return"] is not None:
        parts.append(f"eval {row['eval_return']:6.1f}")
    if "loss" in row:
        parts.append(f"loss {row['loss']:.3f} (v {row['value_loss']:.3f} "
                     f"p {row['policy_loss']:.3f} r {row['reward_loss']:.3f})")
    parts.append(f"{row['env_steps_per_second']:.0f} steps/s "
                 f"{row['updates_per_second']:.0f} upd/s")
    return " | ".join(parts)
