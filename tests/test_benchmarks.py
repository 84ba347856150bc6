import jax.numpy as jnp

from benchmarks import machine, solve
from benchmarks.timing import measure


def test_measure_keeps_the_warm_up_call_apart():
    calls = []

    def fn():
        calls.append(1)
        return jnp.zeros(())

    timing = measure(fn, repeats=3, min_repeat_seconds=0.0)
    # one warm-up call, one calibration call, then repeats x calls_per_repeat
    assert timing.calls_per_repeat == 1 and timing.repeats == 3
    assert len(calls) == 2 + 3
    assert len(timing.samples_s) == 3
    assert timing.min_s <= timing.median_s <= timing.max_s
    rate = timing.rate(10)
    assert rate["min"] <= rate["median"] <= rate["max"]
    assert rate["median"] == 10 / timing.median_s


def test_device_name_is_a_file_name_slug():
    name = machine.device_name()
    assert name.startswith("cpu-") and name.endswith(f"-{machine.cpu_count()}c")
    assert all(c.isalnum() or c == "-" for c in name)
    assert machine._slug("Intel(R) Xeon(R) CPU @ 2.20GHz") == "intel-xeon"
    assert machine._slug("AMD EPYC 7B13 64-Core Processor") == "amd-epyc-7b13"


def test_solve_summary_counts_only_solved_seeds(tmp_path, monkeypatch):
    runs = {0: {"seed": 0, "solved": True, "wall_seconds": 20.0, "env_steps": 12000},
            1: {"seed": 1, "solved": False, "wall_seconds": 90.0, "env_steps": 250000},
            2: {"seed": 2, "solved": True, "wall_seconds": 30.0, "env_steps": 30000}}
    monkeypatch.setattr(solve, "run_seed", lambda seed, out, extra=(): {
        **runs[seed], "final_eval_return": 500.0, "final_eval_episodes": 100})
    result = solve.time_to_solve([0, 1, 2], str(tmp_path), log=lambda _: None)
    assert result["solved"] == 2
    assert result["wall_seconds"] == {"median": 25.0, "min": 20.0, "max": 30.0}
    assert result["env_steps"] == {"median": 21000, "min": 12000, "max": 30000}
