"""The machine a result was measured on, and a short name for it used in file names."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import re
import time
from importlib import metadata

import jax

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "mctx", "chex", "gymnasium", "numpy")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown-cpu"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*| processor", "", text.lower())
    text = re.sub(r"\b\d+-core\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def cpu_name() -> str:
    """E.g. `cpu-amd-epyc-2c`: the CPU model and the cores this process may use, without
    starting JAX (for scripts whose measured runs are subprocesses)."""
    return f"cpu-{_slug(cpu_model())}-{cpu_count()}c"


def device_name() -> str:
    """E.g. `cpu-amd-epyc-2c` or `gpu-nvidia-h100-80gb-hbm3`: the first JAX device."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return cpu_name()
    return f"{device.platform}-{_slug(device.device_kind)}"


def describe() -> dict:
    """CPU, JAX backend and devices, Python and package versions."""
    device = jax.devices()[0]
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "name": device_name(),
        "cpu": cpu_model(),
        "cpu_cores": cpu_count(),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def write_record(out: pathlib.Path, name: str, command: str, args: dict, rows: list[dict],
                 table: list[str]) -> None:
    """`out/NAME.json` (this machine, the date, the command, its arguments and `rows`)
    and `out/NAME.md` (the lines of `table`): a standalone benchmark's results."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(
        {"machine": describe(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "command": command, "args": args, "rows": rows}, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
