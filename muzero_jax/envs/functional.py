"""Gymnasium's functional environments (`FuncEnv`) as `JaxEnv`s.

A `gymnasium.experimental.functional.FuncEnv` gives pure `initial`,
`transition`, `observation`, `reward` and `terminal` functions of an explicit
state; `FuncJaxEnv` maps them onto the protocol's `initial` / `transition`.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from gymnasium.experimental.functional import FuncEnv

from muzero_jax.envs.base import EnvSpec, JaxEnv, Transition


class FuncJaxEnv(JaxEnv):
    """A `FuncEnv` with its parameters, as a single-env `JaxEnv`.

    Args:
      func_env: the functional environment.
      params: its parameters (passed to every FuncEnv call).
      env_id: the id it is known by.
      max_episode_steps: the time limit; reaching it truncates the episode.
      num_actions: size of the discrete action space.
      max_abs_reward: largest |reward| of one step, if known (checks supports).
      eval_id: the Gymnasium id with the same dynamics, if any.
    """

    def __init__(self, func_env: FuncEnv, params: Any, *, env_id: str = "functional",
                 max_episode_steps: int | None, num_actions: int,
                 max_abs_reward: float | None = None, eval_id: str | None = None):
        self.func_env = func_env
        self.params = params
        self.spec = EnvSpec(env_id=env_id,
                            observation_shape=tuple(func_env.observation_space.shape),
                            num_actions=int(num_actions), max_episode_steps=max_episode_steps,
                            max_abs_reward=max_abs_reward, eval_id=eval_id)

    def initial(self, key: chex.PRNGKey) -> tuple[Any, chex.Array]:
        init_key, obs_key = jax.random.split(key)
        inner = self.func_env.initial(init_key, self.params)
        return inner, self.func_env.observation(inner, obs_key, self.params)

    def transition(self, inner: Any, action: chex.Array, key: chex.PRNGKey) -> Transition:
        transition_key, reward_key, obs_key = jax.random.split(key, 3)
        params = self.params
        new_inner = self.func_env.transition(inner, action, transition_key, params)
        return Transition(
            inner=new_inner,
            observation=self.func_env.observation(new_inner, obs_key, params),
            reward=jnp.asarray(self.func_env.reward(inner, action, new_inner, reward_key,
                                                    params), jnp.float32),
            terminated=self.func_env.terminal(new_inner, obs_key, params))
