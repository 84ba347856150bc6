"""Compile seconds per compiled program, from JAX's own monitoring events.

JAX reports, for every program it builds, how long tracing, lowering to MLIR and the
XLA backend compile took (`jax.monitoring` duration events named
/jax/core/compile/...), with the function's name. `install()` (done on import) adds
a listener that sums them by name, so that a run can say where its cold start went:

    from muzero_jax import compile_stats
    before = compile_stats.snapshot()
    ...
    print(compile_stats.format_table(compile_stats.since(before)))
"""

from __future__ import annotations

import collections
import threading

import jax

_STAGES = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "xla",
}
_lock = threading.Lock()
_seconds: dict[str, dict[str, float]] = collections.defaultdict(
    lambda: dict.fromkeys(_STAGES.values(), 0.0))
_installed = False


def _listener(event: str, duration: float, **kwargs) -> None:
    stage = _STAGES.get(event)
    if stage is None:
        return
    name = str(kwargs.get("fun_name", "?"))
    if name.startswith("jit(") and name.endswith(")"):
        name = name[4:-1]
    with _lock:
        _seconds[name][stage] += duration


def install() -> None:
    """Starts summing compile seconds by program (idempotent)."""
    global _installed
    if not _installed:
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _installed = True


def snapshot() -> dict[str, dict[str, float]]:
    """Seconds so far, by program name and stage (trace, lower, xla)."""
    with _lock:
        return {name: dict(stages) for name, stages in _seconds.items()}


def since(before: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Seconds spent after `before` (a `snapshot`), by program; programs with none left out."""
    now = snapshot()
    out = {}
    for name, stages in now.items():
        old = before.get(name, {})
        diff = {stage: seconds - old.get(stage, 0.0) for stage, seconds in stages.items()}
        if sum(diff.values()) > 0:
            out[name] = diff
    return out


def totals(stats: dict[str, dict[str, float]]) -> dict[str, float]:
    """Seconds per program (all stages), largest first, rounded to 0.01 s."""
    items = sorted(((name, sum(s.values())) for name, s in stats.items()),
                   key=lambda kv: -kv[1])
    return {name: round(seconds, 2) for name, seconds in items}


def format_table(stats: dict[str, dict[str, float]], *, top: int = 6) -> str:
    """One line: total compile seconds, then the largest programs with their seconds."""
    per_program = totals(stats)
    total = sum(per_program.values())
    shown = list(per_program.items())[:top]
    rest = total - sum(s for _, s in shown)
    parts = [f"{name} {seconds:.1f}s" for name, seconds in shown]
    if len(per_program) > top:
        parts.append(f"{len(per_program) - top} others {rest:.1f}s")
    return f"compile {total:.1f}s over {len(per_program)} programs: " + ", ".join(parts)


install()
