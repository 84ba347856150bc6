"""Stochastic MuZero's model: afterstates, chance codes and the two steps of the tree.

Antonoglou et al., "Planning in Stochastic Environments with a Learned Model" (ICLR
2022). Each step of the environment is split in two:

    s^k                                   a state: f(s) -> (policy, value)
      | phi(s^k, a)      (decision step)  the action, no reward, no change of player
    as^k                                  an afterstate: psi(as) -> (sigma, Q)
      | g(as^k, c)       (chance step)    c: one of C chance codes; reward r^{k+1}
    s^{k+1}

sigma is the distribution over the C codes at an afterstate and Q its value (from
the view of the player who just moved). While learning, the code of a step comes
from the encoder e of the observation reached: c = one_hot(argmax softmax(e(o))),
with the straight-through gradient of the softmax (`quantize`), a VQ-VAE whose
codebook is the C one-hot vectors. The search (`mctx.stochastic_muzero_policy`)
calls `decision_recurrent_fn` (phi then psi) and `chance_recurrent_fn` (g then f).

`NetworkConfig.chance_outcomes` C > 0 makes `networks.make_network` build this
network (MLP f, phi, psi, g, e; h an MLP, or with `kind="conv_mlp"` the conv stem of
`networks.ConvMLPRepresentation` for board-like planes such as 2048's);
`StochasticModel` is `networks.Model` with the afterstate step, and its
`recurrent_inference` follows the most likely code, so that callers of a plain model
(Reanalyze's values, tree drawings) keep working.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import mctx

from muzero_jax import support
from muzero_jax.networks import (
    MLP,
    ConvMLPRepresentation,
    Inference,
    Model,
    Prediction,
    Representation,
    scale_hidden_state,
)


def quantize(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The encoder's output onto the one-hot codebook, with a straight-through gradient.

    Args:
      logits: `[N, C]` encoder logits.

    Returns:
      code: `[N, C]` float32, forward one_hot(argmax(logits)), whose gradient is that
        of `probs` (identity through the quantization).
      probs: `[N, C]` softmax(logits), the encoder's output c^e before quantization.
    """
    probs = jax.nn.softmax(logits, axis=-1)
    one_hot = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])
    return probs + jax.lax.stop_gradient(one_hot - probs), probs


def commitment_loss(code: jax.Array, probs: jax.Array) -> jax.Array:
    """`[N]` ||c - c^e||^2 with the code c held fixed (VQ-VAE's commitment term)."""
    return jnp.sum(jnp.square(jax.lax.stop_gradient(code) - probs), axis=-1)


