"""Replay's cache of target-network values: the values it holds, when it computes them,
and that updates and batches read from it are those computed without it."""

import jax
import jax.numpy as jnp
import numpy as np

import muzero_jax as mz
from muzero_jax import checkpoint, replay, target_cache


def _filled(agent, iterations: int):
    """A buffer after `iterations` rollouts of the agent's envs, and a state whose target
    network's values differ from position to position (a fresh value head gives 0)."""
    state = agent.init(jax.random.key(0))
    leaves, tree = jax.tree.flatten(state.target_params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    state = state.replace(target_params=jax.tree.unflatten(tree, [
        x + 0.3 * jax.random.normal(k, x.shape, x.dtype)
        for x, k in zip(leaves, keys, strict=True)]))
    buffer, env = agent.init_replay(), agent.reset(jax.random.key(1))
    for i in range(iterations):
        env, trajectory = agent.rollout(state, env, jax.random.key(10 + i))
        buffer = agent.add(buffer, trajectory)
    return state, buffer


def _values(agent, params, buffer):
    """The target network's value of every slot, computed directly: `[B, L]`.

    In calls of the cache's 32 observations: a matmul's rounding depends on its number
    of rows (in this network up to 1e-4 of a value between calls of 32 and of 256)."""
    streams, length = buffer.num_streams, buffer.length
    obs = replay.observations(buffer, jnp.arange(streams),
                              jnp.broadcast_to(jnp.arange(length), (streams, length)))
    chunks = obs.reshape((-1, 32) + obs.shape[2:])
    value = jax.lax.map(lambda o: agent.model.initial_inference(params, o).value, chunks)
    return np.asarray(value).reshape(streams, length)


def _ensure(agent, state, buffer):
    return jax.jit(target_cache.make_ensure(agent.model, agent.config))(state, buffer)


def test_the_tiny_config_keeps_the_cache_and_an_average_target_does_not(tiny_config):
    # 256 positions in chunks of one iteration's 32, over a period of 100 steps, and 32
    # new positions over 2 steps: 18.56 calls a step against 16 windows x 3 rows.
    assert target_cache.calls_per_step(tiny_config) == (256 / 100 + 32 / 2, 48.0)
    assert target_cache.pays(tiny_config)
    assert mz.Agent(tiny_config).init_replay().value_cache is not None
    # The `minatar` preset: 100,000 positions (196 chunks of 512) every 200 steps.
    assert target_cache.calls_per_step(mz.minatar()) == (196 * 512 / 200 + 512 / 16, 768.0)
    for changed in ({"target_update_period": 0}, {"target_update_period": 0,
                                                  "target_ema": 0.9},
                    {"target_update_period": 5}):  # 51.2 + 16 calls a step: more than 48
        assert not target_cache.pays(tiny_config.replace(**changed)), changed
    # Only a copied target's values stay put between copies.
    for changed in ({"target_update_period": 0}, {"target_update_period": 0,
                                                  "target_ema": 0.9}):
        config = tiny_config.replace(**changed)
        assert target_cache.make_ensure(mz.Agent(config).model, config) is None


def test_the_cache_holds_the_target_networks_value_of_every_position(tiny_agent):
    # 12 iterations of 32 positions wrap the 256-position ring.
    state, buffer = _filled(tiny_agent, 12)
    buffer = _ensure(tiny_agent, state, buffer)
    cache = buffer.value_cache
    assert (int(cache.count), int(cache.target_step)) == (12 * 8, 0)
    np.testing.assert_allclose(cache.value, _values(tiny_agent, state.target_params, buffer),
                               rtol=1e-6, atol=1e-6)


def test_the_cache_computes_the_new_positions_alone_until_the_target_changes(tiny_agent):
    state, buffer = _filled(tiny_agent, 4)
    buffer = _ensure(tiny_agent, state, buffer)
    # Marked: a value computed again loses its mark.
    marked = buffer.replace(value_cache=buffer.value_cache.replace(
        value=jnp.full_like(buffer.value_cache.value, 123.0)))
    assert np.all(_ensure(tiny_agent, state, marked).value_cache.value == 123.0)
    env = tiny_agent.reset(jax.random.key(5))
    env, trajectory = tiny_agent.rollout(state, env, jax.random.key(6))
    grown = tiny_agent.add(marked, trajectory)
    caught_up = np.asarray(_ensure(tiny_agent, state, grown).value_cache.value)
    new = np.arange(32, 40)  # the 8 positions of each stream the rollout wrote
    np.testing.assert_allclose(caught_up[:, new],
                               _values(tiny_agent, state.target_params, grown)[:, new],
                               rtol=1e-6, atol=1e-6)
    assert np.all(np.delete(caught_up, new, axis=1) == 123.0)
    # One step past a copy of the parameters: every position again.
    copied = state.replace(step=jnp.int32(100), target_params=jax.tree.map(
        lambda x: x * 1.5, state.target_params))
    again = _ensure(tiny_agent, copied, grown).value_cache
    assert int(again.target_step) == 100
    np.testing.assert_allclose(again.value, _values(tiny_agent, copied.target_params, grown),
                               rtol=1e-6, atol=1e-6)


def test_runs_side_by_side_each_compute_what_they_need(tiny_agent):
    """Under vmap the chunk loop runs for the run that needs most, and each run's values
    are its own: one run caught up, the other recomputed after a copy."""
    state, buffer = _filled(tiny_agent, 4)
    buffer = _ensure(tiny_agent, state, buffer)
    copied = state.replace(step=jnp.int32(100), target_params=jax.tree.map(
        lambda x: x * 1.5, state.target_params))
    states = jax.tree.map(lambda a, b: jnp.stack([a, b]), state, copied)
    buffers = jax.tree.map(lambda x: jnp.stack([x, x]), buffer)
    both = jax.jit(jax.vmap(target_cache.make_ensure(tiny_agent.model, tiny_agent.config)))(
        states, buffers).value_cache
    np.testing.assert_array_equal(both.value[0], buffer.value_cache.value)
    np.testing.assert_allclose(both.value[1], _values(tiny_agent, copied.target_params, buffer),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(both.target_step, [0, 100])


def test_updates_read_from_the_cache_train_as_updates_without_it(tiny_agent):
    """Five iterations of 2 steps from step 96, across the copy of the target at step 100:
    the same parameters with and without the cache."""
    state, buffer = _filled(tiny_agent, 6)
    state = state.replace(step=jnp.int32(96))
    assert buffer.value_cache is not None
    runs = {}
    for name, start in (("direct", buffer.replace(value_cache=None)), ("cached", buffer)):
        # `update` donates its state and buffer: each run starts from copies.
        s, b = jax.tree.map(jnp.copy, state), jax.tree.map(jnp.copy, start)
        for i in range(5):
            s, b, metrics = tiny_agent.update(s, b, jax.random.key(20 + i))
        runs[name] = (s, b, metrics)
    assert int(runs["cached"][1].value_cache.target_step) == 100
    params = [jax.tree.leaves(runs[name][0].params) for name in ("direct", "cached")]
    for direct, cached in zip(*params, strict=True):
        np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-6)
    for key in ("loss", "value_target", "reanalyze_value_change"):
        np.testing.assert_allclose(runs["cached"][2][key], runs["direct"][2][key], rtol=1e-5)


def test_checkpoints_leave_the_cache_out_and_a_restore_computes_it_again(tiny_agent,
                                                                         tmp_path):
    state, buffer = _filled(tiny_agent, 2)
    buffer = _ensure(tiny_agent, state, buffer)
    assert not any("value_cache" in path for path in
                   checkpoint._flat(checkpoint.to_nested(buffer)))
    writer = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    writer.save(1, {"replay": buffer}, {})
    writer.close()
    fresh = tiny_agent.init_replay()
    _, trees, _ = checkpoint.Checkpointer(str(tmp_path / "ckpt"), create=False).restore(
        {"replay": fresh})
    restored = trees["replay"]
    np.testing.assert_array_equal(restored.observation, buffer.observation)
    assert (int(restored.value_cache.count), int(restored.value_cache.target_step)) == (0, -1)
    again = _ensure(tiny_agent, state, restored).value_cache
    np.testing.assert_allclose(again.value, buffer.value_cache.value, rtol=1e-6, atol=1e-6)


def test_make_batch_computes_the_values_whatever_the_cache_holds(tiny_agent):
    state, buffer = _filled(tiny_agent, 4)
    # A cache never brought up to date holds zeros: make_batch must not read it.
    batch = tiny_agent.make_batch(buffer, jax.random.key(3), state)
    reference = tiny_agent.make_batch(buffer.replace(value_cache=None), jax.random.key(3),
                                      state)
    assert float(jnp.abs(batch.targets.value).max()) > 0
    np.testing.assert_array_equal(batch.targets.value, reference.targets.value)


def test_the_benchmark_times_both_paths_over_whole_target_periods(tiny_config, tmp_path):
    from benchmarks import target_cache as bench

    assert bench.period_calls(tiny_config) == 50  # 100 steps: one copy in each timed call
    row = bench.measure("tiny", tiny_config, repeats=1, min_repeat_seconds=0.0)
    assert row["steps_per_call"] == 100
    assert (row["target_calls_per_step_cached"], row["target_calls_per_step_direct"]) == (
        256 / 100 + 32 / 2, 48.0)
    assert row["cached_ms_per_step"] > 0 and row["direct_ms_per_step"] > 0
    bench.write([row], tmp_path, {})
    assert "| tiny | 19 / 48 |" in (tmp_path / "target-cache.md").read_text()


def test_with_frame_stacks_a_cached_value_stays_that_of_its_positions_stack():
    """A stack reaches H positions back; a position replay can still bootstrap from
    (`replay._oldest_start` on) keeps its whole stack until it is overwritten itself, so
    its value computed when it was new is still its value after the ring wrapped."""
    from muzero_jax.selfplay import Trajectory

    streams, length, steps, history_length, actions = 2, 16, 6, 3, 4
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(size=(2, 2, 2 * history_length)), jnp.float32)

    def value_fn(obs):  # any function of the whole stack, frames and action planes
        return jnp.sum(obs * weights, axis=(1, 2, 3))

    # Adding and catching up in one program (op by op, each op would compile alone).
    add = jax.jit(lambda b, t: target_cache.ensure(
        replay.add(b, t), value_fn, jnp.int32(0), chunk=streams * steps,
        history_length=history_length))
    buffer = replay.init(streams, length, (2, 2, 1), actions, observation_dtype=jnp.uint8)
    buffer = buffer.replace(value_cache=target_cache.init(streams, length))
    zeros = jnp.zeros((streams, steps))
    for _ in range(5):  # 30 positions a stream through a ring of 16
        ends = rng.random((streams, steps)) < 0.2
        frames = rng.integers(1, 255, (streams, steps, 2, 2, 1), dtype=np.uint8)
        buffer = add(buffer, Trajectory(
            observation=frames, action=rng.integers(0, actions, (streams, steps), np.int32),
            reward=zeros, terminated=ends, truncated=np.zeros_like(ends),
            search_policy=jnp.full((streams, steps, actions), 1 / actions),
            root_value=zeros, final_value=zeros, final_observation=frames,
            episode_return=zeros, episode_length=zeros.astype(jnp.int32)))
    oldest = int(replay._oldest_start(buffer, history_length))
    positions = np.arange(oldest, int(buffer.count))
    slots = jnp.asarray(np.broadcast_to(positions % length, (streams, len(positions))))
    obs = replay.observations(buffer, jnp.arange(streams), slots,
                              history_length=history_length)
    expected = value_fn(obs.reshape((-1,) + obs.shape[2:])).reshape(slots.shape)
    np.testing.assert_allclose(target_cache.lookup(buffer, jnp.arange(streams), slots),
                               expected, rtol=1e-6, atol=1e-6)
