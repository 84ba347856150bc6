"""Sampled MuZero's data: the root's K sampled actions at every step (the search and
the model are `muzero_jax.sampled`).

Self-play stores, as the core action, the index of the sample played and, as the
core policy target, the search's weights over the K samples; this extension stores
the samples themselves (`sampled_actions`, `[K, D]` float32 for a Box env, `[K]`
int32 for a discrete one), so that the learner can feed g the action an index
picks and take the policy loss over each row's samples. Its loss terms are the
model's (`SampledModel.unroll_inference`, `SampledModel.policy_loss`): it adds none.
Host self-play records it too (`HOST`): it reads only the search's output.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from muzero_jax.extensions import Extension


@dataclasses.dataclass(frozen=True)
class Sampled(Extension):
    """The extension (see the module docstring).

    num_samples: K, `SearchConfig.sampled_actions`.

    Targets: `sampled_actions` `[N, K + 1, S, ...]`, the samples of rows 0..K (K here
    the unroll's steps, S the samples).
    """

    num_samples: int

    HOST: ClassVar[bool] = True

    def fields(self, spec):
        if spec.continuous:
            return {"sampled_actions": jax.ShapeDtypeStruct(
                (self.num_samples, spec.action_dim), jnp.float32)}
        return {"sampled_actions": jax.ShapeDtypeStruct((self.num_samples,), jnp.int32)}

    def record(self, env, key, env_state, search, action):
        del env, key, env_state, action
        return {"sampled_actions": search.root_actions}

    def targets(self, buffer, window, past_end, past_truncation, unroll_steps):
        del buffer, past_end, past_truncation
        return {"sampled_actions": window.extra["sampled_actions"][:, :unroll_steps + 1]}
