"""Environments: JAX environments built on Gymnasium's functional API.

`make(env_id)` returns a `JaxEnv` for a registered id; `register` adds one.
"""

from __future__ import annotations

from collections.abc import Callable

from muzero_jax.envs.cartpole import CARTPOLE_V1_PARAMS, make_cartpole
from muzero_jax.envs.functional import EnvState, JaxEnv, StepOutput

_REGISTRY: dict[str, Callable[..., JaxEnv]] = {
    "CartPole-v1": make_cartpole,
}


def register(env_id: str, factory: Callable[..., JaxEnv]) -> None:
    """Registers `factory(max_episode_steps=...) -> JaxEnv` under `env_id`."""
    _REGISTRY[env_id] = factory


def registered() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make(env_id: str, max_episode_steps: int | None = None) -> JaxEnv:
    """The JAX environment registered as `env_id`, with an optional time limit."""
    if env_id not in _REGISTRY:
        raise ValueError(
            f"env={env_id!r}: not a registered JAX environment; expected one of "
            f"{list(registered())} (or muzero_jax.envs.register your own)")
    factory = _REGISTRY[env_id]
    return factory() if max_episode_steps is None else factory(max_episode_steps=max_episode_steps)


__all__ = ["CARTPOLE_V1_PARAMS", "EnvState", "JaxEnv", "StepOutput", "make",
           "make_cartpole", "register", "registered"]
