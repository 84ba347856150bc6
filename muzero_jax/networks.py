"""The learned model: representation h, dynamics g and prediction f.

Each of h, g, f is a Flax linen module; `MuZeroNetwork` bundles them so that
parameters are one pytree, and `Model` exposes the three as pure functions of
those parameters:

    s0, p0, v0      = initial_inference(params, obs)          # h then f
    s1, r1, p1, v1  = recurrent_inference(params, s0, action)  # g then f

Value and reward come out as logits over categorical supports (see
`muzero_jax.support`); `Model` also returns them as scalars for the search.
Hidden states are min-max scaled to [0, 1] per sample after h and after g.

Four families, picked by `NetworkConfig.kind` (`make_network`): MLPs for vector
observations (`[B, latent]` hidden states), and the paper's ResNet for images (its
Appendix F): h downsamples `[B, 96, 96, planes]` to a `[B, 6, 6, C]` hidden
state, g stacks one-hot action planes onto it, and both g and f are residual
towers with small convolutional heads. For board games, `BoardNetwork` keeps the
board's size (`[B, H, W, C]` hidden states, no striding) and gives g the action as
a learned embedding broadcast over the board; `ConvMLPNetwork` puts that board h in
front of a flat latent and keeps the MLP g and f (small boards on a CPU).
Normalisation is LayerNorm over channels instead of the paper's batch norm, so that
`apply` stays a pure function of the parameters (no batch statistics to carry or to
leak between self-play and learning).
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from muzero_jax import support
from muzero_jax.config import Config, NetworkConfig

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


class ValuePrefix(nn.Module):
    """EfficientZero's value prefix: an LSTM over the states g makes along an unroll.

    (state `[B, ...]` g made, LSTM carry (c, h) `[B, hidden]` each) -> (logits `[B,
    reward_atoms]` of the rewards' sum since the carry was last reset, new carry).
    """

    hidden_size: int
    reward_atoms: int

    @nn.compact
    def __call__(self, s: jax.Array, carry) -> tuple[jax.Array, tuple]:
        carry, y = nn.OptimizedLSTMCell(self.hidden_size)(carry, s.reshape((s.shape[0], -1)))
        y = nn.relu(nn.LayerNorm()(y))
        return nn.Dense(self.reward_atoms, **_zero_head)(y), carry


class Projection(nn.Module):
    """SimSiam's projection (or, on a projection, its prediction head): two dense
    layers, `[B, ...]` (flattened) -> `[B, size]`."""

    size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.LayerNorm()(nn.Dense(self.size)(x.reshape((x.shape[0], -1)))))
        return nn.LayerNorm()(nn.Dense(self.size)(x))


class MuZeroNetwork(nn.Module):
    """h, g and f under one parameter tree (`representation`, `dynamics`, `prediction`).

    With `value_prefix_size` > 0 also `value_prefix` (an LSTM of that width, `ValuePrefix`);
    with `projection_size` > 0 also `projector` and `predictor` (`Projection`), the
    consistency loss's heads. Both take part in `init` only when asked for, so other
    networks' parameter trees are what they were.
    """

    hidden_sizes: Sequence[int]
    latent_size: int
    num_actions: int
    value_atoms: int
    reward_atoms: int
    value_prefix_size: int = 0
    projection_size: int = 0

    def setup(self):
        self.representation = Representation(self.hidden_sizes, self.latent_size)
        self.dynamics = Dynamics(self.hidden_sizes, self.latent_size, self.num_actions,
                                 self.reward_atoms)
        self.prediction = Prediction(self.hidden_sizes, self.num_actions, self.value_atoms)
        self.setup_efficientzero()

    def setup_efficientzero(self):
        """The value prefix's LSTM and the consistency loss's heads, where asked for
        (every family's `setup` ends with this)."""
        if self.value_prefix_size:
            self.value_prefix = ValuePrefix(self.value_prefix_size, self.reward_atoms)
        if self.projection_size:
            self.projector = Projection(self.projection_size)
            self.predictor = Projection(self.projection_size)

    def initial(self, obs):
        s = self.representation(obs)
        policy_logits, value_logits = self.prediction(s)
        return s, policy_logits, value_logits

    def recurrent(self, s, action):
        reward_logits, next_s = self.dynamics(s, action)
        policy_logits, value_logits = self.prediction(next_s)
        return next_s, reward_logits, policy_logits, value_logits

    def reward(self, s, action):
        return self.dynamics(s, action)[0]

    def recurrent_prefix(self, s, action, carry):
        """g then f, with the value prefix's logits in place of g's reward logits."""
        _, next_s = self.dynamics(s, action)
        prefix_logits, carry = self.value_prefix(next_s, carry)
        policy_logits, value_logits = self.prediction(next_s)
        return next_s, prefix_logits, policy_logits, value_logits, carry

    def project(self, s, predict: bool):
        """The projection of hidden states `s`, then (`predict`) the prediction head."""
        z = self.projector(s)
        return self.predictor(z) if predict else z

    def __call__(self, obs, action):
        # Used only by `init`, so that every submodule gets parameters.
        s, _, _ = self.initial(obs)
        out = self.recurrent(s, action)
        if self.value_prefix_size:
            zeros = jnp.zeros((s.shape[0], self.value_prefix_size))
            self.recurrent_prefix(s, action, (zeros, zeros))
        if self.projection_size:
            self.project(s, predict=True)
        return out


# --- ResNet (images) ---------------------------------------------------------------


class Conv(nn.Module):
    """A square "SAME" conv `[B, H, W, C]` -> `[B, H', W', features]`, with nn.Conv's
    parameters (`kernel` `[k, k, C, features]`, `bias`; the class name keeps nn.Conv's
    `Conv_i` names, so parameter trees are the same).

    On CPU an unstrided conv is computed as one matmul over the k x k patches: XLA's
    CPU conv inside a `lax.scan`/`while_loop`, where the learner and the compiled loop
    run it, took ~20x its time outside one (3 convs of 32 channels on a 6x7 board,
    batch 128, forward and backward: 96 ms a step in a scan, 5 ms outside; the patch
    matmul 5 ms in both). Other backends and strided convs use `lax.conv_general_dilated`.
    """

    features: int
    kernel: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.stride != 1 or jax.default_backend() != "cpu":
            y = jax.lax.conv_general_dilated(
                x, kernel, (self.stride, self.stride), "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + bias
        lo = (k - 1) // 2  # "SAME" with stride 1: (k - 1) // 2 before, the rest after
        padded = jnp.pad(x, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
        height, width = x.shape[1], x.shape[2]
        patches = jnp.concatenate([padded[:, i:i + height, j:j + width]
                                   for i in range(k) for j in range(k)], axis=-1)
        return patches @ kernel.reshape(-1, self.features) + bias


def _conv(features: int, kernel: int = 3, stride: int = 1) -> Conv:
    return Conv(features, kernel, stride)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with LayerNorm and a skip connection; `[B, H, W, C]` in and out."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        y = nn.relu(nn.LayerNorm()(_conv(channels)(x)))
        y = nn.LayerNorm()(_conv(channels)(y))
        return nn.relu(x + y)


def _tower(x: jax.Array, num_blocks: int) -> jax.Array:
    for _ in range(num_blocks):
        x = ResidualBlock()(x)
    return x


def _avg_pool(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME")


class ConvHead(nn.Module):
    """1x1 conv to a few channels, then a dense hidden layer and zero-initialised logits."""

    channels: int
    hidden_size: int
    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.LayerNorm()(_conv(self.channels, kernel=1)(x)))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.LayerNorm()(nn.Dense(self.hidden_size)(x)))
        return nn.Dense(self.outputs, **_zero_head)(x)


class ResNetRepresentation(nn.Module):
    """h: planes `[B, H, W, P]` -> hidden state `[B, ceil(H/16), ceil(W/16), channels]`.

    The paper's downsampling (96x96 -> 6x6): conv stride 2 (channels / 2), blocks,
    conv stride 2 (channels), blocks, average pool stride 2, blocks, average pool
    stride 2.
    """

    channels: int
    blocks: tuple[int, int, int]

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        x = nn.relu(nn.LayerNorm()(_conv(self.channels // 2, stride=2)(x)))
        x = _tower(x, self.blocks[0])
        x = nn.relu(nn.LayerNorm()(_conv(self.channels, stride=2)(x)))
        x = _tower(x, self.blocks[1])
        x = _tower(_avg_pool(x), self.blocks[2])
        return scale_hidden_state(_avg_pool(x))


class ResNetDynamics(nn.Module):
    """g: (state `[B, h, w, C]`, action `[B]`) -> (reward logits, next state `[B, h, w, C]`).

    The action enters as planes stacked onto the state: A constant one-hot planes, or,
    with `action_embedding_size` E (board games), a learned embedding of E features
    broadcast over the board: parameters O(A E) and E planes, where one-hot planes
    would be A planes (4,672 for chess) at every point.
    """

    num_blocks: int
    num_actions: int
    reward_atoms: int
    head_channels: int
    hidden_size: int
    action_embedding_size: int | None = None

    @nn.compact
    def __call__(self, s: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        channels = s.shape[-1]
        if self.action_embedding_size is None:
            encoded = jax.nn.one_hot(action, self.num_actions)
        else:
            encoded = nn.Embed(self.num_actions, self.action_embedding_size)(action)
        planes = jnp.broadcast_to(encoded[:, None, None, :],
                                  s.shape[:-1] + (encoded.shape[-1],))
        x = nn.LayerNorm()(_conv(channels)(jnp.concatenate([s, planes], axis=-1)))
        x = _tower(nn.relu(x + s), self.num_blocks)
        next_s = scale_hidden_state(x)
        reward_logits = ConvHead(self.head_channels, self.hidden_size, self.reward_atoms)(x)
        return reward_logits, next_s


class ResNetPrediction(nn.Module):
    """f: state `[B, h, w, C]` -> (policy logits `[B, A]`, value logits)."""

    num_blocks: int
    num_actions: int
    value_atoms: int
    head_channels: int
    hidden_size: int

    @nn.compact
    def __call__(self, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _tower(s, self.num_blocks)
        policy_logits = ConvHead(self.head_channels, self.hidden_size, self.num_actions)(x)
        value_logits = ConvHead(self.head_channels, self.hidden_size, self.value_atoms)(x)
        return policy_logits, value_logits


class ResNetMuZeroNetwork(MuZeroNetwork):
    """The ResNet h, g and f under one parameter tree (same method names as the MLP's)."""

    resnet_channels: int = 256
    representation_blocks: tuple[int, int, int] = (2, 3, 3)
    dynamics_blocks: int = 16
    prediction_blocks: int = 16
    head_channels: int = 16

    def setup(self):
        head = dict(head_channels=self.head_channels, hidden_size=self.hidden_sizes[0])
        self.representation = ResNetRepresentation(self.resnet_channels,
                                                   tuple(self.representation_blocks))
        self.dynamics = ResNetDynamics(self.dynamics_blocks, self.num_actions,
                                       self.reward_atoms, **head)
        self.prediction = ResNetPrediction(self.prediction_blocks, self.num_actions,
                                           self.value_atoms, **head)
        self.setup_efficientzero()


# --- board ResNet (board games) ------------------------------------------------------


def _board_tower(obs: jax.Array, channels: int, num_blocks: int) -> jax.Array:
    """Board planes `[B, H, W, P]` -> `[B, H, W, channels]`: a 3x3 conv stem, then a
    residual tower (called inside a compact module, whose parameters it names)."""
    x = nn.relu(nn.LayerNorm()(_conv(channels)(obs.astype(jnp.float32))))
    return _tower(x, num_blocks)


class BoardRepresentation(nn.Module):
    """h: board planes `[B, H, W, P]` -> hidden state `[B, H, W, channels]`, same size.

    A 3x3 conv stem and a residual tower, no striding: every point of a 19x19 board
    keeps its own column of the hidden state.
    """

    channels: int
    num_blocks: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return scale_hidden_state(_board_tower(obs, self.channels, self.num_blocks))


class BoardNetwork(MuZeroNetwork):
    """The board ResNet's h, g and f (f is `ResNetPrediction`: a tower and conv heads).

    h has `representation_blocks[0]` blocks, g `dynamics_blocks`, f `prediction_blocks`.
    """

    resnet_channels: int = 64
    representation_blocks: tuple[int, int, int] = (2, 0, 0)
    dynamics_blocks: int = 2
    prediction_blocks: int = 2
    head_channels: int = 4
    action_embedding_size: int = 16

    def setup(self):
        head = dict(head_channels=self.head_channels, hidden_size=self.hidden_sizes[0])
        self.representation = BoardRepresentation(self.resnet_channels,
                                                  self.representation_blocks[0])
        self.dynamics = ResNetDynamics(self.dynamics_blocks, self.num_actions,
                                       self.reward_atoms, **head,
                                       action_embedding_size=self.action_embedding_size)
        self.prediction = ResNetPrediction(self.prediction_blocks, self.num_actions,
                                           self.value_atoms, **head)
        self.setup_efficientzero()


class ConvMLPRepresentation(nn.Module):
    """h: board planes `[B, H, W, P]` -> flat hidden state `[B, latent]`.

    `BoardRepresentation` (a conv stem and a residual tower at the board's size), then
    one dense layer over every point: a line of four is the same 3x3 pattern wherever it
    lies, which a dense layer on the raw planes has to learn place by place.
    """

    channels: int
    num_blocks: int
    latent_size: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _board_tower(obs, self.channels, self.num_blocks)
        return scale_hidden_state(nn.Dense(self.latent_size)(x.reshape((x.shape[0], -1))))


class ConvMLPNetwork(MuZeroNetwork):
    """A conv h (`ConvMLPRepresentation`) with the MLP g and f of `MuZeroNetwork`.

    For small boards on a CPU: g and f cost what the MLP network's do, and h, run once
    per search and once per learner sample, sees the board as a board.
    """

    resnet_channels: int = 32
    representation_blocks: tuple[int, int, int] = (1, 0, 0)

    def setup(self):
        self.representation = ConvMLPRepresentation(
            self.resnet_channels, self.representation_blocks[0], self.latent_size)
        self.dynamics = Dynamics(self.hidden_sizes, self.latent_size, self.num_actions,
                                 self.reward_atoms)
        self.prediction = Prediction(self.hidden_sizes, self.num_actions, self.value_atoms)
        self.setup_efficientzero()


@chex.dataclass(frozen=True)
class Inference:
    """What the model predicts for a batch of hidden states.

    state: `[B, latent]` hidden state (ResNet: `[B, h, w, C]`), scaled to [0, 1].
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


def make_network(network: NetworkConfig, num_actions: int) -> MuZeroNetwork:
    """The Flax module of h, g and f that `network.kind` names, sized by `network`."""
    sizes = dict(
        hidden_sizes=(network.hidden_size,) * network.num_hidden_layers,
        latent_size=network.latent_size,
        num_actions=num_actions,
        value_atoms=2 * network.value_support_size + 1,
        reward_atoms=2 * network.reward_support_size + 1,
        value_prefix_size=network.lstm_hidden_size if network.value_prefix else 0,
        projection_size=network.projection_size,
    )
    towers = dict(resnet_channels=network.resnet_channels,
                  representation_blocks=tuple(network.representation_blocks))
    if network.kind == "conv_mlp":
        return ConvMLPNetwork(**sizes, **towers)
    towers.update(dynamics_blocks=network.dynamics_blocks,
                  prediction_blocks=network.prediction_blocks,
                  head_channels=network.head_channels)
    if network.kind == "resnet":
        return ResNetMuZeroNetwork(**sizes, **towers)
    if network.kind == "board":
        return BoardNetwork(**sizes, **towers,
                            action_embedding_size=network.action_embedding_size)
    return MuZeroNetwork(**sizes)


class Model:
    """h, g, f as pure functions of parameters.

    Args:
      network: the network stage: layer sizes, the family (`kind`) and the value and
        reward supports. A whole `Config` is read for its `network` stage.
      num_actions: A.
      observation_shape: shape of one observation.
    """

    def __init__(self, network: NetworkConfig | Config, num_actions: int,
                 observation_shape: tuple[int, ...]):
        if isinstance(network, Config):
            network = network.network
        self.network_config = network
        self.num_actions = num_actions
        self.observation_shape = tuple(observation_shape)
        self.value_support_size = network.value_support_size
        self.reward_support_size = network.reward_support_size
        self.squash = network.support_squash
        self.network = make_network(network, num_actions)

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
            value=support.support_to_scalar(value_logits, self.value_support_size, self.squash),
            reward_logits=reward_logits, reward=jnp.zeros((obs.shape[0],), jnp.float32))

    def recurrent_inference(self, params: Params, state: jax.Array,
                            action: jax.Array) -> Inference:
        """g then f. state: `[B, latent]` (ResNet: `[B, h, w, C]`), action: `[B]` int32."""
        chex.assert_equal_shape_prefix((state, action), 1)
        next_s, reward_logits, policy_logits, value_logits = self.network.apply(
            params, state, self.action_input(action), method=MuZeroNetwork.recurrent)
        return Inference(
            state=next_s, policy_logits=policy_logits, value_logits=value_logits,
            value=support.support_to_scalar(value_logits, self.value_support_size, self.squash),
            reward_logits=reward_logits,
            reward=support.support_to_scalar(reward_logits, self.reward_support_size,
                                             self.squash))

    @property
    def value_prefix(self) -> bool:
        """Whether g's reward head is the value prefix (`NetworkConfig.value_prefix`)."""
        return self.network_config.value_prefix

    def initial_carry(self, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """The value prefix's LSTM carry at an unroll's start: (c, h), `[B, hidden]` zeros."""
        zeros = jnp.zeros((batch_size, self.network_config.lstm_hidden_size), jnp.float32)
        return zeros, zeros

    def restart_prefix(self, carry: tuple, depth: jax.Array) -> tuple[tuple, jax.Array]:
        """The value prefix's restart rule, one for the learner's unroll and the search.

        After `depth` steps from the root (`[]` or `[B]` int), a multiple of
        `lstm_horizon_len` restarts the prefix: the carry (`[B, hidden]` each) is zeroed
        there. Returns (carry, restart), restart shaped as `depth`.
        """
        restart = jnp.asarray(depth) % self.network_config.lstm_horizon_len == 0
        carry = jax.tree.map(
            lambda x: jnp.where(restart.reshape(restart.shape + (1,) * (x.ndim - restart.ndim)),
                                0.0, x), carry)
        return carry, restart

    def prefix_inference(self, params: Params, state: jax.Array, action: jax.Array,
                         carry: tuple[jax.Array, jax.Array]) -> tuple[Inference, tuple]:
        """g then f with the value prefix (`value_prefix` networks only).

        As `recurrent_inference`, but `reward_logits`/`reward` are the value prefix's: the
        predicted sum of the rewards since `carry` was `initial_carry`. Returns the
        inference and the LSTM's new carry.
        """
        chex.assert_rank(action, 1)
        next_s, prefix_logits, policy_logits, value_logits, carry = self.network.apply(
            params, state, action, carry, method=MuZeroNetwork.recurrent_prefix)
        return Inference(
            state=next_s, policy_logits=policy_logits, value_logits=value_logits,
            value=support.support_to_scalar(value_logits, self.value_support_size, self.squash),
            reward_logits=prefix_logits,
            reward=support.support_to_scalar(prefix_logits, self.reward_support_size,
                                             self.squash)), carry

    def project(self, params: Params, state: jax.Array, *, predict: bool) -> jax.Array:
        """`[B, projection_size]`: the consistency loss's projection of hidden states
        `state` (`[B, ...]`), followed by its prediction head where `predict`."""
        return self.network.apply(params, state, predict, method=MuZeroNetwork.project)

    def unroll_inference(self, params: Params, state: jax.Array, action: jax.Array,
                         targets, k: jax.Array) -> Inference:
        """The learner's unroll step k (1..K) from `state` by `action` `[N]`: g then f.
        A model whose step reads more of the batch's `targets` (the next observation, for
        a chance code) overrides it."""
        del targets, k
        return self.recurrent_inference(params, state, action)

    def policy_loss(self, inference: Inference, targets, k: jax.Array) -> jax.Array:
        """`[N]` the policy term at unroll step k (0..K): the cross entropy of f's logits
        against the search's policy `targets.policy[:, k]`. A model whose policy is a
        distribution over sampled actions overrides it (`sampled.SampledModel`)."""
        return -jnp.sum(targets.policy[:, k] * jax.nn.log_softmax(inference.policy_logits,
                                                                  axis=-1), axis=-1)

    def reward_logits(self, params: Params, state: jax.Array, action: jax.Array) -> jax.Array:
        """g's reward logits alone, `[B, 2 S_r + 1]` (no f on the next state: a move
        the learner labels but does not unroll). state, action: as `recurrent_inference`."""
        chex.assert_equal_shape_prefix((state, action), 1)
        return self.network.apply(params, state, self.action_input(action),
                                  method=MuZeroNetwork.reward)

    def action_input(self, action: jax.Array) -> jax.Array:
        """What g is fed for `[B]` int32 actions: the actions themselves (g one-hot
        encodes or embeds them). A model whose actions are vectors overrides it."""
        chex.assert_rank(action, 1)
        return action
