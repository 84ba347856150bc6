"""Data parallelism: one training program on 1..N devices of one or several hosts.

    layout = distributed.make_layout(config, pieces)   # Single() when config.run.num_devices == 1
    runners = layout.place(runners)                   # streams split, parameters replicated
    run_chunk = layout.jit(program.run_chunk, runners)

The devices form a one-axis mesh, `data` (`jax.make_mesh`). Everything with a
stream axis, the self-play envs, the replay buffer's streams and what they feed,
is split along it; parameters, optimizer state, keys and counters are replicated.
The training program stays the global one (`loop.TrainProgram`): the compiler
partitions its bookkeeping, while the three kernels that touch streams run per
shard under `jax.shard_map`, so nothing in them crosses devices but what must:

- `rollout`: each shard searches and steps its own envs (search per shard: a
  shard's trees walk in lock-step only with each other) with its own key,
  `fold_in(key, shard index)`; shard indices run over every process's devices, so
  each host's games differ too.
- `add`: each shard writes its streams of the trajectory into its streams of replay.
- `update`: each shard samples its part of the batch from its own streams
  (`replay.sample(axis_name=)`), computes targets (and Reanalyze) there, and the
  learner averages gradients over the shards (`lax.pmean`), so the parameters stay
  identical everywhere; new priorities are written where their windows live.

Per-shard code runs the pieces (`pieces.make_pieces`) built from
`shard_config`: the config with num_envs, batch_size and replay.capacity divided by
the device count (they are totals; `config.validate_divisible` says which values
work). With one device, `Single` calls the kernels directly: the program is exactly
the unsharded one.

Several hosts: `initialize` (flags `--coordinator HOST:PORT --num-processes N
--process-id I`) calls `jax.distributed.initialize` before anything touches a
device; then `jax.devices()` lists every process's devices and the mesh spans them.
Every process runs the same program on the same replicated values; `is_primary`
says which one writes logs, plots and summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from muzero_jax import replay
from muzero_jax.config import Config, ConfigError, validate_divisible
from muzero_jax.pieces import Pieces, make_pieces

DATA = "data"  # the mesh axis the streams and batches are split along


def initialize(coordinator: str | None, num_processes: int | None,
               process_id: int | None) -> None:
    """Joins a multi-process run (`jax.distributed.initialize`), or does nothing.

    All three given: this process is `process_id` of `num_processes`, meeting the
    others at `coordinator` (HOST:PORT, served by process 0). None given: a single
    process (on clusters JAX detects itself, call `jax.distributed.initialize()`).
    Call before anything else touches JAX's devices. Raises `ConfigError` for a
    partial or inconsistent set.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if not any(given):
        return
    if not all(given):
        raise ConfigError(
            f"coordinator={coordinator!r}, num_processes={num_processes!r}, process_id="
            f"{process_id!r}: expected all three for a multi-process run, or none")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(f"process_id={process_id}, num_processes={num_processes}: expected "
                          f"num_processes >= 1 and 0 <= process_id < num_processes")
    if ":" not in coordinator:
        raise ConfigError(f"coordinator={coordinator!r}: expected HOST:PORT")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def check_visible(num_devices: object) -> None:
    """Raises `ConfigError` if `num_devices` (Config.num_devices) asks for more devices
    than are visible. Call it before `config.validate`, whose divisibility check would
    otherwise ask for totals that divide by a count that cannot run here."""
    if not isinstance(num_devices, int) or isinstance(num_devices, bool) or num_devices < 1:
        return  # 0 (all) fits; a bad value is validate's to name
    available = jax.device_count()
    if num_devices > available:
        raise ConfigError(
            f"num_devices={num_devices}: only {available} device(s) visible "
            f"({jax.devices()[0].platform}, {jax.process_count()} process(es)); expected "
            f"<= {available} (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
            f"makes N)")


def num_devices(config: Config) -> int:
    """The devices `config` trains on (num_devices, or 0: all), checked against those
    present and the totals' divisibility; raises `ConfigError` before anything compiles."""
    check_visible(config.run.num_devices)
    available = jax.device_count()
    count = config.run.num_devices or available
    if count > 1:
        validate_divisible(config, count)
    if count % jax.process_count():
        raise ConfigError(f"num_devices={config.run.num_devices} over {jax.process_count()} "
                          f"processes: expected a multiple of the process count (0: all "
                          f"{available} devices)")
    return count


