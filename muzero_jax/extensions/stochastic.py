"""Stochastic MuZero's targets and loss terms (the model is `muzero_jax.stochastic`).

Self-play records nothing of its own: the encoder reads the observations replay
keeps. `targets` gives each window the observations of rows 1..K (the codes of the
K chance steps) and a mask of the steps whose transition lies inside the window's
first episode; the model's unroll (`StochasticModel.unroll_inference`) encodes them.
At each unrolled step k the learner adds, beside the core value, reward and policy
terms:

- `afterstate_value_loss`: Q of afterstate k-1 against the value target z_{t+k-1} of
  the state the action was taken in (joins "value", sharing its weight);
- `chance_loss`: sigma at that afterstate against the encoder's code of observation
  t+k, the code held fixed (joins "policy");
- `commitment_loss`: ||c - c^e||^2, the encoder's softmax drawn to its own one-hot
  code, times `LossConfig.commitment_loss_weight` (alone).

A transition that ends an episode is followed in replay by the next episode's first
observation, not the one it reached, so its code is left out of the chance and
commitment terms (its reward and values still train).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from muzero_jax import support
from muzero_jax.extensions import Extension, observations_reached
from muzero_jax.learner import cross_entropy
from muzero_jax.stochastic import commitment_loss


@dataclasses.dataclass(frozen=True)
class Stochastic(Extension):
    """The extension (see the module docstring).

    Targets: `chance_observation` `[N, K, *obs_shape]` float32, the observations of rows
    1..K; `chance_mask` `[N, K]` float32, 1 where rows 0..k-1 hold no episode end.
    """

    commitment_weight: float = 1.0

    LOSSES: ClassVar = {"afterstate_value_loss": "value", "chance_loss": "policy",
                        "commitment_loss": None}

    def targets(self, buffer, window, past_end, past_truncation, unroll_steps):
        del past_truncation
        observation, mask = observations_reached(buffer, window, past_end, unroll_steps)
        return {"chance_observation": observation, "chance_mask": mask}

    def unroll_loss(self, model, params, state, inference, k, targets):
        del params, state
        mask = targets.extra["chance_mask"][:, k - 1]
        value_target = support.scalar_to_support(targets.value[:, k - 1],
                                                 model.value_support_size, model.squash)
        q_loss = cross_entropy(value_target, inference.afterstate_value_logits)
        code = jnp.asarray(inference.code)
        # The code as a fixed target: sigma learns the encoder's code, not the reverse.
        chance = cross_entropy(jax.lax.stop_gradient(code), inference.chance_logits)
        commit = commitment_loss(code, inference.code_probs)
        return {"afterstate_value_loss": q_loss * targets.value_mask[:, k - 1],
                "chance_loss": chance * mask,
                "commitment_loss": self.commitment_weight * commit * mask}