class AfterstateDynamics(nn.Module):
    """phi: (state `[B, latent]`, action `[B]`) -> afterstate `[B, latent]`."""

    hidden_sizes: Sequence[int]
    latent_size: int
    num_actions: int

    @nn.compact
    def __call__(self, s: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([s, jax.nn.one_hot(action, self.num_actions)], axis=-1)
        return scale_hidden_state(nn.Dense(self.latent_size)(MLP(self.hidden_sizes)(x)))


class ChanceDynamics(nn.Module):
    """g: (afterstate `[B, latent]`, code `[B, C]` float) -> (reward logits, next state).

    `afterstate_reward`: the reward from a torso of its own over the afterstate alone
    (the code does not reach it)."""

    hidden_sizes: Sequence[int]
    latent_size: int
    reward_atoms: int
    afterstate_reward: bool = False

    @nn.compact
    def __call__(self, afterstate: jax.Array, code: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_sizes)(jnp.concatenate([afterstate, code], axis=-1))
        next_s = scale_hidden_state(nn.Dense(self.latent_size)(x))
        reward_in = MLP(self.hidden_sizes)(afterstate) if self.afterstate_reward else x
        reward_logits = nn.Dense(self.reward_atoms, kernel_init=nn.initializers.zeros)(reward_in)
        return reward_logits, next_s


class Encoder(nn.Module):
    """e: observation `[B, *obs_shape]` -> chance code logits `[B, C]`."""

    hidden_sizes: Sequence[int]
    num_codes: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        return nn.Dense(self.num_codes)(MLP(self.hidden_sizes)(x))


class StochasticNetwork(nn.Module):
    """h, f, phi, psi, g and e under one parameter tree: MLPs, but h a conv stem of
    `conv_channels` channels and `conv_blocks` residual blocks where `conv_channels` > 0."""

    hidden_sizes: Sequence[int]
    latent_size: int
    num_actions: int
    value_atoms: int
    reward_atoms: int
    num_codes: int
    conv_channels: int = 0
    conv_blocks: int = 0
    afterstate_reward: bool = False

    def setup(self):
        if self.conv_channels:
            self.representation = ConvMLPRepresentation(self.conv_channels, self.conv_blocks,
                                                         self.latent_size)
        else:
            self.representation = Representation(self.hidden_sizes, self.latent_size)
        self.prediction = Prediction(self.hidden_sizes, self.num_actions, self.value_atoms)
        self.afterstate_dynamics = AfterstateDynamics(self.hidden_sizes, self.latent_size,
                                                      self.num_actions)
        # psi: its "policy" head gives sigma's logits, its value head Q.
        self.afterstate_prediction = Prediction(self.hidden_sizes, self.num_codes,
                                                self.value_atoms)
        self.dynamics = ChanceDynamics(self.hidden_sizes, self.latent_size, self.reward_atoms,
                                       self.afterstate_reward)
        self.encoder = Encoder(self.hidden_sizes, self.num_codes)

    def initial(self, obs):
        s = self.representation(obs)
        return s, *self.prediction(s)

    def afterstate(self, s, action):
        after = self.afterstate_dynamics(s, action)
        return after, *self.afterstate_prediction(after)

    def chance(self, after, code):
        reward_logits, next_s = self.dynamics(after, code)
        return next_s, reward_logits, *self.prediction(next_s)

    def encode(self, obs):
        return self.encoder(obs)

    def __call__(self, obs, action):
        # Used only by `init`, so that every submodule gets parameters.
        s, _, _ = self.initial(obs)
        after, _, _ = self.afterstate(s, action)
        return self.chance(after, quantize(self.encode(obs))[0])


@chex.dataclass(frozen=True)
class StochasticInference(Inference):
    """`Inference` of one unrolled step (state -> afterstate -> state), and the step's
    afterstate and code.

    afterstate: `[B, latent]`. chance_logits: `[B, C]` sigma's logits at it.
    afterstate_value_logits: `[B, 2 S_v + 1]` Q's logits.
    code: `[B, C]` the code g was fed (straight-through one-hot);
    code_probs: `[B, C]` the encoder's softmax c^e (sigma's own argmax in
    `recurrent_inference`, where no observation is known).
    """

    afterstate: chex.Array
    chance_logits: chex.Array
    afterstate_value_logits: chex.Array
    code: chex.Array
    code_probs: chex.Array


class StochasticModel(Model):
    """`networks.Model` of a `StochasticNetwork`: h and f as the plain model, and the
    afterstate step (phi, psi), the chance step (g, f) and the encoder e as pure functions.

    Args: as `networks.Model`; the network stage's `chance_outcomes` is C.
    """

    def __init__(self, network, num_actions: int, observation_shape: tuple[int, ...]):
        super().__init__(network, num_actions, observation_shape)
        net = self.network_config
        self.network = StochasticNetwork(
            hidden_sizes=(net.hidden_size,) * net.num_hidden_layers,
            latent_size=net.latent_size, num_actions=num_actions,
            value_atoms=2 * net.value_support_size + 1,
            reward_atoms=2 * net.reward_support_size + 1, num_codes=net.chance_outcomes,
            conv_channels=net.resnet_channels if net.kind == "conv_mlp" else 0,
            conv_blocks=net.representation_blocks[0],
            afterstate_reward=net.afterstate_reward)

    @property
    def num_codes(self) -> int:
        return self.network.num_codes

    def value_of(self, logits) -> jax.Array:
        """`[B]` scalars of `[B, 2 S_v + 1]` value (or Q) logits."""
        return support.support_to_scalar(logits, self.value_support_size, self.squash)

    def afterstate(self, params, state, action):
        """phi then psi: `[B]` actions from `[B, latent]` states -> (afterstates
        `[B, latent]`, sigma's logits `[B, C]`, Q's logits `[B, 2 S_v + 1]`)."""
        return self.network.apply(params, state, action, method=StochasticNetwork.afterstate)

    def chance(self, params, afterstate, code) -> Inference:
        """g then f from `[B, latent]` afterstates and `[B, C]` float codes."""
        next_s, reward_logits, policy_logits, value_logits = self.network.apply(
            params, afterstate, code, method=StochasticNetwork.chance)
        return Inference(
            state=next_s, policy_logits=policy_logits, value_logits=value_logits,
            value=self.value_of(value_logits), reward_logits=reward_logits,
            reward=support.support_to_scalar(reward_logits, self.reward_support_size,
                                             self.squash))

    def encode(self, params, obs) -> jax.Array:
        """e: `[B, *obs_shape]` -> code logits `[B, C]`."""
        return self.network.apply(params, obs, method=StochasticNetwork.encode)

    def step(self, params, state, action, code, code_probs) -> StochasticInference:
        after, chance_logits, q_logits = self.afterstate(params, state, action)
        out = self.chance(params, after, code)
        return StochasticInference(**dict(out.items()), afterstate=after,
                                   chance_logits=chance_logits,
                                   afterstate_value_logits=q_logits, code=code,
                                   code_probs=code_probs)

    def recurrent_inference(self, params, state, action) -> StochasticInference:
        """phi, psi, then g and f on sigma's most likely code (no observation to encode)."""
        _, chance_logits, _ = self.afterstate(params, state, action)
        code = jax.nn.one_hot(jnp.argmax(chance_logits, axis=-1), self.num_codes)
        return self.step(params, state, action, code, code)

    def reward_logits(self, params, state, action):
        return self.recurrent_inference(params, state, action).reward_logits

    def unroll_inference(self, params, state, action, targets, k) -> StochasticInference:
        """The learner's step k: the code is the encoder's of observation t + k
        (`targets.extra["chance_observation"]`, `[N, K, *obs_shape]`)."""
        code, probs = quantize(self.encode(params, targets.extra["chance_observation"][:, k - 1]))
        return self.step(params, state, action, code, probs)


def make_tree_fns(model: StochasticModel, discount: float):
    """mctx's (decision_recurrent_fn, chance_recurrent_fn) of the learned model.

    The decision step (phi, psi) has no reward and, in mctx, discount 1: a chance
    node keeps the player to move, and Q is from the mover's view. The chance step
    gives g's reward and `discount` (-1 in two-player games: the next state's value
    is from the next player's view).
    """

    def decision_fn(params, rng, action, state):
        del rng
        after, chance_logits, q_logits = model.afterstate(params, state, action)
        return mctx.DecisionRecurrentFnOutput(
            chance_logits=chance_logits, afterstate_value=model.value_of(q_logits)), after

    def chance_fn(params, rng, outcome, afterstate):
        del rng
        out = model.chance(params, afterstate, jax.nn.one_hot(outcome, model.num_codes))
        return mctx.ChanceRecurrentFnOutput(
            action_logits=out.policy_logits, value=out.value, reward=out.reward,
            discount=jnp.full_like(out.reward, discount)), out.state

    return decision_fn, chance_fn
