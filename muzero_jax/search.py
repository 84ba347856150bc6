"""Search: the learned model plugged into DeepMind's mctx (SPEC.md, "Search").

`root_fn` is h then f; `recurrent_fn` is g then f, returning scalar reward and
value with the config's discount. `Searcher.__call__` runs `mctx.muzero_policy`
(PUCT, Dirichlet noise at the root, visit-count temperature) or
`mctx.gumbel_muzero_policy` (Gumbel top-k with sequential halving) on a batch of
observations. Exploration knobs (temperature, noise share, Gumbel scale) are
traced arguments, so training and greedy evaluation share one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax.numpy as jnp
import mctx

from muzero_jax.config import Config
from muzero_jax.networks import Model, Params

RecurrentFn = Callable[[Params, chex.PRNGKey, chex.Array, chex.Array],
                       tuple[mctx.RecurrentFnOutput, chex.Array]]


@chex.dataclass(frozen=True)
class SearchOutput:
    """The result of one batched search.

    action: `[B]` int32, the action to play.
    search_policy: `[B, A]` the policy target (visit distribution for muzero
      search; the improved policy softmax(prior + completed Q) for Gumbel).
    root_value: `[B]` the search's value estimate at the root.
    prior_value: `[B]` the network's value at the root, before search.
    """

    action: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    prior_value: chex.Array


@chex.dataclass(frozen=True)
class Exploration:
    """Acting knobs, as traced scalars so one compiled program serves all settings.

    temperature: visit-count temperature (muzero search); 0 is greedy.
    dirichlet_fraction: share of Dirichlet noise in the root prior (muzero search).
    gumbel_scale: scale of the root Gumbel noise (Gumbel search); 0 is greedy.
    """

    temperature: chex.Array
    dirichlet_fraction: chex.Array
    gumbel_scale: chex.Array

    @classmethod
    def training(cls, config: Config) -> Exploration:
        return cls(temperature=jnp.float32(config.temperature),
                   dirichlet_fraction=jnp.float32(config.dirichlet_fraction),
                   gumbel_scale=jnp.float32(config.gumbel_scale))

    @classmethod
    def scheduled(cls, config: Config, progress: float) -> Exploration:
        """Training knobs at `progress` (0..1) through `config.temperature_schedule`.

        The temperature is the last schedule entry whose threshold progress has
        reached, else `config.temperature`. Gumbel search scales gumbel_scale by
        that temperature relative to `config.temperature`, since
        argmax(logits + T g) samples softmax(logits / T).
        """
        temperature = temperature_at(config, progress)
        ratio = temperature / config.temperature if config.temperature > 0 else temperature
        return cls(temperature=jnp.float32(temperature),
                   dirichlet_fraction=jnp.float32(config.dirichlet_fraction),
                   gumbel_scale=jnp.float32(config.gumbel_scale * ratio))

    @classmethod
    def greedy(cls) -> Exploration:
        return cls(temperature=jnp.float32(0.0), dirichlet_fraction=jnp.float32(0.0),
                   gumbel_scale=jnp.float32(0.0))


def temperature_at(config: Config, progress: float) -> float:
    """The acting temperature at training `progress` (see `Exploration.scheduled`)."""
    temperature = config.temperature
    for threshold, scheduled in config.temperature_schedule:
        if progress >= threshold:
            temperature = scheduled
    return float(temperature)


def make_recurrent_fn(model: Model, discount: float) -> RecurrentFn:
    """mctx's `recurrent_fn`: one step of g, then f, in a single-player MDP."""

    def recurrent_fn(params, rng, action, embedding):
        del rng  # the learned model is deterministic
        out = model.recurrent_inference(params, embedding, action)
        return mctx.RecurrentFnOutput(
            reward=out.reward,
            discount=jnp.full_like(out.reward, discount),
            prior_logits=out.policy_logits,
            value=out.value,
        ), out.state

    return recurrent_fn


class Searcher:
    """Batched MuZero search on the learned model.

    Args:
      model: the network's pure functions.
      config: search algorithm, simulations and PUCT/Gumbel constants.
    """

    def __init__(self, model: Model, config: Config):
        self.model = model
        self.config = config
        self.recurrent_fn = make_recurrent_fn(model, config.discount)

    def __call__(self, params: Params, key: chex.PRNGKey, obs: chex.Array,
                 exploration: Exploration,
                 invalid_actions: chex.Array | None = None) -> SearchOutput:
        """Searches from each observation.

        Args:
          params: network parameters.
          key: PRNG key (consumed).
          obs: `[B, *obs_shape]`.
          exploration: temperature, Dirichlet share and Gumbel scale.
          invalid_actions: optional `[B, A]` bool, True where an action is illegal
            at the root (mctx masks the root only).

        Returns:
          `SearchOutput` with `[B]` actions and values and `[B, A]` policies.
        """
        cfg = self.config
        root_out = self.model.initial_inference(params, obs)
        root = mctx.RootFnOutput(prior_logits=root_out.policy_logits,
                                 value=root_out.value, embedding=root_out.state)
        if invalid_actions is not None:
            chex.assert_shape(invalid_actions, root_out.policy_logits.shape)
        if cfg.search == "muzero":
            out = mctx.muzero_policy(
                params, key, root, self.recurrent_fn, cfg.num_simulations,
                invalid_actions=invalid_actions, max_depth=cfg.max_depth,
                pb_c_init=cfg.pb_c_init, pb_c_base=cfg.pb_c_base,
                dirichlet_fraction=exploration.dirichlet_fraction,
                dirichlet_alpha=cfg.dirichlet_alpha,
                temperature=exploration.temperature)
            # At temperature 0 mctx breaks visit-count ties at random; greedy play
            # should be reproducible, so ties go to the higher Q value instead.
            summary = out.search_tree.summary()
            most = summary.visit_counts == summary.visit_counts.max(-1, keepdims=True)
            greedy = jnp.argmax(jnp.where(most, summary.qvalues, -jnp.inf), axis=-1)
            out = out.replace(action=jnp.where(exploration.temperature > 0, out.action, greedy))
        else:
            out = mctx.gumbel_muzero_policy(
                params, key, root, self.recurrent_fn, cfg.num_simulations,
                invalid_actions=invalid_actions, max_depth=cfg.max_depth,
                max_num_considered_actions=cfg.max_num_considered_actions,
                gumbel_scale=exploration.gumbel_scale)
        return SearchOutput(
            action=out.action.astype(jnp.int32),
            search_policy=out.action_weights,
            root_value=out.search_tree.node_values[:, out.search_tree.ROOT_INDEX],
            prior_value=root_out.value,
        )
