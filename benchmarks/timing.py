"""Timing of compiled calls: warm-up (compilation) apart, then median and spread over repeats.

Every call is followed by `jax.block_until_ready`, so a figure is the latency of one
call as a user sees it (dispatch included), never an overlap of queued calls.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call.

    first_call_s: the first call, compilation included (reported, never averaged in).
    median_s, min_s, max_s: over `repeats` repeats of `calls_per_repeat` calls each.
    """

    first_call_s: float
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    calls_per_repeat: int
    samples_s: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats."""
        return (self.max_s - self.min_s) / self.median_s

    def rate(self, work_per_call: float) -> dict:
        """Throughput of `work_per_call` units per call: median and the range over repeats."""
        return {"median": work_per_call / self.median_s, "min": work_per_call / self.max_s,
                "max": work_per_call / self.min_s}


def measure(fn: Callable[[], object], *, repeats: int, min_repeat_seconds: float) -> Timing:
    """Times `fn()`: one warm-up call, then `repeats` repeats lasting >= min_repeat_seconds."""
    return measure_interleaved({"fn": fn}, repeats=repeats,
                               min_repeat_seconds=min_repeat_seconds)["fn"]


def measure_interleaved(fns: dict[str, Callable[[], object]], *, repeats: int,
                        min_repeat_seconds: float) -> dict[str, Timing]:
    """Times several functions with their repeats interleaved (a, b, a, b, ...), so that a
    change of load on a shared machine weighs on all of them alike and their ratios hold."""
    first, calls = {}, {}
    for name, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        first[name] = time.perf_counter() - start
    for name, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        one = max(time.perf_counter() - start, 1e-6)
        calls[name] = max(1, math.ceil(min_repeat_seconds / one))

    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                jax.block_until_ready(fn())
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: Timing(first_call_s=first[name], median_s=statistics.median(s),
                         min_s=min(s), max_s=max(s), repeats=repeats,
                         calls_per_repeat=calls[name], samples_s=tuple(s))
            for name, s in samples.items()}


def median_ratio(a: Timing, b: Timing) -> float:
    """Median over interleaved repeats of a's time over b's (robust to drifting load)."""
    return statistics.median(x / y for x, y in zip(a.samples_s, b.samples_s, strict=True))
