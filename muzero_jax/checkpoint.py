"""Checkpoints of a training run, with orbax-checkpoint's `CheckpointManager`.

A checkpoint is one directory per step, `DIR/<step>/`, holding named items:
pytrees of arrays (the learner's `TrainState`, the replay buffer, the env states,
the RNG key, whatever the caller passes) and one JSON item of host-side
counters. Orbax writes each step into a temporary directory and renames it
once complete, so a process killed at any moment (SIGKILL during a save
included) leaves the earlier checkpoints intact and the half-written one
invisible; the next `Checkpointer` on the directory deletes the leftovers.

Pytrees are stored generically, as nested dicts named by their paths, so a
field added to `TrainState` (or any state) is saved without code here; typed
PRNG keys are stored as their raw key data; fields computed from the rest
(`NOT_SAVED`) are left out and come fresh from the template. Restoring takes a
template of the expected pytree (fresh state from the same config) and checks
every array's shape and dtype against what is on disk before reading, so a
checkpoint written for another network shape fails with a message naming the
first array that differs. A checkpoint that cannot be read (an item missing,
files damaged) is skipped for the newest one that can, with a one-line warning;
a failed write (a full disk, a directory that cannot be written) is one
`CheckpointError` naming the directory and the OS error, and leaves the earlier
checkpoints as they were.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from muzero_jax import config as config_lib
from muzero_jax.config import Config
from muzero_jax.errors import RunFault

META = "loop"  # the JSON item: counters and host-side state
# Fields computed from the rest of the state, left out of checkpoints and taken fresh from
# the template on restore: replay's cache of target-network values (`target_cache`), which
# the next update computes again.
NOT_SAVED = ("value_cache",)
_ITEMS = "_items"  # in the JSON item: the names saved beside it, to tell a missing one


class CheckpointError(RunFault):
    """A checkpoint directory is missing, corrupted or does not fit the config."""


class UnreadableCheckpoint(CheckpointError):
    """One step's checkpoint cannot be read (an item missing, damaged files); restoring
    the latest checkpoint goes on to the one before it."""


def _reason(e: BaseException) -> str:
    """An error's first line without tensorstore's spec dump: a message stays one line."""
    text = " ".join(str(e).split("[tensorstore_spec=")[0].split(" See full")[0].split())
    if len(text) > 300:  # tensorstore nests its causes: the innermost comes last
        text = f"{text[:100]} ... {text[-200:]}"
    return f"{type(e).__name__}: {text}"


def _os_error(e: BaseException) -> OSError | None:
    """The OSError behind `e` (orbax wraps the writer threads' errors), if any."""
    seen = set()
    todo = [e]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        todo += [error.__cause__, error.__context__, *getattr(error, "exceptions", ())]
    return None


# A read that fails leaves orbax's other reads of the same checkpoint running on an
# event loop that is gone: tensorstore then reports each as an unraisable exception or
# an asyncio "exception was never retrieved", pages of them, during the read and after
# it returned. Once this process reads a checkpoint, those reports (and only those) are
# dropped: the failure itself is reported as one CheckpointError.
_ABANDONED = ("orbax", "tensorstore")  # their frames in a report's traceback
_quiet_installed = False


def _from_abandoned_read(exc: BaseException | None) -> bool:
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return True
    tb = getattr(exc, "__traceback__", None)
    while tb is not None:
        if any(name in tb.tb_frame.f_code.co_filename for name in _ABANDONED):
            return True
        tb = tb.tb_next
    # Made in C++, with only asyncio's frames: orbax's and tensorstore's own messages.
    return any(mark in str(exc) for mark in ("Encountered error while reading array",
                                             "tensorstore_spec"))


class _AbandonedReadFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not ("never retrieved" in record.getMessage() and _from_abandoned_read(exc))


def _drop_abandoned_read_reports() -> None:
    global _quiet_installed
    if _quiet_installed:
        return
    _quiet_installed = True
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _from_abandoned_read(unraisable.exc_value):
            previous(unraisable)

    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_AbandonedReadFilter())


