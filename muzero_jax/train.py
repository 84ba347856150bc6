"""The training loop: self-play -> replay -> targets/loss -> optimizer, repeated.

Each iteration makes three calls to compiled programs (rollout, replay add,
`updates_per_iteration` learner steps in one `lax.scan`, which also reanalyzes,
writes priorities back and updates the target network); the host only counts,
logs, sets the acting temperature from training progress and decides when to
evaluate or stop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from muzero_jax.agent import Agent
from muzero_jax.config import Config
from muzero_jax.evaluate import evaluate_jax
from muzero_jax.learner import TrainState
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


def train(config: Config, *, log: Callable[[str], None] | None = print,
          on_iteration: Callable[[dict], None] | None = None) -> TrainResult:
    """Trains MuZero on `config.env` until `total_env_steps` or a solving evaluation.

    Args:
      config: the configuration (validated before anything compiles).
      log: where progress lines go (None: silent).
      on_iteration: called with each logged row of metrics.
    """
    start = time.perf_counter()
    agent = Agent(config)
    cfg = agent.config
    key = jax.random.key(cfg.seed)
    key, init_key, env_key = jax.random.split(key, 3)
    state = agent.init(init_key)
    buffer = agent.init_replay()
    env_state = agent.reset(env_key)

    steps_per_iteration = cfg.num_envs * cfg.rollout_length
    env_steps = 0
    recent_returns: list[float] = []
    history: list[dict] = []
    solved = False
    iteration = 0
    metrics: dict = {}
    last_time, last_steps, last_updates = time.perf_counter(), 0, 0
    while env_steps < cfg.total_env_steps and not solved:
        iteration += 1
        key, rollout_key, update_key, eval_key = jax.random.split(key, 4)
        # The acting temperature follows training progress (SPEC.md, "Acting").
        exploration = Exploration.scheduled(cfg, env_steps / max(cfg.total_env_steps, 1))
        env_state, trajectory = agent.rollout(state, env_state, rollout_key,
                                              exploration=exploration)
        buffer = agent.add(buffer, trajectory)
        env_steps += steps_per_iteration
        done = np.asarray(trajectory.terminated | trajectory.truncated)
        recent_returns.extend(np.asarray(trajectory.episode_return)[done].tolist())
        recent_returns = recent_returns[-100:]

        if agent.ready_to_learn(buffer):
            state, buffer, metrics = agent.update(state, buffer, update_key)

        eval_return = None
        recent = float(np.mean(recent_returns)) if recent_returns else float("nan")
        due = cfg.eval_every and iteration % cfg.eval_every == 0
        promising = cfg.solve_return is not None and recent >= cfg.solve_return
        if (due or promising) and int(state.step) > 0:
            eval_return = float(np.mean(evaluate_jax(agent, state, eval_key,
                                                     cfg.eval_episodes)))
            solved = cfg.solve_return is not None and eval_return >= cfg.solve_return

        if iteration % cfg.log_every == 0 or eval_return is not None or solved:
            now = time.perf_counter()
            updates = int(state.step)
            row = {
                "iteration": iteration,
                "env_steps": env_steps,
                "train_steps": updates,
                "wall_seconds": now - start,
                "episodes_return": recent,
                "eval_return": eval_return,
                "env_steps_per_second": (env_steps - last_steps) / (now - last_time),
                "updates_per_second": (updates - last_updates) / (now - last_time),
                **{k: float(v) for k, v in metrics.items()},
            }
            last_time, last_steps, last_updates = now, env_steps, updates
            history.append(row)
            if on_iteration is not None:
                on_iteration(row)
            if log is not None:
                log(_progress_line(row))

    return TrainResult(agent=agent, state=state, buffer=buffer, history=history,
                       env_steps=env_steps, train_steps=int(state.step), solved=solved,
                       seconds=time.perf_counter() - start)


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
