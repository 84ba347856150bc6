import fcntl
import functools
import gc
import os
import platform
import subprocess
import sys

import jax
import pytest

import muzero_jax as mz


def _memoise_tyro_class_sources():
    """When pytest is imported, tyro recomputes one in ten of its cache hits to check its
    cache; each recomputed class tokenisation reparses the whole module that defines the
    class (muzero_jax/config.py for every stage), about 25 CPU-s of the default suite. Its
    class tokenisation is memoised once more above that check; parsing is unchanged."""
    try:
        from tyro import _docstrings
        make = _docstrings._ClassTokenization.make
    except (ImportError, AttributeError):  # another tyro: left as it is
        return
    _docstrings._ClassTokenization.make = staticmethod(functools.cache(make))


_memoise_tyro_class_sources()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (learning bars: minutes each)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a learning check of minutes; runs only with "
                            "--runslow (python -m pytest -q tests --runslow -m slow)")
    # Compilation is most of the default run's time, and LLVM's optimisation passes most
    # of that: without --runslow the tests compile without them (same semantics, slower
    # code: a third off test_search.py and test_loop.py on 2 cores); the learning checks
    # run optimised code. On x86 they also compile fusions with XLA's classic LLVM IR
    # emitters, not its MLIR fusion emitters, which take about twice as long on the same
    # fusions (the tiny CartPole chunk: 5 CPU s against 9.6), for code without FMA
    # (AVX, not AVX2): the classic emitters contract a multiply and an add into one FMA
    # where a fusion allows it, so that two programs of the same maths (a search and
    # mctx's by hand, an actor with and without repeats) would differ in the last bit.
    # Set before jax starts its backend (importing muzero_jax does not), so that the
    # subprocesses tests start inherit them; an XLA_FLAGS that sets one already wins.
    if not config.getoption("--runslow"):
        wanted = [("xla_backend_optimization_level", "0")]
        if platform.machine().lower() in ("x86_64", "amd64"):
            wanted += [("xla_cpu_use_fusion_emitters", "false"), ("xla_cpu_max_isa", "AVX")]
        for name, value in wanted:
            flags = os.environ.get("XLA_FLAGS", "")
            if name not in flags:
                os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()


def pytest_collection_finish(session):
    # Tracing a program makes objects by the hundred thousand, and the collector's full
    # passes walk every live object each time: the imported libraries and the collected
    # tests too. Frozen, those are skipped; with young objects collected less often as
    # well, test_loop.py and test_search.py run 5-8% faster on one core.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def pytest_unconfigure(config):
    # pytest's last act is five full garbage collections (looking for exceptions raised in
    # finalizers); in a worker holding the hundreds of programs its tests built, they take
    # seconds. What is alive now is the session's own, not garbage: frozen, it is skipped.
    gc.freeze()


# The files that take longest, longest first (seconds with `-n 1` pinned to one core of the
# 2-core AMD EPYC: faults 103, stochastic 44, loop 42, examples 32, docs 30, experiments
# 30, train 30, search 30, atari 29, board 27, sampled 27, ...). pytest-xdist hands
# whole files (--dist loadfile) to whichever worker is free, in collection order
# (--no-loadscope-reorder: not by test count): longest first, a long file never starts
# last beside an idle worker. Files not listed (each under 9 s) follow in name order.
LONGEST_FIRST = ("test_faults.py", "test_stochastic.py", "test_loop.py", "test_examples.py",
                 "test_docs.py", "test_experiments.py", "test_train.py", "test_search.py",
                 "test_atari.py", "test_board.py", "test_sampled.py", "test_distributed.py",
                 "test_mjx.py", "test_learner.py", "test_selfplay.py", "test_notebook.py",
                 "test_benchmarks.py", "test_training_machinery.py", "test_minatar.py",
                 "test_target_cache.py", "test_efficientzero.py", "test_reanalyze.py",
                 "test_gymnasium_env.py", "test_extensions.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    """One persistent compilation cache for the whole test run, empty at its start as on a
    fresh CI machine: a test that builds a program another test already built (the same
    config trained twice, an experiment script run again to resume) loads it instead of
    compiling it again, in this process and in the subprocesses tests start (they read
    JAX_COMPILATION_CACHE_DIR, which compile_stats.use_cache leaves as it is). A directory
    already given in JAX_COMPILATION_CACHE_DIR is used instead (to keep a warm one).
    Under pytest-xdist the workers share it: the run's temporary root is theirs in common.
    """
    directory = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not directory:
        root = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's basetemp is root/popen-gwN
            root = root.parent
        directory = str(root / "jax-compilation-cache")
        os.makedirs(directory, exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("JAX_COMPILATION_CACHE_DIR", directory)
    # As the experiment scripts' own cache does: keep small programs too, they add up.
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", directory)
    # This process too (JAX read the variable when it was imported, before the patch).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield directory
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    patch.undo()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """experiments/cartpole.py with scripts.TINY, run to the end once per test run: (run
    directory, stdout). The plumbing tests and the fault tests read it; a test that
    changes a run directory works on a copy. Under pytest-xdist the first worker to ask
    runs it and the others wait for it (a lock in the run's temporary root, theirs in
    common): it is one process's work, not one for each worker."""
    from scripts import CARTPOLE, TINY, script_env

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's basetemp is root/popen-gwN
        root = root.parent
    base = root / "tiny-run"
    base.mkdir(exist_ok=True)
    out, stdout = base / "run", base / "stdout.txt"
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not stdout.exists():
            proc = subprocess.run([sys.executable, CARTPOLE, "--out", str(out), *TINY],
                                  capture_output=True, text=True, timeout=600, cwd=base,
                                  env=script_env())
            assert proc.returncode == 0, proc.stderr[-3000:]
            stdout.write_text(proc.stdout)
        return out, stdout.read_text()


@pytest.fixture(scope="session")
def tiny_config():
    """A CartPole config small enough to compile and run in seconds."""
    return mz.cartpole(num_envs=4, rollout_length=8, hidden_size=16, latent_size=8,
                       num_hidden_layers=1, num_simulations=4, batch_size=16,
                       updates_per_iteration=2, capacity=4 * 64,
                       min_size=32, td_steps=3, unroll_steps=2,
                       learning_rate=3e-3)


@pytest.fixture(scope="session")
def tiny_agent(tiny_config):
    return mz.Agent(tiny_config)
