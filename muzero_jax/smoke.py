"""Smoke mode: `MUZERO_JAX_SMOKE=1` shrinks every training run to a budget of seconds.

So that a documented command can be run as a user types it and checked (the docs'
own test does so), without waiting for the run it describes. `train.train` and the
experiment scripts apply `shrink` to the config before anything is built; the shapes
that decide what compiles (the network, the env, the window) stay as configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from muzero_jax import config as config_lib
from muzero_jax.config import Config

ENV_VAR = "MUZERO_JAX_SMOKE"

# The most of each that a smoke run keeps (fewer when the config asks for fewer).
NUM_ENVS = 4
NUM_SIMULATIONS = 4
BATCH_SIZE = 16
UPDATES_PER_ITERATION = 2
EVAL_EPISODES = 2
ITERATIONS_LEARNING = 2  # iterations that make updates (replay ready at the first one)


def _multiple(value: int, of: int) -> int:
    """The least multiple of `of` that is at least `value`."""
    return -(-value // of) * of


def _device_count() -> int:
    import jax

    return jax.device_count()


def enabled() -> bool:
    """Whether `MUZERO_JAX_SMOKE` is set to anything but empty or 0."""
    return os.environ.get(ENV_VAR, "").strip() not in ("", "0")


def shrink(config: Config, *, log: Callable[[str], None] | None = print) -> Config:
    """`config` with a budget of seconds when smoke mode is on, else `config` itself.

    At most `NUM_ENVS` envs and batches of `BATCH_SIZE` (rounded up to a multiple of
    the devices they are split over), `NUM_SIMULATIONS` simulations,
    `UPDATES_PER_ITERATION` updates an iteration, `EVAL_EPISODES` episodes per
    evaluation and final evaluation, replay ready after the first iteration (as far as
    its window allows) and large enough to hold the whole run, progress every iteration,
    and env steps for `ITERATIONS_LEARNING` learning iterations. Idempotent; says so on
    `log` when it changed something.
    """
    if not enabled():
        return config
    acting, learner, run = config.acting, config.learner, config.run
    # Totals stay multiples of the device count they are split over.
    devices = run.num_devices if run.num_devices > 0 else _device_count()
    num_envs = min(acting.num_envs, _multiple(NUM_ENVS, devices))
    per_iteration = num_envs * acting.rollout_length
    small = config.replace(
        num_envs=num_envs,
        num_simulations=min(config.search.num_simulations, NUM_SIMULATIONS),
        batch_size=min(learner.batch_size, _multiple(BATCH_SIZE, devices)),
        updates_per_iteration=min(learner.updates_per_iteration, UPDATES_PER_ITERATION),
        min_size=min(config.replay.min_size, per_iteration),
        eval_episodes=min(run.eval_episodes, EVAL_EPISODES),
        final_eval_episodes=min(run.final_eval_episodes, EVAL_EPISODES),
        log_every=1)
    first = config_lib.first_update_iteration(small)
    budget = (first + ITERATIONS_LEARNING - 1) * per_iteration
    # Replay holds the whole smoke run (it never wraps), and no more than that: a paper
    # config's buffer of a million frames would not fit in memory.
    room = max(budget + per_iteration, num_envs * 2 * config.loss.window_length)
    small = small.replace(capacity=min(config.replay.capacity, room),
                          total_env_steps=min(run.total_env_steps, budget))
    if small != config and log is not None:
        log(f"smoke mode ({ENV_VAR}={os.environ[ENV_VAR]}): {small.run.total_env_steps} "
            f"env steps, {small.acting.num_envs} envs, {small.search.num_simulations} "
            f"simulations, {small.run.final_eval_episodes} evaluation episodes; a check "
            "of the command, not a result")
    return small
