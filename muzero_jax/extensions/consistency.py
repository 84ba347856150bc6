"""Temporal consistency: g's next state should look like h of the next observation.

EfficientZero's self-supervised loss (Ye et al. 2021), after SimSiam (Chen & He 2021):
at each unroll step k the state g made is projected and passed through a prediction
head, the representation h of the observation actually reached at row k is projected
with its gradient stopped, and the loss is their negative cosine similarity. The
projection and prediction heads are the network's (`NetworkConfig.projection_size`),
trained by this loss alone. Rows past the window's first episode end show another
episode's observation and are masked out.

With `LossConfig.consistency_loss_weight` > 0 the term stands alone in the loss with
that weight (EfficientZero: 2 on Atari); like the core terms of steps k >= 1 it is
summed over the K steps and divided by K.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from muzero_jax.extensions import Extension, observations_reached


def negative_cosine_similarity(prediction: chex.Array, target: chex.Array) -> jax.Array:
    """`[N]` -cos(prediction, target) over the last axis of two `[N, D]` arrays, the
    target's gradient stopped (the SimSiam loss: -1 where they point the same way)."""
    def unit(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)

    return -jnp.sum(unit(prediction) * unit(jax.lax.stop_gradient(target)), axis=-1)


def consistency_loss(model, params, predicted_state: chex.Array,
                     observation: chex.Array) -> jax.Array:
    """`[N]` the consistency loss of states g made against h of the observations reached.

    Args:
      model: a `networks.Model` with projection heads (`projection_size` > 0).
      params: its parameters.
      predicted_state: `[N, ...]` hidden states g made (gradient flows into g).
      observation: `[N, *obs_shape]` the observations of the same rows; h's state of them
        is projected without the prediction head and without gradient.
    """
    target = model.project(params, model.initial_inference(params, observation).state,
                           predict=False)
    prediction = model.project(params, predicted_state, predict=True)
    return negative_cosine_similarity(prediction, target)


@dataclasses.dataclass(frozen=True)
class Consistency(Extension):
    """The extension (see the module docstring).

    Records nothing. Targets: `consistency_observation` `[N, K, *obs_shape]`, what h
    sees at rows 1..K (with the frame history, as self-play stacked it), and
    `consistency_mask` `[N, K]` float32, 0 past the first episode end.

    Args:
      weight: the term's weight (`LossConfig.consistency_loss_weight`).
      history_length: H, frames per observation stack (`EnvConfig.history_length`).
    """

    weight: float
    history_length: int = 0

    LOSSES: ClassVar = {"consistency_loss": None}

    def targets(self, buffer, window, past_end, past_truncation, unroll_steps):
        del past_truncation
        observation, mask = observations_reached(buffer, window, past_end, unroll_steps,
                                                 self.history_length)
        return {"consistency_observation": observation, "consistency_mask": mask}

    def unroll_loss(self, model, params, state, inference, k, targets):
        del state
        extra = targets.extra
        loss = consistency_loss(model, params, inference.state,
                                extra["consistency_observation"][:, k - 1])
        return {"consistency_loss": self.weight * loss * extra["consistency_mask"][:, k - 1]}
