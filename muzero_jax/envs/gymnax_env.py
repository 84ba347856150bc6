"""gymnax environments (`gymnax.make(id)`: classic control, MinAtar, bsuite...) as `JaxEnv`s.

Selected by the id `gymnax/<id>`, e.g. `gymnax/Breakout-MinAtar`. gymnax's own
`step` auto-resets and keeps the time limit in its params; we call the
environment-specific `reset_env` / `step_env` instead, so that termination comes
from the game alone and the base class applies the time limit
(`max_steps_in_episode`, or `Config.max_episode_steps`) as truncation, with the
observation a truncated episode reached kept for its bootstrap.

gymnax's CartPole-v1, Acrobot-v1 and MountainCar-v0 match Gymnasium's step for
step, so with their own time limit their final evaluation plays Gymnasium's
(`EnvSpec.eval_id`); other gymnax envs are evaluated on their JAX form.

The continuous-control ports (Pendulum-v1, MountainCarContinuous-v0) have Box
actions: their spec has `num_actions` 0 and the bounds (`EnvSpec.action_low`,
`action_high`), `transition` takes a `[D]` float32 action and clips it into the
bounds, and they are searched by sampling (`SearchConfig.sampled_actions`). A Box
without finite bounds is refused.

MinAtar observations are `(10, 10, channels)` boolean-valued planes, stored as
float32 (they are not frames: no scaling, no frame history). MinAtar defines sticky
actions (each step repeats the previous action with probability 0.1, Young & Tian
2019) and gymnax's ports leave them out; `sticky_action_probability` puts them back
(MinAtar's 0.1 unless the config says otherwise), so that returns are measured under
MinAtar's own protocol.
"""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax.config import ConfigError
from muzero_jax.envs.base import EnvSpec, JaxEnv, Transition

PREFIX = "gymnax/"

# Largest |reward| of one step where we know it (sizes the value and reward supports).
_MAX_ABS_REWARD = {
    "CartPole-v1": 1.0, "Acrobot-v1": 1.0, "MountainCar-v0": 1.0,
    "Asterix-MinAtar": 1.0, "Breakout-MinAtar": 1.0, "Freeway-MinAtar": 1.0,
    "SpaceInvaders-MinAtar": 1.0,
    # -(angle^2 + 0.1 speed^2 + 0.001 torque^2) at angle pi, speed 8, torque 2
    "Pendulum-v1": math.pi ** 2 + 0.1 * 8.0 ** 2 + 0.001 * 2.0 ** 2,
    "MountainCarContinuous-v0": 100.0,  # the goal's 100 (less 0.1 force^2 <= 0.1)
}


# gymnax ports that match Gymnasium's env step for step (same reset ranges, dynamics,
# rewards, termination and time limit; tests/test_gymnax_env.py checks them): the final
# evaluation plays the Gymnasium env, and Gymnasium's reward_threshold is the bar.
_GYMNASIUM_TWIN = {"CartPole-v1": "CartPole-v1", "Acrobot-v1": "Acrobot-v1",
                   "MountainCar-v0": "MountainCar-v0"}

MINATAR_STICKY_ACTION_PROBABILITY = 0.1  # MinAtar's own envs (Young & Tian, 2019)


def default_sticky_action_probability(name: str) -> float:
    """The sticky actions gymnax id `name` is defined with: MinAtar's 0.1, else 0."""
    return MINATAR_STICKY_ACTION_PROBABILITY if name.endswith("-MinAtar") else 0.0


def gymnax_ids() -> list[str]:
    """The ids gymnax registers (for messages and --help)."""
    import gymnax

    return list(gymnax.registered_envs)


