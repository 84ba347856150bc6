"""The batch pipeline and the learner's update, built once as pure functions.

    sample       windows from replay, by priority or uniformly    (replay.sample)
    Reanalyze    fresh bootstrap values and policies for a share   (reanalyze.reanalyze)
    outcomes     two-player games: each position's game result     (targets.game_outcomes)
    targets      value, reward and policy targets, + extensions'   (targets.window_targets)
    -> Batch

    update       U x (batch -> learner step -> priorities -> target network), one lax.scan

`make_sample_batch` and `make_update` take only the stage configs and pieces they use
and return functions of (state, buffer, key, axis_name=None): jit them, or call them
inside a compiled loop or `shard_map`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

from muzero_jax import extensions as extensions_lib
from muzero_jax import reanalyze, replay, target_cache
from muzero_jax.config import LearnerConfig, LossConfig, ReplayConfig
from muzero_jax.learner import Batch, TrainState
from muzero_jax.networks import Model, Params
from muzero_jax.replay import ReplayBuffer, Window
from muzero_jax.targets import (
    corrected_td_steps,
    game_outcomes,
    value_prefix_targets,
    window_masks,
    window_targets,
)

# (params, key, obs [M, *obs_shape]) -> [M, A] greedy search policies, for Reanalyze.
SearchPolicyFn = Callable[[Params, chex.PRNGKey, chex.Array], chex.Array]
SampleBatchFn = Callable[..., tuple[Batch, Window, dict]]
UpdateFn = Callable[..., tuple[TrainState, ReplayBuffer, dict]]
# (state, batch, axis_name=) -> (state, metrics, [N] |v - z|): `Learner.step`.
LearnerStepFn = Callable[..., tuple[TrainState, dict, jax.Array]]


def priority_beta(replay_config: ReplayConfig, step: chex.Array) -> jax.Array:
    """The importance-weight exponent at learner `step`, annealed linearly to 1."""
    beta, anneal = replay_config.priority_beta, replay_config.priority_beta_anneal_steps
    if anneal == 0:
        return jnp.float32(beta)
    return beta + (1.0 - beta) * jnp.minimum(step / anneal, 1.0)


def ready_to_learn(buffer: ReplayBuffer, *, min_size: int, window_length: int,
                   history_length: int = 0) -> jax.Array:
    """`[]` bool: replay holds `min_size` positions and a full window per stream (traceable)."""
    return ((buffer.count * buffer.num_streams >= min_size)
            & (replay.num_windows(buffer, window_length, history_length) > 0))


def make_sample_batch(*, replay_config: ReplayConfig, loss: LossConfig,
                      learner: LearnerConfig, model: Model, search_policy: SearchPolicyFn,
                      two_player: bool, history_length: int = 0,
                      extensions: tuple[extensions_lib.Extension, ...] = ()) -> SampleBatchFn:
    """sample -> Reanalyze -> outcomes -> targets, as one pure function.

    Args:
      replay_config: sampling (priorities, beta) and Reanalyze's shares.
      loss: K, n and gamma of the targets.
      learner: the batch size, and whether a target network gives bootstrap values.
      model: gives Reanalyze's fresh values.
      search_policy: gives Reanalyze's fresh policies.
      two_player: value targets are game outcomes (plies alternate, discount -1).
      history_length: H, frames per observation stack.
      extensions: the active extensions, whose targets join the batch's.

    Returns:
      `sample_batch(state, buffer, key, axis_name=None) -> (Batch, Window, stats)`:
      `state` (a `TrainState`, or None when neither Reanalyze nor a target network
      needs parameters) gives beta's step and the fresh values' parameters; with
      `axis_name` (inside `shard_map` over a data axis) `buffer` is the shard's and the
      batch its share (`replay.sample`). `stats`: Reanalyze's scalars. A buffer with a
      `ValueCache` gives the bootstrap values from it, which must be up to date
      (`target_cache.ensure`, as `make_update` does before each sample).
    """
    batch_size, unroll_steps = learner.batch_size, loss.unroll_steps
    num_reanalyzed, num_policies = replay_config.reanalyzed(batch_size)
    # A target network gives every window's bootstrap values (at time limits too);
    # Reanalyze alone refreshes its share with the latest parameters.
    num_values = batch_size if learner.use_target_network else num_reanalyzed

    def window_horizon(buffer, window, axis_name):
        # Age in env steps over all envs: the streams step in lock-step, so each newer
        # position of a stream stands for one step of every env (of every shard).
        num_envs = buffer.num_streams * (1 if axis_name is None
                                         else jax.lax.axis_size(axis_name))
        age = (buffer.count - 1 - replay.logical_positions(buffer, window.position)) * num_envs
        return corrected_td_steps(age, td_steps=loss.td_steps,
                                  correction_steps=loss.off_policy_correction_steps)

    def fresh(state, buffer, window, search_key, horizon):
        def value_fn(obs):
            params = state.params if state.target_params is None else state.target_params
            return model.initial_inference(params, obs).value

        def policy_fn(obs):
            return search_policy(state.params, search_key, obs)

        # A buffer that keeps the target network's values (`target_cache`) gives the
        # bootstrap rows from them: `update` brought them up to date before sampling.
        stored = (None if buffer.value_cache is None or not learner.target_update_period
                  else functools.partial(target_cache.lookup, buffer))
        return reanalyze.reanalyze(
            buffer, window, value_fn=value_fn, policy_fn=policy_fn, num_values=num_values,
            num_policies=num_policies, td_steps=loss.td_steps, unroll_steps=unroll_steps,
            history_length=history_length, horizon=horizon, stored_value_fn=stored)

    def sample_batch(state, buffer, key, axis_name=None):
        # Split only when a search needs a key: one key serves the sampling otherwise.
        sample_key, search_key = jax.random.split(key) if num_policies else (key, None)
        beta = (priority_beta(replay_config, state.step) if state is not None
                else replay_config.priority_beta)
        window = replay.sample(buffer, sample_key, batch_size, loss.window_length,
                               priority_alpha=replay_config.priority_alpha,
                               priority_beta=beta, history_length=history_length,
                               axis_name=axis_name)
        bootstrap, policy, stats = None, window.search_policy, {}
        horizon = (window_horizon(buffer, window, axis_name)
                   if loss.off_policy_correction_steps else None)
        if num_values:
            bootstrap, final_value, policy, stats = fresh(state, buffer, window, search_key,
                                                          horizon)
            window = window.replace(final_value=final_value)
        outcome = None
        if two_player:
            rows = window.stream
            outcome = game_outcomes(
                buffer.reward[rows], buffer.terminated[rows], buffer.truncated[rows],
                buffer.count, replay.window_slots(window.position, unroll_steps + 1,
                                                  buffer.length), discount=-1.0)
        targets = window_targets(window.replace(search_policy=policy), discount=loss.discount,
                                 td_steps=loss.td_steps, unroll_steps=unroll_steps,
                                 bootstrap_value=bootstrap, outcome=outcome, horizon=horizon)
        if model.value_prefix:
            targets = targets.replace(reward=value_prefix_targets(
                targets.reward, model.network_config.lstm_horizon_len))
        if horizon is not None:
            stats = dict(stats, td_steps_mean=jnp.mean(horizon.astype(jnp.float32)))
        if extensions:
            past_end, past_truncation = window_masks(window, unroll_steps)
            targets = targets.replace(extra=extensions_lib.targets(
                extensions, buffer, window, past_end, past_truncation, unroll_steps))
        batch = Batch(observation=window.observation, targets=targets, weight=window.weight)
        return batch, window, stats

    return sample_batch


def make_update(sample_batch: SampleBatchFn, learner_step: LearnerStepFn, *,
                replay_config: ReplayConfig, updates_per_iteration: int,
                ensure_cache: Callable[[TrainState, ReplayBuffer], ReplayBuffer] | None = None
                ) -> UpdateFn:
    """U = `updates_per_iteration` learner steps in one `lax.scan`, as one pure function.

    Each step brings a buffer's `ValueCache` up to date (`ensure_cache`, where given),
    samples a batch (`sample_batch`), takes `learner_step` on it, writes the fresh
    priorities |v - z| + priority_epsilon back (when priority_alpha > 0) and updates
    the target network (inside the learner's step).

    Returns:
      `update(state, buffer, key, axis_name=None) -> (state, buffer, metrics)`: metrics
      are means over the steps, except `priority_max` (the max) and
      `importance_weight_min` (the min). With `axis_name` (inside `shard_map` over a data
      axis), `buffer` holds the shard's streams and each step samples the shard's part
      of the batch from them; gradients and metrics are averaged over the shards, and
      every shard ends with the same `state`.
    """

    def step(carry, key, axis_name):
        state, buffer = carry
        if ensure_cache is not None and buffer.value_cache is not None:
            buffer = ensure_cache(state, buffer)
        batch, window, stats = sample_batch(state, buffer, key, axis_name)
        state, metrics, priority = learner_step(state, batch, axis_name=axis_name)
        # A zero priority would never be sampled again.
        priority = priority + replay_config.priority_epsilon
        if replay_config.priority_alpha > 0:
            buffer = replay.update_priorities(buffer, window.stream, window.position,
                                              priority, axis_name=axis_name)
        metrics = dict(metrics, **stats, priority_mean=jnp.mean(priority),
                       priority_max=jnp.max(priority),
                       importance_weight_min=jnp.min(window.weight),
                       importance_weight_mean=jnp.mean(window.weight))
        return (state, buffer), metrics

    def update(state, buffer, key, axis_name=None):
        keys = jax.random.split(key, updates_per_iteration)
        (state, buffer), metrics = jax.lax.scan(
            lambda carry, k: step(carry, k, axis_name), (state, buffer), keys)
        reduce = {"priority_max": jnp.max, "importance_weight_min": jnp.min}
        metrics = {k: reduce.get(k, jnp.mean)(v) for k, v in metrics.items()}
        if axis_name is not None:
            across = {"priority_max": jax.lax.pmax, "importance_weight_min": jax.lax.pmin}
            metrics = {k: across.get(k, jax.lax.pmean)(v, axis_name)
                       for k, v in metrics.items()}
        return state, buffer, metrics

    return update


__all__ = ["make_sample_batch", "make_update", "priority_beta", "ready_to_learn"]
