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
import os
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


DEFAULT_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                             "muzero_jax", "jax")


def use_cache(directory: str | None) -> str | None:
    """Keeps compiled programs in `directory` (JAX's persistent compilation cache), so a
    later process with the same programs skips XLA's compile (tracing and lowering still
    run); None leaves JAX's setting as it is. A directory set through JAX's own
    JAX_COMPILATION_CACHE_DIR wins. Returns the directory in use, or None.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if directory is None:
        return jax.config.jax_compilation_cache_dir
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    # JAX's default skips programs under 1 s; every one of ours counts at start-up.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory


install()
