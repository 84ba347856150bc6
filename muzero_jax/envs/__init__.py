"""Environments: one protocol (`base`), JAX-native and host realisations, and one id rule.

`make(env_config)` builds the env `EnvConfig.id` names, reading the env stage alone
(`muzero_jax.config.EnvConfig`). The rule, checked in this order:

| id                      | realisation                                   | path         |
|-------------------------|-----------------------------------------------|--------------|
| `jax/<name>`            | a JAX env registered here (`register`), e.g.  | jitted scan  |
|                         | `jax/CartPole-v1` (Gymnasium's functional one) |              |
| `gymnax/<id>`           | `gymnax.make(id)`, e.g. `gymnax/Breakout-MinAtar` | jitted scan |
| `pgx/<game>`            | `pgx.make(game)`, two-player board games, e.g. | jitted scan |
|                         | `pgx/tic_tac_toe`, `pgx/go_9x9`, `pgx/chess`; |              |
|                         | with chance `pgx/2048`, `pgx/backgammon`      |              |
| `mjx/<task>`            | MuJoCo through MJX (Box actions): Gymnasium's | jitted scan  |
|                         | `mjx/InvertedPendulum-v5`, `mjx/HalfCheetah-v5`; |           |
|                         | DMC's `mjx/cartpole_swingup`, `_balance`      |              |
| `ALE/<Game>-v5`         | ale-py's vectorised emulators (frames)        | host loop    |
| anything else           | `gymnasium.make_vec(id)`, `module:EnvId` too; | host loop    |
|                         | Discrete or bounded Box actions (Pendulum-v1, |              |
|                         | MuJoCo's InvertedPendulum-v5, Hopper-v5)      |              |

So one id never means two envs: `CartPole-v1` is Gymnasium's numpy CartPole on
the host, `jax/CartPole-v1` its JAX port (same dynamics, checked step for step),
`gymnax/CartPole-v1` gymnax's.

A Box env (`EnvSpec.continuous`) acts with `[D]` float vectors within its bounds;
an unbounded Box is refused with one line when the env is made.
"""

from __future__ import annotations

from collections.abc import Callable

from muzero_jax.config import Config, ConfigError, EnvConfig
from muzero_jax.envs.base import (
    EnvSpec,
    EnvState,
    HostEnv,
    HostEnvs,
    HostStep,
    JaxEnv,
    StepOutput,
    Transition,
    env_config,
    to_float,
)
from muzero_jax.envs.cartpole import CARTPOLE_V1_PARAMS, make_cartpole
from muzero_jax.envs.functional import FuncJaxEnv
from muzero_jax.envs.probe import fit_to_env

Env = JaxEnv | HostEnv

JAX_PREFIX = "jax/"

# A factory takes the time limit (None: the env's own) and returns a JaxEnv.
_REGISTRY: dict[str, Callable[..., JaxEnv]] = {
    "CartPole-v1": make_cartpole,
}

# The families of ids, for --help and error messages.
FAMILIES = {
    "jax/<name>": "JAX envs registered with muzero_jax.envs.register (jax/CartPole-v1); "
                  "jitted self-play",
    "gymnax/<id>": "gymnax envs, e.g. gymnax/Acrobot-v1, gymnax/Breakout-MinAtar; jitted "
                   "self-play",
    "pgx/<game>": "two-player board games through pgx, e.g. pgx/tic_tac_toe, "
                  "pgx/connect_four, pgx/go_9x9, pgx/chess; with chance pgx/2048, "
                  "pgx/backgammon; jitted self-play",
    "mjx/<task>": "MuJoCo through MJX (Box actions): mjx/InvertedPendulum-v5, "
                  "mjx/HalfCheetah-v5 (Gymnasium's models), mjx/cartpole_swingup, "
                  "mjx/cartpole_balance (DMC's); jitted self-play",
    "ALE/<Game>-v5": "Atari through ale-py (frames; pip install ale-py); host self-play",
    "<gymnasium id>": "any gymnasium.make id with Discrete or bounded Box actions "
                      "(Pendulum-v1; MuJoCo's InvertedPendulum-v5, Hopper-v5 with pip "
                      "install mujoco), or module:EnvId; host self-play (gymnasium.make_vec)",
}