class GymnaxEnv(JaxEnv):
    """`gymnax.make(name)` with its default params, as a single-env `JaxEnv`.

    Args:
      name: the gymnax id (without the `gymnax/` prefix).
      max_episode_steps: the time limit (None: the env's `max_steps_in_episode`).
      sticky_action_probability: each step plays the previous action instead of the
        one given with this probability (the first step's previous action is 0, as
        in MinAtar); None: the env's own (`default_sticky_action_probability`).
    """

    def __init__(self, name: str, max_episode_steps: int | None = None,
                 sticky_action_probability: float | None = None):
        import gymnax
        from gymnax.environments import spaces

        if name not in gymnax.registered_envs:
            raise ConfigError(f"env={PREFIX + name!r}: not a gymnax env; expected "
                              f"'{PREFIX}<id>' with <id> one of {gymnax_ids()}")
        self.name = name
        self.env, self.params = gymnax.make(name)
        self.sticky_action_probability = float(
            default_sticky_action_probability(name) if sticky_action_probability is None
            else sticky_action_probability)
        action_space = self.env.action_space(self.params)
        if isinstance(action_space, spaces.Box):
            bounds = _box_bounds(PREFIX + name, action_space)
            num_actions = 0
        elif isinstance(action_space, spaces.Discrete):
            bounds, num_actions = (None, None), int(action_space.n)
        else:
            raise ConfigError(f"env={PREFIX + name!r}: action space "
                              f"{type(action_space).__name__} is not supported; expected "
                              "Discrete or bounded Box actions")
        observation_space = self.env.observation_space(self.params)
        limit = max_episode_steps or int(self.params.max_steps_in_episode)
        self.spec = EnvSpec(env_id=PREFIX + name,
                            observation_shape=tuple(observation_space.shape),
                            num_actions=num_actions, max_episode_steps=limit,
                            action_low=bounds[0], action_high=bounds[1],
                            max_abs_reward=_MAX_ABS_REWARD.get(name),
                            # Another time limit, or sticky actions, are no longer the
                            # Gymnasium env's.
                            eval_id=(_GYMNASIUM_TWIN.get(name) if (
                                max_episode_steps is None
                                or limit == int(self.params.max_steps_in_episode))
                                and not self.sticky_action_probability else None))

    # With sticky actions the inner state is (gymnax's state, the action last played);
    # without, gymnax's state alone, so that those runs keep their keys and programs.
    def initial(self, key: chex.PRNGKey) -> tuple[Any, chex.Array]:
        observation, inner = self.env.reset_env(key, self.params)
        if self.sticky_action_probability:
            inner = (inner, jnp.zeros((self.spec.action_dim,), jnp.float32)
                     if self.spec.continuous else jnp.int32(0))
        return inner, observation

    def transition(self, inner: Any, action: chex.Array, key: chex.PRNGKey) -> Transition:
        if self.spec.continuous:
            action = jnp.clip(jnp.asarray(action, jnp.float32),
                              jnp.asarray(self.spec.action_low, jnp.float32),
                              jnp.asarray(self.spec.action_high, jnp.float32))
        if self.sticky_action_probability:
            inner, previous = inner
            key, sticky_key = jax.random.split(key)
            sticks = jax.random.uniform(sticky_key) < self.sticky_action_probability
            action = jnp.where(sticks, previous, action).astype(previous.dtype)
        observation, inner, reward, terminated, _ = self.env.step_env(
            key, inner, action, self.params)
        if self.sticky_action_probability:
            inner = (inner, action)
        return Transition(inner=inner, observation=observation,
                          reward=jnp.asarray(reward, jnp.float32), terminated=terminated)


def _box_bounds(env_id: str, space) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A gymnax Box's (low, high), one float per dimension; `ConfigError` where a bound is
    not finite (a sampled search draws actions over the whole box)."""
    low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape).reshape(-1)
    high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape).reshape(-1)
    if len(space.shape) != 1 or not np.all(np.isfinite(low) & np.isfinite(high)):
        raise ConfigError(f"env={env_id!r}: action space Box(low={space.low}, high="
                          f"{space.high}, shape={space.shape}) is unbounded or not a vector; "
                          "expected a bounded Box of shape (D,)")
    return tuple(map(float, low)), tuple(map(float, high))
