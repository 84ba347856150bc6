"""The training loop as one compiled program, in the manner of purejaxrl's `make_train`.

    program = make_train(config)            # Python-side work once: env, networks, optimizer
    runner = program.init(jax.random.key(0))
    runner, metrics = program.train(jax.random.key(0))   # a whole run, pure and jittable
    runners, metrics = jax.jit(jax.vmap(program.train))(keys)   # seeds in one program

One training iteration, `iterate`, reads top to bottom as the algorithm does:

    collect   self-play rollout of B envs for T steps (`JaxActor.rollout_fn`)
    store     the [B, T] trajectory into replay (`replay.add`)
    learn     U learner steps in a `lax.scan`, once replay holds enough (`Agent._update_impl`)
    evaluate  every `eval_every` iterations: greedy episodes on fresh envs, the solve check

A `RunnerState` holds everything a run needs to go on (learner state, replay, env
states, key, counters, the last 100 episode returns), so that it is also what a
checkpoint saves. A finished run (budget spent, or solved) stops changing: its
iterations leave the state as it was and report `active = False`.

`run_chunk(runners, first_iteration)` is what `muzero_jax.train` calls: up to
`num_iterations` iterations of `[S]` runs side by side (seeds, or a sweep's values),
in one `while_loop` that stops early once every run is done. The runs are vmapped
inside the loop rather than the loop under a vmap, so that the iteration count
stays one scalar for all runs and the evaluation stays a real `lax.cond` (under
`vmap` a cond on a batched predicate runs both branches every iteration).
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp

from muzero_jax import envs, replay
from muzero_jax.agent import Agent
from muzero_jax.config import Config, ConfigError
from muzero_jax.learner import TrainState, with_peak_learning_rate
from muzero_jax.search import Exploration

RECENT = 100  # finished episodes behind `episodes_return` and `episode_length`

# Config fields a sweep may vary inside one compiled program (they change no shape and
# live in the state as traced values).
SWEEPABLE = ("learning_rate",)


@chex.dataclass(frozen=True)
class RunnerState:
    """Everything one run carries from iteration to iteration.

    train_state: the learner state. buffer: the replay buffer. env_state: `[B]`
    self-play envs. key: the run's PRNG key.
    iteration, env_steps: `[]` int32 counters.
    solved: `[]` bool, a periodic evaluation reached config.solve_return.
    done: `[]` bool, solved or the env-step budget spent: the run no longer changes.
    last_eval_return: `[]` float32, the latest evaluation's mean return (NaN: none yet).
    recent_returns, recent_lengths: `[100]` float32, the last finished episodes
      (a ring; `episodes_finished` counts all of them).
    episodes_finished: `[]` int32.
    """

    train_state: TrainState
    buffer: replay.ReplayBuffer
    env_state: envs.EnvState
    key: chex.PRNGKey
    iteration: chex.Array
    env_steps: chex.Array
    solved: chex.Array
    done: chex.Array
    last_eval_return: chex.Array
    recent_returns: chex.Array
    recent_lengths: chex.Array
    episodes_finished: chex.Array


@dataclasses.dataclass(frozen=True)
class TrainProgram:
    """The pure pieces of a run, built once by `make_train`.

    agent: the Agent whose building blocks the program calls.
    init: key -> RunnerState (optionally `learning_rate=` for a sweep's run).
    iterate: (RunnerState, iteration) -> (RunnerState, metrics of that iteration).
    run_chunk: ([S] RunnerState, first iteration) -> ([S] RunnerState, `[C, S]` metrics).
    train: key -> (final RunnerState, `[max_iterations]` metrics): a whole run.
    num_iterations: C, iterations per `run_chunk` call.
    max_iterations: iterations of the whole env-step budget.
    """

    agent: Agent
    num_iterations: int
    max_iterations: int

    def init(self, key: chex.PRNGKey, *, learning_rate: chex.Numeric | None = None
             ) -> RunnerState:
        """A fresh run from `key` (consumed); `learning_rate` overrides the config's peak."""
        agent = self.agent
        key, init_key, env_key = jax.random.split(key, 3)
        train_state = agent.init(init_key)
        if learning_rate is not None:
            train_state = with_peak_learning_rate(train_state, learning_rate)
        nan = jnp.float32(jnp.nan)
        return RunnerState(
            train_state=train_state, buffer=agent.init_replay(), env_state=agent.reset(env_key),
            key=key, iteration=jnp.int32(0), env_steps=jnp.int32(0), solved=jnp.bool_(False),
            done=jnp.bool_(False), last_eval_return=nan,
            recent_returns=jnp.full((RECENT,), nan), recent_lengths=jnp.full((RECENT,), nan),
            episodes_finished=jnp.int32(0))

    # --- one iteration --------------------------------------------------------------
    def iterate(self, runner: RunnerState, iteration: chex.Array
                ) -> tuple[RunnerState, dict]:
        """Iteration number `iteration` (1-based; the same for every run of a chunk).

        A run that is done is left as it was (its metrics say `active = False`).
        """
        return jax.lax.cond(runner.done, self._idle, self._iterate, runner, iteration)

    def _iterate(self, runner: RunnerState, iteration):
        agent, cfg = self.agent, self.agent.config
        key, rollout_key, update_key, eval_key = jax.random.split(runner.key, 4)

        # collect: acting temperature by training progress (SPEC.md, "Acting").
        exploration = scheduled_exploration(cfg, runner.env_steps / max(cfg.total_env_steps, 1))
        env_state, trajectory = agent.actor.rollout_fn(
            runner.train_state.params, runner.env_state, rollout_key, exploration,
            cfg.rollout_length)
        # store
        buffer = replay.add(runner.buffer, trajectory)
        env_steps = runner.env_steps + cfg.num_envs * cfg.rollout_length
        returns, lengths, finished = record_episodes(runner, trajectory)

        # learn, once replay holds min_replay_size positions and a window per stream.
        def learn(state, buffer):
            return agent._update_impl(state, buffer, update_key)

        def wait(state, buffer):
            return state, buffer, self._no_update_metrics

        state, buffer, update_metrics = jax.lax.cond(
            ready_to_learn(buffer, cfg), learn, wait, runner.train_state, buffer)

        # evaluate: the schedule is the iteration's, the same for all runs of a chunk (an
        # unbatched predicate, so the cond stays one under vmap); untrained runs do not count.
        due = jnp.bool_(False)
        if cfg.eval_every:
            due = iteration % cfg.eval_every == 0
        eval_return = jax.lax.cond(due, lambda: self.evaluate(state.params, eval_key),
                                   lambda: jnp.float32(jnp.nan))
        due = due & (state.step > 0)
        eval_return = jnp.where(due, eval_return, jnp.nan)
        solved = runner.solved
        if cfg.solve_return is not None:
            solved = solved | (due & (eval_return >= cfg.solve_return))
        runner = RunnerState(
            train_state=state, buffer=buffer, env_state=env_state, key=key,
            iteration=runner.iteration + 1, env_steps=env_steps, solved=solved,
            done=solved | (env_steps >= cfg.total_env_steps),
            last_eval_return=jnp.where(due, eval_return, runner.last_eval_return),
            recent_returns=returns, recent_lengths=lengths, episodes_finished=finished)
        metrics = {
            "active": jnp.bool_(True), "evaluated": due, "solved": solved,
            "iteration": runner.iteration, "env_steps": env_steps, "train_steps": state.step,
            "episodes_return": jnp.nanmean(returns), "episode_length": jnp.nanmean(lengths),
            "eval_return": eval_return, **search_statistics(trajectory), **update_metrics}
        return runner, metrics

    def _idle(self, runner: RunnerState, iteration):
        del iteration
        metrics = jax.eval_shape(self._iterate, runner, jnp.int32(0))[1]
        metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics)
        return runner, dict(metrics, active=jnp.bool_(False))

    @property
    def _no_update_metrics(self) -> dict:
        agent = self.agent
        shapes = jax.eval_shape(agent._update_impl, jax.eval_shape(agent.init, jax.random.key(0)),
                                jax.eval_shape(agent.init_replay), jax.random.key(0))[2]
        return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    # --- evaluation -----------------------------------------------------------------
    def evaluate(self, params, key: chex.PRNGKey) -> jax.Array:
        """Mean return of `eval_episodes` greedy episodes on fresh envs (pure).

        Each env's first episode counts (later, shorter ones would bias the mean down);
        the envs play rollout_length steps at a time until every first episode ended.
        """
        agent, cfg = self.agent, self.agent.config
        num_episodes, chunk = cfg.eval_episodes, cfg.rollout_length
        max_chunks = math.ceil((agent.spec.max_episode_steps or 100_000) / chunk) + 1
        reset_key, key = jax.random.split(key)
        env_state = agent.actor.reset(reset_key, num_episodes)

        def unfinished(carry):
            i, _, _, first = carry
            return (i < max_chunks) & jnp.any(jnp.isnan(first))

        def play(carry):
            i, env_state, key, first = carry
            key, rollout_key = jax.random.split(key)
            env_state, traj = agent.actor.rollout_fn(params, env_state, rollout_key,
                                                     Exploration.greedy(), chunk)
            done = traj.terminated | traj.truncated
            episode_return = jnp.take_along_axis(
                traj.episode_return, jnp.argmax(done, axis=1)[:, None], axis=1)[:, 0]
            first = jnp.where(jnp.isnan(first) & jnp.any(done, axis=1), episode_return, first)
            return i + 1, env_state, key, first

        first = jnp.full((num_episodes,), jnp.nan, jnp.float32)
        _, _, _, first = jax.lax.while_loop(unfinished, play, (0, env_state, key, first))
        return jnp.mean(first)

    # --- chunks and whole runs -----------------------------------------------------
    def run_chunk(self, runners: RunnerState, first_iteration: chex.Array
                  ) -> tuple[RunnerState, dict]:
        """Up to `num_iterations` iterations of `[S]` runs, numbered from `first_iteration`.

        Stops early once every run is done. Returns the runs and `[C, S]` metrics
        (rows past the early stop have `active = False`).
        """
        num_runs = runners.iteration.shape[0]
        if num_runs == 1:  # one run: no vmap, so the conds inside stay conds
            def step(runners, iteration):
                runner, metrics = self.iterate(jax.tree.map(lambda x: x[0], runners), iteration)
                return jax.tree.map(lambda x: x[None], (runner, metrics))
        else:
            step = jax.vmap(self.iterate, in_axes=(0, None))
        shapes = jax.eval_shape(step, runners, jnp.int32(0))[1]
        metrics = jax.tree.map(lambda s: jnp.zeros((self.num_iterations, *s.shape), s.dtype),
                               shapes)

        def going(carry):
            i, runners, _ = carry
            return (i < self.num_iterations) & ~jnp.all(runners.done)

        def body(carry):
            i, runners, metrics = carry
            runners, row = step(runners, first_iteration + i)
            metrics = jax.tree.map(lambda m, r: m.at[i].set(r), metrics, row)
            return i + 1, runners, metrics

        _, runners, metrics = jax.lax.while_loop(going, body, (0, runners, metrics))
        return runners, metrics

    def train(self, key: chex.PRNGKey) -> tuple[RunnerState, dict]:
        """A whole run from `key`: pure, so `jax.vmap(program.train)(keys)` trains seeds.

        Returns the final state and `[max_iterations]` metrics (`active` marks the
        iterations that ran).
        """
        runner = self.init(key)

        def body(runner, iteration):
            return self.iterate(runner, iteration)

        return jax.lax.scan(body, runner, jnp.arange(1, self.max_iterations + 1))


