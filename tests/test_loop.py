
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import checkpoint, evaluate
from muzero_jax.loop import make_train


def _config(tiny_config, **overrides):
    # One config for every test that runs two runs side by side, so that they share one
    # compiled chunk (train() with seeds or a sweep builds the same program as
    # `_chunk` below): five iterations, evaluations at the third.
    values = dict(total_env_steps=160, eval_every=3, eval_episodes=4, solve_return=None,
                  log_every=5)
    return tiny_config.replace(**{**values, **overrides})


def _init(program, keys):
    """`[S]` fresh runs of `program`, initialised by one compiled program (op by op, the
    networks' and optimizer's initialisation compiles one small program per op and
    shape)."""
    return jax.jit(jax.vmap(program.init))(jnp.stack(keys))


def _chunk(program, keys):
    """`[S]` fresh runs of `program` and its chunk, placed and jitted as train() does
    (the chunk donates the runs it is given: each leaf gets a buffer of its own, where
    the vmapped init may return one buffer for equal leaves)."""
    runners = jax.tree.map(lambda x: x.copy(), _init(program, keys))
    runners = program.layout.place(runners)
    return runners, program.layout.jit(program.run_chunk, runners)


def _assert_same_state(before, after):
    """Every array of two states equal, bit for bit (NaNs included, keys by their data)."""
    for a, b in zip(*(jax.tree.leaves(t) for t in (before, after)), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert np.array_equal(a, b, equal_nan=True)


def test_a_done_run_stops_changing_while_the_others_go_on(tiny_config):
    program = make_train(_config(tiny_config))
    runners, run_chunk = _chunk(program, [jax.random.key(0), jax.random.key(1)])
    runners = program.layout.place(runners.replace(done=jnp.array([True, False])))
    before = jax.tree.map(lambda x: x.copy(), runners)  # run_chunk donates `runners`
    after, metrics = run_chunk(runners, jnp.int32(1))
    assert metrics["active"].shape == (5, 2)
    assert not metrics["active"][:, 0].any() and metrics["active"][:, 1].all()
    _assert_same_state(*jax.tree.map(lambda x: x[0], (before, after)))
    assert int(after.iteration[1]) == 5 and int(after.train_state.step[1]) > 0


def test_a_single_done_run_stops_changing(tiny_config):
    # A single run's iteration drops the masks that keep a done run as it was (run_chunk
    # stops before a done run); iterate() must still leave one alone.
    program = make_train(_config(tiny_config))
    runners = _init(program, [jax.random.key(0)])
    runners = runners.replace(done=jnp.array([True]))
    before = jax.tree.map(lambda x: x.copy(), runners)
    after, metrics = jax.jit(program.iterate)(runners, jnp.int32(3))
    assert metrics["active"].shape == (1,) and not metrics["active"][0]
    _assert_same_state(before, after)
    going, metrics = jax.jit(program.iterate)(runners.replace(done=jnp.array([False])),
                                             jnp.int32(3))
    assert metrics["active"][0] and int(going.iteration[0]) == 1


@pytest.fixture(scope="module")
def two_seeds(tiny_config, tmp_path_factory):
    """Seeds 3 and 4 trained in one program, each run's iteration in turn ("map", the
    CPU's layout), with a run directory: (run directory, results). Never changed by a
    test."""
    run_dir = tmp_path_factory.mktemp("two-seeds")
    return run_dir, mz.train(_config(tiny_config, run_layout="map"), seeds=(3, 4),
                             run_dir=str(run_dir), log=None)


@pytest.fixture(scope="module")
def seed_4_alone(tiny_config):
    """Seed 4 trained by itself (a single run is stepped without map or vmap, whatever
    the layout)."""
    return mz.train(_config(tiny_config, seed=4), log=None)


def test_seeds_train_in_one_program_with_their_own_logs(two_seeds, capsys):
    run_dir, results = two_seeds
    assert [r.seed for r in results] == [3, 4]
    for r in results:
        assert r.env_steps == 160 and r.train_steps > 0
        assert {row["seed"] for row in r.history} == {r.seed}
        assert any(row["eval_return"] is not None for row in r.history)
    assert not np.array_equal(jax.tree.leaves(results[0].state.params)[0],
                              jax.tree.leaves(results[1].state.params)[0])
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == ["seed3", "seed4"]
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "seed" in header and "run" in header
    # The evaluation CLI reads each seed's parameters out of the stacked checkpoint.
    _, runs = checkpoint.restore_train_states(str(run_dir), results[0].agent.init(
        jax.random.key(0)))
    assert [run["name"] for run, _ in runs] == ["seed3", "seed4"]
    for (_, state), result in zip(runs, results, strict=True):
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(result.state.params),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    assert evaluate.main([str(run_dir), "--episodes", "1", "--run", "seed4"]) == 0
    assert capsys.readouterr().out.startswith("seed4: CartPole-v1: checkpoint ")


@pytest.mark.parametrize("layout", ["map", "vmap"])
def test_runs_in_one_program_end_as_they_would_alone(tiny_config, two_seeds, seed_4_alone,
                                                     layout):
    if layout == "map":
        together = two_seeds[1]
    else:
        together = mz.train(_config(tiny_config, run_layout=layout), seeds=(3, 4), log=None)
    alone = seed_4_alone
    assert together[1].env_steps == alone.env_steps == 160
    for a, b in zip(jax.tree.leaves(together[1].state.params),
                    jax.tree.leaves(alone.state.params), strict=True):
        if layout == "map":  # the very same computation, run after seed 3's
            np.testing.assert_array_equal(a, b)
        else:  # the same maths, batched: XLA may order sums differently
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_learning_rate_sweep_gives_each_run_its_rate(tiny_config):
    results = mz.train(_config(tiny_config), sweep=("learning_rate", (1e-3, 1e-2)), log=None)
    assert [r.hyperparameters for r in results] == [{"learning_rate": 1e-3},
                                                    {"learning_rate": 1e-2}]
    rates = [r.history[-1]["learning_rate"] for r in results]
    assert rates == pytest.approx([1e-3, 1e-2])


def test_a_sweep_of_a_shape_field_is_refused(tiny_config):
    with pytest.raises(mz.ConfigError, match=r"supported: \['learning_rate'\]"):
        mz.train(_config(tiny_config), sweep=("hidden_size", (8, 16)), log=None)


def test_the_whole_run_is_one_pure_function(tiny_config):
    program = make_train(_config(tiny_config, total_env_steps=96, eval_every=0))
    runner, metrics = jax.jit(program.train)(jax.random.key(0))
    assert int(runner.env_steps) == 96 and bool(runner.done)
    assert metrics["active"].shape == (3,) and metrics["active"].all()


@pytest.mark.parametrize("num_runs", [1, 2])
def test_a_chunk_traces_the_iteration_and_the_update_once(tiny_config, monkeypatch, num_runs):
    # The chunk's metric buffers are sized from a trace of one iteration; jit's trace
    # cache must hand that same trace to the chunk, or the search and learner (most of a
    # cold start's Python time) are traced again.
    traced = {"iteration": 0, "update": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            traced[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(mz.loop.TrainProgram, "iterate_side_by_side",
                        counting("iteration", mz.loop.TrainProgram.iterate_side_by_side))
    make_update = mz.batch.make_update
    monkeypatch.setattr(mz.batch, "make_update",
                        lambda *a, **k: counting("update", make_update(*a, **k)))
    program = make_train(_config(tiny_config))
    runners = jax.eval_shape(jax.vmap(program.init), jax.random.split(jax.random.key(0), num_runs))
    program.layout.jit(program.run_chunk, runners).trace(runners, jnp.int32(1))
    assert traced == {"iteration": 1, "update": 1}
