"""The learned model: representation h, dynamics g and prediction f (SPEC.md).

Each of h, g, f is a Flax linen module; `MuZeroNetwork` bundles them so that
parameters are one pytree, and `Model` exposes the three as pure functions of
those parameters:

    s0, p0, v0      = initial_inference(params, obs)          # h then f
    s1, r1, p1, v1  = recurrent_inference(params, s0, action)  # g then f

Value and reward come out as logits over categorical supports (see
`muzero_jax.support`); `Model` also returns them as scalars for the search.
Hidden states are min-max scaled to [0, 1] per sample after h and after g.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from muzero_jax import support
from muzero_jax.config import Config

Params = chex.ArrayTree


def scale_hidden_state(s: jax.Array) -> jax.Array:
    """Min-max scales each sample's hidden state to [0, 1]. s: `[B, ...]`."""
    axes = tuple(range(1, s.ndim))
    low = jnp.min(s, axis=axes, keepdims=True)
    high = jnp.max(s, axis=axes, keepdims=True)
    # A constant state would divide by zero; the floor keeps it finite (all zeros).
    return (s - low) / jnp.maximum(high - low, 1e-5)


class MLP(nn.Module):
    """Dense layers with LayerNorm and ReLU; the torso of every MLP head."""

    sizes: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.sizes:
            x = nn.Dense(size)(x)
            x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return x


# Heads start at zero so that a fresh network predicts value 0, reward 0 and a
# uniform policy: the first searches are then unbiased rather than random.
_zero_head = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)


class Representation(nn.Module):
    """h: observation `[B, *obs_shape]` -> hidden state `[B, latent]`."""

    hidden_sizes: Sequence[int]
    latent_size: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        x = MLP(self.hidden_sizes)(x)
        return scale_hidden_state(nn.Dense(self.latent_size)(x))


class Dynamics(nn.Module):
    """g: (hidden state `[B, latent]`, action `[B]`) -> (reward logits, next state)."""

    hidden_sizes: Sequence[int]
    latent_size: int
    num_actions: int
    reward_atoms: int

    @nn.compact
    def __call__(self, s: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([s, jax.nn.one_hot(action, self.num_actions)], axis=-1)
        x = MLP(self.hidden_sizes)(x)
        next_s = scale_hidden_state(nn.Dense(self.latent_size)(x))
        reward_logits = nn.Dense(self.reward_atoms, **_zero_head)(x)
        return reward_logits, next_s


class Prediction(nn.Module):
    """f: hidden state `[B, latent]` -> (policy logits `[B, A]`, value logits)."""

    hidden_sizes: Sequence[int]
    num_actions: int
    value_atoms: int

    @nn.compact
    def __call__(self, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_sizes)(s)
        policy_logits = nn.Dense(self.num_actions, **_zero_head)(x)
        value_logits = nn.Dense(self.value_atoms, **_zero_head)(x)
        return policy_logits, value_logits


class MuZeroNetwork(nn.Module):
    """h, g and f under one parameter tree (`representation`, `dynamics`, `prediction`)."""

    hidden_sizes: Sequence[int]
    latent_size: int
    num_actions: int
    value_atoms: int
    reward_atoms: int

    def setup(self):
        self.representation = Representation(self.hidden_sizes, self.latent_size)
        self.dynamics = Dynamics(self.hidden_sizes, self.latent_size, self.num_actions,
                                 self.reward_atoms)
        self.prediction = Prediction(self.hidden_sizes, self.num_actions, self.value_atoms)

    def initial(self, obs):
        s = self.representation(obs)
        policy_logits, value_logits = self.prediction(s)
        return s, policy_logits, value_logits

    def recurrent(self, s, action):
        reward_logits, next_s = self.dynamics(s, action)
        policy_logits, value_logits = self.prediction(next_s)
        return next_s, reward_logits, policy_logits, value_logits

    def __call__(self, obs, action):
        # Used only by `init`, so that every submodule gets parameters.
        s, _, _ = self.initial(obs)
        return self.recurrent(s, action)


@chex.dataclass(frozen=True)
class Inference:
    """What the model predicts for a batch of hidden states.

    state: `[B, latent]` hidden state (scaled to [0, 1]).
    policy_logits: `[B, A]`.
    value_logits: `[B, 2 S_v + 1]`; value: `[B]` the same as a scalar.
    reward_logits: `[B, 2 S_r + 1]`; reward: `[B]` the same as a scalar
      (zeros for `initial_inference`, where no transition was taken).
    """

    state: chex.Array
    policy_logits: chex.Array
    value_logits: chex.Array
    value: chex.Array
    reward_logits: chex.Array
    reward: chex.Array


class Model:
    """h, g, f as pure functions of parameters.

    Args:
      config: sizes of layers and supports.
      num_actions: A.
      observation_shape: shape of one observation.
    """

    def __init__(self, config: Config, num_actions: int, observation_shape: tuple[int, ...]):
        self.config = config
        self.num_actions = num_actions
        self.observation_shape = tuple(observation_shape)
        self.value_support_size = config.value_support_size
        self.reward_support_size = config.reward_support_size
        self.network = MuZeroNetwork(
            hidden_sizes=(config.hidden_size,) * config.num_hidden_layers,
            latent_size=config.latent_size,
            num_actions=num_actions,
            value_atoms=2 * config.value_support_size + 1,
            reward_atoms=2 * config.reward_support_size + 1,
        )

    def init(self, key: chex.PRNGKey) -> Params:
        """Fresh parameters for h, g and f."""
        obs = jnp.zeros((1, *self.observation_shape), jnp.float32)
        return self.network.init(key, obs, jnp.zeros((1,), jnp.int32))

    def initial_inference(self, params: Params, obs: jax.Array) -> Inference:
        """h then f. obs: `[B, *obs_shape]`."""
        chex.assert_shape(obs, (None, *self.observation_shape))
        s, policy_logits, value_logits = self.network.apply(
            params, obs, method=MuZeroNetwork.initial)
        reward_logits = jnp.zeros((obs.shape[0], 2 * self.reward_support_size + 1))
        return Inference(
            state=s, policy_logits=policy_logits, value_logits=value_logits,
            value=support.support_to_scalar(value_logits, self.value_support_size),
            reward_logits=reward_logits, reward=jnp.zeros((obs.shape[0],), jnp.float32))

    def recurrent_inference(self, params: Params, state: jax.Array,
                            action: jax.Array) -> Inference:
        """g then f. state: `[B, latent]`, action: `[B]` int32."""
        chex.assert_rank(action, 1)
        chex.assert_equal_shape_prefix((state, action), 1)
        next_s, reward_logits, policy_logits, value_logits = self.network.apply(
            params, state, action, method=MuZeroNetwork.recurrent)
        return Inference(
            state=next_s, policy_logits=policy_logits, value_logits=value_logits,
            value=support.support_to_scalar(value_logits, self.value_support_size),
            reward_logits=reward_logits,
            reward=support.support_to_scalar(reward_logits, self.reward_support_size))
