"""CartPole-v1 as a JAX environment, on Gymnasium's own `CartPoleFunctional`."""

from __future__ import annotations

from gymnasium.envs.phys2d.cartpole import CartPoleFunctional, CartPoleParams

from muzero_jax.envs.functional import FuncJaxEnv

# Gymnasium's CartPoleParams sets polemass_length = masspole + length (0.6);
# CartPole-v1 (classic_control) uses masspole * length (0.05). Every other default
# matches v1; tests/test_envs.py checks the dynamics step for step against
# gymnasium.make("CartPole-v1").
CARTPOLE_V1_PARAMS = CartPoleParams(
    gravity=9.8,
    masscart=1.0,
    masspole=0.1,
    total_mass=1.1,
    length=0.5,
    polemass_length=0.1 * 0.5,
    force_mag=10.0,
    tau=0.02,
)


def make_cartpole(max_episode_steps: int | None = None) -> FuncJaxEnv:
    """CartPole-v1: 2 actions, reward 1 per step, time limit 500 (truncation)."""
    return FuncJaxEnv(CartPoleFunctional(), CARTPOLE_V1_PARAMS, env_id="jax/CartPole-v1",
                      max_episode_steps=max_episode_steps or 500, num_actions=2,
                      max_abs_reward=1.0, eval_id="CartPole-v1")
