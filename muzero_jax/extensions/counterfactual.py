"""Counterfactual rewards: a reward label for a move not played, at every position.

A reward head that has only seen the agent's own choices does not know the wins
its play passes by. With `LossConfig.counterfactual_rewards`, self-play tries every
move of each position with the env's own step (`move_rewards`, JAX envs only),
keeps one move it did not play and that move's reward (`counterfactual_moves`), and
the learner adds g's reward loss for that move from the same state as the played
move's, weighted as the reward loss (a term beyond the paper's).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from muzero_jax import support
from muzero_jax.extensions import Extension
from muzero_jax.learner import cross_entropy


def move_rewards(env, key: chex.PRNGKey, inner) -> jax.Array:
    """`[B, A]` float32: the mover's reward for every action from each of `[B]` inner env
    states, each tried with the env's own transition (A steps a position; the key is
    shared, so a stochastic env gives one sample). Illegal actions' entries are whatever
    the env says: read them through the legal mask."""
    num_actions = env.spec.num_actions

    def rewards(one):
        return jax.vmap(lambda a: env.transition(one, a, key).reward)(
            jnp.arange(num_actions, dtype=jnp.int32))

    return jax.vmap(rewards)(inner).astype(jnp.float32)


def _uniform_choice(key: chex.PRNGKey, allowed: chex.Array) -> jax.Array:
    """`[B]` int32, one True entry of each row of `[B, A]` bool `allowed`, uniformly."""
    return jax.random.categorical(key, jnp.where(allowed, 0.0, -jnp.inf),
                                  axis=-1).astype(jnp.int32)


def counterfactual_moves(key: chex.PRNGKey, rewards: chex.Array, legal_action_mask: chex.Array,
                         action: chex.Array) -> tuple[jax.Array, jax.Array]:
    """A move not played at each of B positions, and its reward.

    Drawn uniformly among the legal moves whose reward differs from the played
    move's (a win not taken, or the non-winning moves beside a win taken), where
    there is one; else among the other legal moves; else the played move itself:
    the labels the played moves' rewards never give.

    Args:
      key: PRNG key (consumed).
      rewards: `[B, A]` float32 `move_rewards` of the positions.
      legal_action_mask: `[B, A]` bool, True where a move is legal.
      action: `[B]` int32, the moves played.

    Returns:
      counter_action: `[B]` int32; counter_reward: `[B]` float32, its entry of `rewards`.
    """
    legal = jnp.asarray(legal_action_mask, bool)
    played = jax.nn.one_hot(action, legal.shape[-1], dtype=bool)
    played_reward = jnp.take_along_axis(rewards, action[:, None], axis=-1)
    others = legal & ~played
    differing = others & (rewards != played_reward)
    allowed = jnp.where(jnp.any(differing, axis=-1, keepdims=True), differing, others)
    allowed = jnp.where(jnp.any(allowed, axis=-1, keepdims=True), allowed, played)
    counter_action = _uniform_choice(key, allowed)
    counter_reward = jnp.take_along_axis(rewards, counter_action[:, None], axis=-1)[:, 0]
    return counter_action, counter_reward


@dataclasses.dataclass(frozen=True)
class Counterfactual(Extension):
    """The extension (see the module docstring).

    Fields: `counter_action` `[B, L]` int32 and `counter_reward` `[B, L]` float32, each
    position's move not played and its reward. Targets: `counter_action`,
    `counter_reward` and `counter_mask`, `[N, K]` for the states of rows 0..K-1 (the
    reward's mask and, past a termination, reward 0: the state is absorbing).
    """

    LOSSES: ClassVar = {"counterfactual_reward_loss": "reward"}
    USES_KEY: ClassVar = True

    def fields(self, spec):
        del spec
        return {"counter_action": jax.ShapeDtypeStruct((), jnp.int32),
                "counter_reward": jax.ShapeDtypeStruct((), jnp.float32)}

    def record(self, env, key, env_state, search, action):
        del search
        move_key, choice_key = jax.random.split(key)
        rewards = move_rewards(env, move_key, env_state.inner)
        counter_action, counter_reward = counterfactual_moves(
            jax.random.fold_in(choice_key, 1), rewards, env_state.legal_action_mask, action)
        return {"counter_action": counter_action, "counter_reward": counter_reward}

    def targets(self, buffer, window, past_end, past_truncation, unroll_steps):
        del buffer
        k = unroll_steps
        return {"counter_action": window.extra["counter_action"][:, :k],
                "counter_reward": jnp.where(past_end[:, :-1], 0.0,
                                            window.extra["counter_reward"][:, :k]),
                "counter_mask": (~past_truncation[:, :-1]).astype(jnp.float32)}

    def unroll_loss(self, model, params, state, inference, k, targets):
        del inference
        extra = targets.extra
        # The move not played, from the same state as the played one: g's reward head only.
        logits = model.reward_logits(params, state, extra["counter_action"][:, k - 1])
        target = support.scalar_to_support(extra["counter_reward"][:, k - 1],
                                           model.reward_support_size, model.squash)
        return {"counterfactual_reward_loss":
                cross_entropy(target, logits) * extra["counter_mask"][:, k - 1]}
