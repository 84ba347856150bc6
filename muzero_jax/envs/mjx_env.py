"""MuJoCo physics on the jitted path: MJX (`mujoco.mjx`) tasks as Box-action `JaxEnv`s.

Selected by the id `mjx/<task>`. The rule: a task that reproduces one of Gymnasium's
MuJoCo envs keeps that env's id (`mjx/InvertedPendulum-v5`, `mjx/HalfCheetah-v5`); a
DeepMind Control Suite task is `<domain>_<task>` as `dm_control.suite.load(domain,
task)` names it (`mjx/cartpole_swingup`, `mjx/cartpole_balance`).

| id                          | obs | D | steps | reward                               |
|-----------------------------|-----|---|-------|--------------------------------------|
| `mjx/InvertedPendulum-v5`   | 4   | 1 | 1000  | 1 a step; ends past 0.2 rad of tilt  |
| `mjx/HalfCheetah-v5`        | 17  | 6 | 1000  | forward speed - 0.1 * sum(action**2) |
| `mjx/cartpole_swingup`      | 5   | 1 | 1000  | DMC's smooth reward, in [0, 1]       |
| `mjx/cartpole_balance`      | 5   | 1 | 1000  | DMC's smooth reward, in [0, 1]       |

The Gymnasium tasks run Gymnasium's own model files (`inverted_pendulum.xml`,
`half_cheetah.xml`, MIT-licensed, read from the installed gymnasium package) with its
frame skip, reset noise, observation, reward and termination; tests/test_mjx.py checks
their steps against `gymnasium.make(id)` from the same states (HalfCheetah's contacts
part the trajectories after some ten steps, as two float precisions do); with their
own time limit, their final evaluation plays the Gymnasium env (`EnvSpec.eval_id`).
HalfCheetah's control cost is of the clipped action (Gymnasium's, of the action given,
differs only outside the bounds).

The cartpole tasks use a model written here with the DeepMind Control Suite's cartpole
parameters (Tassa et al. 2018: timestep 0.01 s, RK4, a 1 kg cart on a rail of +-1.8 m,
a 1 m 0.1 kg pole, a motor of gear 10 and control in [-1, 1]), DMC's initial states and
its dense reward: `upright * centered * small_control * small_velocity`, each factor a
`tolerance` as `dm_control.utils.rewards` defines it (written here). DMC episodes last
10 s, 1000 control steps of one physics step each, and never terminate.

Physics runs in float32 (JAX's default), so steps agree with MuJoCo's float64 C
engine to about 1e-5 a step, not bit for bit. Actions are clipped into the
actuators' control range before they are applied. The env state is the joint
positions and velocities alone; every step rebuilds MJX's data from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import os
import warnings
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax.config import ConfigError
from muzero_jax.envs.base import EnvSpec, JaxEnv, Transition

PREFIX = "mjx/"


class PhysicsState(NamedTuple):
    """One env's physics state: qpos `[nq]`, qvel `[nv]` float32."""

    qpos: jax.Array
    qvel: jax.Array


class PhysicsStep(NamedTuple):
    """What a task's reward sees of one agent step.

    before, after: the `PhysicsState`s it went from and to. observation: `[obs]`, of
    `after`. ctrl: `[D]` the (clipped) control applied. dt: its duration in seconds.
    """

    before: PhysicsState
    after: PhysicsState
    observation: jax.Array
    ctrl: jax.Array
    dt: float


def tolerance(x: chex.Array, lower: float = 0.0, upper: float = 0.0, margin: float = 0.0,
              sigmoid: str = "gaussian", value_at_margin: float = 0.1) -> jax.Array:
    """DMC's `rewards.tolerance`: 1 where `lower <= x <= upper`, else a sigmoid of the
    distance to the bounds in units of `margin` that equals `value_at_margin` one margin
    out. `sigmoid`: "gaussian" or "quadratic" (zero beyond the margin). Shapes: as `x`."""
    x = jnp.asarray(x, jnp.float32)
    in_bounds = (lower <= x) & (x <= upper)
    if margin == 0:
        return jnp.where(in_bounds, 1.0, 0.0)
    distance = jnp.where(x < lower, lower - x, x - upper) / margin
    if sigmoid == "gaussian":
        scale = math.sqrt(-2.0 * math.log(value_at_margin))
        value = jnp.exp(-0.5 * (distance * scale) ** 2)
    elif sigmoid == "quadratic":
        scaled = distance * math.sqrt(1.0 - value_at_margin)
        value = jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled ** 2, 0.0)
    else:
        raise ValueError(f"sigmoid={sigmoid!r}: expected 'gaussian' or 'quadratic'")
    return jnp.where(in_bounds, 1.0, value)


