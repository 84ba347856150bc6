"""The training loop as one compiled program, in the manner of purejaxrl's `make_train`.

    program = make_train(config)            # Python-side work once: env, networks, optimizer
    runner, metrics = jax.jit(program.train)(jax.random.key(0))   # a whole run, pure
    runners, metrics = jax.jit(program.run_chunk)(runners, first_iteration)  # what train() calls

One training iteration, `iterate`, reads top to bottom as the algorithm does:

    collect   self-play rollout of B envs for T steps (`JaxActor.rollout_fn`)
    store     the [B, T] trajectory into replay (`replay.add`)
    learn     U learner steps in a `lax.scan`, once replay holds enough (`Pieces.update`)
    evaluate  every `eval_every` iterations: greedy episodes on fresh envs, the solve check
    guard     the first non-finite observation, reward, loss or gradient (`first_fault`)

Self-play and evaluation are rounds of one `lax.while_loop` around a single rollout
call, so the search (the largest part of the program) is compiled once, not once for
self-play and again for evaluation.

Every function works on `[S]` runs (seeds, or a sweep's values), a leading axis on
every leaf of `RunnerState`, and the iteration count stays one scalar for all runs. How
the runs share an iteration is `Config.run_layout`: on a CPU each run's iteration runs
in turn (`lax.map`), exactly as it would alone, so a run in a five-seed program ends
with the parameters it would have ended with by itself, and a run that is done costs
nothing; on accelerators the runs are vmapped inside the iteration (not the loop under a
vmap, so that the evaluation stays a real `lax.cond`: under `vmap`, a cond on a batched
predicate runs both branches every iteration), and a done run is computed and masked. A
single run is called without vmap at all. A run that is done (budget spent, solved, or
met a non-finite value) stops changing: its iterations leave its state as it was and
report `active = False`, while the others go on; `run_chunk` returns early once every
run is done. `RunnerState` holds everything a run needs to go on, so it is also what a
checkpoint saves.

A run marked solved here is only a candidate: between chunks the host confirms it on
the final evaluation's env (`train.confirm_solved`) and clears `solved` and `done` of a
run that fails, which then trains on. A run with a fault is the host's to report: it
stops the whole program (`errors.NonFiniteError`) before anything from the chunk is
logged or checkpointed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from muzero_jax import batch as batch_lib
from muzero_jax import distributed, envs, replay
from muzero_jax.config import Config, ConfigError, RunConfig
from muzero_jax.learner import TrainState, with_peak_learning_rate
from muzero_jax.pieces import Pieces, make_pieces
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
    solved: `[]` bool, a periodic evaluation reached config.run.solve_return (and, once the
      host has confirmed it, its confirmation passed).
    done: `[]` bool, solved, the env-step budget spent, or a fault: the run no longer
      changes.
    last_eval_return: `[]` float32, the latest evaluation's mean return (NaN: none yet).
    recent_returns, recent_lengths: `[100]` float32, the last finished episodes
      (a ring; `episodes_finished` counts all of them).
    episodes_finished: `[]` int32.
    fault: `[]` int32, the first non-finite value this run met (`FAULTS`: 0 none, 1 an
      observation, 2 a reward, 3 the loss or its gradient); a run with a fault is done.
    fault_step: `[]` int32, the env step (the `env_steps` count) by which it appeared.
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
    fault: chex.Array
    fault_step: chex.Array


# What `RunnerState.fault` codes name, by code.
FAULTS = ("none", "observation", "reward", "loss")


class _Iteration(NamedTuple):
    """What the rounds of one iteration share (`TrainProgram.iterate_side_by_side`).

    per_run: maps a one-run function over the `[S]` runs. active: `[S]` bool, the runs
    not done. where: `(mask, new, old)`, per run `new` where `mask` (the identity on
    `new` when every run is active). rollout_key, update_key, eval_key: `[S]` keys.
    exploration: the `[S]` training explorations; greedy: the evaluation's, `[S]`.
    """

    per_run: Callable
    active: jax.Array
    where: Callable
    rollout_key: jax.Array
    update_key: jax.Array
    eval_key: jax.Array
    exploration: Exploration
    greedy: Exploration

    def eval_reset_key(self, set_index: jax.Array) -> jax.Array:
        """The `[S]` keys that reset eval set `set_index` (`[S]`) of each run."""
        return jax.vmap(jax.random.fold_in)(self.eval_key, set_index)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainProgram:
    """The pure pieces of a run, built once by `make_train`.

    pieces: the pure pieces the program composes (`pieces.Pieces`: init, the actor's
      reset and rollout, the replay layout, the update).
    init: key -> RunnerState of one run (optionally `learning_rate=` for a sweep's run).
    iterate: ([S] RunnerState, iteration) -> ([S] RunnerState, `[S]` metrics).
    run_chunk: ([S] RunnerState, first iteration) -> ([S] RunnerState, `[C, S]` metrics).
    train: key -> (final RunnerState, `[max_iterations]` metrics): a whole run.
    num_iterations: C, iterations per `run_chunk` call.
    max_iterations: iterations of the whole env-step budget.
    layout: where the stream kernels (rollout, replay add, learner updates) run: one
      device, or split over a mesh (`muzero_jax.distributed`).
    check_finite: whether each iteration checks its observations, rewards, loss and
      gradient for non-finite values (`RunnerState.fault`); off only to measure what
      the check costs.
    """

    pieces: Pieces
    num_iterations: int
    max_iterations: int
    layout: distributed.Layout = distributed.Single()
    check_finite: bool = True

    def init(self, key: chex.PRNGKey, *, learning_rate: chex.Numeric | None = None
             ) -> RunnerState:
        """A fresh run from `key` (consumed); `learning_rate` overrides the config's peak."""
        pieces = self.pieces
        key, init_key, env_key = jax.random.split(key, 3)
        train_state = pieces.init(init_key)
        if learning_rate is not None:
            train_state = with_peak_learning_rate(train_state, learning_rate)
        nan = jnp.float32(jnp.nan)
        return RunnerState(
            train_state=train_state, buffer=pieces.init_replay(),
            env_state=pieces.actor.reset(env_key, pieces.config.acting.num_envs),
            key=key, iteration=jnp.int32(0), env_steps=jnp.int32(0), solved=jnp.bool_(False),
            done=jnp.bool_(False), last_eval_return=nan,
            recent_returns=jnp.full((RECENT,), nan), recent_lengths=jnp.full((RECENT,), nan),
            episodes_finished=jnp.int32(0), fault=jnp.int32(0), fault_step=jnp.int32(0))

    # --- one iteration --------------------------------------------------------------
    @property
    def run_layout(self) -> str:
        """How `iterate` steps several runs: "map" or "vmap" (`Config.run_layout`)."""
        layout = self.pieces.config.run.run_layout
        if layout == "auto":
            return "map" if jax.default_backend() == "cpu" else "vmap"
        return layout

    def iterate(self, runners: RunnerState, iteration: chex.Array
                ) -> tuple[RunnerState, dict]:
        """Iteration number `iteration` (1-based) of `[S]` runs; a run that is done
        stays as it was (its metrics say `active = False`).

        "vmap" (S > 1): `iterate_side_by_side`. One run, or "map": each run's iteration
        in turn (`lax.map`), exactly as it would run alone, behind a real `lax.cond` on
        its `done` (under vmap a done run is computed and thrown away): on a CPU the
        learner is compute-bound, so five vmapped runs cost about five times one, and
        finished runs are what there is to save. Returns `[S]` runs and metrics.
        """
        if runners.iteration.shape[0] > 1 and self.run_layout == "vmap":
            return self._iterate_side_by_side(runners, iteration)

        def one(runner):
            def go(runner):
                new, metrics = self._iterate_side_by_side(
                    jax.tree.map(lambda x: x[None], runner), iteration, all_active=True)
                return jax.tree.map(lambda x: x[0], (new, metrics))

            return jax.lax.cond(runner.done, lambda r: (r, self._idle_metrics(r)), go, runner)

        if runners.iteration.shape[0] == 1:
            return jax.tree.map(lambda x: x[None], one(jax.tree.map(lambda x: x[0], runners)))
        return jax.lax.map(one, runners)

    def _iterate_running(self, runners: RunnerState, iteration: chex.Array
                         ) -> tuple[RunnerState, dict]:
        """`iterate` for runs of which at least one is not done (`run_chunk`'s loop
        stops before): a single run then needs no `lax.cond` on its `done`."""
        if runners.iteration.shape[0] == 1:
            return self._iterate_side_by_side(runners, iteration, all_active=True)
        return self.iterate(runners, iteration)

    def _idle_metrics(self, runner: RunnerState) -> dict:
        """One done run's metrics for an iteration it sat out (`active` False)."""
        shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype),
                              self.metric_shapes)
        metrics = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype)
                               if jnp.issubdtype(s.dtype, jnp.floating)
                               else jnp.zeros(s.shape, s.dtype), shapes)
        return {**metrics, "active": jnp.bool_(False), "evaluated": jnp.bool_(False),
                "solved": runner.solved, "iteration": runner.iteration,
                "env_steps": runner.env_steps, "train_steps": runner.train_state.step,
                "episodes_return": jnp.nanmean(runner.recent_returns),
                "episode_length": jnp.nanmean(runner.recent_lengths)}

    @functools.cached_property
    def _iterate_side_by_side(self):
        # Jitted for its trace cache: `metric_shapes` traces an iteration to size the
        # chunk's metrics, and the chunk's own call with the same shapes then reuses that
        # trace instead of tracing the whole iteration (search, learner) a second time.
        return jax.jit(self.iterate_side_by_side, static_argnames="all_active")

    def iterate_side_by_side(self, runners: RunnerState, iteration: chex.Array, *,
                             all_active: bool = False) -> tuple[RunnerState, dict]:
        """Iteration number `iteration` (1-based) of `[S]` runs side by side (vmapped;
        one run is called without vmap).

        collect -> store -> learn, then (every `eval_every` iterations) evaluate. Self-play
        and evaluation are rounds of one `lax.while_loop` around a single rollout call
        (`_play_round`), so the search, the biggest part of the program, is compiled once.
        Runs that are done are left as they were (their metrics say `active = False`);
        `all_active=True` (static): the caller knows that no run is done, and the masks
        that keep done runs as they were (a select over every array of the state, the
        replay buffer included) are left out of the program. Returns `[S]` runs and metrics.
        """
        pieces, cfg = self.pieces, self.pieces.config
        num_envs, num_steps = cfg.acting.num_envs, cfg.acting.rollout_length
        per_run = functools.partial(_per_run, num_runs=runners.iteration.shape[0])
        keys = per_run(lambda k: jax.random.split(k, 4))(runners.key)
        key, rollout_key, update_key, eval_key = (keys[:, i] for i in range(4))
        active = jnp.ones_like(runners.done) if all_active else ~runners.done
        exploration = jax.vmap(lambda steps: Exploration.scheduled(
            cfg, steps / max(cfg.run.total_env_steps, 1)))(runners.env_steps)
        greedy = jax.tree.map(lambda x: jnp.broadcast_to(x, active.shape), Exploration.greedy())

        # Evaluation: the schedule is the iteration's, one scalar for all runs.
        due = jnp.bool_(False)
        if cfg.run.eval_every:
            due = iteration % cfg.run.eval_every == 0
        num_sets = math.ceil(cfg.run.eval_episodes / num_envs)  # eval envs come num_envs at a time
        max_rounds = num_sets * (math.ceil(
            (pieces.spec.max_episode_steps or 100_000) / num_steps) + 1)
        ctx = _Iteration(per_run=per_run, active=active,
                         where=(lambda mask, new, old: new) if all_active else _where,
                         rollout_key=rollout_key, update_key=update_key, eval_key=eval_key,
                         exploration=exploration, greedy=greedy)
        reset = per_run(lambda k: pieces.actor.reset(k, num_envs))

        def evaluating(carry) -> jax.Array:
            round_, runners, _, _, first, _ = carry
            pending = jnp.any(jnp.isnan(first), axis=(1, 2))
            return (round_ == 0) | (due & (round_ <= max_rounds) & jnp.any(pending))

        first = jnp.full((len(active), num_sets, num_envs), jnp.nan, jnp.float32)
        stats = jax.tree.map(lambda s: jnp.zeros((len(active), *s.shape), s.dtype),
                             self._training_stat_shapes)
        carry = (jnp.int32(0), runners,
                 reset(ctx.eval_reset_key(jnp.zeros_like(runners.iteration))),
                 jnp.zeros_like(runners.iteration), first, stats)
        _, runners, _, _, first, stats = jax.lax.while_loop(
            evaluating, functools.partial(self._play_round, ctx), carry)
        return self._conclude(runners, ctx, key, due, first, stats)

    def _play_round(self, ctx: _Iteration, carry: tuple) -> tuple:
        """One round of an iteration's while loop. carry: (round, runners, eval env states,
        eval set index `[S]`, first eval returns `[S, sets, B]`, training statistics).

        Round 0 trains: a rollout of the training envs with the training exploration,
        then store and learn. Rounds 1.. evaluate: greedy rollouts of fresh envs with the
        parameters just learned, until each eval env has finished an episode."""
        round_, runners, eval_env, set_index, first, stats = carry
        training = round_ == 0
        pick = functools.partial(jax.tree.map, lambda a, b: jnp.where(training, a, b))
        num_steps = self.pieces.config.acting.rollout_length
        eval_round_key = jax.vmap(jax.random.fold_in, in_axes=(0, None))(ctx.eval_key, round_)
        env_state, trajectory = ctx.per_run(lambda p, e, k, x: self.layout.rollout(
            self.pieces, p, e, k, x, num_steps))(
            runners.train_state.params, pick(runners.env_state, eval_env),
            jnp.where(training, ctx.rollout_key, eval_round_key), pick(ctx.exploration, ctx.greedy))

        def after_training(runners, eval_env, set_index, first, stats):
            learned, stats = ctx.per_run(self._store_and_learn)(
                runners, env_state, trajectory, ctx.update_key)
            runners = ctx.where(ctx.active, learned, runners)
            # Runs that are done or still untrained are not evaluated.
            wanted = ctx.active & (runners.train_state.step > 0)
            first = jnp.where(wanted[:, None, None], first, 0.0)
            return runners, eval_env, set_index, first, stats

        def after_evaluation(runners, eval_env, set_index, first, stats):
            eval_env, set_index, first = ctx.per_run(self._record_first_episodes)(
                env_state, trajectory, set_index, first, ctx.eval_reset_key(set_index + 1))
            return runners, eval_env, set_index, first, stats

        out = jax.lax.cond(training, after_training, after_evaluation,
                           runners, eval_env, set_index, first, stats)
        return (round_ + 1, *out)

    def _conclude(self, runners: RunnerState, ctx: _Iteration, key, due, first, stats
                  ) -> tuple[RunnerState, dict]:
        """The iteration's end: the evaluation's mean return, the solve check, `done`, and
        the `[S]` metrics."""
        cfg, active, where = self.pieces.config, ctx.active, ctx.where
        evaluated = due & active & (runners.train_state.step > 0)
        eval_return = jnp.where(evaluated, jnp.mean(
            first.reshape(len(active), -1)[:, :cfg.run.eval_episodes], axis=1), jnp.nan)
        solved = runners.solved
        if cfg.run.solve_return is not None:
            solved = solved | (evaluated & (eval_return >= cfg.run.solve_return))
        done = run_done(solved, runners.env_steps, cfg.run) | (runners.fault != 0)
        runners = runners.replace(
            key=where(active, key, runners.key),
            solved=jnp.where(active, solved, runners.solved),
            done=jnp.where(active, done, runners.done),
            last_eval_return=jnp.where(evaluated, eval_return, runners.last_eval_return))
        metrics = {
            "active": active, "evaluated": evaluated, "solved": runners.solved,
            "iteration": runners.iteration, "env_steps": runners.env_steps,
            "train_steps": runners.train_state.step,
            "episodes_return": jnp.nanmean(runners.recent_returns, axis=1),
            "episode_length": jnp.nanmean(runners.recent_lengths, axis=1),
            "eval_return": eval_return, **stats}
        return runners, metrics

    def _record_first_episodes(self, env_state, trajectory, set_index, first, next_key):
        """Records one run's first finished episode per eval env (`first`: `[sets, B]`);
        once every env of the current set has finished one, fresh envs start the next set."""
        done = trajectory.terminated | trajectory.truncated  # [B, T]
        episode_return = jnp.take_along_axis(
            trajectory.episode_return, jnp.argmax(done, axis=1)[:, None], axis=1)[:, 0]
        row = first[set_index]
        row = jnp.where(jnp.isnan(row) & jnp.any(done, axis=1), episode_return, row)
        first = first.at[set_index].set(row)
        next_set = ~jnp.any(jnp.isnan(row)) & (set_index + 1 < first.shape[0])
        fresh = self.pieces.actor.reset(next_key, row.shape[0])
        env_state = jax.tree.map(lambda a, b: jnp.where(next_set, a, b), fresh, env_state)
        return env_state, set_index + next_set.astype(set_index.dtype), first

    def _store_and_learn(self, runner: RunnerState, env_state, trajectory, update_key):
        """store -> learn for one run, after its training rollout."""
        pieces, cfg = self.pieces, self.pieces.config
        buffer = self.layout.add(runner.buffer, trajectory)
        returns, lengths, finished = record_episodes(
            runner.recent_returns, runner.recent_lengths, runner.episodes_finished,
            trajectory.terminated | trajectory.truncated, trajectory.episode_return,
            trajectory.episode_length)

        def learn(state, buffer):
            return self.layout.update(pieces, state, buffer, update_key)

        def wait(state, buffer):
            return state, buffer, self._no_update_metrics

        learned = ready_to_learn(buffer, cfg)
        state, buffer, update_metrics = jax.lax.cond(
            learned, learn, wait, runner.train_state, buffer)
        env_steps = runner.env_steps + cfg.acting.num_envs * cfg.acting.rollout_length
        fault, fault_step = runner.fault, runner.fault_step
        if self.check_finite:
            fault, fault_step = first_fault(
                runner, trajectory, update_metrics, learned, env_steps,
                check_observations=not pieces.spec.frames)
        runner = runner.replace(
            train_state=state, buffer=buffer, env_state=env_state,
            iteration=runner.iteration + 1, env_steps=env_steps,
            recent_returns=returns, recent_lengths=lengths, episodes_finished=finished,
            fault=fault, fault_step=fault_step)
        # Reduced here, checked by the host once per chunk (support.check_rewards).
        reward_abs_max = jnp.max(jnp.abs(trajectory.reward))
        stats = search_statistics(trajectory.search_policy, trajectory.root_value)
        return runner, {**stats, "reward_abs_max": reward_abs_max,
                        **update_metrics}

    @functools.cached_property
    def _training_stat_shapes(self) -> dict:
        """Shapes of one run's training statistics (search statistics, learner metrics)."""
        return {"root_value": jax.ShapeDtypeStruct((), jnp.float32),
                "policy_entropy": jax.ShapeDtypeStruct((), jnp.float32),
                "reward_abs_max": jax.ShapeDtypeStruct((), jnp.float32),
                **self._update_metric_shapes}

    @functools.cached_property
    def _update_metric_shapes(self) -> dict:
        pieces = self.pieces
        return jax.eval_shape(pieces.jitted_update,
                              jax.eval_shape(pieces.init, jax.random.key(0)),
                              jax.eval_shape(pieces.init_replay), jax.random.key(0))[2]

    @property
    def _no_update_metrics(self) -> dict:
        return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype),
                            self._update_metric_shapes)

    @functools.cached_property
    def metric_shapes(self) -> dict:
        """The shapes of one iteration's metrics of `[S]` runs (traced once)."""
        runners = jax.eval_shape(lambda k: jax.vmap(self.init)(k[None]), jax.random.key(0))
        return jax.eval_shape(functools.partial(self._iterate_side_by_side, all_active=True),
                              runners, jnp.int32(1))[1]

    # --- chunks and whole runs -----------------------------------------------------
    def run_chunk(self, runners: RunnerState, first_iteration: chex.Array
                  ) -> tuple[RunnerState, dict]:
        """Up to `num_iterations` iterations of `[S]` runs, numbered from `first_iteration`.

        Stops early once every run is done. Returns the runs and `[C, S]` metrics
        (rows past the early stop have `active = False`).
        """
        num_runs = runners.iteration.shape[0]
        metrics = jax.tree.map(
            lambda s: jnp.zeros((self.num_iterations, num_runs, *s.shape[1:]), s.dtype),
            self.metric_shapes)

        def going(carry):
            i, runners, _ = carry
            return (i < self.num_iterations) & ~jnp.all(runners.done)

        def body(carry):
            i, runners, metrics = carry
            runners, row = self._iterate_running(runners, first_iteration + i)
            metrics = jax.tree.map(lambda m, r: m.at[i].set(r), metrics, row)
            return i + 1, runners, metrics

        _, runners, metrics = jax.lax.while_loop(going, body, (0, runners, metrics))
        return runners, metrics

    def train(self, key: chex.PRNGKey) -> tuple[RunnerState, dict]:
        """A whole run from `key`, as one pure function (`jax.vmap` of it trains seeds,
        though `run_chunk` on `[S]` runs is faster: its evaluation stays a real cond).

        Returns the final state and `[max_iterations]` metrics (`active` marks the
        iterations that ran).
        """
        runners = jax.tree.map(lambda x: x[None], self.init(key))
        runners, metrics = jax.lax.scan(self.iterate, runners,
                                        jnp.arange(1, self.max_iterations + 1))
        return jax.tree.map(lambda x: x[0], runners), jax.tree.map(lambda x: x[:, 0], metrics)


