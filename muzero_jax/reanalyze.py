"""MuZero Reanalyze: fresh targets for positions already in replay.

Stored targets age: the search policy and root value were computed by the
parameters that acted, possibly thousands of updates ago. Reanalyze recomputes
them for the first windows of a sampled batch (the batch is drawn i.i.d., so the
first windows are a random share of it):

- bootstrap values: for `num_values` windows, the value v_{t+k+n} in each n-step
  target z_{t+k} (k = 0..K) becomes `value_fn` of the stored observation there,
  i.e. the (target) network's fresh value; and where the window's first episode
  end is a time limit, so does the value of the observation it ended on (kept by
  replay's ring of final observations), the bootstrap of every z reaching it;
- policies: for the first `num_policies` of those, the policy targets pi_{t+k}
  (k = 0..K) become `policy_fn` of the stored observations, i.e. a fresh search
  with the latest parameters.

Both functions see all their observations in one batch, so the search runs as
batched as in self-play. Rewards stay as observed; `targets.window_targets` then
builds z from the fresh values.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

from muzero_jax import replay
from muzero_jax.replay import ReplayBuffer, Window

ValueFn = Callable[[chex.Array], chex.Array]  # obs [M, *obs_shape] -> values [M]
PolicyFn = Callable[[chex.Array], chex.Array]  # obs [M, *obs_shape] -> policies [M, A]
# (stream [M], slots [M, P]) -> [M, P] values of those positions, already computed
StoredValueFn = Callable[[chex.Array, chex.Array], chex.Array]


def reanalyze(buffer: ReplayBuffer, window: Window, *, value_fn: ValueFn | None,
              policy_fn: PolicyFn | None, num_values: int, num_policies: int,
              td_steps: int, unroll_steps: int, history_length: int = 0,
              horizon: chex.Array | None = None,
              stored_value_fn: StoredValueFn | None = None
              ) -> tuple[chex.Array, chex.Array, chex.Array, dict]:
    """Fresh bootstrap values and policy targets for the first windows of a batch.

    Args:
      buffer: the replay buffer the windows were sampled from.
      window: `[N, W]` windows, W = K + n + 1.
      value_fn: the fresh value of a batch of observations (None if num_values is 0).
      policy_fn: the fresh search policy of a batch of observations (None if
        num_policies is 0).
      num_values: windows 0..num_values-1 get fresh bootstrap values (static).
      num_policies: windows 0..num_policies-1 get fresh policy targets (static).
      td_steps, unroll_steps: n and K.
      history_length: H, frames per observation stack (`replay.observations`).
      horizon: optional `[N]` int32, each window's own n (`targets.corrected_td_steps`):
        the rows refreshed are then its n..n+K.
      stored_value_fn: optional, `value_fn`'s values of buffer positions computed
        before (`target_cache.lookup`): the bootstrap rows read them instead of calling
        `value_fn` (which still gives the values at truncations).

    Returns:
      bootstrap_value: `[N, W]`, window.root_value with rows n..n+K of the first
        num_values windows replaced.
      final_value: `[N, W]`, window.final_value with, in each of the first
        num_values windows whose first episode end is a truncation, the value at
        that row replaced (`value_fn` of the observation the episode ended on).
      search_policy: `[N, W, A]`, window.search_policy with rows 0..K of the first
        num_policies windows replaced.
      stats: scalars `reanalyze_value_change` (mean |fresh - stored| value),
        `reanalyze_final_value_change` (the same at truncations, 0 without one) and
        `reanalyze_policy_change` (mean total variation between fresh and stored
        policies), over the replaced entries.
    """
    n, k1 = td_steps, unroll_steps + 1
    num_windows, window_length = window.root_value.shape
    if not 0 <= num_policies <= num_values <= num_windows:
        raise ValueError(f"num_policies={num_policies}, num_values={num_values}: expected "
                         f"0 <= num_policies <= num_values <= batch size {num_windows}")
    if window_length < n + k1:
        raise ValueError(f"windows of {window_length} rows; n = {n}, K = {unroll_steps} "
                         f"need {n + k1}")
    slots = replay.window_slots(window.position, window_length, buffer.length)
    bootstrap = window.root_value
    final_value = window.final_value
    policy = window.search_policy
    stats = {}
    if num_values:
        m = num_values
        if horizon is None:
            rows = jnp.broadcast_to(n + jnp.arange(k1), (m, k1))
        else:
            rows = horizon[:m, None] + jnp.arange(k1)
        row_slots = jnp.take_along_axis(slots[:m], rows, axis=1)
        if stored_value_fn is not None:
            fresh = stored_value_fn(window.stream[:m], row_slots)
        else:
            obs = replay.observations(buffer, window.stream[:m], row_slots,
                                      history_length=history_length)
            fresh = value_fn(obs.reshape((m * k1,) + obs.shape[2:])).reshape(m, k1)
        stored = jnp.take_along_axis(bootstrap[:m], rows, axis=1)
        stats["reanalyze_value_change"] = jnp.mean(jnp.abs(fresh - stored))
        bootstrap = bootstrap.at[jnp.arange(m)[:, None], rows].set(fresh)
        final_value, stats["reanalyze_final_value_change"] = _fresh_final_values(
            buffer, window, m, value_fn, history_length)
    if num_policies:
        m = num_policies
        obs = replay.observations(buffer, window.stream[:m], slots[:m, :k1],
                                  history_length=history_length)
        fresh = policy_fn(obs.reshape((m * k1,) + obs.shape[2:])).reshape(
            (m, k1) + policy.shape[2:])
        stats["reanalyze_policy_change"] = jnp.mean(
            0.5 * jnp.sum(jnp.abs(fresh - policy[:m, :k1]), axis=-1))
        policy = policy.at[:m, :k1].set(fresh.astype(policy.dtype))
    return bootstrap, final_value, policy, stats


def _fresh_final_values(buffer, window, m, value_fn, history_length):
    """window.final_value with the first m windows' truncation values made fresh.

    Only a window's first episode end matters to its targets (past it, rows are
    absorbing or masked), so each window needs at most one final observation: m
    values, not m x W.
    """
    window_length = window.final_value.shape[1]
    done = window.terminated[:m] | window.truncated[:m]
    row = jnp.argmax(done, axis=1)  # the first end (0 when there is none)
    first_is_truncation = jnp.any(done, axis=1) & jnp.take_along_axis(
        window.truncated[:m], row[:, None], axis=1)[:, 0]
    stored = jnp.take_along_axis(window.final_value[:m], row[:, None], axis=1)[:, 0]

    def fresh():
        position = replay.logical_positions(buffer, window.position[:m]) + row
        obs, found = replay.final_observations(buffer, window.stream[:m], position,
                                               history_length=history_length)
        return jnp.where(first_is_truncation & found, value_fn(obs), stored)

    # Time limits are rare (Atari: one per 27,000 steps): skip the network when no
    # window reaches one.
    value = jax.lax.cond(jnp.any(first_is_truncation), fresh, lambda: stored)
    at_row = first_is_truncation[:, None] & (jnp.arange(window_length) == row[:, None])
    final_value = window.final_value.at[:m].set(
        jnp.where(at_row, value[:, None], window.final_value[:m]))
    change = (jnp.sum(jnp.abs(value - stored) * first_is_truncation)
              / jnp.maximum(jnp.sum(first_is_truncation), 1))
    return final_value, change