# --- the tasks ---------------------------------------------------------------------------


def _gymnasium_asset(name: str) -> str:
    import gymnasium

    path = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", name)
    with open(path) as f:
        return f.read()


# Written here with dm_control's cartpole.xml parameters (see the module docstring);
# contacts are off, as there, so MJX never builds a collision pass.
CARTPOLE_XML = """
<mujoco model="cartpole">
  <option timestep="0.01" integrator="RK4">
    <flag contact="disable"/>
  </option>
  <worldbody>
    <body name="cart" pos="0 0 1">
      <joint name="slider" type="slide" limited="true" axis="1 0 0" range="-1.8 1.8"
             solreflimit=".08 1" damping="5e-4"/>
      <geom name="cart" type="box" size="0.2 0.15 0.1" mass="1"/>
      <body name="pole_1">
        <joint name="hinge_1" type="hinge" axis="0 1 0" damping="2e-6"/>
        <geom name="pole_1" type="capsule" fromto="0 0 0 0 0 1" size="0.045" mass=".1"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="slide" joint="slider" gear="10" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def _inverted_pendulum_initial(key, qpos0, nv):
    # Gymnasium's reset_model: uniform noise of +-reset_noise_scale (0.01) on both.
    pos_key, vel_key = jax.random.split(key)
    qpos = qpos0 + jax.random.uniform(pos_key, qpos0.shape, minval=-0.01, maxval=0.01)
    qvel = jax.random.uniform(vel_key, (nv,), minval=-0.01, maxval=0.01)
    return qpos, qvel


def _inverted_pendulum_observe(state: PhysicsState) -> jax.Array:
    return jnp.concatenate([state.qpos, state.qvel])


def _inverted_pendulum_reward(step: PhysicsStep):
    observation = step.observation
    terminated = ~jnp.all(jnp.isfinite(observation)) | (jnp.abs(observation[1]) > 0.2)
    return jnp.where(terminated, 0.0, 1.0), terminated


def _half_cheetah_initial(key, qpos0, nv):
    # Gymnasium's reset_model: uniform +-0.1 on positions, normal 0.1 on velocities.
    pos_key, vel_key = jax.random.split(key)
    qpos = qpos0 + jax.random.uniform(pos_key, qpos0.shape, minval=-0.1, maxval=0.1)
    return qpos, 0.1 * jax.random.normal(vel_key, (nv,))


def _half_cheetah_observe(state: PhysicsState) -> jax.Array:
    # Gymnasium's default leaves the x position out (exclude_current_positions...).
    return jnp.concatenate([state.qpos[1:], state.qvel])


def _half_cheetah_reward(step: PhysicsStep):
    # Gymnasium's forward_reward_weight 1 and ctrl_cost_weight 0.1.
    x_velocity = (step.after.qpos[0] - step.before.qpos[0]) / step.dt
    return x_velocity - 0.1 * jnp.sum(step.ctrl ** 2), jnp.zeros((), bool)


def _cartpole_initial(swing_up: bool):
    def initial(key, qpos0, nv):
        # DMC's Balance.initialize_episode, for one pole.
        keys = jax.random.split(key, 3)
        if swing_up:
            qpos = jnp.array([0.0, jnp.pi]) + 0.01 * jax.random.normal(keys[0], (2,))
        else:
            qpos = jnp.concatenate([
                jax.random.uniform(keys[0], (1,), minval=-0.1, maxval=0.1),
                jax.random.uniform(keys[1], (1,), minval=-0.034, maxval=0.034)])
        del qpos0
        return qpos, 0.01 * jax.random.normal(keys[2], (nv,))
    return initial


def _cartpole_observe(state: PhysicsState) -> jax.Array:
    # DMC's bounded_position (cart position, cos and sin of the pole angle) and velocity.
    angle = state.qpos[1]
    return jnp.stack([state.qpos[0], jnp.cos(angle), jnp.sin(angle),
                      state.qvel[0], state.qvel[1]])


def _cartpole_reward(step: PhysicsStep):
    # DMC's smooth (non-sparse) cartpole reward.
    state = step.after
    upright = (step.observation[1] + 1.0) / 2.0
    centered = (1.0 + tolerance(state.qpos[0], margin=2.0)) / 2.0
    small_control = (4.0 + tolerance(step.ctrl[0], margin=1.0, value_at_margin=0.0,
                                     sigmoid="quadratic")) / 5.0
    small_velocity = (1.0 + tolerance(state.qvel[1], margin=5.0)) / 2.0
    return upright * small_control * small_velocity * centered, jnp.zeros((), bool)


@dataclasses.dataclass(frozen=True)
class Task:
    """One MJX task.

    xml: a callable returning the MJCF model text. frame_skip: physics steps an agent
    step. max_episode_steps: the time limit in agent steps. initial(key, qpos0, nv) ->
    (qpos, qvel). observe(PhysicsState) -> `[obs]` float32. reward(PhysicsStep) ->
    (`[]` reward, `[]` bool terminated). max_abs_reward: the largest |reward| of a step.
    eval_id: the Gymnasium env of the same dynamics and time limit, on which the final
    evaluation plays (None: this env itself).
    """

    xml: Callable[[], str]
    frame_skip: int
    max_episode_steps: int
    initial: Callable
    observe: Callable[[PhysicsState], jax.Array]
    reward: Callable
    max_abs_reward: float = 1.0
    eval_id: str | None = None


TASKS: dict[str, Task] = {
    "InvertedPendulum-v5": Task(
        xml=functools.partial(_gymnasium_asset, "inverted_pendulum.xml"), frame_skip=2,
        max_episode_steps=1000, initial=_inverted_pendulum_initial,
        observe=_inverted_pendulum_observe, reward=_inverted_pendulum_reward,
        eval_id="InvertedPendulum-v5"),
    # Its reward is the forward speed (m/s) less the control cost, with no bound: 30
    # holds what published agents reach (returns under 20,000 in 1000 steps: under 20
    # m/s), and a faster one stops the run with the reward named (support.check_rewards).
    "HalfCheetah-v5": Task(
        xml=functools.partial(_gymnasium_asset, "half_cheetah.xml"), frame_skip=5,
        max_episode_steps=1000, initial=_half_cheetah_initial,
        observe=_half_cheetah_observe, reward=_half_cheetah_reward, max_abs_reward=30.0,
        eval_id="HalfCheetah-v5"),
    "cartpole_swingup": Task(
        xml=lambda: CARTPOLE_XML, frame_skip=1, max_episode_steps=1000,
        initial=_cartpole_initial(swing_up=True), observe=_cartpole_observe,
        reward=_cartpole_reward),
    "cartpole_balance": Task(
        xml=lambda: CARTPOLE_XML, frame_skip=1, max_episode_steps=1000,
        initial=_cartpole_initial(swing_up=False), observe=_cartpole_observe,
        reward=_cartpole_reward),
}


def task_ids() -> list[str]:
    """The ids of the MJX tasks (`mjx/<task>`)."""
    return [PREFIX + name for name in TASKS]


MJX_INSTALL = "pip install mujoco==3.17.0 mujoco-mjx==3.17.0"


def _import_mjx(env_id: str):
    try:
        import mujoco

        # mujoco.mjx prints a line to stdout when the optional warp backend is missing;
        # stdout carries the training script's progress, so the line is dropped.
        with contextlib.redirect_stdout(io.StringIO()):
            from mujoco import mjx
    except ImportError as error:
        raise ConfigError(f"env={env_id!r} needs MuJoCo's JAX port ({error}): "
                          f"{MJX_INSTALL}") from None
    return mujoco, mjx


def _compile(mujoco, xml: str):
    """The MjModel of `xml`, its compiler's warnings as Python warnings: MuJoCo's own
    handler appends them to MUJOCO_LOG.TXT in the working directory (Gymnasium's
    half_cheetah.xml draws a deprecation notice), which would litter where runs start."""
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        model = mujoco.MjModel.from_xml_string(xml)
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        warnings.warn(f"MuJoCo: {message}", stacklevel=3)
    return model


class MjxEnv(JaxEnv):
    """The MJX task `mjx/<name>` as a single-env Box-action `JaxEnv`.

    Args:
      env_id: `mjx/<name>` with <name> a key of `TASKS`.
      max_episode_steps: the time limit in agent steps (None: the task's own).

    Raises `ConfigError` naming the id and the known ones for an unknown task.
    """

    def __init__(self, env_id: str, max_episode_steps: int | None = None):
        name = env_id[len(PREFIX):] if env_id.startswith(PREFIX) else env_id
        if name not in TASKS:
            raise ConfigError(f"env={env_id!r}: not an MJX task; expected one of "
                              f"{task_ids()}")
        mujoco, mjx = _import_mjx(env_id)
        self.task = TASKS[name]
        self.mj_model = _compile(mujoco, self.task.xml())
        self._mjx = mjx
        self.model = mjx.put_model(self.mj_model)
        self._data = mjx.make_data(self.model)
        self.timestep = float(self.mj_model.opt.timestep)
        limited = self.mj_model.actuator_ctrllimited.astype(bool)
        if not limited.all():
            raise ConfigError(f"env={env_id!r}: actuators {np.flatnonzero(~limited)} "
                              "have no control range; expected bounded controls")
        low, high = self.mj_model.actuator_ctrlrange.T.astype(np.float32)
        self._low, self._high = jnp.asarray(low), jnp.asarray(high)
        observation = self.task.observe(PhysicsState(
            jnp.asarray(self.mj_model.qpos0, jnp.float32),
            jnp.zeros(self.mj_model.nv, jnp.float32)))
        limit = max_episode_steps or self.task.max_episode_steps
        self.spec = EnvSpec(
            env_id=PREFIX + name, observation_shape=tuple(observation.shape),
            num_actions=0, action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high), max_episode_steps=limit,
            max_abs_reward=self.task.max_abs_reward,
            # Another time limit is no longer the Gymnasium env's.
            eval_id=self.task.eval_id if limit == self.task.max_episode_steps else None)

    def initial(self, key: chex.PRNGKey) -> tuple[PhysicsState, jax.Array]:
        """A new episode: its `PhysicsState` and first observation `[obs]`."""
        qpos0 = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        qpos, qvel = self.task.initial(key, qpos0, self.mj_model.nv)
        state = PhysicsState(qpos.astype(jnp.float32), qvel.astype(jnp.float32))
        return state, self.task.observe(state)

    def transition(self, inner: PhysicsState, action: chex.Array,
                   key: chex.PRNGKey) -> Transition:
        """One agent step: `action` `[D]` clipped into the control range, then
        `frame_skip` physics steps. Deterministic (key unused)."""
        del key
        ctrl = jnp.clip(jnp.asarray(action, jnp.float32).reshape(self._low.shape),
                        self._low, self._high)
        data = self._data.replace(qpos=inner.qpos, qvel=inner.qvel, ctrl=ctrl)
        data = jax.lax.fori_loop(0, self.task.frame_skip,
                                 lambda _, d: self._mjx.step(self.model, d), data)
        state = PhysicsState(data.qpos, data.qvel)
        observation = self.task.observe(state)
        reward, terminated = self.task.reward(PhysicsStep(
            inner, state, observation, ctrl, self.task.frame_skip * self.timestep))
        return Transition(state, observation, jnp.asarray(reward, jnp.float32),
                          jnp.asarray(terminated, bool))


def make_mjx(env_id: str, max_episode_steps: int | None = None) -> MjxEnv:
    """The MJX task `env_id` (`mjx/<task>`), with an optional time limit."""
    return MjxEnv(env_id, max_episode_steps)