def make_train(config: Config, env: envs.Env | None = None, *,
               num_iterations: int | None = None, pieces: Pieces | None = None) -> TrainProgram:
    """Builds the compiled training program of `config` (JAX-native envs only).

    Args:
      config: the configuration (validated here).
      env: the env object (default `envs.make(config)`); must be a `JaxEnv`: host envs
        (Gymnasium, ALE) train through `muzero_jax.train`'s host loop.
      num_iterations: C, iterations per `run_chunk` call (default config.run.log_every).
      pieces: `config`'s pieces to compose (default: `make_pieces(config, env)`).
    """
    pieces = pieces or make_pieces(config, env)
    if pieces.host:
        raise ConfigError(f"env {pieces.spec.env_id!r} is a host env: it trains through "
                          f"muzero_jax.train's host loop, not a compiled program")
    cfg = pieces.config
    steps = cfg.acting.num_envs * cfg.acting.rollout_length
    return TrainProgram(pieces=pieces, num_iterations=num_iterations or cfg.run.log_every,
                        max_iterations=max(1, math.ceil(cfg.run.total_env_steps / steps)),
                        layout=distributed.make_layout(cfg, pieces))


# --- pieces -------------------------------------------------------------------------
def _per_run(fn, *, num_runs: int):
    """`fn` over a leading `[S]` axis of every argument: `jax.vmap`, or for one run a
    plain call (a vmap of size 1 would still add a batch dimension to every gather and
    scatter of the search, which XLA compiles more slowly)."""
    if num_runs > 1:
        return jax.vmap(fn)

    def one(*args):
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return one


