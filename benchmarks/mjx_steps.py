"""Env steps/s of the MJX tasks on the jitted path against Gymnasium's MuJoCo env on the host.

    PYTHONPATH=$PWD python -m benchmarks.mjx_steps [--steps T] [--repeats R]

Jitted rows: `jax.jit` of a `lax.scan` of T steps of `jax.vmap(env.step)` (auto-reset
included) over B envs, with uniformly random actions drawn inside the scan; the first
call (compilation) is reported apart. Host rows: `gymnasium.make_vec(
"InvertedPendulum-v5", B, vectorization_mode="sync")` stepped T times from Python
with random actions (auto-reset included), and likewise HalfCheetah-v5. The environment
alone, no search.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import measure
from muzero_jax.envs.mjx_env import MjxEnv

TASKS = ("mjx/InvertedPendulum-v5", "mjx/cartpole_swingup", "mjx/HalfCheetah-v5")
HOST_TASKS = ("InvertedPendulum-v5", "HalfCheetah-v5")
BATCHES = (16, 64)


def jitted_rollout(env: MjxEnv, batch: int, steps: int):
    """A compiled `(state, key) -> (state, rewards [T, B])` of `steps` random steps."""
    low, high = jnp.asarray(env.spec.action_low), jnp.asarray(env.spec.action_high)
    step = jax.vmap(env.step)

    def rollout(state, key):
        def body(state, key):
            action = jax.random.uniform(key, (batch, env.spec.action_dim),
                                        minval=low, maxval=high)
            state, out = step(state, action)
            return state, out.reward
        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return jax.jit(rollout)


def jitted_row(env_id: str, batch: int, steps: int, repeats: int) -> dict:
    env = MjxEnv(env_id)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), batch))
    fn = jitted_rollout(env, batch, steps)
    keys = iter(jax.random.split(jax.random.key(1), 10_000))
    start = time.perf_counter()
    jax.block_until_ready(fn(state, next(keys)))
    compile_s = time.perf_counter() - start
    timing = measure(lambda: fn(state, next(keys)), repeats=repeats, min_repeat_seconds=1.0)
    return {"env": env_id, "path": "jitted", "batch": batch,
            "steps_per_s": batch * steps / timing.median_s, "spread": timing.spread,
            "first_call_s": compile_s}


def host_row(env_id: str, batch: int, steps: int, repeats: int) -> dict:
    import gymnasium

    # Gymnasium's half_cheetah.xml draws a MuJoCo warning, which MuJoCo appends to
    # MUJOCO_LOG.TXT in the working directory: made elsewhere, so none lands here.
    with tempfile.TemporaryDirectory() as directory, contextlib.chdir(directory):
        envs = gymnasium.make_vec(env_id, batch, vectorization_mode="sync")
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(steps)]

    def rollout():
        for action in actions:
            envs.step(action)
        return jnp.zeros(())

    timing = measure(rollout, repeats=repeats, min_repeat_seconds=1.0)
    envs.close()
    return {"env": env_id, "path": "host, sync", "batch": batch,
            "steps_per_s": batch * steps / timing.median_s, "spread": timing.spread,
            "first_call_s": None}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [jitted_row(env_id, batch, args.steps, args.repeats)
            for env_id in TASKS for batch in BATCHES]
    rows += [host_row(env_id, batch, args.steps, args.repeats)
             for env_id in HOST_TASKS for batch in (1, *BATCHES)]
    for row in rows:
        first = "" if row["first_call_s"] is None else f", first call {row['first_call_s']:.1f}s"
        print(f"{row['env']:26s} {row['path']:10s} B={row['batch']:3d}: "
              f"{row['steps_per_s']:10,.0f} env steps/s (+-{row['spread']:.0%}){first}")
    print("backend:", jax.default_backend(), "devices:", jax.devices(), "numpy", np.__version__)
    return rows


if __name__ == "__main__":
    main()
