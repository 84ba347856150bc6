"""Categorical value and reward supports, as the paper represents values and rewards.

Scalars are squashed by the invertible transform of Pohlen et al. (2018),

    h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x,

clipped to [-S, S] and spread over the 2S + 1 integer atoms -S..S as a two-hot
vector. Going back, the expectation over atoms under the softmax of the logits is
mapped through the closed-form inverse h^-1.

`squash="identity"` skips h: the atoms are the values themselves. For outcomes that
are whole numbers in [-S, S] (board games: -1, 0, +1 with S = 1) a win is then all
its mass on one atom, where h spreads it 0.585 / 0.415 over the atoms of a draw and
a win (h(1) = 0.415).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax.errors import RunFault

EPSILON = 1e-3
SQUASHES = ("h", "identity")


def _check_squash(squash: str) -> None:
    if squash not in SQUASHES:
        raise ValueError(f"squash={squash!r}: expected one of {SQUASHES}")


def transform(x: jax.Array, eps: float = EPSILON) -> jax.Array:
    """h(x), elementwise. Any shape."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def inverse_transform(y: jax.Array, eps: float = EPSILON) -> jax.Array:
    """h^-1(y), the closed-form inverse of `transform`, elementwise. Any shape."""
    inner = (jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return jnp.sign(y) * (jnp.square(inner) - 1.0)


def max_scalar(support_size: int, eps: float = EPSILON, squash: str = "h") -> float:
    """Largest |x| a support of atoms -S..S represents without clipping: h^-1(S)
    (`squash="identity"`: S)."""
    _check_squash(squash)
    if squash == "identity":
        return float(support_size)
    return float(inverse_transform(jnp.float32(support_size), eps))


def size_needed(bound: float, squash: str = "h") -> int:
    """The smallest S whose support represents |x| <= bound without clipping."""
    _check_squash(squash)
    return int(math.ceil(bound if squash == "identity" else float(transform(bound))))


def scalar_to_two_hot(x: jax.Array, support_size: int) -> jax.Array:
    """Two-hot encoding of already-transformed scalars over atoms -S..S.

    Args:
      x: `[...]` values in transformed space; clipped to [-S, S].
      support_size: S.

    Returns:
      `[..., 2S + 1]` probabilities with mass on the two atoms around `x`.
    """
    x = jnp.clip(x, -support_size, support_size)
    low = jnp.floor(x)
    upper_weight = x - low
    low_index = (low + support_size).astype(jnp.int32)
    num_atoms = 2 * support_size + 1
    high_index = jnp.minimum(low_index + 1, num_atoms - 1)
    # Where x sits exactly on the top atom, low == S and the upper weight is 0,
    # so the clamped high index carries no mass.
    return (
        jax.nn.one_hot(low_index, num_atoms) * (1.0 - upper_weight)[..., None]
        + jax.nn.one_hot(high_index, num_atoms) * upper_weight[..., None]
    )


def scalar_to_support(x: jax.Array, support_size: int, squash: str = "h") -> jax.Array:
    """Scalar targets to two-hot probabilities: transform, clip, two-hot.

    Args:
      x: `[...]` raw scalars (returns, rewards).
      support_size: S; the support has 2S + 1 atoms.
      squash: "h" (Pohlen et al.) or "identity" (atoms are the values).

    Returns:
      `[..., 2S + 1]` float32 probabilities.
    """
    _check_squash(squash)
    x = x.astype(jnp.float32)
    return scalar_to_two_hot(transform(x) if squash == "h" else x, support_size)


def support_to_scalar(logits: jax.Array, support_size: int, squash: str = "h") -> jax.Array:
    """Logits over the support to raw scalars: softmax, expectation, h^-1.

    Args:
      logits: `[..., 2S + 1]`.
      support_size: S.
      squash: "h" (then h^-1 of the expectation) or "identity" (the expectation).

    Returns:
      `[...]` float32 scalars.
    """
    if logits.shape[-1] != 2 * support_size + 1:
        raise ValueError(
            f"logits have {logits.shape[-1]} atoms on their last axis; a support of "
            f"size {support_size} expects {2 * support_size + 1}"
        )
    _check_squash(squash)
    atoms = jnp.arange(-support_size, support_size + 1, dtype=jnp.float32)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    expectation = jnp.sum(probs * atoms, axis=-1)
    return inverse_transform(expectation) if squash == "h" else expectation


def largest_reward_held(reward_support_size: int, value_support_size: int, discount: float,
                        squash: str = "h", *, value_bound: bool = True) -> float:
    """The largest |reward| of a step whose targets the supports hold without clipping.

    The reward support's h^-1(S_r); with `value_bound`, also what keeps every discounted
    return within the value support: (1 - discount) h^-1(S_v) (none at discount 1, whose
    returns are an episode's, bounded by the env, not the discount).
    """
    held = max_scalar(reward_support_size, squash=squash)
    if value_bound and discount < 1.0:
        held = min(held, (1.0 - discount) * max_scalar(value_support_size, squash=squash))
    return held


def sizes_for(max_abs_reward: float, discount: float, squash: str = "h") -> tuple[int, int]:
    """(reward_support_size, value_support_size) that hold rewards up to `max_abs_reward`
    and returns up to max_abs_reward / (1 - discount) (max_abs_reward at discount 1)."""
    value = max_abs_reward / (1.0 - discount) if discount < 1.0 else max_abs_reward
    return size_needed(max_abs_reward, squash), size_needed(value, squash)


HEADROOM = 2.0  # supports sized from an observed reward hold this many times it


class RewardBeyondSupport(RunFault):
    """A reward beyond what the reward and value supports hold: its targets would clip."""


def reward_limit(config, declared: float | None) -> float:
    """The largest |reward| a run of `config` may meet: what its supports hold, counting the
    value support too once the env's reward scale is `declared` (Config.max_abs_reward or
    the env's; validation then checked both supports against it), else the reward
    support's alone (value targets are not bounded by a reward scale nobody gave)."""
    net = config.network
    held = largest_reward_held(net.reward_support_size, net.value_support_size,
                               config.loss.discount, net.support_squash,
                               value_bound=declared is not None)
    span = prefix_span(config)
    if span == 1:
        return held
    # A value prefix's target sums `span` rewards; value targets are as without one.
    return min(held, max_scalar(net.reward_support_size, squash=net.support_squash) / span)


def prefix_span(config) -> int:
    """How many steps' rewards one reward target sums: with a value prefix, up to
    min(lstm_horizon_len, unroll_steps); else 1."""
    if not config.network.value_prefix:
        return 1
    return max(min(config.network.lstm_horizon_len, config.loss.unroll_steps), 1)


def check_rewards(max_abs_reward, config, limit: float, env_steps: int,
                  env_id: str | None = None) -> None:
    """Raises `RewardBeyondSupport` (one line naming the fields to set) if the largest
    |reward| seen, `max_abs_reward` (a float or an array, NaN ignored), is beyond `limit`
    (`reward_limit`). Cheap: one reduction on the host per rollout or compiled chunk.
    `env_id` names the env in the message (default: config.env.id)."""
    seen = float(np.nanmax(np.asarray(max_abs_reward, np.float64), initial=0.0))
    if not seen > limit:  # NaN: another check's concern
        return
    bound = HEADROOM * seen
    net, discount = config.network, config.loss.discount
    reward_size, value_size = sizes_for(bound, discount, net.support_squash)
    raise RewardBeyondSupport(
        f"env {env_id or config.env.id!r} paid a reward of magnitude {seen:g} by env step "
        f"{env_steps}, "
        f"beyond the {limit:.3g} that reward_support_size={net.reward_support_size} and "
        f"value_support_size={net.value_support_size} (discount {discount:g}) "
        f"hold, so its targets would be clipped: set --env.max_abs_reward {bound:g} "
        f"--network.reward_support_size {max(reward_size, net.reward_support_size)} "
        f"--network.value_support_size {max(value_size, net.value_support_size)}")