class _OrbaxFailureRecords(logging.Filter):
    """Orbax logs each failed background write (with its traceback) from its threads,
    several records a failure; a writer reports every failure itself, as one
    CheckpointError raised from `save` or `wait` (its cause chained for --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ("orbax" in record.pathname and record.levelno >= logging.ERROR
                    and record.exc_info)


_FAILURE_FILTER = _OrbaxFailureRecords()


class _OrbaxRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "orbax" not in record.pathname


@contextlib.contextmanager
def _quiet_read():
    """Orbax's own log lines about a damaged file stay out of stderr while reading: what
    a read finds is reported once, as an UnreadableCheckpoint or a warning (a step whose
    own metadata file is damaged but whose items read is used as it is)."""
    _drop_abandoned_read_reports()
    quiet = _OrbaxRecords()
    loggers = [logging.getLogger(), logging.getLogger("absl")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def warn(message: str) -> None:
    """A one-line warning on stderr (a checkpoint skipped on restore)."""
    print(f"warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _path_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flat(tree: Any) -> dict[tuple[str, ...], Any]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {tuple(_path_name(e) for e in path): leaf for path, leaf in leaves}


def _nest(flat: dict[tuple[str, ...], Any]) -> dict:
    nested: dict = {}
    for path, leaf in flat.items():
        node = nested
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = leaf
    return nested


def _derived(path: tuple[str, ...]) -> bool:
    return any(name in NOT_SAVED for name in path)


def to_nested(tree: Any) -> dict:
    """`tree` as nested dicts of arrays keyed by path names, keys as raw key data; the
    fields in `NOT_SAVED` left out."""
    return _nest({path: jax.random.key_data(leaf) if _is_key(leaf) else leaf
                  for path, leaf in _flat(tree).items() if not _derived(path)})


def from_nested(nested: dict, template: Any) -> Any:
    """Inverse of `to_nested`, using `template` for the structure and key types, and for
    the fields in `NOT_SAVED`."""
    values = _flat(nested)
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in leaves_with_path:
        names = tuple(_path_name(e) for e in path)
        if _derived(names):
            leaves.append(leaf)
            continue
        value = values[names]
        if _is_key(leaf):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf))
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _describe(path: tuple[str, ...]) -> str:
    return ".".join(path) or "<root>"


class Checkpointer:
    """Saves and restores named pytrees plus a JSON dict, keeping the last `keep` steps.

    Args:
      directory: where the step directories go (created if missing, when `create`).
      keep: how many of the most recent checkpoints to keep.
      create: a writer: create `directory` and delete the leftovers of killed saves;
        if False, a reader, which changes nothing on disk; `directory` must exist.
    """

    def __init__(self, directory: str, *, keep: int = 3, create: bool = True):
        self.directory = os.path.abspath(directory)
        self.unreadable: list[int] = []  # the steps the last restore skipped
        self._pending: int | None = None  # the step whose write may still be running
        self._failed = False
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"{directory}: no such checkpoint directory")
        if create:
            logging.getLogger("absl").addFilter(_FAILURE_FILTER)  # once: a set of one
        # Only a writer may delete the leftovers of killed saves: a reader (evaluation
        # during training) would delete the trainer's save in progress.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
                                               cleanup_tmp_directories=create)
        try:
            with _quiet_read():  # it reads each step's metadata: damaged ones are logged
                self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as e:  # orbax raises many types; the caller needs one
            raise CheckpointError(f"{directory}: cannot open as a checkpoint directory "
                                  f"({type(e).__name__}: {e})") from e

    def all_steps(self) -> list[int]:
        with _quiet_read():
            return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        with _quiet_read():
            return self._manager.latest_step()

    def save(self, step: int, trees: dict[str, Any], meta: dict) -> None:
        """Starts saving `trees` (name -> pytree) and `meta` (JSON) as `step`.

        The write finishes in the background; arrays are copied before this
        returns, so the caller may donate or overwrite them.

        Raises:
          CheckpointError: this write or the previous one failed (a full disk, a
            directory that cannot be written); the checkpoints before it are intact.
        """
        args = {name: ocp.args.StandardSave(to_nested(tree)) for name, tree in trees.items()}
        # A copy: the write runs in the background while the caller goes on appending
        # to the lists in `meta` (train()'s history), which would land in this step.
        args[META] = ocp.args.JsonSave({**copy.deepcopy(meta), _ITEMS: sorted(trees)})
        # Orbax waits for the previous write first: its failure surfaces here.
        previous, self._pending = self._pending, step
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            self._write_failed(previous, e)
        try:
            self._manager.save(step, args=ocp.args.Composite(**args), force=True)
        except Exception as e:
            self._write_failed(step, e)

    def wait(self) -> None:
        """Blocks until the last save is on disk; raises CheckpointError if it failed."""
        if self._failed:
            return  # already reported
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            self._write_failed(self._pending, e)

    def _write_failed(self, step: int | None, e: Exception):
        self._failed = True
        cause = _os_error(e)
        what = _reason(e) if cause is None else (
            f"{os.strerror(cause.errno)} (errno {errno.errorcode.get(cause.errno, cause.errno)})")
        raise CheckpointError(
            f"{self.directory}: cannot write checkpoint {step}: {what}; the checkpoints "
            f"before it are intact ({self.all_steps() or 'none yet'}): free space or make "
            f"the directory writable, then resume the run") from e

    def close(self) -> None:
        """Ends the writes: after a failed one, what is left of it is not waited for."""
        try:
            self._manager.close()
        except Exception:
            if not self._failed:
                raise

    def saved_items(self, step: int) -> set[str]:
        step_dir = os.path.join(self.directory, str(step))
        return {name for name in os.listdir(step_dir)
                if os.path.isdir(os.path.join(step_dir, name))}

    def restore(self, templates: dict[str, Any] | Callable[[dict], dict[str, Any]],
                step: int | None = None, *, required: tuple[str, ...] = (),
                ) -> tuple[int, dict[str, Any], dict]:
        """Reads a checkpoint: `step`, or the latest one that can be read.

        Reading changes nothing on disk. A checkpoint that cannot be read (an item it
        saved is missing, its files are damaged) is skipped for the one before it,
        with a one-line warning on stderr; `self.unreadable` lists the skipped steps.
        A checkpoint that reads but does not fit `templates` (another network) is an
        error at once: the older ones would not fit either.

        Args:
          templates: name -> pytree shaped like the saved one (e.g. fresh state from
            the same config), or a function of the checkpoint's JSON dict returning
            them. Names the checkpoint lacks come back as None.
          step: which checkpoint (None: the latest readable).
          required: names a checkpoint must hold to be read (for checkpoints written
            without the list of their items).

        Returns:
          (step, name -> restored pytree or None, the JSON dict).

        Raises:
          CheckpointError: no checkpoint, none readable, or one that does not fit.
        """
        steps = self.all_steps()
        self.unreadable = []
        if not steps:
            raise CheckpointError(f"{self.directory}: holds no complete checkpoint")
        if step is not None:
            if step not in steps:
                raise CheckpointError(f"{self.directory}: no checkpoint {step}; it holds "
                                      f"{steps}")
            return self._restore_step(step, templates, required)
        failures: list[UnreadableCheckpoint] = []
        for candidate in reversed(steps):
            try:
                result = self._restore_step(candidate, templates, required)
            except UnreadableCheckpoint as e:
                failures.append(e)
                self.unreadable.append(candidate)
                continue
            if failures:
                warn(f"{failures[0]}; using checkpoint {candidate}, the newest that can be "
                     f"read" + (f" (also unreadable: {self.unreadable[1:]})"
                                if len(failures) > 1 else ""))
            return result
        raise CheckpointError(f"no checkpoint in {self.directory} can be read ({steps}); the "
                              f"newest: {failures[0]}")

    def _restore_step(self, step: int, templates, required: tuple[str, ...]
                      ) -> tuple[int, dict[str, Any], dict]:
        where = os.path.join(self.directory, str(step))
        saved = self.saved_items(step)
        if META not in saved:
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint (no '{META}' item)")
        try:
            with _quiet_read():
                meta = self._manager.restore(
                    step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]
        except Exception as e:
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, cannot read its "
                                       f"'{META}' item ({_reason(e)})") from e
        if not isinstance(meta, dict):
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, its '{META}' item is "
                                       f"not a JSON object")
        meta = dict(meta)
        items = meta.pop(_ITEMS, None)
        if callable(templates):
            templates = templates(meta)
        needed = (set(required) | set(items or ())) & (set(templates) | set(required))
        missing = sorted(needed - saved)
        if missing:
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, item '{missing[0]}' "
                                       f"is missing")
        present = {name: t for name, t in templates.items() if name in saved}
        for name, template in present.items():
            try:
                with _quiet_read():
                    metadata = ocp.StandardCheckpointHandler().metadata(
                        epath.Path(os.path.join(where, name)))
            except Exception as e:
                raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, cannot read the "
                                           f"metadata of '{name}' ({_reason(e)})") from e
            self._check_fits(where, name, metadata, to_nested(template))
        args = {name: ocp.args.StandardRestore(to_nested(t)) for name, t in present.items()}
        if not args:
            return step, dict.fromkeys(templates), meta
        try:
            with _quiet_read():
                restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as e:
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, cannot read it "
                                       f"({_reason(e)})") from e
        trees = {name: from_nested(restored[name], t) if name in present else None
                 for name, t in templates.items()}
        return step, trees, meta

    @staticmethod
    def _check_fits(where: str, name: str, metadata: Any, template: dict) -> None:
        if metadata is None:
            raise UnreadableCheckpoint(f"{where}: corrupted checkpoint, item '{name}' has "
                                       f"no metadata")
        stored = _flat(metadata.tree if hasattr(metadata, "tree") else metadata)
        expected = _flat(template)
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        if missing or extra:
            differences = ([f"lacks '{name}.{_describe(p)}'" for p in missing[:1]]
                           + [f"has an unexpected '{name}.{_describe(p)}'" for p in extra[:1]])
            raise CheckpointError(
                f"{where}: the checkpoint {' and '.join(differences)}; it was written by a "
                f"different network or config")
        # Parameters first: their shapes say the most about what differs.
        for path, leaf in sorted(expected.items(), key=lambda kv: kv[0][0] != "params"):
            meta = stored[path]
            shape, dtype = tuple(meta.shape), np.dtype(meta.dtype)
            if shape != tuple(leaf.shape) or dtype != np.dtype(leaf.dtype):
                raise CheckpointError(
                    f"{where}: '{name}.{_describe(path)}' is {dtype}{list(shape)} in the "
                    f"checkpoint but this config expects {np.dtype(leaf.dtype)}"
                    f"{list(leaf.shape)}; the checkpoint was written for a different "
                    f"network shape or config")


# --- run directories ------------------------------------------------------------------
# A training run's directory holds config.json (enough to rebuild the Agent) and
# checkpoints/<iteration>/ with the items "train_state", "env_state", "rng",
# optionally "replay", and the JSON item "loop".

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
AUTO_REPLAY_BYTES = 1 << 30  # checkpoint_replay=None saves replay buffers under 1 GiB


def nbytes(tree: Any) -> int:
    """Bytes held by the arrays of a pytree."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree))