def register(name: str, factory: Callable[..., JaxEnv]) -> None:
    """Registers `factory(max_episode_steps=None) -> JaxEnv`, made by the id `jax/<name>`."""
    if name.startswith(JAX_PREFIX):
        name = name[len(JAX_PREFIX):]
    _REGISTRY[name] = factory


def registered() -> tuple[str, ...]:
    """The ids of the registered JAX envs (`jax/<name>`)."""
    return tuple(JAX_PREFIX + name for name in sorted(_REGISTRY))


def make_jax(env_id: str, max_episode_steps: int | None = None) -> JaxEnv:
    """The registered JAX env `jax/<name>`, with an optional time limit."""
    name = env_id[len(JAX_PREFIX):] if env_id.startswith(JAX_PREFIX) else env_id
    if name not in _REGISTRY:
        raise ConfigError(
            f"env={env_id!r}: not a registered JAX environment; expected one of "
            f"{list(registered())} (or muzero_jax.envs.register your own)")
    return _REGISTRY[name](max_episode_steps=max_episode_steps)


def make(config: EnvConfig | Config) -> Env:
    """The environment `EnvConfig.id` names (see the module docstring for the rule).

    Args:
      config: the env stage; a whole `Config` is read for its `env` stage.

    Raises `ConfigError` naming the id for unknown ids and unsupported spaces, before
    anything compiles.
    """
    env = env_config(config)
    if env.sticky_action_probability and not env.id.startswith(("gymnax/", "ALE/")):
        raise ConfigError(f"sticky_action_probability={env.sticky_action_probability}: "
                          f"{env.id!r} does not repeat actions (only ALE/ and gymnax/ envs "
                          f"do); expected None or 0")
    if env.id.startswith(JAX_PREFIX):
        return make_jax(env.id, env.max_episode_steps)
    if env.id.startswith("gymnax/"):
        from muzero_jax.envs.gymnax_env import GymnaxEnv

        return GymnaxEnv(env.id[len("gymnax/"):], env.max_episode_steps,
                         env.sticky_action_probability)
    if env.id.startswith("mjx/"):
        from muzero_jax.envs.mjx_env import make_mjx

        return make_mjx(env.id, env.max_episode_steps)
    if env.id.startswith("pgx/"):
        from muzero_jax.envs.pgx_env import make_pgx

        return make_pgx(env.id, env.max_episode_steps)
    if env.id.startswith("ALE/"):
        from muzero_jax.envs import atari

        return atari.Atari(env)
    from muzero_jax.envs.gymnasium_host import GymnasiumEnv

    return GymnasiumEnv(env)


def has_box_actions(env_id: str) -> bool:
    """Whether the env `env_id` names acts in a Box (for choosing a preset; a bad id or a
    package not installed reads False, and making the env then names the fault)."""
    if env_id.startswith(("jax/", "pgx/", "ALE/")):
        return False
    if env_id.startswith("mjx/"):  # every MJX task is a Box
        return True
    try:
        if env_id.startswith("gymnax/"):
            import gymnax
            from gymnax.environments import spaces

            env, params = gymnax.make(env_id[len("gymnax/"):])
            return isinstance(env.action_space(params), spaces.Box)
        import gymnasium as gym

        if ":" in env_id:
            import importlib

            importlib.import_module(env_id.split(":", 1)[0])
            env_id = env_id.split(":", 1)[1]
        env = gym.make(env_id)
        try:
            return isinstance(env.action_space, gym.spaces.Box)
        finally:
            env.close()
    except Exception:  # noqa: BLE001 - any fault here is reported when the env is made
        return False


__all__ = ["CARTPOLE_V1_PARAMS", "FAMILIES", "Env", "EnvSpec", "EnvState", "FuncJaxEnv",
           "HostEnv", "HostEnvs", "HostStep", "JaxEnv", "StepOutput", "Transition",
           "env_config", "fit_to_env", "has_box_actions", "make", "make_cartpole", "make_jax",
           "register", "registered", "to_float"]
