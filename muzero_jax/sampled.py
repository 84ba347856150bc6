"""Sampled MuZero: search and learn over K actions sampled at every node.

Hubert et al., "Learning and Planning in Complex Action Spaces" (ICML 2021). With
`SearchConfig.sampled_actions` K > 0 each node of the tree has K children, one per
action sampled there, and mctx's fixed action count is K:

    root        K actions from a proposal beta: the policy pi mixed with the uniform
                distribution over the action space (its share is the root noise,
                `Exploration.dirichlet_fraction`; 0 when greedy)
    prior       log(beta_hat / beta * pi) of each sample, as logits over the K slots:
                each slot holds 1 / K of the empirical beta_hat, so its logit is
                log pi(a_j) - log beta(a_j) (a discrete action drawn twice gets the sum
                over its two slots); where beta = pi (every node below the root) the
                prior is uniform over the slots
    interior    `make_recurrent_fn`: the child's slot index -> that node's sampled
                action, g, f, then the child's own K samples from its policy, drawn
                with the key mctx passes to `recurrent_fn`

A node's embedding is `SampledEmbedding` (hidden state, its `[B, K, ...]` samples).
The search returns the index in [0, K) of the played sample and the root's samples
(`SearchOutput.root_actions`); self-play plays `played_action`, stores the index
and the visit distribution over the K slots, and the `extensions.sampled.Sampled`
extension stores the root's samples per step. The learner's unroll feeds g the
sample the stored index picks (`SampledModel.unroll_inference`) and its policy loss
is -sum_j p_j log pi(a_j | s^k) over each row's stored samples
(`SampledModel.policy_loss`).

The action space (`action_space`):

- a Box (`TanhGaussian`): the policy head gives a diagonal Gaussian's mean and
  log-std (clipped to [LOG_STD_MIN, LOG_STD_MAX]) per dimension, squashed by tanh and
  scaled to [low, high]; g takes the action scaled to [-1, 1]. The densities are
  written here (a tanh-squashed Gaussian is a few lines; distrax would bring in
  TensorFlow Probability).
- a discrete space of N actions (`Categorical`): K of the N, drawn with replacement
  from the policy's logits (illegal actions masked); g and f are plain MuZero's.
  K == N enumerates instead: the children are the N actions in order with the
  policy as prior, plain MuZero's search exactly.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import mctx
import numpy as np

from muzero_jax.config import Config, ConfigError
from muzero_jax.networks import (
    MLP,
    Inference,
    Model,
    MuZeroNetwork,
    Prediction,
    Representation,
    scale_hidden_state,
)

# Range of the Gaussian's log-std before tanh: wider than any useful exploration
# (e^2 ~ 7.4 saturates tanh), narrower than a collapsed policy (e^-5 ~ 0.007).
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
# Squashed actions are kept this far inside (-1, 1), where atanh is finite.
_EDGE = 1e-6
# A logit that no sampled slot of an illegal action can beat.
_MASKED = -1e9


@dataclasses.dataclass(frozen=True)
class TanhGaussian:
    """A diagonal Gaussian squashed by tanh and scaled to the box [low, high].

    Distribution parameters are the policy head's `[B, 2 D]` outputs: the means, then
    the log-stds (clipped to [LOG_STD_MIN, LOG_STD_MAX]), of the pre-tanh Gaussian.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def head_size(self) -> int:
        """Outputs of the policy head: a mean and a log-std per dimension."""
        return 2 * self.dim

    def _bounds(self):
        return jnp.asarray(self.low, jnp.float32), jnp.asarray(self.high, jnp.float32)

    def split(self, dist: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std), `[..., D]` each, of `[..., 2 D]` parameters."""
        mean, log_std = jnp.split(dist, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def to_unit(self, actions: jax.Array) -> jax.Array:
        """`[..., D]` actions in [low, high] -> [-1, 1] (what g sees)."""
        low, high = self._bounds()
        return 2.0 * (actions - low) / (high - low) - 1.0

    def from_unit(self, unit: jax.Array) -> jax.Array:
        low, high = self._bounds()
        return low + 0.5 * (unit + 1.0) * (high - low)

    def sample(self, dist: jax.Array, key: chex.PRNGKey, num: int) -> jax.Array:
        """`[B, num, D]` float32 actions from `[B, 2 D]` parameters."""
        mean, log_std = self.split(dist)
        noise = jax.random.normal(key, (dist.shape[0], num, self.dim))
        return self.from_unit(jnp.tanh(mean[:, None] + jnp.exp(log_std)[:, None] * noise))

    def log_prob(self, dist: jax.Array, actions: jax.Array) -> jax.Array:
        """`[B, K]` log-densities over the box of `[B, K, D]` actions under `[B, 2 D]`
        parameters: the Gaussian's at atanh of the unit action, less log |d action / du|
        (the tanh's 1 - tanh^2 and the scale (high - low) / 2)."""
        mean, log_std = self.split(dist)
        unit = jnp.clip(self.to_unit(actions), -1.0 + _EDGE, 1.0 - _EDGE)
        pre = jnp.arctanh(unit)
        z = (pre - mean[:, None]) / jnp.exp(log_std)[:, None]
        gaussian = -0.5 * jnp.square(z) - log_std[:, None] - 0.5 * math.log(2 * math.pi)
        low, high = self._bounds()
        jacobian = jnp.log1p(-jnp.square(unit)) + jnp.log((high - low) / 2.0)
        return jnp.sum(gaussian - jacobian, axis=-1)

    def uniform(self, key: chex.PRNGKey, shape: tuple[int, ...]) -> jax.Array:
        """`[*shape, D]` actions uniform over the box."""
        low, high = self._bounds()
        return jax.random.uniform(key, (*shape, self.dim), minval=low, maxval=high)

    def uniform_log_prob(self, actions: jax.Array, legal=None) -> jax.Array:
        """`[B, K]` the uniform density's log over the box."""
        del legal
        low, high = self._bounds()
        return jnp.full(actions.shape[:-1], -jnp.sum(jnp.log(high - low)))

    def mix(self, key, dist, legal, num, noise_fraction):
        """`[B, num, D]` samples of (1 - noise_fraction) pi + noise_fraction uniform."""
        del legal
        policy_key, uniform_key, choice_key = jax.random.split(key, 3)
        from_policy = self.sample(dist, policy_key, num)
        uniform = self.uniform(uniform_key, from_policy.shape[:-1])
        noisy = jax.random.uniform(choice_key, from_policy.shape[:-1]) < noise_fraction
        return jnp.where(noisy[..., None], uniform, from_policy)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """N discrete actions; distribution parameters are the policy's `[B, N]` logits."""

    num_actions: int

    @property
    def head_size(self) -> int:
        return self.num_actions

    def sample(self, dist: jax.Array, key: chex.PRNGKey, num: int) -> jax.Array:
        """`[B, num]` int32 actions drawn with replacement from `[B, N]` logits."""
        return jax.random.categorical(key, dist[:, None, :], axis=-1,
                                      shape=(dist.shape[0], num)).astype(jnp.int32)

    def log_prob(self, dist: jax.Array, actions: jax.Array) -> jax.Array:
        """`[B, K]` log pi of `[B, K]` int actions under `[B, N]` logits."""
        return jnp.take_along_axis(jax.nn.log_softmax(dist, axis=-1), actions, axis=-1)

    def uniform_log_prob(self, actions: jax.Array, legal: jax.Array) -> jax.Array:
        """`[B, K]` log of the uniform distribution over the `[B, N]` legal actions."""
        count = jnp.sum(legal, axis=-1, keepdims=True).astype(jnp.float32)
        return jnp.broadcast_to(-jnp.log(count), actions.shape)

    def mix(self, key, dist, legal, num, noise_fraction):
        """`[B, num]` samples of (1 - noise_fraction) pi + noise_fraction uniform (legal)."""
        uniform = legal / jnp.sum(legal, axis=-1, keepdims=True)
        probs = (1.0 - noise_fraction) * jax.nn.softmax(dist, axis=-1) + noise_fraction * uniform
        return self.sample(jnp.log(probs), key, num)


ActionSpace = TanhGaussian | Categorical


def action_space(spec) -> ActionSpace:
    """The sampled search's view of an `EnvSpec`'s actions."""
    if spec.continuous:
        return TanhGaussian(tuple(map(float, spec.action_low)),
                            tuple(map(float, spec.action_high)))
    return Categorical(spec.num_actions)


def num_children(config: Config, spec) -> int:
    """Children of each tree node (mctx's action count, the policy target's length): K
    with sampled search, else the env's action count. Raises `ConfigError` for a Box env
    without sampled search, or K above a discrete env's action count."""
    k = config.search.sampled_actions
    if spec.continuous and not k:
        raise ConfigError(f"sampled_actions=0: {spec.env_id!r} has Box actions "
                          f"(low {spec.action_low}, high {spec.action_high}), which only a "
                          "sampled search can act in; expected search.sampled_actions >= 1 "
                          "(e.g. 16; --preset control sets it)")
    if not spec.continuous and k > spec.num_actions:
        raise ConfigError(f"sampled_actions={k}: {spec.env_id!r} has {spec.num_actions} "
                          f"actions; expected at most {spec.num_actions} (equal: every "
                          "action, enumerated)")
    if spec.continuous and config.network.kind != "mlp":
        raise ConfigError(f"kind={config.network.kind!r}: Box actions enter the MLP dynamics "
                          "as vectors; expected kind 'mlp'")
    return k or spec.num_actions


# --- the model ------------------------------------------------------------------------


class VectorDynamics(nn.Module):
    """g: (hidden state `[B, latent]`, action `[B, D]` in [-1, 1]) -> (reward logits,
    next state)."""

    hidden_sizes: tuple[int, ...]
    latent_size: int
    reward_atoms: int

    @nn.compact
    def __call__(self, s: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_sizes)(jnp.concatenate([s, action], axis=-1))
        next_s = scale_hidden_state(nn.Dense(self.latent_size)(x))
        reward_logits = nn.Dense(self.reward_atoms, kernel_init=nn.initializers.zeros)(x)
        return reward_logits, next_s


class BoxNetwork(MuZeroNetwork):
    """MuZero's MLP h, g and f for Box actions: g takes the `[B, D]` unit action, f's
    policy head (`num_actions` outputs) gives the Gaussian's 2 D parameters."""

    def setup(self):
        self.representation = Representation(self.hidden_sizes, self.latent_size)
        self.dynamics = VectorDynamics(tuple(self.hidden_sizes), self.latent_size,
                                       self.reward_atoms)
        self.prediction = Prediction(self.hidden_sizes, self.num_actions, self.value_atoms)
        self.setup_efficientzero()


class SampledModel(Model):
    """`networks.Model` whose actions are sampled: for a Box env g takes `[B, D]` float
    actions (in the env's bounds) and f's policy head gives a `TanhGaussian`'s
    parameters; for a discrete env the plain network. The learner's unroll reads the
    stored samples (`unroll_inference`, `policy_loss`).

    Args: as `networks.Model`, with the env's `spec` in place of the action count.
    """

    def __init__(self, network, spec, observation_shape: tuple[int, ...]):
        super().__init__(network, max(spec.num_actions, 1), observation_shape)
        self.num_actions = spec.num_actions
        self.space = action_space(spec)
        if spec.continuous:
            net = self.network_config
            self.network = BoxNetwork(
                hidden_sizes=(net.hidden_size,) * net.num_hidden_layers,
                latent_size=net.latent_size, num_actions=self.space.head_size,
                value_atoms=2 * net.value_support_size + 1,
                reward_atoms=2 * net.reward_support_size + 1,
                projection_size=net.projection_size)

    @property
    def continuous(self) -> bool:
        return isinstance(self.space, TanhGaussian)

    def init(self, key: chex.PRNGKey):
        if not self.continuous:
            return super().init(key)
        obs = jnp.zeros((1, *self.observation_shape), jnp.float32)
        return self.network.init(key, obs, jnp.zeros((1, self.space.dim), jnp.float32))

    def action_input(self, action):
        """What g is fed: `[B]` int32 discrete actions as they are; `[B, D]` float32
        Box actions (in the env's bounds) scaled to [-1, 1]."""
        if not self.continuous:
            return super().action_input(action)
        chex.assert_rank(action, 2)
        return self.space.to_unit(action)

    def unroll_inference(self, params, state, action, targets, k) -> Inference:
        """The learner's step k: g takes the sample of row k-1 that the stored index
        `action` `[N]` picks (`targets.extra["sampled_actions"]`, `[N, K + 1, S, ...]`)."""
        samples = targets.extra["sampled_actions"][:, k - 1]
        return self.recurrent_inference(params, state, pick(samples, action))

    def policy_loss(self, inference: Inference, targets, k) -> jax.Array:
        """`[N]` -sum_j p_j log pi(a_j | s^k) over row k's S stored samples a_j, p the
        search's weights over them (`targets.policy[:, k]`)."""
        samples = targets.extra["sampled_actions"][:, k]
        log_pi = self.space.log_prob(inference.policy_logits, samples)
        return -jnp.sum(targets.policy[:, k] * log_pi, axis=-1)


def pick(samples: jax.Array, index: jax.Array) -> jax.Array:
    """`[B, ...]`: of `[B, S, ...]` samples, the one at each `[B]` int index."""
    index = index.astype(jnp.int32).reshape(index.shape + (1,) * (samples.ndim - 1))
    return jnp.take_along_axis(samples, index, axis=1)[:, 0]


# --- the search -----------------------------------------------------------------------


@chex.dataclass(frozen=True)
class SampledEmbedding:
    """A tree node's embedding: its hidden state `[B, ...]` and the actions sampled
    there, `[B, K, D]` float32 (Box) or `[B, K]` int32 (discrete)."""

    state: chex.Array
    actions: chex.Array


def enumerates(model: SampledModel, num_samples: int) -> bool:
    """Whether the children are every discrete action in order (K == N), not samples."""
    return not model.continuous and num_samples == model.space.num_actions


def expand(model: SampledModel, num_samples: int, key, policy_logits, legal,
           noise_fraction) -> tuple[jax.Array, jax.Array]:
    """A node's children: (`[B, K, ...]` actions, `[B, K]` prior logits).

    Drawn from beta = (1 - noise_fraction) pi + noise_fraction uniform (over `legal`,
    `[B, N]` bool, for discrete actions), with prior logits log pi - log beta (see the
    module docstring); `noise_fraction` None: beta = pi, whose prior logits are all 0.
    With K == N discrete, the actions in order and pi's logits.
    """
    batch = policy_logits.shape[0]
    if enumerates(model, num_samples):
        actions = jnp.broadcast_to(jnp.arange(num_samples, dtype=jnp.int32),
                                   (batch, num_samples))
        return actions, policy_logits
    space = model.space
    if legal is not None:
        policy_logits = jnp.where(legal, policy_logits, _MASKED)
    else:
        legal = jnp.ones_like(policy_logits, bool)
    if noise_fraction is None:
        actions = space.sample(policy_logits, key, num_samples)
        return actions, jnp.zeros(actions.shape[:2], jnp.float32)
    actions = space.mix(key, policy_logits, legal, num_samples, noise_fraction)
    log_pi = space.log_prob(policy_logits, actions)
    log_beta = jnp.logaddexp(jnp.log1p(-noise_fraction) + log_pi,
                             jnp.log(noise_fraction) + space.uniform_log_prob(actions, legal))
    return actions, log_pi - log_beta


def make_root(model: SampledModel, num_samples: int, root_out: Inference, key,
              noise_fraction, invalid_actions) -> tuple[mctx.RootFnOutput, jax.Array | None]:
    """mctx's root of a sampled search and the `invalid_actions` mctx then gets (the
    env's own when the actions are enumerated; None for samples, all legal)."""
    legal = None if invalid_actions is None else ~invalid_actions
    actions, prior = expand(model, num_samples, key, root_out.policy_logits, legal,
                            noise_fraction)
    root = mctx.RootFnOutput(prior_logits=prior, value=root_out.value,
                             embedding=SampledEmbedding(state=root_out.state, actions=actions))
    return root, invalid_actions if enumerates(model, num_samples) else None


def make_recurrent_fn(model: SampledModel, num_samples: int, discount: float):
    """mctx's `recurrent_fn` over sampled children: the slot index -> that node's
    sample, g then f, and the child's own samples from its policy (beta = pi)."""

    def recurrent_fn(params, rng, action, embedding):
        out = model.recurrent_inference(params, embedding.state,
                                         pick(embedding.actions, action))
        actions, prior = expand(model, num_samples, rng, out.policy_logits, None, None)
        return mctx.RecurrentFnOutput(
            reward=out.reward, discount=jnp.full_like(out.reward, discount),
            prior_logits=prior, value=out.value,
        ), SampledEmbedding(state=out.state, actions=actions)

    return recurrent_fn


def played_action(root_actions: jax.Array | None, index: jax.Array) -> jax.Array:
    """What the env gets for the search's `[B]` chosen indices: the root sample at each
    (`[B, D]` float32 or `[B]` int32), or the index itself without sampling."""
    return index if root_actions is None else pick(root_actions, index)


def host_actions(root_actions, index) -> np.ndarray:
    """`played_action` in numpy, for a host env's `step` and the evaluations:
    `index` `[B]` (or `[]` for one observation) and `root_actions` `[B, K, ...]` (or
    `[K, ...]`), None without sampling."""
    index = np.asarray(index)
    if root_actions is None:
        return index
    samples = np.asarray(root_actions)
    if index.ndim == 0:
        return samples[int(index)]
    return samples[np.arange(len(index)), index]