def save_config(run_dir: str, cfg: Config) -> None:
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, CONFIG_NAME)
    with open(path + ".tmp", "w") as f:
        json.dump(config_lib.to_dict(cfg), f, indent=2)
    os.replace(path + ".tmp", path)


def load_config(run_dir: str) -> Config:
    """The Config a run was trained with, from RUN_DIR/config.json."""
    path = os.path.join(run_dir, CONFIG_NAME)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: no such run directory")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing; expected a run directory written by "
                              f"training with a run directory (e.g. experiments/cartpole.py "
                              f"--out {run_dir})")
    try:
        with open(path) as f:
            return config_lib.from_dict(json.load(f))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from e


# What an earlier run leaves beside its checkpoints: a fresh run would overwrite them.
EARLIER_RUN_FILES = ("metrics.csv", "summary.json", "tensorboard", "curves.png")
UNREADABLE_DIR = "checkpoints-unreadable"  # where a resume moves checkpoints it skipped


def check_run_dir(run_dir: str, *, resume: bool) -> None:
    """Refuses a run directory training cannot use, reading only (before anything compiles).

    A fresh run refuses a directory holding checkpoints or an earlier run's logs or
    summary (it would mix or overwrite two runs); a resumed one needs checkpoints/.
    """
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if resume:
        if not os.path.isdir(run_dir):
            raise CheckpointError(f"{run_dir}: no such run directory")
        if not os.path.isdir(directory):
            raise CheckpointError(f"{run_dir}: nothing to resume, no {CHECKPOINT_DIR}/ "
                                  f"directory (was the run killed before its first "
                                  f"checkpoint?)")
        return
    if os.path.isdir(directory):
        # Orbax names a step's directory by its number once the step is complete. Listed
        # here without a CheckpointManager: with several processes, each opening one
        # takes part in a barrier, and only the others' writer may have made the directory.
        steps = sorted(int(name) for name in os.listdir(directory) if name.isdigit())
        if steps:
            raise CheckpointError(f"{run_dir}: already holds checkpoints {steps}; resume it "
                                  f"(--resume {run_dir}) or choose another directory")
    earlier = [name for name in EARLIER_RUN_FILES
               if os.path.exists(os.path.join(run_dir, name))]
    if earlier:
        raise CheckpointError(f"{run_dir}: holds an earlier run's {', '.join(earlier)}, which "
                              f"a fresh run would overwrite; choose another --out, or "
                              f"--resume {run_dir} if it has checkpoints")


