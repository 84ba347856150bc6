"""What a batched backup saves: search time beside the network alone, three searches.

The search.py of OLD_COMMIT with its batched backward and with mctx's own backward, and
the current search.py (mctx's public API, its own backward). Repeats are interleaved;
each figure is the median over repeats of wall seconds and of this process's CPU
seconds per call. On a shared machine the CPU figure is the one to read: other
processes' load stretches wall time, not the CPU time this process spends.

    PYTHONPATH=$PWD python benchmarks/results/search-backward/cpu-amd-epyc-2c.py f20b2ee 15

OLD_COMMIT must hold a search.py whose `Searcher` takes `batched_backward`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax

import muzero_jax as mz
from benchmarks.run import benchmark_params, make_network_only
from muzero_jax import search as new_search


def load_old_search(commit: str):
    source = subprocess.check_output(["git", "show", f"{commit}:muzero_jax/search.py"])
    path = os.path.join(tempfile.mkdtemp(), "old_search.py")
    with open(path, "wb") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("old_search", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Wall and CPU seconds per call of each function, `repeats` interleaved samples."""
    calls = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn())  # compile
        start = time.perf_counter()
        jax.block_until_ready(fn())
        calls[name] = max(1, int(0.25 / max(time.perf_counter() - start, 1e-6)))
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(calls[name]):
                jax.block_until_ready(fn())
            wall[name].append((time.perf_counter() - w) / calls[name])
            cpu[name].append((time.process_time() - c) / calls[name])
    return wall, cpu


def case(old, label: str, config: mz.Config, batch: int, repeats: int) -> None:
    agent = mz.Agent(config)
    params = benchmark_params(agent).params
    sims = config.search.num_simulations
    obs = 0.5 * jax.random.normal(jax.random.key(1), (batch, 4))  # CartPole-like
    key, exploration = jax.random.key(2), mz.Exploration.training(config)
    actions = jax.random.randint(jax.random.key(3), (sims, batch), 0, agent.num_actions)
    network = make_network_only(agent.model, sims)
    searches = {"batched_backward": old.Searcher(agent.model, config),
                "mctx_backward_old": old.Searcher(agent.model, config, batched_backward=False),
                "public_api_new": new_search.Searcher(agent.model, config)}
    fns = {"network_only": lambda: network(params, obs, actions)}
    for name, searcher in searches.items():
        fns[name] = functools.partial(jax.jit(searcher), params, key, obs, exploration)
    wall, cpu = timed(fns, repeats)
    for clock, data in (("wall", wall), ("cpu", cpu)):
        row = {"search": label, "batch": batch, "sims": sims, "clock": clock,
               "network_only_ms": round(1e3 * statistics.median(data["network_only"]), 3)}
        for name in searches:
            row[name + "_ms"] = round(1e3 * statistics.median(data[name]), 3)
            row[name + "_x_net"] = round(statistics.median(
                a / b for a, b in zip(data[name], data["network_only"], strict=True)), 2)
        print(json.dumps(row), flush=True)


def main() -> None:
    old = load_old_search(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    case(old, "PUCT", mz.cartpole(search="muzero", num_simulations=50), 256, repeats)
    case(old, "Gumbel", mz.cartpole(), 16, repeats)


if __name__ == "__main__":
    main()
