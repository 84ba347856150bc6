"""Board symmetries and the training-data augmentation they give (AlphaGo Zero).

A game whose rules do not change under a reflection or rotation of the board (tic-
tac-toe, Go and othello under all eight of the square's; connect four under its left-
right mirror) declares those maps in its `EnvSpec.symmetries`. With
`Config.augment_symmetries`, every learner sample is then seen under one of them, drawn
uniformly: its root observation, the actions fed to g and its policy targets are mapped
together, and its value and reward targets, which no symmetry changes, stay. AlphaGo
Zero trained this way; the MuZero paper and AlphaZero did not, so it is off by default.

A symmetry is two forward maps: point p of the board goes to `points[p]` (points
numbered row-major over the board's height and width; every plane of the observation
moves alike) and action a to `actions[a]` (moves on points go where their point goes;
a pass stays).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np


class Symmetry(NamedTuple):
    """points: `[H * W]` where each board point goes; actions: `[A]` where each action goes."""

    points: tuple[int, ...]
    actions: tuple[int, ...]


def _square_maps(size: int) -> list[np.ndarray]:
    """The dihedral group of a size x size board as `[size * size]` point maps."""
    grid = np.arange(size * size).reshape(size, size)
    maps = []
    for k in range(4):
        rotated = np.rot90(grid, k)
        for image in (rotated, rotated[:, ::-1]):
            # image[r, c] = p: point p moves to (r, c).
            forward = np.empty(size * size, np.int64)
            forward[image.reshape(-1)] = np.arange(size * size)
            maps.append(forward)
    return maps


def square_board(size: int, num_actions: int) -> tuple[Symmetry, ...]:
    """The eight symmetries of a square board whose first size^2 actions are its points
    (row-major) and whose other actions (a pass) no symmetry moves."""
    if num_actions < size * size:
        raise ValueError(f"num_actions={num_actions}: expected >= {size * size} (one per "
                         f"point of a {size}x{size} board)")
    extra = np.arange(size * size, num_actions)
    return tuple(Symmetry(tuple(int(p) for p in m),
                          tuple(int(a) for a in np.concatenate([m, extra])))
                 for m in _square_maps(size))


def column_mirror(height: int, width: int) -> tuple[Symmetry, ...]:
    """Identity and the left-right mirror of a height x width board whose actions are
    its columns (connect four)."""
    grid = np.arange(height * width).reshape(height, width)
    mirror = tuple(int(p) for p in grid[:, ::-1].reshape(-1))  # an involution
    columns = tuple(range(width))
    return (Symmetry(tuple(range(height * width)), columns),
            Symmetry(mirror, columns[::-1]))


def check(symmetries: tuple[Symmetry, ...], num_points: int, num_actions: int) -> None:
    """Raises ValueError unless every map is a permutation of the right size."""
    for i, s in enumerate(symmetries):
        for name, forward, n in (("points", s.points, num_points),
                                 ("actions", s.actions, num_actions)):
            if sorted(forward) != list(range(n)):
                raise ValueError(f"symmetry {i}: {name} is not a permutation of "
                                 f"0..{n - 1}: {forward}")


def augment(key: chex.PRNGKey, symmetries: tuple[Symmetry, ...], observation: chex.Array,
            actions: chex.Array, policy: chex.Array
            ) -> tuple[chex.Array, chex.Array, chex.Array]:
    """Maps each sample by one symmetry drawn uniformly (the identity among them).

    Args:
      key: PRNG key for the draws.
      symmetries: the game's (`EnvSpec.symmetries`), non-empty.
      observation: `[N, H, W, P]` root observations.
      actions: `[N, M]` int actions (those fed to g, and any more of the same board).
      policy: `[N, K + 1, A]` policy targets.

    Returns:
      The three, each sample mapped by its symmetry; shapes and dtypes unchanged.
    """
    n, height, width = observation.shape[:3]
    points = np.asarray([s.points for s in symmetries])
    moves = np.asarray([s.actions for s in symmetries])
    # Gathers need the inverse: the new point q holds the old point that went to q.
    inverse_points = jnp.asarray(np.argsort(points, axis=1), jnp.int32)
    inverse_moves = jnp.asarray(np.argsort(moves, axis=1), jnp.int32)
    which = jax.random.randint(key, (n,), 0, len(symmetries))
    flat = observation.reshape(n, height * width, -1)
    flat = jnp.take_along_axis(flat, inverse_points[which][:, :, None], axis=1)
    actions = jnp.take_along_axis(jnp.asarray(moves, actions.dtype)[which], actions, axis=1)
    policy = jnp.take_along_axis(policy, inverse_moves[which][:, None, :], axis=2)
    return flat.reshape(observation.shape), actions, policy