def open_run(run_dir: str, cfg: Config, *, resume: bool) -> Checkpointer | None:
    """For `resume`, a reader of a run's checkpoints (which changes nothing) that must
    hold one; None for a fresh run. Writes nothing: the run's files change only in
    `start_run`, once the restore and its checks passed. The caller has checked the
    directory first (`check_run_dir`: train() does, before building anything)."""
    if not resume:
        return None
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    reader = Checkpointer(directory, keep=cfg.run.checkpoint_keep, create=False)
    if not reader.all_steps():
        reader.close()
        raise CheckpointError(f"{directory}: holds no complete checkpoint to resume from")
    return reader


def start_run(run_dir: str, cfg: Config, *, unreadable: Sequence[int] = ()) -> Checkpointer:
    """The writer of a run's checkpoints, once everything a resume reads has passed:
    writes config.json and moves the checkpoints the restore skipped (`unreadable`)
    to RUN_DIR/checkpoints-unreadable/ (kept, out of the way of the steps to come)."""
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    try:
        if jax.process_index() == 0:  # one writer when several processes share the run
            for step in unreadable:
                target = os.path.join(run_dir, UNREADABLE_DIR, str(step))
                suffix = 1
                while os.path.exists(target):
                    target = os.path.join(run_dir, UNREADABLE_DIR, f"{step}.{suffix}")
                    suffix += 1
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.move(os.path.join(directory, str(step)), target)
            save_config(run_dir, cfg)
    except OSError as e:
        raise CheckpointError(f"{run_dir}: cannot write ({e.strerror or e}): free space or "
                              f"make the directory writable") from e
    return Checkpointer(directory, keep=cfg.run.checkpoint_keep)


