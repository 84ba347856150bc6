"""Learner: the K-step unroll loss and an Optax update (SPEC.md, "Loss").

    L = sum_k l_r(u_{t+k}, r^k) + l_v(z_{t+k}, v^k) + l_p(pi_{t+k}, p^k) + c ||theta||^2

l_r and l_v are cross-entropies against two-hot targets on the supports, l_p
against the search policy. Losses of unrolled steps k >= 1 are scaled by 1/K and
the gradient through each hidden state that g produced, into the next g, by 1/2,
as in the paper's pseudocode (the root state from h is not scaled).

With `Config.counterfactual_rewards`, each unrolled state also gets l_r for a move
not played there (labelled by the env during self-play): g's reward for it, from
the same state as the played move's, weighted as the reward loss (a term beyond
the paper's, off by default).

The optimizer works on the parameters as one flat vector (`ravel_pytree`): its
state is a vector per moment, and Adam, clipping, the L2 term's gradient and the
update are each one kernel rather than one per parameter array (34 of them in
CartPole's networks): CartPole's update compiles 676 fusions instead of 955.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from muzero_jax import support
from muzero_jax.config import Config
from muzero_jax.networks import Model, Params
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


def make_schedule(config: Config, peak: chex.Numeric | None = None) -> optax.Schedule:
    """Learning rate by update step: linear warm-up, then constant, cosine or exponential decay.

    `peak` (default config.learner.learning_rate) may be traced: a sweep's runs each have theirs.
    """
    peak = config.learner.learning_rate if peak is None else peak
    if config.learner.lr_decay_steps is None:
        main = optax.constant_schedule(peak)
    elif config.learner.lr_decay == "exponential":
        main = optax.exponential_decay(peak, config.learner.lr_decay_steps, config.learner.lr_end_fraction)
    else:
        main = optax.cosine_decay_schedule(peak, config.learner.lr_decay_steps,
                                           alpha=config.learner.lr_end_fraction)
    if config.learner.lr_warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, peak, config.learner.lr_warmup_steps)
    return optax.join_schedules([warmup, main], [config.learner.lr_warmup_steps])


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Gradient clipping, then Adam or SGD with momentum, on the schedule.

    The peak learning rate lives in the optimizer state (`optax.inject_hyperparams`:
    `opt_state.hyperparams["learning_rate"]`), so runs of a learning-rate sweep share
    one compiled program and differ only in their state.
    """

    def optimizer(learning_rate):
        schedule = make_schedule(config, learning_rate)
        if config.learner.optimizer == "adam":
            opt = optax.adam(schedule)
        else:
            opt = optax.sgd(schedule, momentum=config.learner.momentum)
        if config.learner.max_grad_norm is None:
            return opt
        return optax.chain(optax.clip_by_global_norm(config.learner.max_grad_norm), opt)

    return optax.inject_hyperparams(optimizer)(learning_rate=config.learner.learning_rate)


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
    """The loss and the jit-able update for one model and config."""

    def __init__(self, model: Model, config: Config):
        self.model = model
        self.config = config
        self.optimizer = make_optimizer(config)
        self.schedule = make_schedule(config)

    def init(self, params: Params) -> TrainState:
        return TrainState(params=params, opt_state=self.optimizer.init(ravel_pytree(params)[0]),
                          step=jnp.zeros((), jnp.int32),
                          # A copy: donating a state whose two fields share buffers fails.
                          target_params=jax.tree.map(jnp.copy, params)
                          if self.config.learner.use_target_network else None)

    def loss(self, params: Params, batch: Batch) -> tuple[jax.Array, dict]:
        """Scalar loss and per-term metrics for a batch (see the module docstring)."""
        total, (metrics, _) = self._loss(params, batch)
        return total, metrics

    def _loss(self, params, batch, *, with_l2: bool = True):
        """`with_l2=False`: the data loss alone (its gradient is the data's; `step`
        adds the L2 term's on the flat vector) and no `loss`/`l2` metrics."""
        cfg = self.config
        model = self.model
        t = batch.targets
        num_unroll = cfg.loss.unroll_steps
        value_support = cfg.network.value_support_size
        reward_support = cfg.network.reward_support_size
        squash = cfg.network.support_squash

        def value_policy_loss(inference, k):
            value_ce = cross_entropy(
                support.scalar_to_support(t.value[:, k], value_support, squash),
                inference.value_logits)
            policy_ce = cross_entropy(t.policy[:, k], inference.policy_logits)
            return value_ce * t.value_mask[:, k], policy_ce * t.policy_mask[:, k]

        root = model.initial_inference(params, batch.observation)
        value_loss, policy_loss = value_policy_loss(root, 0)

        counterfactual = t.counter_action is not None

        def reward_loss_of(target, logits, mask):
            return cross_entropy(support.scalar_to_support(target, reward_support, squash),
                                 logits) * mask

        def unroll(state, k):
            inference = model.recurrent_inference(params, state, t.actions[:, k - 1])
            v, p = value_policy_loss(inference, k)
            r = reward_loss_of(t.reward[:, k - 1], inference.reward_logits,
                               t.reward_mask[:, k - 1])
            # The move not played, from the same state: g's reward head only.
            c = (reward_loss_of(t.counter_reward[:, k - 1],
                                model.reward_logits(params, state, t.counter_action[:, k - 1]),
                                t.counter_mask[:, k - 1])
                 if counterfactual else jnp.zeros_like(r))
            # As the paper's pseudocode: halve the gradient through each state g made,
            # on its way into the next g; the root state from h is not scaled.
            return scale_gradient(inference.state, 0.5), (v, p, r, c)

        reward_loss = jnp.zeros_like(value_loss)
        counter_loss = jnp.zeros_like(value_loss)
        if num_unroll:  # K = 0 (AlphaZero mode): no dynamics, no reward loss
            _, (v_k, p_k, r_k, c_k) = jax.lax.scan(unroll, root.state,
                                                   jnp.arange(1, num_unroll + 1))
            # Steps k >= 1 each weigh 1/K, so the unroll as a whole weighs as much as the root.
            value_loss = value_loss + jnp.sum(v_k, axis=0) / num_unroll
            policy_loss = policy_loss + jnp.sum(p_k, axis=0) / num_unroll
            reward_loss = jnp.sum(r_k, axis=0) / num_unroll
            counter_loss = jnp.sum(c_k, axis=0) / num_unroll

        per_sample = (cfg.loss.value_loss_weight * value_loss + policy_loss
                      + cfg.loss.reward_loss_weight * (reward_loss + counter_loss))
        data_loss = jnp.mean(batch.weight * per_sample)
        metrics = {
            "value_loss": jnp.mean(value_loss),
            "policy_loss": jnp.mean(policy_loss),
            "reward_loss": jnp.mean(reward_loss),
            **({"counterfactual_reward_loss": jnp.mean(counter_loss)} if counterfactual else {}),
            "value_target": jnp.mean(t.value[:, 0]),
            "value_prediction": jnp.mean(root.value),
        }
        total = data_loss
        if with_l2:
            l2 = jnp.sum(jnp.square(ravel_pytree(params)[0]))
            total = data_loss + cfg.learner.weight_decay * l2
            metrics = dict(metrics, loss=total, l2=l2)
        # Replay priority: how far the root value is from its target (SPEC.md, "Replay").
        priority = jnp.abs(jax.lax.stop_gradient(root.value) - t.value[:, 0])
        return total, (metrics, priority + cfg.replay.priority_epsilon)

    def learn(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        """One optimizer step. Returns the new state and scalar metrics."""
        state, metrics, _ = self.step(state, batch)
        return state, metrics

    def step(self, state: TrainState, batch: Batch, *, axis_name: str | None = None
             ) -> tuple[TrainState, dict, jax.Array]:
        """One optimizer step, then the target network's update.

        Returns the new state, scalar metrics and `[N]` replay priorities
        |v^0 - z_0| + priority_epsilon from the root values before the step.
        `axis_name`: inside `shard_map` over a data axis, its name: `batch` is this
        shard's part of an equal split, and gradients and metrics are averaged over
        the shards (`pmean`), so every shard takes the step the whole batch gives.
        """
        cfg = self.config
        (data_loss, (metrics, priority)), grads = jax.value_and_grad(
            lambda p: self._loss(p, batch, with_l2=False), has_aux=True)(state.params)
        metrics = dict(metrics, loss=data_loss)
        flat_grads = ravel_pytree(grads)[0]
        if axis_name is not None:
            flat_grads, metrics = jax.lax.pmean((flat_grads, metrics), axis_name)
        flat_params, unravel = ravel_pytree(state.params)
        # d/dtheta of c ||theta||^2, on the flat vector: the same gradient as the loss's L2
        # term, in one kernel instead of one per parameter array.
        flat_grads = flat_grads + (2.0 * cfg.learner.weight_decay) * flat_params
        l2 = jnp.sum(jnp.square(flat_params))
        updates, opt_state = self.optimizer.update(flat_grads, state.opt_state, flat_params)
        params = unravel(flat_params + updates)
        step = state.step + 1
        if cfg.learner.target_ema > 0:
            target = optax.incremental_update(params, state.target_params, 1.0 - cfg.learner.target_ema)
        elif cfg.learner.target_update_period > 0:
            target = optax.periodic_update(params, state.target_params, step,
                                           cfg.learner.target_update_period)
        else:
            target = None
        schedule = make_schedule(cfg, peak_learning_rate(state))
        metrics = dict(metrics, loss=metrics["loss"] + cfg.learner.weight_decay * l2, l2=l2,
                       grad_norm=jnp.sqrt(jnp.sum(jnp.square(flat_grads))),
                       learning_rate=schedule(state.step))
        new_state = TrainState(params=params, opt_state=opt_state, step=step,
                               target_params=target)
        return new_state, metrics, priority
