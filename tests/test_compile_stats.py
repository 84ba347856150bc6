import jax
import jax.numpy as jnp

from muzero_jax import compile_stats


def test_programs_are_timed_by_name_and_stage():
    before = compile_stats.snapshot()

    def a_program_of_its_own(x):
        return jnp.tanh(x) * 2.0

    jax.jit(a_program_of_its_own)(jnp.ones(3))
    stats = compile_stats.since(before)
    assert set(stats["a_program_of_its_own"]) == {"trace", "lower", "xla"}
    assert "a_program_of_its_own" not in compile_stats.since(compile_stats.snapshot())
    assert "a_program_of_its_own" in compile_stats.format_table(stats)


def test_use_cache_sets_jaxs_persistent_cache_unless_jax_has_one(tmp_path, monkeypatch):
    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    try:
        assert compile_stats.use_cache(str(tmp_path / "c")) == str(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
        assert (tmp_path / "c").is_dir()
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "theirs"))
        assert compile_stats.use_cache(str(tmp_path / "c")) == str(tmp_path / "theirs")
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
