"""`python -m benchmarks [--quick] [--out DIR]`: see benchmarks/run.py."""

from muzero_jax.train import limit_malloc_arenas

# First thing, as the experiment scripts do: arenas that JAX's threads create before the
# cap stay for the life of the process, and the soak section measures a capped process.
limit_malloc_arenas()

from benchmarks.run import main  # noqa: E402

main()
