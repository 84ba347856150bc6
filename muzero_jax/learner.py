"""Learner: the K-step unroll loss and an Optax update.

    L = sum_k l_r(u_{t+k}, r^k) + l_v(z_{t+k}, v^k) + l_p(pi_{t+k}, p^k) + c ||theta||^2

l_r and l_v are cross-entropies against two-hot targets on the supports, l_p
against the search policy (`Model.policy_loss`; over sampled actions with Sampled
MuZero). Losses of unrolled steps k >= 1 are scaled by 1/K and
the gradient through each hidden state that g produced, into the next g, by 1/2,
as in the paper's pseudocode (the root state from h is not scaled).

Extensions (`muzero_jax.extensions`) add their terms at each unrolled step, each
joining a core term (and its weight) or standing alone. With a value prefix network
(`NetworkConfig.value_prefix`) g's reward is the LSTM's prefix, carried along the
unroll and reset every `lstm_horizon_len` steps, and l_r is taken against the prefix
targets (`targets.value_prefix_targets`).

The optimizer works on the parameters as one flat vector (`ravel_pytree`): its
state is a vector per moment, and Adam, clipping, the L2 term's gradient and the
update are each one kernel rather than one per parameter array (34 of them in
CartPole's networks): CartPole's update compiles 676 fusions instead of 955.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import chex
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from muzero_jax import extensions as extensions_lib
from muzero_jax import support
from muzero_jax.config import LearnerConfig, LossConfig
from muzero_jax.networks import Model, Params

if TYPE_CHECKING:
    from muzero_jax.extensions import Extension
    from muzero_jax.targets import Targets


@chex.dataclass(frozen=True)
class Batch:
    """What one learner step consumes.

    observation: `[N, *obs_shape]` root observations.
    targets: `Targets` for K unroll steps.
    weight: `[N]` importance weights (1 for uniform replay).
    """

    observation: chex.Array
    targets: Targets
    weight: chex.Array


@chex.dataclass(frozen=True)
class TrainState:
    """Learner state.

    params: the network parameters being trained.
    opt_state: the optimizer's state, over the parameters as one flat vector
      (`ravel_pytree(params)`).
    step: `[]` int32, learner steps taken.
    target_params: the target network's parameters, which lag `params` and give
      bootstrap values, when the config has a target network
      (`config.learner.use_target_network`); None otherwise (`params` serve instead).
    """

    params: Params
    opt_state: optax.OptState
    step: chex.Array
    target_params: Params


def make_schedule(config: LearnerConfig, peak: chex.Numeric | None = None) -> optax.Schedule:
    """Learning rate by update step: linear warm-up, then constant, cosine or exponential decay.

    `peak` (default config.learning_rate) may be traced: a sweep's runs each have theirs.
    """
    peak = config.learning_rate if peak is None else peak
    if config.lr_decay_steps is None:
        main = optax.constant_schedule(peak)
    elif config.lr_decay == "exponential":
        main = optax.exponential_decay(peak, config.lr_decay_steps, config.lr_end_fraction)
    else:
        main = optax.cosine_decay_schedule(peak, config.lr_decay_steps,
                                           alpha=config.lr_end_fraction)
    if config.lr_warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, peak, config.lr_warmup_steps)
    return optax.join_schedules([warmup, main], [config.lr_warmup_steps])


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
    """Gradient clipping, then Adam or SGD with momentum, on the schedule.

    The peak learning rate lives in the optimizer state (`optax.inject_hyperparams`:
    `opt_state.hyperparams["learning_rate"]`), so runs of a learning-rate sweep share
    one compiled program and differ only in their state.
    """

    def optimizer(learning_rate):
        schedule = make_schedule(config, learning_rate)
        if config.optimizer == "adam":
            opt = optax.adam(schedule)
        else:
            opt = optax.sgd(schedule, momentum=config.momentum)
        if config.max_grad_norm is None:
            return opt
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)

    return optax.inject_hyperparams(optimizer)(learning_rate=config.learning_rate)


def peak_learning_rate(state: TrainState) -> jax.Array:
    """The run's peak learning rate, from its optimizer state (see `make_optimizer`)."""
    return state.opt_state.hyperparams["learning_rate"]


