"""MuZero Reanalyze (SPEC.md): fresh targets for positions already in replay.

Stored targets age: the search policy and root value were computed by the
parameters that acted, possibly thousands of updates ago. Reanalyze recomputes
them for the first windows of a sampled batch (the batch is drawn i.i.d., so the
first windows are a random share of it):

- bootstrap values: for `num_values` windows, the value v_{t+k+n} in each n-step
  target z_{t+k} (k = 0..K) becomes `value_fn` of the stored observation there,
  i.e. the (target) network's fresh value;
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
import jax.numpy as jnp

from muzero_jax import replay
from muzero_jax.replay import ReplayBuffer, Window

ValueFn = Callable[[chex.Array], chex.Array]  # obs [M, *obs_shape] -> values [M]
PolicyFn = Callable[[chex.Array], chex.Array]  # obs [M, *obs_shape] -> policies [M, A]


def reanalyze(buffer: ReplayBuffer, window: Window, *, value_fn: ValueFn | None,
              policy_fn: PolicyFn | None, num_values: int, num_policies: int,
              td_steps: int, unroll_steps: int,
              history_length: int = 0) -> tuple[chex.Array, chex.Array, dict]:
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

    Returns:
      bootstrap_value: `[N, W]`, window.root_value with rows n..n+K of the first
        num_values windows replaced.
      search_policy: `[N, W, A]`, window.search_policy with rows 0..K of the first
        num_policies windows replaced.
      stats: scalars `reanalyze_value_change` (mean |fresh - stored| value) and
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
    policy = window.search_policy
    stats = {}
    if num_values:
        m = num_values
        obs = replay.observations(buffer, window.stream[:m], slots[:m, n:n + k1],
                                  history_length=history_length)
        fresh = value_fn(obs.reshape((m * k1,) + obs.shape[2:])).reshape(m, k1)
        stats["reanalyze_value_change"] = jnp.mean(jnp.abs(fresh - bootstrap[:m, n:n + k1]))
        bootstrap = bootstrap.at[:m, n:n + k1].set(fresh)
    if num_policies:
        m = num_policies
        obs = replay.observations(buffer, window.stream[:m], slots[:m, :k1],
                                  history_length=history_length)
        fresh = policy_fn(obs.reshape((m * k1,) + obs.shape[2:])).reshape(
            (m, k1) + policy.shape[2:])
        stats["reanalyze_policy_change"] = jnp.mean(
            0.5 * jnp.sum(jnp.abs(fresh - policy[:m, :k1]), axis=-1))
        policy = policy.at[:m, :k1].set(fresh.astype(policy.dtype))
    return bootstrap, policy, stats
