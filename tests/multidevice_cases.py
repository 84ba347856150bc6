"""Data parallelism on 8 forced CPU devices (run by tests/test_distributed.py).

The device count is fixed when JAX starts, so these run in their own pytest process
with XLA_FLAGS=--xla_force_host_platform_device_count=8; the file name keeps the
default (one-device) collection from picking them up.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from scripts import CARTPOLE, script_in_process

import muzero_jax as mz
from muzero_jax import distributed, loop, replay
from muzero_jax.search import Exploration

D = 8

pytestmark = pytest.mark.skipif(jax.device_count() < D,
                                reason=f"needs {D} devices (run via test_distributed.py)")


def tiny(**overrides):
    base = dict(num_envs=D, rollout_length=8, hidden_size=16, latent_size=8,
                num_hidden_layers=1, num_simulations=4, batch_size=2 * D,
                updates_per_iteration=2, capacity=D * 64, min_size=32,
                td_steps=3, unroll_steps=2, learning_rate=3e-3, num_devices=D)
    base.update(overrides)
    return mz.cartpole(**base)


@pytest.fixture(scope="module")
def filled():
    """A one-device agent of the tiny config with 2 envs a device, its state and a buffer
    with 2 rollouts."""
    agent = mz.Agent(tiny(num_envs=2 * D, num_devices=1))
    state = agent.init(jax.random.key(0))
    buffer = agent.init_replay()
    env_state = agent.reset(jax.random.key(1))
    for i in range(2):
        env_state, trajectory = agent.rollout(state, env_state, jax.random.key(2 + i))
        buffer = agent.add(buffer, trajectory)
    return agent, state, buffer


def test_learner_step_on_8_devices_equals_one_device(filled):
    agent, state, buffer = filled
    batch = agent.make_batch(buffer, jax.random.key(3), state)
    one_state, one_metrics, one_priority = jax.jit(agent.learner.step)(state, batch)

    mesh = distributed.make_mesh(D)
    sharded = jax.jit(jax.shard_map(
        lambda s, b: agent.learner.step(s, b, axis_name=distributed.DATA), mesh=mesh,
        in_specs=(P(), P(distributed.DATA)), out_specs=(P(), P(), P(distributed.DATA)),
        check_vma=False))
    state_d, metrics_d, priority_d = sharded(state, batch)
    for a, b in zip(jax.tree.leaves(one_state), jax.tree.leaves(state_d), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, rtol=1e-5)
    for name in one_metrics:
        np.testing.assert_allclose(metrics_d[name], one_metrics[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(priority_d, one_priority, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(state_d.params), jax.tree.leaves(state.params), strict=True))


def test_sharded_rollout_equals_unsharded_for_the_same_keys(filled):
    agent, state, _ = filled
    layout = distributed.DataParallel(agent, D)
    env_state = agent.reset(jax.random.key(5), 2 * D)
    key = jax.random.key(6)
    steps = agent.config.acting.rollout_length  # the fixture's rollouts: compiled once

    def sharded(exploration):
        return jax.jit(lambda e, k, x: layout.rollout(agent.actor, state.params, e, k, x,
                                                      steps))(env_state, key, exploration)

    # Greedy play has no randomness: the sharded rollout is the one-device rollout.
    greedy = Exploration.greedy()
    expected = agent.actor.rollout(state.params, env_state, key, greedy, steps)
    got = sharded(greedy)
    assert_trees_close(expected, got)
    # Exploring: shard d plays its envs with key fold_in(key, d).
    explore = agent.training_exploration
    got = sharded(explore)
    per = 2
    for d in range(D):
        part = jax.tree.map(lambda x, d=d: x[d * per:(d + 1) * per], env_state)
        want = agent.actor.rollout(state.params, part, jax.random.fold_in(key, d), explore,
                                   steps)
        mine = jax.tree.map(lambda x, d=d: x[d * per:(d + 1) * per], got)
        assert_trees_close(want, mine)
    assert not np.array_equal(np.asarray(got[1].action), np.asarray(
        agent.actor.rollout(state.params, env_state, key, explore, steps)[1].action))


def assert_trees_close(want, got):
    def close(a, b):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)

    jax.tree.map(close, want, got)


def _stream_buffer(num_streams, length=32):
    """A buffer whose observations say their stream and position, priorities vary."""
    buffer = replay.init(num_streams, length, (2,), 2)
    streams = jnp.arange(num_streams, dtype=jnp.float32)[:, None]
    positions = jnp.arange(length, dtype=jnp.float32)[None, :]
    observation = jnp.stack(jnp.broadcast_arrays(streams, positions), axis=-1)
    priority = 1.0 + (streams * 7 + positions) % 5
    return buffer.replace(observation=observation, priority=priority,
                          count=jnp.int32(length))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_replay_sampling_per_shard_draws_only_its_own_streams(alpha):
    num_streams, per_shard, batch, window, beta = 2 * D, 2, 4 * D, 4, 0.6
    buffer = _stream_buffer(num_streams)
    mesh = distributed.make_mesh(D)
    specs = distributed.stream_specs(buffer)

    def shard(buffer, key):
        d = jax.lax.axis_index(distributed.DATA)
        w = replay.sample(buffer, jax.random.fold_in(key, d), batch // D, window,
                          priority_alpha=alpha, priority_beta=beta,
                          axis_name=distributed.DATA)
        return w.observation, w.stream, w.position, w.weight

    obs, stream, position, weight = jax.jit(jax.shard_map(
        shard, mesh=mesh, in_specs=(specs, P()), out_specs=P(distributed.DATA),
        check_vma=False))(buffer, jax.random.key(0))
    obs, stream, position, weight = map(np.asarray, (obs, stream, position, weight))
    shard_of_row = np.repeat(np.arange(D), batch // D)
    # Local stream indices; the observation names the global stream it came from.
    assert np.all((stream >= 0) & (stream < per_shard))
    np.testing.assert_array_equal(obs[:, 0], shard_of_row * per_shard + stream)
    np.testing.assert_array_equal(obs[:, 1], position)
    if alpha == 0:
        np.testing.assert_array_equal(weight, 1.0)
        return
    # Importance weights as one batch: (N P(i))^-beta over all shards' N valid starts,
    # P(i) = p_i / (D * shard total), normalised by the batch's largest.
    valid = np.asarray(replay.valid_starts(buffer, window))
    mass = np.where(valid, np.asarray(buffer.priority), 0.0)
    totals = mass.reshape(D, per_shard, -1).sum(axis=(1, 2))
    global_stream = shard_of_row * per_shard + stream
    probability = mass[global_stream, position] / (D * totals[shard_of_row])
    expected = (valid.sum() * probability) ** -beta
    np.testing.assert_allclose(weight, expected / expected.max(), rtol=1e-5)


@pytest.mark.slow
def test_compiled_training_on_8_devices_keeps_shardings_and_learns(tmp_path):
    config = tiny(total_env_steps=D * 8 * 6, eval_every=3, eval_episodes=D,
                  priority_alpha=1.0)
    result = mz.train(config, log=None, run_dir=str(tmp_path / "run"), iterations_per_call=3)
    assert result.env_steps == D * 8 * 6
    assert result.train_steps > 0
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(result.state.params))
    rows = result.history
    assert rows[-1]["loss"] > 0 and rows[-1]["priority_max"] >= 1e-3
    # A resumed run reads its sharded checkpoint back (the run is done: it stays so).
    resumed = mz.train(config, log=None, run_dir=str(tmp_path / "run"), resume=True,
                       iterations_per_call=3)
    assert (resumed.env_steps, resumed.train_steps) == (result.env_steps, result.train_steps)
    assert_trees_close(result.state.params, resumed.state.params)


def test_cli_exits_2_naming_a_batch_that_does_not_divide(tmp_path, monkeypatch, capsys):
    # In this process, which has the 8 devices: the script's main, as its command runs it.
    code, err = script_in_process(
        CARTPOLE, ["--out", str(tmp_path / "run"), "--run.num_devices", "8",
                   "--learner.batch_size", "100"], monkeypatch, capsys, tmp_path)
    assert code == 2, err
    assert "batch_size=100" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_program_layout_splits_streams_and_replicates_parameters():
    program = loop.make_train(tiny())
    assert isinstance(program.layout, distributed.DataParallel)
    runners = jax.tree.map(lambda x: x[None], jax.jit(program.init)(jax.random.key(0)))
    runners = program.layout.place(runners)
    buffer_sharding = runners.buffer.observation.sharding
    assert buffer_sharding.spec == P(None, distributed.DATA)
    assert len(buffer_sharding.device_set) == D
    assert runners.buffer.observation.addressable_shards[0].data.shape[1] == 1  # 8 envs / 8
    assert jax.tree.leaves(runners.train_state.params)[0].sharding.is_fully_replicated