def make_train(config: Config, env: envs.Env | None = None, *,
               num_iterations: int | None = None, agent: Agent | None = None) -> TrainProgram:
    """Builds the compiled training program of `config` (JAX-native envs only).

    Args:
      config: the configuration (validated here).
      env: the env object (default `envs.make(config)`); must be a `JaxEnv`: host envs
        (Gymnasium, ALE) train through `muzero_jax.train`'s host loop.
      num_iterations: C, iterations per `run_chunk` call (default config.log_every).
      agent: an Agent of `config` to build on (default: a new one).
    """
    agent = agent or Agent(config, env)
    if agent.host:
        raise ConfigError(f"env {agent.spec.env_id!r} is a host env: it trains through "
                          f"muzero_jax.train's host loop, not a compiled program")
    cfg = agent.config
    steps = cfg.num_envs * cfg.rollout_length
    return TrainProgram(agent=agent, num_iterations=num_iterations or cfg.log_every,
                        max_iterations=max(1, math.ceil(cfg.total_env_steps / steps)))


# --- pieces -------------------------------------------------------------------------
def scheduled_exploration(config: Config, progress: chex.Array) -> Exploration:
    """`Exploration.scheduled` with a traced `progress` (0..1)."""
    temperature = jnp.float32(config.temperature)
    for threshold, scheduled in config.temperature_schedule:
        temperature = jnp.where(progress >= threshold, jnp.float32(scheduled), temperature)
    ratio = temperature / config.temperature if config.temperature > 0 else temperature
    return Exploration(temperature=temperature,
                       dirichlet_fraction=jnp.float32(config.dirichlet_fraction),
                       gumbel_scale=jnp.float32(config.gumbel_scale) * ratio)


