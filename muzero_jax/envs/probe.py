"""Scales of an env nobody tuned a preset for: its time limit, discount and supports.

Gymnasium declares no reward range for most envs, so `fit_to_env` takes the reward
scale from what the env's spec declares, else from the rewards of a short rollout of
uniformly random legal actions (a Box env's: uniform within its bounds) before anything
is built (the supports' sizes are static shapes of the networks). Supports that hold
what was observed are kept; others are sized for `support.HEADROOM` times it (a Box
env's probed scale is first multiplied by `BOX_PROBE_FACTOR`: random controllers earn
less than trained ones). The time limit gives the discount's horizon. A reward met later
beyond what the supports hold stops the run (`support.check_rewards`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import support
from muzero_jax.config import Config

PROBE_STEPS = 2_000  # env steps of the random rollout, over config.acting.num_envs envs
DEFAULT_TIME_LIMIT = 200  # for an env without one: episodes must end for values to
#   bootstrap and for evaluation to finish
MIN_DISCOUNT, MAX_DISCOUNT = 0.9, 0.997
BOX_PROBE_FACTOR = 5.0  # a Box env's probed reward scale, times this, is what supports hold
# The budget of an env nobody tuned: a preset's budget was sized for its own env
# (classic's 250,000 steps for Acrobot's 500-step episodes and rare goal). Here 1,000
# full-length episodes, within [50,000, 100,000] env steps: the small envs this default
# was tried on (benchmarks/small_envs.py, CliffWalking) first evaluated optimal by 16,000,
# and 100,000 keeps a 2-core CPU's run to minutes (--total-env-steps for more).
BUDGET_EPISODES = 1_000
MIN_BUDGET, MAX_BUDGET = 50_000, 100_000


def default_budget(time_limit: int) -> int:
    """Env steps for an env nobody tuned whose episodes last at most `time_limit` steps."""
    return int(np.clip(BUDGET_EPISODES * time_limit, MIN_BUDGET, MAX_BUDGET))


def horizon_discount(time_limit: int) -> float:
    """The discount whose horizon 1 / (1 - discount) is the time limit, within
    [0.9, 0.997] (the paper's 0.997 for long episodes)."""
    return float(np.clip(1.0 - 1.0 / time_limit, MIN_DISCOUNT, MAX_DISCOUNT))


def observed_max_abs_reward(env, num_envs: int, steps: int, seed: int) -> float:
    """The largest |reward| of `steps` steps of uniformly random legal actions (a Box
    env's: `[num_envs, D]` uniform within its bounds) in `num_envs` fresh envs of `env`
    (a JaxEnv: one jitted scan; a HostEnv: its batch)."""
    from muzero_jax.envs import JaxEnv

    num_steps = max(math.ceil(steps / num_envs), 1)
    if isinstance(env, JaxEnv):
        return float(_jax_probe(env, num_envs, num_steps)(jax.random.key(seed)))
    rng = np.random.default_rng(seed)
    batch = env.make(num_envs)
    try:
        batch.reset(seed)
        largest = 0.0
        for _ in range(num_steps):
            mask = batch.legal_action_mask
            if env.spec.continuous:
                action = rng.uniform(env.spec.action_low, env.spec.action_high,
                                     size=(num_envs, env.spec.action_dim)).astype(np.float32)
            elif mask is None:
                action = rng.integers(env.spec.num_actions, size=num_envs)
            else:  # a legal action of each env, uniformly
                action = np.argmax(rng.random(mask.shape) * mask, axis=-1)
            reward = np.abs(np.asarray(batch.step(action).reward, np.float64))
            largest = max(largest, float(np.nanmax(reward, initial=0.0)))
    finally:
        batch.close()
    return largest


def _jax_probe(env, num_envs: int, num_steps: int):
    def probe(key):
        reset_key, key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def step(state, key):
            if env.spec.continuous:
                action = jax.random.uniform(
                    key, (num_envs, env.spec.action_dim),
                    minval=jnp.asarray(env.spec.action_low, jnp.float32),
                    maxval=jnp.asarray(env.spec.action_high, jnp.float32))
            else:
                logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
                action = jax.random.categorical(key, logits).astype(jnp.int32)
            state, out = jax.vmap(env.step)(state, action)
            return state, jnp.max(jnp.abs(out.reward))

        _, largest = jax.lax.scan(step, state, jax.random.split(key, num_steps))
        return jnp.max(largest)

    return jax.jit(probe)


def fit_to_env(config: Config, env=None) -> Config:
    """`config` with the scales of its env: a time limit where the env has none
    (`DEFAULT_TIME_LIMIT`), the discount of that time limit (`horizon_discount`), a budget
    of `default_budget` env steps for that length, and reward and value supports
    that hold the env's rewards, with `max_abs_reward` set to the scale they were sized
    for. For a preset used on an env it was not tuned on (`presets.tuned_for`); the
    result goes into config.json, so a resumed run rebuilds the same shapes.

    The reward scale is `config.env.max_abs_reward`, else the env's declared one, else the
    largest |reward| of `observed_max_abs_reward` (1 if every probed reward was 0).
    Supports that already hold it are kept; others are sized for `support.HEADROOM`
    times an observed scale (a declared one exactly).
    """
    from muzero_jax import envs

    env = env or envs.make(config.env)
    if env.spec.max_episode_steps is None and not env.spec.two_player:
        config = config.replace(max_episode_steps=DEFAULT_TIME_LIMIT)
        env = envs.make(config.env)
    if env.spec.max_episode_steps is not None:
        config = config.replace(
            discount=horizon_discount(env.spec.max_episode_steps),
            total_env_steps=min(config.run.total_env_steps,
                                default_budget(env.spec.max_episode_steps)))
    scale = config.env.max_abs_reward if config.env.max_abs_reward is not None \
        else env.spec.max_abs_reward
    headroom = 1.0
    if scale is None:
        scale = observed_max_abs_reward(env, config.acting.num_envs, PROBE_STEPS,
                                        config.run.seed) or 1.0
        headroom = support.HEADROOM
        if env.spec.continuous:
            # A random controller's rewards understate a trained one's (locomotion:
            # several times; gymnasium_host.REWARD_BOUNDS): held from the start, not
            # met later as a fault that stops the run.
            scale, headroom = BOX_PROBE_FACTOR * scale, 1.0
    net, discount = config.network, config.loss.discount
    held = support.largest_reward_held(net.reward_support_size, net.value_support_size,
                                       discount, net.support_squash)
    if scale <= held:
        return config.replace(max_abs_reward=float(scale))
    bound = headroom * scale
    reward_size, value_size = support.sizes_for(bound, discount, net.support_squash)
    return config.replace(
        max_abs_reward=float(bound),
        reward_support_size=max(reward_size, net.reward_support_size),
        value_support_size=max(value_size, net.value_support_size))