def make_mesh(count: int) -> jax.sharding.Mesh:
    """A one-axis `data` mesh over the first `count` devices (every process's)."""
    devices = jax.devices()
    if jax.process_count() > 1:
        # Each process contributes an equal share, so every process holds shards.
        per_process = count // jax.process_count()
        devices = [d for p in range(jax.process_count())
                   for d in [d for d in devices if d.process_index == p][:per_process]]
    return jax.make_mesh((count,), (DATA,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices[:count])


def shard_config(config: Config, count: int) -> Config:
    """One shard's config: num_envs, batch_size and replay capacity divided by `count`."""
    return config.replace(
        num_envs=config.acting.num_envs // count, batch_size=config.learner.batch_size // count,
        capacity=config.replay.capacity // count, num_devices=1)


def stream_specs(tree: Any, leading: tuple = ()) -> Any:
    """PartitionSpecs splitting every array with a stream axis (after `leading` axes)
    along `data`; scalars (per run) are replicated."""
    def spec(x):
        return P(*leading, DATA) if x.ndim > len(leading) else P()

    return jax.tree.map(spec, tree)


class Single:
    """One device: the kernels called as they are."""

    num_devices = 1
    mesh = None

    def rollout(self, pieces, params, env_state, key, exploration, num_steps):
        return pieces.actor.rollout_fn(params, env_state, key, exploration, num_steps)

    def add(self, buffer, trajectory):
        return replay.add(buffer, trajectory)

    def update(self, pieces, state, buffer, key):
        # The jitted update, not its body: its trace cache then serves both
        # `TrainProgram`'s metric shapes and the chunk's call.
        return pieces.jitted_update(state, buffer, key)

    def place(self, runners):
        # Committed to the device, as a restored checkpoint's arrays are: committed and
        # uncommitted arguments lower to different programs, and a resumed run would
        # compile its chunk again instead of finding it in the compilation cache.
        return jax.device_put(runners, jax.devices()[0])

    def jit(self, run_chunk: Callable, runners) -> Callable:
        del runners
        return jax.jit(run_chunk, donate_argnums=0)


class DataParallel:
    """`count` devices on the `data` axis; see the module docstring.

    Args:
      pieces: the pieces of the whole config (totals); per-shard kernels use the pieces
        of `shard_config` on the same env.
      count: devices (num_envs and batch_size divide by it).
    """

    def __init__(self, pieces: Pieces, count: int):
        self.num_devices = count
        self.mesh = make_mesh(count)
        self.shard = make_pieces(shard_config(pieces.config, count), pieces.env)

    def _shard_map(self, fn, in_specs, out_specs):
        # mctx's loops carry values it creates replicated next to values of the shard,
        # which the varying-axes check rejects; replication of the outputs declared P()
        # holds by construction (pmean'd gradients, pmax'd priorities).
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs,
                             check_vma=False)

    @staticmethod
    def _shard_key(key):
        return jax.random.fold_in(key, jax.lax.axis_index(DATA))

    def rollout(self, pieces, params, env_state, key, exploration, num_steps):
        """`actor.rollout_fn` per shard of `[B]` envs, shard d with key fold_in(key, d)."""
        del pieces  # the shard's actor: the same env and search, B / D envs

        def shard(params, env_state, key, exploration):
            return self.shard.actor.rollout_fn(params, env_state, self._shard_key(key),
                                                     exploration, num_steps)

        # Every env state leaf and trajectory field has the stream axis first.
        return self._shard_map(shard, in_specs=(P(), P(DATA), P(), P()),
                               out_specs=(P(DATA), P(DATA)))(params, env_state, key, exploration)

    def add(self, buffer, trajectory):
        specs = stream_specs(buffer)
        return self._shard_map(replay.add, in_specs=(specs, P(DATA)),
                               out_specs=specs)(buffer, trajectory)

    def update(self, pieces, state, buffer, key):
        """`updates_per_iteration` learner steps, each sampling per shard (`Pieces.update`)."""
        del pieces  # the shard's update: B / D of the batch from its own streams

        def shard(state, buffer, key):
            return self.shard.update(state, buffer, self._shard_key(key), axis_name=DATA)

        specs = stream_specs(buffer)
        return self._shard_map(shard, in_specs=(P(), specs, P()),
                               out_specs=(P(), specs, P()))(state, buffer, key)

    # --- runner state: `[S]` runs, streams on axis 1 --------------------------------
    def shardings(self, runners) -> Any:
        """NamedShardings of `[S]` runs: buffer and env states split, the rest replicated."""
        specs = jax.tree.map(lambda _: P(), runners)
        specs = specs.replace(buffer=stream_specs(runners.buffer, leading=(None,)),
                              env_state=stream_specs(runners.env_state, leading=(None,)))
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), specs,
                            is_leaf=lambda x: isinstance(x, P))

    def place(self, runners):
        """`runners` (the same values on every process) as global arrays on the mesh."""
        return jax.tree.map(_global_array, runners, self.shardings(runners))

    def jit(self, run_chunk: Callable, runners) -> Callable:
        """`run_chunk` jitted to keep the runs' shardings (metrics come back replicated)."""
        shardings = self.shardings(runners)
        replicated = NamedSharding(self.mesh, P())
        return jax.jit(run_chunk, donate_argnums=0, in_shardings=(shardings, replicated),
                       out_shardings=(shardings, replicated))


def _global_array(x, sharding: NamedSharding):
    """A global array of `x`'s value (equal on every process) with `sharding`."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _global_array(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global
        return jax.device_put(x, sharding)
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


Layout = Single | DataParallel


def make_layout(config: Config, pieces: Pieces) -> Layout:
    """`Single` for one device, else `DataParallel` over `num_devices(config)`."""
    count = num_devices(config)
    if count == 1:
        return Single()
    if pieces.host:
        raise ConfigError(f"num_devices={config.run.num_devices}: host envs "
                          f"({pieces.spec.env_id!r}) train on one device; expected 1, or a "
                          f"JAX env")
    return DataParallel(pieces, count)


def to_host(tree: Any) -> Any:
    """Replicated global arrays as numpy (each process reads its own copy)."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)) if isinstance(x, jax.Array)
                        and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
                        tree)


__all__ = ["DATA", "DataParallel", "Layout", "Single", "initialize", "is_primary",
           "make_layout", "make_mesh", "num_devices", "shard_config", "stream_specs",
           "to_host"]
