"""Frame and action history: what h sees of the past (the paper's Atari input, App. E).

The representation h takes the last H frames o_{t-H+1..t} and, beside each
frame o_i, the action a_{i-1} that led to it, encoded as a constant plane. Only
the current episode counts: frames from before its start are zeros and so are
the planes of actions taken before it (or, for its first frame, the action that
ended the previous episode).

Self-play keeps a `History` per environment on the device and `push`es each new
frame; replay stores single frames and rebuilds the same stacks when it samples
(`replay.observations`). Both end in `planes`, so the network cannot tell where
a stack came from.

Action planes hold (a + 1) / A, not the paper's a / 18: with a game's minimal
action set, a / A would make action 0 (NOOP) indistinguishable from "no action".
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

NO_ACTION = -1  # the action code of frames with no preceding action in the episode


@chex.dataclass(frozen=True)
class History:
    """The last H frames and actions of B environments, oldest first.

    frames: `[B, H, *frame_shape]` uint8; zeros before the episode's first frame.
    actions: `[B, H]` int32, the action taken just before each frame; `NO_ACTION`
      where there is none in this episode.
    """

    frames: chex.Array
    actions: chex.Array


def start(frame: chex.Array, history_length: int) -> History:
    """Histories holding only a new episode's first frame. frame: `[B, *frame_shape]`."""
    frames = jnp.zeros((frame.shape[0], history_length) + frame.shape[1:], frame.dtype)
    return History(frames=frames.at[:, -1].set(frame),
                   actions=jnp.full((frame.shape[0], history_length), NO_ACTION, jnp.int32))


def push(history: History, frame: chex.Array, action: chex.Array,
         episode_start: chex.Array) -> History:
    """Appends the frame reached by `action`, or starts afresh where an episode began.

    Args:
      history: `[B, H]` histories.
      frame: `[B, *frame_shape]` the new frame.
      action: `[B]` int32, the action that led to it.
      episode_start: `[B]` bool, True where `frame` is a new episode's first frame
        (the previous episode ended with `action`).
    """
    frames = jnp.concatenate([history.frames[:, 1:], frame[:, None]], axis=1)
    actions = jnp.concatenate([history.actions[:, 1:], action[:, None].astype(jnp.int32)],
                              axis=1)
    fresh = start(frame, history.frames.shape[1])
    pick = lambda new, old: jnp.where(  # noqa: E731
        episode_start.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
    return History(frames=pick(fresh.frames, frames), actions=pick(fresh.actions, actions))


def planes(frames: chex.Array, actions: chex.Array, num_actions: int) -> chex.Array:
    """The network's input: frames and action planes stacked along channels.

    Args:
      frames: `[..., H, height, width, C]` uint8, oldest first.
      actions: `[..., H]` int32 action codes (`NO_ACTION` for none).
      num_actions: A.

    Returns:
      `[..., height, width, H * C + H]` float32: the H frames scaled to [0, 1]
      (channel h * C + c is channel c of frame h), then H planes, plane h holding
      (actions[h] + 1) / A everywhere.
    """
    *batch, history_length, height, width, channels = frames.shape
    x = jnp.moveaxis(frames.astype(jnp.float32) / 255.0, -4, -2)  # [..., h, w, H, C]
    x = x.reshape((*batch, height, width, history_length * channels))
    codes = (actions.astype(jnp.float32) + 1.0) / num_actions
    a = jnp.broadcast_to(codes[..., None, None, :], (*batch, height, width, history_length))
    return jnp.concatenate([x, a], axis=-1)


def history_planes(history: History, num_actions: int) -> chex.Array:
    """`planes` of a `History`: `[B, height, width, H * C + H]` float32."""
    return planes(history.frames, history.actions, num_actions)


def planes_shape(frame_shape: tuple[int, ...], history_length: int) -> tuple[int, int, int]:
    """Shape of one stack of `history_length` frames of `frame_shape` (height, width, C)."""
    height, width, channels = frame_shape
    return (height, width, history_length * (channels + 1))