def ready_to_learn(buffer: replay.ReplayBuffer, config: Config) -> jax.Array:
    """`Agent.ready_to_learn`, traced."""
    return ((buffer.count * buffer.num_streams >= config.min_replay_size)
            & (replay.num_windows(buffer, config.window_length, config.history_length) > 0))


def record_episodes(runner: RunnerState, trajectory) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The last 100 finished episodes' returns and lengths, with those of `trajectory`.

    Episodes enter in the trajectory's row-major `[B, T]` order; returns the two rings
    and the new count.
    """
    done = (trajectory.terminated | trajectory.truncated).reshape(-1)
    rank = jnp.cumsum(done) - 1  # among this rollout's finished episodes
    total = jnp.sum(done)
    keep = done & (rank >= total - RECENT)  # at most one write per slot
    slot = jnp.where(keep, (runner.episodes_finished + rank) % RECENT, RECENT)

    def put(ring, values):
        return ring.at[slot].set(values.reshape(-1).astype(ring.dtype), mode="drop")

    return (put(runner.recent_returns, trajectory.episode_return),
            put(runner.recent_lengths, trajectory.episode_length),
            runner.episodes_finished + total.astype(jnp.int32))


def search_statistics(trajectory) -> dict[str, jax.Array]:
    """Mean root value and mean entropy (nats) of the search policy over a `[B, T]` rollout."""
    policy = trajectory.search_policy
    entropy = -jnp.sum(jnp.where(policy > 0, policy * jnp.log(jnp.maximum(policy, 1e-30)), 0.0),
                       axis=-1)
    return {"root_value": jnp.mean(trajectory.root_value), "policy_entropy": jnp.mean(entropy)}
