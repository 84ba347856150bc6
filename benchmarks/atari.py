"""Atari-size search and learn steps, in frames per second.

Written ahead of the Atari issue: it runs once `muzero_jax.config.PRESETS` holds
`atari_tiny` (and `atari_paper`, measured off-CPU only: a paper-size ResNet step takes
minutes on 2 CPU cores), and is skipped with a line saying so before that. After the merge,
`make_agent` and `make_batch` are the two places to adapt if the Atari agent or its
batches are built differently (e.g. a host environment, stacked frame history).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import muzero_jax as mz
from muzero_jax.learner import Batch
from muzero_jax.targets import Targets

PRESETS = ("atari_tiny", "atari_paper")
ATARI_ACTIONS = 18  # the full ALE action set


class _ShapeOnlyEnv:
    """What `Agent` needs of an environment to build search and learner: shapes only."""

    def __init__(self, config: mz.Config):
        if config.observation_shape is None:
            raise ValueError(f"preset for {config.env!r} has observation_shape=None; expected "
                             "the frame stack's shape, to build the network without an env")
        self.observation_shape = tuple(config.observation_shape)
        self.num_actions = ATARI_ACTIONS
        self.max_abs_reward = None
        self.max_episode_steps = config.max_episode_steps


def make_agent(config: mz.Config) -> mz.Agent:
    """The Atari agent: with its own environment if the library can make one, else shapes."""
    try:
        return mz.Agent(config)
    except Exception:  # noqa: BLE001 - no JAX env for ALE ids: fall back to shapes only
        return mz.Agent(config, env=_ShapeOnlyEnv(config))


def make_batch(agent: mz.Agent, batch: int) -> Batch:
    """A learner batch of the right shapes (random observations, uniform targets)."""
    k, a = agent.config.unroll_steps, agent.num_actions
    key = jax.random.key(0)
    obs = jax.random.uniform(key, (batch, *agent.observation_shape))
    targets = Targets(
        actions=jax.random.randint(key, (batch, k), 0, a),
        value=jax.random.normal(key, (batch, k + 1)), value_mask=jnp.ones((batch, k + 1)),
        reward=jnp.zeros((batch, k)), reward_mask=jnp.ones((batch, k)),
        policy=jnp.full((batch, k + 1, a), 1.0 / a), policy_mask=jnp.ones((batch, k + 1)))
    return Batch(observation=obs, targets=targets, weight=jnp.ones(batch))


def benchmark(settings, log) -> dict:
    """Frames/s of `Agent.act` at num_envs and of `Agent.learn` at batch_size, per preset."""
    if "atari_tiny" not in mz.PRESETS:
        note = ("skipped: no 'atari_tiny' in muzero_jax.config.PRESETS (the Atari issue has "
                "not landed)")
        log(f"  {note}")
        return {"skipped": note, "rows": []}
    rows = []
    for name in PRESETS[:1] if settings.quick else PRESETS:
        if name not in mz.PRESETS:
            continue
        if name == "atari_paper" and jax.default_backend() == "cpu":
            rows.append({"preset": name, "skipped": "paper-size networks: accelerators only"})
            continue
        try:
            rows.append(_benchmark_preset(name, settings, log))
        except Exception as e:  # noqa: BLE001 - report and go on with the other sections
            rows.append({"preset": name, "skipped": f"{type(e).__name__}: {e}"[:500]})
            log(f"  atari {name}: failed, adapt benchmarks/atari.py: {rows[-1]['skipped']}")
    return {"rows": rows}


def _benchmark_preset(name: str, settings, log) -> dict:
    from benchmarks.run import _timing_record

    config = mz.PRESETS[name]()
    agent = make_agent(config)
    state = agent.init(jax.random.key(0))
    frame_skip = getattr(config, "frame_skip", 4)
    batch = config.num_envs
    obs = jax.random.uniform(jax.random.key(1), (batch, *agent.observation_shape))
    key = jax.random.key(2)
    act = settings.measure(lambda: agent.act(state, key, obs))
    data = make_batch(agent, config.batch_size)
    learn = settings.measure(lambda: agent.learn(state, data))
    row = {"preset": name, "act_batch": batch, "simulations": config.num_simulations,
           "frame_skip": frame_skip, "learn_batch": config.batch_size,
           "observation_shape": list(agent.observation_shape),
           "act": _timing_record(act, "frames/s", batch * frame_skip),
           "act_observations": _timing_record(act, "observations/s", batch),
           "learn": _timing_record(learn, "updates/s", 1),
           "learn_samples": _timing_record(learn, "samples/s", config.batch_size)}
    log(f"  atari {name}: act {batch * frame_skip / act.median_s:,.0f} frames/s "
        f"(B={batch}, {config.num_simulations} sims), learn {1 / learn.median_s:,.2f} "
        f"updates/s = {config.batch_size / learn.median_s:,.0f} samples/s")
    return row


def markdown(section: dict) -> list[str]:
    if "skipped" in section:
        return [section["skipped"]]
    lines = ["| preset | act: frames/s (observations/s) | batch, sims | learn: updates/s "
             "(samples/s) | batch |", "|---|---|---|---|---|"]
    for r in section["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['preset']} | skipped: {r['skipped']} | | | |")
            continue
        lines.append(f"| {r['preset']} | {r['act']['median']:,.0f} "
                     f"({r['act_observations']['median']:,.0f}) | {r['act_batch']}, "
                     f"{r['simulations']} | {r['learn']['median']:,.2f} "
                     f"({r['learn_samples']['median']:,.0f}) | {r['learn_batch']} |")
    return lines