def with_peak_learning_rate(state: TrainState, learning_rate: chex.Numeric) -> TrainState:
    """`state` with another peak learning rate (a sweep's run), same shapes and dtypes."""
    hyperparams = dict(state.opt_state.hyperparams)
    hyperparams["learning_rate"] = jnp.asarray(learning_rate,
                                               hyperparams["learning_rate"].dtype)
    return state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def scale_gradient(x: jax.Array, scale: float) -> jax.Array:
    """Identity forward; multiplies the gradient flowing back through x by `scale`."""
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def cross_entropy(target_probs: jax.Array, logits: jax.Array) -> jax.Array:
    """-sum(target * log_softmax(logits)) over the last axis."""
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)


class Learner:
    """The loss and the jit-able update for one model.

    Args:
      model: the networks.
      learner: the optimizer, its schedule and the target network.
      loss: the unroll and the terms' weights.
      extensions: the active extensions (`muzero_jax.extensions.active`), whose loss
        terms join the core ones.
    """

    def __init__(self, model: Model, learner: LearnerConfig, loss: LossConfig,
                 extensions: tuple[Extension, ...] = ()):
        self.model = model
        self.learner_config = learner
        self.loss_config = loss
        self.extensions = tuple(extensions)
        self.optimizer = make_optimizer(learner)

    def init(self, params: Params) -> TrainState:
        return TrainState(params=params, opt_state=self.optimizer.init(ravel_pytree(params)[0]),
                          step=jnp.zeros((), jnp.int32),
                          # A copy: donating a state whose two fields share buffers fails.
                          target_params=jax.tree.map(jnp.copy, params)
                          if self.learner_config.use_target_network else None)

    def loss(self, params: Params, batch: Batch) -> tuple[jax.Array, dict]:
        """Scalar loss and per-term metrics for a batch (see the module docstring)."""
        total, (metrics, _) = self._loss(params, batch)
        return total, metrics

    def _unroll(self, params, batch, value_policy_loss, reward_loss_of):
        """The K unrolled steps' `[N]` losses, each summed over k and divided by K:
        value, policy, reward, and the extensions' terms by name."""
        model, t, num_unroll = self.model, batch.targets, self.loss_config.unroll_steps

        def step(carry, k):
            state, lstm = carry
            if model.value_prefix:
                inference, lstm = model.prefix_inference(params, state, t.actions[:, k - 1],
                                                         lstm)
                # The prefix restarts every H steps, as its targets and the search's do.
                lstm, _ = model.restart_prefix(lstm, k)
            else:
                inference = model.unroll_inference(params, state, t.actions[:, k - 1], t, k)
            v, p = value_policy_loss(inference, k)
            r = reward_loss_of(t.reward[:, k - 1], inference.reward_logits,
                               t.reward_mask[:, k - 1])
            extra = extensions_lib.unroll_losses(self.extensions, model, params, state,
                                                 inference, k, t)
            # As the paper's pseudocode: halve the gradient through each state g made,
            # on its way into the next g; the root state from h is not scaled.
            return (scale_gradient(inference.state, 0.5), lstm), (v, p, r, extra)

        root = model.initial_inference(params, batch.observation)
        lstm = model.initial_carry(root.state.shape[0]) if model.value_prefix else None
        _, per_step = jax.lax.scan(step, (root.state, lstm), jnp.arange(1, num_unroll + 1))
        return root, jax.tree.map(lambda x: jnp.sum(x, axis=0) / num_unroll, per_step)

    def _loss(self, params, batch, *, with_l2: bool = True):
        """`with_l2=False`: the data loss alone (its gradient is the data's; `step`
        adds the L2 term's on the flat vector) and no `loss`/`l2` metrics.
        Returns the loss, and its metrics and the `[N]` |v^0 - z_0| as aux."""
        loss_cfg, model, t = self.loss_config, self.model, batch.targets

        def value_policy_loss(inference, k):
            value_ce = cross_entropy(
                support.scalar_to_support(t.value[:, k], model.value_support_size,
                                          model.squash), inference.value_logits)
            policy_ce = model.policy_loss(inference, t, k)
            return value_ce * t.value_mask[:, k], policy_ce * t.policy_mask[:, k]

        def reward_loss_of(target, logits, mask):
            return cross_entropy(support.scalar_to_support(
                target, model.reward_support_size, model.squash), logits) * mask

        if loss_cfg.unroll_steps:
            root, (v_k, p_k, reward_loss, extra) = self._unroll(
                params, batch, value_policy_loss, reward_loss_of)
            value_loss, policy_loss = value_policy_loss(root, 0)
            # Steps k >= 1 each weigh 1/K, so the unroll as a whole weighs as much as the root.
            value_loss, policy_loss = value_loss + v_k, policy_loss + p_k
        else:  # K = 0 (AlphaZero mode): no dynamics, no reward loss
            root = model.initial_inference(params, batch.observation)
            value_loss, policy_loss = value_policy_loss(root, 0)
            reward_loss = jnp.zeros_like(value_loss)
            extra = extensions_lib.zeros_like_losses(self.extensions, value_loss)
        core = {"value": value_loss, "policy": policy_loss, "reward": reward_loss}
        alone = []
        for name, joins in extensions_lib.loss_terms(self.extensions).items():
            if joins is None:
                alone.append(extra[name])
            else:
                core[joins] = core[joins] + extra[name]
        per_sample = (loss_cfg.value_loss_weight * core["value"] + core["policy"]
                      + loss_cfg.reward_loss_weight * core["reward"])
        for term in alone:
            per_sample = per_sample + term
        metrics = {"value_loss": jnp.mean(value_loss), "policy_loss": jnp.mean(policy_loss),
                   "reward_loss": jnp.mean(reward_loss),
                   **{name: jnp.mean(x) for name, x in extra.items()},
                   "value_target": jnp.mean(t.value[:, 0]),
                   "value_prediction": jnp.mean(root.value)}
        total = jnp.mean(batch.weight * per_sample)
        if with_l2:
            l2 = jnp.sum(jnp.square(ravel_pytree(params)[0]))
            total = total + self.learner_config.weight_decay * l2
            metrics = dict(metrics, loss=total, l2=l2)
        return total, (metrics, jnp.abs(jax.lax.stop_gradient(root.value) - t.value[:, 0]))

    def learn(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        """One optimizer step. Returns the new state and scalar metrics."""
        state, metrics, _ = self.step(state, batch)
        return state, metrics

    def step(self, state: TrainState, batch: Batch, *, axis_name: str | None = None
             ) -> tuple[TrainState, dict, jax.Array]:
        """One optimizer step, then the target network's update.

        Returns the new state, scalar metrics and the `[N]` |v^0 - z_0| of the root
        values before the step (replay's priorities, before their epsilon).
        `axis_name`: inside `shard_map` over a data axis, its name: `batch` is this
        shard's part of an equal split, and gradients and metrics are averaged over
        the shards (`pmean`), so every shard takes the step the whole batch gives.
        """
        cfg = self.learner_config
        (data_loss, (metrics, priority)), grads = jax.value_and_grad(
            lambda p: self._loss(p, batch, with_l2=False), has_aux=True)(state.params)
        metrics = dict(metrics, loss=data_loss)
        flat_grads = ravel_pytree(grads)[0]
        if axis_name is not None:
            flat_grads, metrics = jax.lax.pmean((flat_grads, metrics), axis_name)
        flat_params, unravel = ravel_pytree(state.params)
        # d/dtheta of c ||theta||^2, on the flat vector: the same gradient as the loss's L2
        # term, in one kernel instead of one per parameter array.
        flat_grads = flat_grads + (2.0 * cfg.weight_decay) * flat_params
        l2 = jnp.sum(jnp.square(flat_params))
        updates, opt_state = self.optimizer.update(flat_grads, state.opt_state, flat_params)
        params = unravel(flat_params + updates)
        step = state.step + 1
        if cfg.target_ema > 0:
            target = optax.incremental_update(params, state.target_params, 1.0 - cfg.target_ema)
        elif cfg.target_update_period > 0:
            target = optax.periodic_update(params, state.target_params, step,
                                           cfg.target_update_period)
        else:
            target = None
        schedule = make_schedule(cfg, peak_learning_rate(state))
        metrics = dict(metrics, loss=metrics["loss"] + cfg.weight_decay * l2, l2=l2,
                       grad_norm=jnp.sqrt(jnp.sum(jnp.square(flat_grads))),
                       learning_rate=schedule(state.step))
        new_state = TrainState(params=params, opt_state=opt_state, step=step,
                               target_params=target)
        return new_state, metrics, priority
