"""The target network's value of every replay position, computed once per target copy.

A target network copied every P learner steps (`LearnerConfig.target_update_period`)
gives the bootstrap value of every n-step target: v(o) = f(h(o)) under its parameters,
at K + 1 rows of each of the N windows of every step (768 network calls a step in the
`minatar` preset, most of its learner's time on a CPU). Those parameters stay the same
for P steps, and so does each position's value. Computed once per position and per copy
instead, they cost:

- at a copy, every position replay holds: capacity / P calls a step, amortised;
- at the first step after self-play added positions, those positions.

`pays` says where that is fewer calls than the windows' own; there `pieces` gives the
buffer a `replay.ValueCache`, `ensure` brings it up to date before every sample, and
`batch.make_sample_batch` reads the bootstrap values from it. Each value is the same
function of the same parameters and observation either way, so the targets are the
same (to float rounding).

`ensure` visits the positions to compute in chunks of one iteration's positions, in a
`lax.while_loop` whose trip count is 0, the new positions' or the whole buffer's: a
branch over the chunk count rather than a `lax.cond`, so that it stays cheap under
`vmap` (runs side by side), where a `lax.cond` on a per-run predicate computes both
branches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import chex
import jax
import jax.numpy as jnp

from muzero_jax import replay
from muzero_jax.config import Config
from muzero_jax.replay import ReplayBuffer, ValueCache

if TYPE_CHECKING:
    from muzero_jax.learner import TrainState
    from muzero_jax.networks import Model

ValueFn = Callable[[chex.Array], chex.Array]  # obs [M, *obs_shape] -> values [M]


def calls_per_step(config: Config) -> tuple[float, float]:
    """(with the cache, without): target-network calls per learner step, the cache's
    amortised over a target period and an iteration."""
    learner = config.learner
    without = learner.batch_size * (config.loss.unroll_steps + 1)
    # No copied target (none, or an average: the config allows a period only without one).
    if not learner.target_update_period:
        return float("inf"), float(without)
    streams = config.acting.num_envs
    chunk = streams * config.acting.rollout_length  # `make_ensure`'s: one iteration's
    chunks_held = -(-streams * config.replay_length // chunk)
    with_cache = (chunks_held * chunk / learner.target_update_period
                  + chunk / learner.updates_per_iteration)
    return with_cache, float(without)


def pays(config: Config) -> bool:
    """Whether the cache makes fewer target-network calls than the windows' own: a
    target network copied every P steps (not an average, which moves every step)."""
    with_cache, without = calls_per_step(config)
    return with_cache < without


def init(num_streams: int, length: int) -> ValueCache:
    """An empty cache, for a buffer of `num_streams` x `length` positions."""
    return ValueCache(value=jnp.zeros((num_streams, length), jnp.float32),
                      count=jnp.zeros((), jnp.int32), target_step=jnp.full((), -1, jnp.int32))


def copied_at(step: chex.Array, period: int) -> jax.Array:
    """The learner step whose parameters the target network holds at `step`
    (`optax.periodic_update` copies at every multiple of `period`, and at 0)."""
    return (step // period) * period


def ensure(buffer: ReplayBuffer, value_fn: ValueFn, target_step: chex.Array, *,
           chunk: int, history_length: int = 0) -> ReplayBuffer:
    """`buffer` with its cache holding `value_fn`'s value of every position it holds.

    Args:
      buffer: a buffer with a `ValueCache`.
      value_fn: the target network's value of a batch of observations `[chunk, ...]`.
      target_step: `[]` the learner step the target network copied (`copied_at`).
      chunk: positions per `value_fn` call (static).
      history_length: H, frames per observation stack (`replay.observations`).

    The values are computed again for every position when the target has changed
    since (or the cache has never been filled, or more positions were written than
    the buffer holds), for the positions written since otherwise, and not at all when
    nothing changed.
    """
    cache = buffer.value_cache
    streams, length = buffer.num_streams, buffer.length
    new = jnp.minimum(buffer.count - cache.count, length)
    ages = jnp.where(cache.target_step == target_step, new, length)
    num_chunks = (ages * streams + chunk - 1) // chunk
    # Flat index j is the position of age j // B (0: the newest) in stream j % B, so the
    # first chunks hold the newest positions. Ages past what was written wrap into
    # slots never sampled, whose values are never read.
    index = jnp.arange(chunk)

    def body(i, value):
        flat = i * chunk + index
        age, stream = flat // streams, flat % streams
        slot = (buffer.count - 1 - age) % length
        obs = replay.observations(buffer, stream, slot[:, None],
                                  history_length=history_length)[:, 0]
        # Beyond the buffer's positions (the last chunk's tail): dropped.
        return value.at[jnp.where(age < length, stream, streams), slot].set(
            value_fn(obs).astype(value.dtype), mode="drop")

    value = jax.lax.fori_loop(0, num_chunks, body, cache.value)
    return buffer.replace(value_cache=ValueCache(value=value, count=buffer.count,
                                                 target_step=jnp.asarray(target_step,
                                                                         jnp.int32)))


def make_ensure(model: Model, config: Config
                ) -> Callable[[TrainState, ReplayBuffer], ReplayBuffer] | None:
    """`ensure` for a learner state: `ensure_cache(state, buffer) -> buffer`, the values
    of `state`'s target network (`batch.make_update` calls it before each sample); None
    without a target network copied every `target_update_period` steps, whose values
    no cache can hold."""
    period, rollout_length = config.learner.target_update_period, config.acting.rollout_length
    if not period:
        return None

    def ensure_cache(state: TrainState, buffer: ReplayBuffer) -> ReplayBuffer:
        def value_fn(obs):
            return model.initial_inference(state.target_params, obs).value

        return ensure(buffer, value_fn, copied_at(state.step, period),
                      chunk=buffer.num_streams * rollout_length,
                      history_length=config.env.history_length)

    return ensure_cache


def lookup(buffer: ReplayBuffer, stream: chex.Array, slots: chex.Array) -> jax.Array:
    """The cached values at `slots` `[N, P]` of `stream` `[N]`: `[N, P]`."""
    return buffer.value_cache.value[stream[:, None], slots]


__all__ = ["calls_per_step", "copied_at", "ensure", "init", "lookup", "make_ensure", "pays"]