def _where(mask: jax.Array, new, old):
    """Per run: `new` where `mask[s]`, else `old` (pytrees with a leading `[S]` axis)."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def run_done(solved: chex.Array, env_steps: chex.Array, run: RunConfig) -> jax.Array:
    """Whether runs are done (`[S]` or `[]`): solved, or `run.total_env_steps` spent."""
    return solved | (env_steps >= run.total_env_steps)


def ready_to_learn(buffer: replay.ReplayBuffer, config: Config) -> jax.Array:
    """Whether replay holds `config.replay.min_size` positions and a full window per
    stream: `[]` bool (the compiled loop calls it traced, the host backend jitted)."""
    return batch_lib.ready_to_learn(buffer, min_size=config.replay.min_size,
                                    window_length=config.loss.window_length,
                                    history_length=config.env.history_length)


def trajectory_fault(observation, final_observation, reward, *,
                     check_observations: bool = True) -> tuple[jax.Array, jax.Array]:
    """The first non-finite value of a `[B, T]` rollout: `(code, t)`, code as
    `RunnerState.fault` (0 none, 1 an observation, 2 a reward) and t the rollout step by
    whose end it had arrived (0 if none): an observation acted on at step t arrived by
    step t, what step t reached (its observation before any reset, its reward) by t + 1;
    at equal t an observation comes before a reward. Each test is one reduction over
    the trajectory. The compiled loop calls it traced (`first_fault`), the host loop
    jitted on each rollout. `[]` int32 each.
    """
    num_steps = reward.shape[1]

    def bad_by_time(x):  # [B, T, ...] -> [T] bool: some env met a non-finite value at t
        return jnp.any(~jnp.isfinite(x.reshape(x.shape[:2] + (-1,))), axis=(0, 2))

    time = jnp.arange(num_steps, dtype=jnp.int32)
    never = jnp.iinfo(jnp.int32).max
    candidates = []  # (code, first step it appeared at, or `never`)
    if check_observations:
        acted = jnp.where(bad_by_time(observation), time, never)
        reached = jnp.where(bad_by_time(final_observation), time + 1, never)
        candidates.append((1, jnp.minimum(jnp.min(acted), jnp.min(reached))))
    candidates.append((2, jnp.min(jnp.where(bad_by_time(reward[..., None]), time + 1, never))))
    fault, step = jnp.int32(0), never
    for code, t in candidates:  # the earliest; an observation before a reward of its step
        earlier = t < step
        fault, step = jnp.where(earlier, code, fault), jnp.where(earlier, t, step)
    return fault, jnp.where(fault != 0, step, 0).astype(jnp.int32)


def first_fault(runner: RunnerState, trajectory, update_metrics: dict, learned: jax.Array,
                env_steps: jax.Array, *, check_observations: bool = True
                ) -> tuple[jax.Array, jax.Array]:
    """One run's `(fault, fault_step)` after an iteration (see `RunnerState.fault`).

    A fault already recorded stays. Otherwise the rollout's first non-finite value
    (`trajectory_fault`), at env step `S + t B` (S: `runner.env_steps`); then the
    learner's loss and gradient norm (when it learned), at `env_steps`, the count after
    the iteration.
    """
    num_envs = trajectory.reward.shape[0]
    fault, t = trajectory_fault(trajectory.observation, trajectory.final_observation,
                                trajectory.reward, check_observations=check_observations)
    env_fault = fault != 0
    loss_bad = learned & ~(jnp.isfinite(update_metrics["loss"])
                           & jnp.isfinite(update_metrics["grad_norm"]))
    fault = jnp.where(env_fault, fault, jnp.where(loss_bad, 3, 0))
    step = jnp.where(env_fault, runner.env_steps + t * num_envs, env_steps)
    first = runner.fault == 0
    return (jnp.where(first, fault, runner.fault).astype(jnp.int32),
            jnp.where(first & (fault != 0), step, runner.fault_step).astype(jnp.int32))


def record_episodes(recent_returns: jax.Array, recent_lengths: jax.Array,
                    episodes_finished: jax.Array, done: jax.Array, episode_return: jax.Array,
                    episode_length: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The last 100 finished episodes' returns and lengths, with those of a rollout.

    `recent_returns`, `recent_lengths`: `[100]` rings; `episodes_finished`: `[]` int32,
    every episode counted so far; `done`, `episode_return`, `episode_length`: `[B, T]`
    of the rollout. Episodes enter in its row-major `[B, T]` order; returns the two
    rings and the new count. The compiled loop calls it traced, the host backend jitted.
    """
    done = done.reshape(-1)
    rank = jnp.cumsum(done) - 1  # among this rollout's finished episodes
    total = jnp.sum(done)
    keep = done & (rank >= total - RECENT)  # at most one write per slot
    slot = jnp.where(keep, (episodes_finished + rank) % RECENT, RECENT)

    def put(ring, values):
        return ring.at[slot].set(values.reshape(-1).astype(ring.dtype), mode="drop")

    return (put(recent_returns, episode_return), put(recent_lengths, episode_length),
            episodes_finished + total.astype(jnp.int32))


def search_statistics(search_policy: jax.Array, root_value: jax.Array
                      ) -> dict[str, jax.Array]:
    """Mean root value and mean entropy (nats) of the search policy over a rollout:
    `search_policy` `[B, T, A]`, `root_value` `[B, T]`; `[]` float32 each."""
    entropy = -jnp.sum(jnp.where(search_policy > 0, search_policy * jnp.log(
        jnp.maximum(search_policy, 1e-30)), 0.0), axis=-1)
    return {"root_value": jnp.mean(root_value), "policy_entropy": jnp.mean(entropy)}
