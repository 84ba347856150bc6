"""Replay: a device-resident ring buffer of self-play streams, sampled inside jit.

The buffer keeps the B self-play streams side by side, `[B, L]` positions each
(L = replay_capacity // B), in the row layout of `selfplay.Trajectory`. A
sample is a window of W = K + n + 1 consecutive positions of one stream, so that
K unrolled steps and their n-step value targets can be read from it; episode
boundaries inside a window are left to `targets`, which knows how to treat a
termination (absorbing) and a truncation (bootstrap, then mask).

Every position also has a priority: new positions get the
largest priority in the buffer, and the learner writes back |v - z| for the
windows it trained on (`update_priorities`). `sample` draws window starts with
probability P(i) = p_i^alpha / sum_j p_j^alpha over the valid starts (uniformly
when alpha = 0) and returns importance weights (N P(i))^-beta normalised by the
batch's largest.

Observations leave the buffer only through `observations`. Image observations
with a history (Atari) are stored as single uint8 frames, one per position, so
that replay holds each frame once; `observations` rebuilds the stacks of the
last H frames and actions of any position when they are read, cut at episode
starts exactly as self-play's `history.push` cuts them.

Where a time limit cut an episode, the value target bootstraps from the value of
the observation the episode was cut on, which is no position's observation (the
next row is the next episode's first). A small ring per stream keeps those final
observations, tagged with the logical position of their row: L positions hold at
most L // max_episode_steps + 1 truncations, so M = L // max_episode_steps + 2
slots never overwrite one still held. `final_observations` reads them back
(with a history: as the stack self-play would have pushed), so that the target
network or Reanalyze can give a fresh value there as everywhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import chex
import jax
import jax.numpy as jnp

from muzero_jax import history
from muzero_jax.envs import to_float
from muzero_jax.selfplay import Trajectory

# The core fields of a Trajectory that replay stores (episode statistics are not);
# the extensions' fields (`Trajectory.extra`) are stored beside them by name.
_STORED = ("observation", "action", "reward", "terminated", "truncated",
           "search_policy", "root_value", "final_value")


@chex.dataclass(frozen=True)
class ValueCache:
    """The target network's value of every position (`target_cache`), kept beside them.

    value: `[B, L]` float32, by slot. count: `[]` int32, the buffer's `count` when the
    values were last brought up to date: positions written since have none yet.
    target_step: `[]` int32, the learner step whose parameters the target network copied
      when the values were computed (-1: none yet).
    """

    value: chex.Array
    count: chex.Array
    target_step: chex.Array


@chex.dataclass(frozen=True)
class ReplayBuffer:
    """B streams of L positions each; per-position field shapes are `[B, L, ...]`.

    observation: `[B, L, *obs_shape]`; action: `[B, L]` int32; reward,
    root_value, final_value: `[B, L]` float32; terminated, truncated: `[B, L]`
    bool; search_policy: `[B, L, A]`; priority: `[B, L]` float32.
    final_observation: `[B, M, *obs_shape]`, a ring of the observations truncated
      episodes ended on (see the module docstring).
    final_position: `[B, M]` int32, the logical position (count at writing + row)
      of the truncated row each ring slot belongs to; -1 for none.
    final_count: `[B]` int32, final observations written per stream (the ring's
      head is final_count % M).
    count: `[]` int32, positions written per stream since the start (the write
      head is count % L).
    max_priority: `[]` float32, the priority new positions get.
    extra: name -> `[B, L, ...]`, the extensions' fields (`Trajectory.extra`).
    value_cache: the target network's values of the positions (`ValueCache`), where the
      learner keeps them (`target_cache`); None otherwise. Derived from the rest, so
      checkpoints leave it out.
    """

    observation: chex.Array
    action: chex.Array
    reward: chex.Array
    terminated: chex.Array
    truncated: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    final_value: chex.Array
    priority: chex.Array
    final_observation: chex.Array
    final_position: chex.Array
    final_count: chex.Array
    count: chex.Array
    max_priority: chex.Array
    extra: dict[str, chex.Array] = dataclasses.field(default_factory=dict)
    value_cache: ValueCache | None = None

    @property
    def num_streams(self) -> int:
        return self.action.shape[0]

    @property
    def length(self) -> int:
        return self.action.shape[1]


@chex.dataclass(frozen=True)
class Window:
    """A batch of N windows of W consecutive positions.

    observation: `[N, *obs_shape]` float32, the observation at the window's first
      position (with a history: its stack of frames and action planes).
    action, reward, terminated, truncated, root_value, final_value: `[N, W]`.
    search_policy: `[N, W, A]`.
    stream: `[N]` int32 and position: `[N]` int32, where the first position lives
      (for writing priorities back).
    weight: `[N]` float32 importance weight (1 under uniform sampling).
    extra: name -> `[N, W, ...]`, the extensions' fields (`ReplayBuffer.extra`).
    """

    observation: chex.Array
    action: chex.Array
    reward: chex.Array
    terminated: chex.Array
    truncated: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    final_value: chex.Array
    stream: chex.Array
    position: chex.Array
    weight: chex.Array
    extra: dict[str, chex.Array] = dataclasses.field(default_factory=dict)


def final_slots(length: int, max_episode_steps: int | None) -> int:
    """M: final observations a stream of `length` positions can hold at once, plus one.

    A truncation needs max_episode_steps steps of its episode, so `length`
    consecutive positions hold at most length // max_episode_steps + 1 of them.
    Without a known time limit every position could be one (M = length).
    """
    if max_episode_steps is None:
        return length
    return min(length // max_episode_steps + 2, length)


def init(num_streams: int, length: int, observation_shape: tuple[int, ...],
         num_actions: int, observation_dtype=jnp.float32, *,
         max_episode_steps: int | None = None,
         extra_fields: Mapping[str, jax.ShapeDtypeStruct] | None = None) -> ReplayBuffer:
    """An empty buffer of `num_streams` x `length` positions.

    `max_episode_steps` sizes the ring of final observations (`final_slots`);
    `extra_fields` (`extensions.fields`) are the extensions' fields each position
    keeps, name -> shape after `[B, L]` and dtype, which `add` then requires.
    """
    shape = (num_streams, length)
    ring = (num_streams, final_slots(length, max_episode_steps))
    return ReplayBuffer(
        observation=jnp.zeros(shape + tuple(observation_shape), observation_dtype),
        action=jnp.zeros(shape, jnp.int32),
        reward=jnp.zeros(shape, jnp.float32),
        terminated=jnp.zeros(shape, bool),
        truncated=jnp.zeros(shape, bool),
        search_policy=jnp.zeros(shape + (num_actions,), jnp.float32),
        root_value=jnp.zeros(shape, jnp.float32),
        final_value=jnp.zeros(shape, jnp.float32),
        priority=jnp.zeros(shape, jnp.float32),
        final_observation=jnp.zeros(ring + tuple(observation_shape), observation_dtype),
        final_position=jnp.full(ring, -1, jnp.int32),
        final_count=jnp.zeros((num_streams,), jnp.int32),
        count=jnp.zeros((), jnp.int32),
        max_priority=jnp.ones((), jnp.float32),
        extra={name: jnp.zeros(shape + tuple(field.shape), field.dtype)
               for name, field in (extra_fields or {}).items()},
    )


def add(buffer: ReplayBuffer, trajectory: Trajectory) -> ReplayBuffer:
    """Appends a `[B, T]` trajectory to the B streams (T <= L), overwriting the oldest."""
    num_steps = trajectory.action.shape[1]
    if trajectory.action.shape[0] != buffer.num_streams:
        raise ValueError(f"trajectory has {trajectory.action.shape[0]} streams; the buffer "
                         f"holds {buffer.num_streams}")
    if num_steps > buffer.length:
        raise ValueError(f"trajectory has {num_steps} steps; the buffer holds only "
                         f"{buffer.length} per stream")
    if set(buffer.extra) != set(trajectory.extra):
        raise ValueError(f"the trajectory has extension fields {sorted(trajectory.extra)}; "
                         f"the buffer keeps {sorted(buffer.extra)}: make both from one "
                         f"config's extensions")
    slots = (buffer.count + jnp.arange(num_steps)) % buffer.length

    def write(stored, new):
        return stored.at[:, slots].set(new.astype(stored.dtype))

    updates = {name: write(getattr(buffer, name), getattr(trajectory, name))
               for name in _STORED}
    extra = {name: write(x, trajectory.extra[name]) for name, x in buffer.extra.items()}
    priority = buffer.priority.at[:, slots].set(buffer.max_priority)
    # Truncated rows take the next ring slots of their stream, in order; the other
    # rows are sent past the ring's end and dropped (static shapes, no branching).
    truncated = trajectory.truncated
    ring = buffer.final_position.shape[1]
    ring_slot = (buffer.final_count[:, None] + jnp.cumsum(truncated, axis=1) - 1) % ring
    ring_slot = jnp.where(truncated, ring_slot, ring)
    rows = jnp.arange(buffer.num_streams)[:, None]
    final_observation = buffer.final_observation.at[rows, ring_slot].set(
        trajectory.final_observation.astype(buffer.final_observation.dtype), mode="drop")
    final_position = buffer.final_position.at[rows, ring_slot].set(
        jnp.broadcast_to(buffer.count + jnp.arange(num_steps), truncated.shape), mode="drop")
    return buffer.replace(**updates, extra=extra, priority=priority,
                          final_observation=final_observation,
                          final_position=final_position,
                          final_count=buffer.final_count + jnp.sum(truncated, axis=1),
                          count=buffer.count + num_steps)


def _oldest_start(buffer: ReplayBuffer, history_length: int) -> jax.Array:
    """The oldest logical position whose stack is whole: its H predecessors are held.

    (A stack of H frames reaches H - 1 positions back for frames and H for the
    action that led to its oldest frame.)
    """
    if history_length == 0:
        return jnp.maximum(buffer.count - buffer.length, 0)
    # Until the buffer wraps, the stream's own start (logical 0) is an episode
    # start, so every position has all the history it ever had.
    wrapped = buffer.count > buffer.length
    return jnp.where(wrapped, buffer.count - buffer.length + history_length, 0)


def bytes_per_position(buffer: ReplayBuffer) -> int:
    """Bytes the buffer spends on each stored position (all `[B, L, ...]` fields).

    The ring of final observations comes on top: `final_slots` observations per stream.
    """
    per_position = ([getattr(buffer, name) for name in _STORED + ("priority",)]
                    + list(buffer.extra.values())
                    + ([buffer.value_cache.value] if buffer.value_cache is not None else []))
    return sum(x.dtype.itemsize * x[0, 0].size for x in per_position)


def num_windows(buffer: ReplayBuffer, window_length: int,
                history_length: int = 0) -> jax.Array:
    """How many window starts each stream offers now (0 until W positions exist)."""
    return jnp.maximum(
        buffer.count - window_length + 1 - _oldest_start(buffer, history_length), 0)


def observations(buffer: ReplayBuffer, stream: chex.Array, slots: chex.Array, *,
                 history_length: int = 0) -> jax.Array:
    """The observations h sees at some positions: `[N, P, *obs_shape]` float32 (frames in [0, 1]).

    Args:
      buffer: the replay buffer.
      stream: `[N]` int32 streams.
      slots: `[N, P]` int32 buffer slots (physical positions, `logical % L`) in
        those streams, each holding a written position.
      history_length: H; 0 returns the stored observations as they are. With
        H >= 1 each is the stack of the frames at the H positions up to and
        including the slot, with the actions that led to them (`history.planes`);
        frames and actions from before the position's episode, or no longer held,
        are left out (zero), so nothing leaks across episodes.
    """
    if history_length == 0:
        return to_float(buffer.observation[stream[:, None], slots])
    frames, actions = _stack_parts(buffer, stream, slots, history_length)
    return history.planes(frames, actions, buffer.search_policy.shape[-1])


def _stack_parts(buffer: ReplayBuffer, stream: chex.Array, slots: chex.Array,
                 history_length: int) -> tuple[jax.Array, jax.Array]:
    """`observations`' stacks before `history.planes`: frames `[N, P, H, *frame_shape]`
    (zeros where left out) and the actions that led to them `[N, P, H]`."""
    length = buffer.length
    logical = logical_positions(buffer, slots)  # [N, P]
    oldest = jnp.maximum(buffer.count - length, 0)
    # Positions logical - H .. logical: index j + 1 is frame j of the stack, index j
    # the row whose action led to it.
    offsets = jnp.arange(-history_length, 1)
    positions = logical[..., None] + offsets  # [N, P, H + 1]
    held = positions >= oldest
    stream3 = stream[:, None, None]
    phys = positions % length
    done = (buffer.terminated | buffer.truncated)[stream3, phys[..., :-1]] & held[..., :-1]
    # ended[j]: an episode ended at position index j or later (before the current one).
    ended = jnp.flip(jnp.cumsum(jnp.flip(done, -1), -1), -1) > 0  # [N, P, H]
    frame_ok = held[..., 1:] & jnp.concatenate(
        [ended[..., 1:] == 0, jnp.ones(ended.shape[:-1] + (1,), bool)], axis=-1)
    action_ok = frame_ok & held[..., :-1] & ~ended
    frames = buffer.observation[stream3, phys[..., 1:]]  # [N, P, H, *frame_shape]
    mask = frame_ok.reshape(frame_ok.shape + (1,) * (frames.ndim - frame_ok.ndim))
    frames = jnp.where(mask, frames, jnp.zeros((), frames.dtype))
    actions = jnp.where(action_ok, buffer.action[stream3, phys[..., :-1]], history.NO_ACTION)
    return frames, actions


def logical_positions(buffer: ReplayBuffer, slots: chex.Array) -> jax.Array:
    """The logical positions (writing order, from 0) that live in `slots` now (any shape)."""
    return buffer.count - 1 - (buffer.count - 1 - slots) % buffer.length


def final_observations(buffer: ReplayBuffer, stream: chex.Array, position: chex.Array, *,
                       history_length: int = 0) -> tuple[jax.Array, jax.Array]:
    """What h sees of the observations truncated episodes ended on.

    Args:
      buffer: the replay buffer.
      stream: `[N]` int32 streams.
      position: `[N]` int32 logical positions of truncated rows (`logical_positions`).
      history_length: H. With H >= 1 the observation is the stack self-play's
        `history.push` builds from the row's own stack and the final frame: the
        row's last H - 1 frames and the final frame, with the actions that led to
        them (the last being the row's action), cut at the episode's start.

    Returns:
      observation: `[N, *obs_shape]` float32 (zeros where there is none).
      found: `[N]` bool, whether the ring holds a final observation for the row
        (always, for a truncated row still held and a ring sized by `final_slots`).
    """
    match = buffer.final_position[stream] == position[:, None]  # [N, M]
    found = jnp.any(match, axis=1)
    frame = buffer.final_observation[stream, jnp.argmax(match, axis=1)]
    if history_length == 0:
        return to_float(frame), found
    slot = position % buffer.length
    frames, actions = _stack_parts(buffer, stream, slot[:, None], history_length)
    frames = jnp.concatenate([frames[:, 0, 1:], frame[:, None]], axis=1)
    actions = jnp.concatenate([actions[:, 0, 1:], buffer.action[stream, slot][:, None]], axis=1)
    return history.planes(frames, actions, buffer.search_policy.shape[-1]), found


def window_slots(position: chex.Array, window_length: int, length: int) -> chex.Array:
    """`[N, W]` slots of windows starting at slot `position` (`[N]`) of L-slot streams."""
    return (position[:, None] + jnp.arange(window_length)) % length


def valid_starts(buffer: ReplayBuffer, window_length: int,
                 history_length: int = 0) -> jax.Array:
    """`[B, L]` bool: the slot starts a window whose W positions are all written and current
    (and, with a history of H frames, whose stack is whole: see `num_windows`)."""
    # The newest logical position in each slot (age 0 is the newest written); a
    # start needs W - 1 newer positions after it and must still be held.
    age = (buffer.count - 1 - jnp.arange(buffer.length)) % buffer.length
    logical = buffer.count - 1 - age
    valid = (age >= window_length - 1) & (logical >= _oldest_start(buffer, history_length))
    return jnp.broadcast_to(valid, (buffer.num_streams, buffer.length))


def sample(buffer: ReplayBuffer, key: chex.PRNGKey, batch_size: int, window_length: int,
           *, priority_alpha: float = 0.0, priority_beta: chex.Numeric = 1.0,
           history_length: int = 0, axis_name: str | None = None) -> Window:
    """Samples `batch_size` windows, uniformly (alpha = 0) or by priority.

    A start is valid when all W positions of its window are written and none has
    been overwritten (nor, with a history of H frames, the H positions before it,
    once the buffer has wrapped). With alpha > 0 start i is drawn with probability
    P(i) = p_i^alpha / sum_j p_j^alpha over the valid starts, and its importance
    weight is (N P(i))^-beta (N valid starts) divided by the largest in the batch.
    Call only once `num_windows(buffer, W, H) > 0`.

    Args:
      buffer: the replay buffer.
      key: PRNG key (consumed).
      batch_size: N windows (static).
      window_length: W (static).
      priority_alpha: the priority exponent (static; 0 samples uniformly).
      priority_beta: the importance-weight exponent (may be traced).
      history_length: H, frames per observation stack (0: observations stored whole).
      axis_name: inside `shard_map` over a data axis (`muzero_jax.distributed`), its
        name: `buffer` is this shard's streams and the `batch_size` windows come from
        them alone. Each shard draws the same count, so under priorities start i is
        drawn with probability P(i) / D within its shard's distribution (D shards); its
        weight uses that probability and the count N of valid starts over all shards
        (a `psum`), and is normalised by the largest weight of the whole batch (a
        `pmax`), so that D shards of N/D windows weigh as one batch does.

    Returns:
      A `Window` batch (`stream` indexes the shard's own streams).
    """
    if priority_alpha == 0:
        stream, position, weight = _sample_uniform(buffer, key, batch_size, window_length,
                                                   history_length)
    else:
        stream, position, weight = _sample_prioritised(
            buffer, key, batch_size, window_length, priority_alpha, priority_beta,
            history_length, axis_name)
    slots = window_slots(position, window_length, buffer.length)  # [N, W]
    rows = stream[:, None]

    def take(x):
        return x[rows, slots]

    return Window(
        observation=observations(buffer, stream, slots[:, :1],
                                 history_length=history_length)[:, 0],
        action=take(buffer.action),
        reward=take(buffer.reward),
        terminated=take(buffer.terminated),
        truncated=take(buffer.truncated),
        search_policy=take(buffer.search_policy),
        root_value=take(buffer.root_value),
        final_value=take(buffer.final_value),
        stream=stream,
        position=position,
        weight=weight,
        extra={name: take(x) for name, x in buffer.extra.items()},
    )


def _sample_uniform(buffer, key, batch_size, window_length, history_length):
    stream_key, start_key = jax.random.split(key)
    stream = jax.random.randint(stream_key, (batch_size,), 0, buffer.num_streams)
    oldest = _oldest_start(buffer, history_length)
    offset = jax.random.randint(
        start_key, (batch_size,), 0,
        jnp.maximum(num_windows(buffer, window_length, history_length), 1))
    position = (oldest + offset) % buffer.length
    return stream, position, jnp.ones((batch_size,), jnp.float32)


def _sample_prioritised(buffer, key, batch_size, window_length, alpha, beta, history_length,
                        axis_name=None):
    valid = valid_starts(buffer, window_length, history_length)
    mass = jnp.where(valid, buffer.priority ** alpha, 0.0).reshape(-1)
    # Inverse-CDF sampling: the first slot whose cumulative mass exceeds u. A slot of
    # zero mass never exceeds its predecessor, so it cannot be drawn; u is kept below
    # the total so the search never runs off the end.
    cdf = jnp.cumsum(mass)
    total = cdf[-1]
    u = jax.random.uniform(key, (batch_size,)) * total
    u = jnp.minimum(u, jnp.nextafter(total, jnp.float32(0.0)))
    flat = jnp.searchsorted(cdf, u, side="right")
    # Guard against rounding in a parallel cumsum: never return an empty slot.
    flat = jnp.where(mass[flat] > 0, flat, jnp.argmax(mass))
    stream, position = jnp.divmod(flat, buffer.length)
    probability = mass[flat] / total
    num_valid = jnp.sum(valid)
    if axis_name is not None:
        probability = probability / jax.lax.axis_size(axis_name)
        num_valid = jax.lax.psum(num_valid, axis_name)
    weight = (num_valid * probability) ** -beta
    largest = jnp.max(weight)
    if axis_name is not None:
        largest = jax.lax.pmax(largest, axis_name)
    return (stream.astype(jnp.int32), position.astype(jnp.int32),
            (weight / largest).astype(jnp.float32))


def update_priorities(buffer: ReplayBuffer, stream: chex.Array, position: chex.Array,
                      priority: chex.Array, *, axis_name: str | None = None) -> ReplayBuffer:
    """Writes `[N]` priorities at the `[N]` (stream, slot) positions sampled.

    Where a position was sampled twice, one of its new priorities is kept. New
    positions are then added at the largest priority now in the buffer (with
    `axis_name`, as `sample`'s: in the buffer of every shard).
    """
    updated = buffer.priority.at[stream, position].set(priority.astype(jnp.float32))
    largest = jnp.max(updated)
    if axis_name is not None:
        largest = jax.lax.pmax(largest, axis_name)
    return buffer.replace(priority=updated, max_priority=largest)
