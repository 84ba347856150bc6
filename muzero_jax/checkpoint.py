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
PRNG keys are stored as their raw key data. Restoring takes a template of the
expected pytree (fresh state from the same config) and checks every array's
shape and dtype against what is on disk before reading, so a checkpoint written
for another network shape fails with a message naming the first array that
differs.
"""

from __future__ import annotations

import copy
import json
import os
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


class CheckpointError(RunFault):
    """A checkpoint directory is missing, corrupted or does not fit the config."""


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


def to_nested(tree: Any) -> dict:
    """`tree` as nested dicts of arrays keyed by path names, keys as raw key data."""
    return _nest({path: jax.random.key_data(leaf) if _is_key(leaf) else leaf
                  for path, leaf in _flat(tree).items()})


def from_nested(nested: dict, template: Any) -> Any:
    """Inverse of `to_nested`, using `template` for the structure and key types."""
    values = _flat(nested)
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in leaves_with_path:
        value = values[tuple(_path_name(e) for e in path)]
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
      create: create `directory`; if False it must exist and hold a checkpoint.
    """

    def __init__(self, directory: str, *, keep: int = 3, create: bool = True):
        self.directory = os.path.abspath(directory)
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"{directory}: no such checkpoint directory")
        # Only a writer may delete the leftovers of killed saves: a reader (evaluation
        # during training) would delete the trainer's save in progress.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
                                               cleanup_tmp_directories=create)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as e:  # orbax raises many types; the caller needs one
            raise CheckpointError(f"{directory}: cannot open as a checkpoint directory "
                                  f"({type(e).__name__}: {e})") from e

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, trees: dict[str, Any], meta: dict) -> None:
        """Starts saving `trees` (name -> pytree) and `meta` (JSON) as `step`.

        The write finishes in the background; arrays are copied before this
        returns, so the caller may donate or overwrite them.
        """
        args = {name: ocp.args.StandardSave(to_nested(tree)) for name, tree in trees.items()}
        # A copy: the write runs in the background while the caller goes on appending
        # to the lists in `meta` (train()'s history), which would land in this step.
        args[META] = ocp.args.JsonSave(copy.deepcopy(meta))
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)

    def wait(self) -> None:
        """Blocks until the last save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def saved_items(self, step: int) -> set[str]:
        step_dir = os.path.join(self.directory, str(step))
        return {name for name in os.listdir(step_dir)
                if os.path.isdir(os.path.join(step_dir, name))}

    def restore(self, templates: dict[str, Any], step: int | None = None,
                ) -> tuple[int, dict[str, Any], dict]:
        """Reads a checkpoint (the latest if `step` is None).

        Args:
          templates: name -> pytree shaped like the saved one (e.g. fresh state from
            the same config). Names the checkpoint lacks come back as None.
          step: which checkpoint.

        Returns:
          (step, name -> restored pytree or None, the JSON dict).
        """
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise CheckpointError(f"{self.directory}: holds no complete checkpoint")
            step = steps[-1]
        elif step not in steps:
            raise CheckpointError(f"{self.directory}: no checkpoint {step}; it holds {steps}")
        where = os.path.join(self.directory, str(step))
        saved = self.saved_items(step)
        if META not in saved:
            raise CheckpointError(f"{where}: corrupted checkpoint (no '{META}' item)")
        present = {name: t for name, t in templates.items() if name in saved}
        for name, template in present.items():
            try:
                metadata = ocp.StandardCheckpointHandler().metadata(
                    epath.Path(os.path.join(where, name)))
            except Exception as e:
                raise CheckpointError(f"{where}: corrupted checkpoint, cannot read the metadata "
                                      f"of '{name}' ({type(e).__name__}: {e})") from e
            self._check_fits(where, name, metadata, to_nested(template))
        args = {name: ocp.args.StandardRestore(to_nested(t)) for name, t in present.items()}
        args[META] = ocp.args.JsonRestore()
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as e:
            raise CheckpointError(f"{where}: corrupted checkpoint, cannot read it "
                                  f"({type(e).__name__}: {str(e)[:500]})") from e
        trees = {name: from_nested(restored[name], t) if name in present else None
                 for name, t in templates.items()}
        return step, trees, restored[META]

    @staticmethod
    def _check_fits(where: str, name: str, metadata: Any, template: dict) -> None:
        if metadata is None:
            raise CheckpointError(f"{where}: corrupted checkpoint, item '{name}' has no "
                                  f"metadata")
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


def open_run(run_dir: str, cfg: Config, *, resume: bool) -> Checkpointer:
    """The checkpoints of a run, for training; writes config.json.

    A fresh run refuses a directory that already holds checkpoints (it would mix
    two runs); a resumed one needs at least one complete checkpoint.
    """
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    if resume and not os.path.isdir(directory):
        raise CheckpointError(f"{run_dir}: nothing to resume, no {CHECKPOINT_DIR}/ directory "
                              f"(was the run killed before its first checkpoint?)")
    checkpointer = Checkpointer(directory, keep=cfg.checkpoint_keep)
    steps = checkpointer.all_steps()
    if resume and not steps:
        raise CheckpointError(f"{directory}: holds no complete checkpoint to resume from")
    if not resume and steps:
        raise CheckpointError(f"{run_dir}: already holds checkpoints {steps}; resume it "
                              f"(--resume) or choose another directory")
    if jax.process_index() == 0:  # one writer when several processes share the run
        save_config(run_dir, cfg)
    return checkpointer


def restore_run(checkpointer: Checkpointer, *, state: Any, buffer: Any, env_state: Any,
                key: jax.Array) -> tuple[Any, Any, Any, jax.Array, dict]:
    """The latest checkpoint of a run, in the shapes of the given fresh state.

    Items the checkpoint lacks (a replay buffer it did not save) keep the given
    values. Returns (state, buffer, env_state, key, loop counters dict).
    """
    _, trees, meta = checkpointer.restore({"train_state": state, "replay": buffer,
                                           "env_state": env_state, "rng": {"key": key}})

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
    checkpointer = Checkpointer(directory, create=False)
    try:
        _, _, meta = checkpointer.restore({})
        runs = meta.get("runs") or [{"name": "run", "seed": None}]
        # Runs side by side are saved stacked, even one of them (`seeds=(3,)`).
        stacked = meta.get("stacked", len(runs) > 1)
        template = (jax.tree.map(lambda x: jnp.stack([x] * len(runs)), state) if stacked
                    else state)
        step, trees, _ = checkpointer.restore({"train_state": template})
    finally:
        checkpointer.close()
    restored = trees["train_state"]
    if restored is None:
        raise CheckpointError(f"{directory}/{step}: corrupted checkpoint (no train_state)")
    if not stacked:
        return step, [(runs[0], restored)]
    return step, [(run, jax.tree.map(lambda x, i=i: x[i], restored))
                  for i, run in enumerate(runs)]
