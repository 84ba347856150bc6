import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax.checkpoint import Checkpointer, CheckpointError, from_nested, to_nested


@chex.dataclass(frozen=True)
class State:
    params: dict
    step: jax.Array
    key: jax.Array


def make_state(scale=1.0, width=3):
    return State(params={"w": jnp.arange(width, dtype=jnp.float32) * scale,
                         "b": (jnp.ones((2, 2), jnp.int32), jnp.zeros((), jnp.float32))},
                 step=jnp.int32(7), key=jax.random.key(11))


def assert_same(a, b):
    a_leaves, a_def = jax.tree.flatten(a)
    b_leaves, b_def = jax.tree.flatten(b)
    assert a_def == b_def
    for x, y in zip(a_leaves, b_leaves, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_nested_dicts_round_trip_dataclasses_tuples_and_keys():
    state = make_state()
    nested = to_nested(state)
    assert set(nested) == {"params", "step", "key"}
    assert set(nested["params"]["b"]) == {"0", "1"}
    assert nested["key"].dtype == jnp.uint32  # raw key data
    assert_same(from_nested(nested, make_state(scale=0.0)), state)


def test_save_restore_is_exact_and_keeps_the_last_m(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, {"state": make_state(scale=step)}, {"iteration": step, "nan": None})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 3]
    step, trees, meta = Checkpointer(str(tmp_path), create=False).restore(
        {"state": make_state(scale=0.0), "replay": {"x": jnp.zeros(2)}})
    assert step == 3 and meta == {"iteration": 3, "nan": None}
    assert_same(trees["state"], make_state(scale=3))
    assert trees["replay"] is None  # never saved


def test_a_save_killed_midway_is_invisible_and_cleaned_up(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=3)
    ckpt.save(1, {"state": make_state()}, {"iteration": 1})
    ckpt.wait()
    ckpt.close()
    # What a SIGKILL during orbax's save leaves: a temporary step directory.
    partial = tmp_path / "2.orbax-checkpoint-tmp-1234567890"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "half_written").write_bytes(b"\0" * 10)
    reopened = Checkpointer(str(tmp_path), keep=3)
    assert reopened.all_steps() == [1]
    step, trees, _ = reopened.restore({"state": make_state(scale=0.0)})
    assert step == 1
    assert_same(trees["state"], make_state())
    assert not partial.exists()


def test_a_different_shape_is_named(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(5, {"state": make_state()}, {})
    ckpt.wait()
    with pytest.raises(CheckpointError, match=r"'state.params.w' is float32\[3\] in the "
                                              r"checkpoint but this config expects "
                                              r"float32\[4\]; .*different network shape"):
        ckpt.restore({"state": make_state(width=4)})
    with pytest.raises(CheckpointError, match="lacks 'state.params.extra'"):
        ckpt.restore({"state": make_state().replace(params={**make_state().params,
                                                           "extra": jnp.zeros(1)})})


def test_missing_and_corrupted_directories_say_so(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        Checkpointer(str(tmp_path / "nope"), create=False)
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        Checkpointer(str(tmp_path)).restore({"state": make_state()})
    ckpt = Checkpointer(str(tmp_path / "c"))
    ckpt.save(1, {"state": make_state()}, {})
    ckpt.wait()
    item = tmp_path / "c" / "1" / "state"
    for name in os.listdir(item):
        if os.path.isfile(item / name):
            (item / name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"c/1: corrupted checkpoint"):
        ckpt.restore({"state": make_state()})


def test_the_malloc_arena_cap_takes_effect_on_glibc():
    # The experiment scripts call it first thing, so that a long run's memory stays flat.
    import platform

    from muzero_jax.train import limit_malloc_arenas

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_ARENA_MAX) is glibc's")
    assert limit_malloc_arenas(8)