def restore_run(checkpointer: Checkpointer, *, state: Any, buffer: Any, env_state: Any,
                key: jax.Array) -> tuple[Any, Any, Any, jax.Array, dict]:
    """The latest checkpoint of a run, in the shapes of the given fresh state.

    Items the checkpoint lacks (a replay buffer it did not save) keep the given
    values. Returns (state, buffer, env_state, key, loop counters dict).
    """
    _, trees, meta = checkpointer.restore({"train_state": state, "replay": buffer,
                                           "env_state": env_state, "rng": {"key": key}},
                                          required=("train_state", "rng"))

    def pick(name, fresh):
        return fresh if trees[name] is None else trees[name]

    return (pick("train_state", state), pick("replay", buffer), pick("env_state", env_state),
            pick("rng", {"key": key})["key"], meta)


def restore_train_state(run_dir: str, state: Any) -> tuple[int, Any]:
    """The learner state of a one-run directory's latest checkpoint: (step, state)."""
    step, runs = restore_train_states(run_dir, state)
    if len(runs) > 1:
        raise CheckpointError(f"{run_dir}: holds {len(runs)} runs "
                              f"({[run['name'] for run, _ in runs]}); expected one")
    return step, runs[0][1]


def restore_train_states(run_dir: str, state: Any) -> tuple[int, list[tuple[dict, Any]]]:
    """The learner state of every run in a directory's latest checkpoint (for evaluation).

    A directory trained with `seeds` or `sweep` holds `[S]` runs side by side (every
    leaf with a leading axis); one trained without holds one. `state` is one run's
    fresh state of the same config (the template). Returns (step, [(run, state)]) with
    `run` the run's {"name", "seed", ...} entry ({"name": "run", "seed": config seed}
    for a one-run directory).
    """
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        raise CheckpointError(f"{run_dir}: no {CHECKPOINT_DIR}/ directory; expected a run "
                              f"directory written by training")
    layout = {}

    def templates(meta: dict) -> dict:
        runs = meta.get("runs") or [{"name": "run", "seed": None}]
        # Runs side by side are saved stacked, even one of them (`seeds=(3,)`).
        stacked = meta.get("stacked", len(runs) > 1)
        layout.update(runs=runs, stacked=stacked)
        return {"train_state": jax.tree.map(lambda x: jnp.stack([x] * len(runs)), state)
                if stacked else state}

    checkpointer = Checkpointer(directory, create=False)
    try:
        step, trees, _ = checkpointer.restore(templates, required=("train_state",))
    finally:
        checkpointer.close()
    runs, restored = layout["runs"], trees["train_state"]
    if not layout["stacked"]:
        return step, [(runs[0], restored)]
    return step, [(run, jax.tree.map(lambda x, i=i: x[i], restored))
                  for i, run in enumerate(runs)]
