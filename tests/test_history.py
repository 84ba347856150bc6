"""Frame/action histories: self-play's pushes and replay's rebuilt stacks agree, per episode."""

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import history, replay
from muzero_jax.selfplay import Trajectory

A = 4  # actions
# Jitted: called op by op, each of these compiles dozens of small programs.
_push = jax.jit(history.push)
_planes = jax.jit(history.history_planes, static_argnums=1)
_add = jax.jit(replay.add)
_observations = jax.jit(replay.observations, static_argnames="history_length")
_final_observations = jax.jit(replay.final_observations, static_argnames="history_length")
_sample = jax.jit(replay.sample, static_argnums=(2, 3), static_argnames="history_length")
_num_windows = jax.jit(replay.num_windows, static_argnums=(1, 2))


def _frame(values):
    """`[B, 2, 2, 1]` uint8 frames, frame b filled with values[b]."""
    return jnp.asarray(np.asarray(values, np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1),
                                                                                   np.uint8))


def _frame_values(planes, history_length):
    """The value of each stacked frame (x 255) and each action code, from `planes`."""
    frames = np.rint(np.asarray(planes[..., 0, 0, :history_length]) * 255).astype(int)
    codes = np.rint(np.asarray(planes[..., 0, 0, history_length:]) * A - 1).astype(int)
    return frames, codes


def test_action_planes_hold_the_actions_in_order_after_a_reset():
    h = history.start(_frame([10, 20]), 4)
    h = _push(h, _frame([11, 21]), jnp.array([2, 3]), jnp.array([False, False]))
    # Game 0's episode ends with action 1: frame 12 is the next episode's first.
    h = _push(h, _frame([12, 22]), jnp.array([1, 0]), jnp.array([True, False]))
    h = _push(h, _frame([13, 23]), jnp.array([3, 2]), jnp.array([False, False]))
    frames, codes = _frame_values(_planes(h, A), 4)
    np.testing.assert_array_equal(frames, [[0, 0, 12, 13], [20, 21, 22, 23]])
    # Plane j holds the action that led to frame j; none before the episode's first frame.
    np.testing.assert_array_equal(codes, [[-1, -1, -1, 3], [-1, 3, 0, 2]])
    planes = _planes(h, A)
    assert planes.shape == (2, 2, 2, 8) and planes.dtype == jnp.float32
    np.testing.assert_allclose(planes[1, :, :, 4:], np.broadcast_to([0, 1, 0.25, 0.75],
                                                                    (2, 2, 4)))


def _selfplay(num_streams, num_steps, history_length, seed):
    """Synthetic self-play: unique frames, random actions and episode ends.

    Returns the trajectory, the `[B, T]` stacks self-play searched at each step and
    the `[B, T]` stacks it would bootstrap from where a step truncated its episode
    (its stack pushed with the final frame, as `Agent` does; zeros elsewhere).
    """
    rng = np.random.default_rng(seed)
    values = (np.arange(num_streams * (num_steps + 1)).reshape(num_streams, -1) % 250) + 1
    action = rng.integers(0, A, (num_streams, num_steps)).astype(np.int32)
    terminated = rng.random((num_streams, num_steps)) < 0.12
    truncated = (rng.random((num_streams, num_steps)) < 0.05) & ~terminated
    final_values = 255 - np.arange(num_streams * num_steps).reshape(num_streams, -1) % 4
    h = history.start(_frame(values[:, 0]), history_length)
    stacks, final_stacks = [], []
    no_start = jnp.zeros(num_streams, bool)
    for t in range(num_steps):
        stacks.append(_planes(h, A))
        final = _planes(_push(h, _frame(final_values[:, t]), jnp.asarray(action[:, t]),
                              no_start), A)
        final_stacks.append(jnp.where(truncated[:, t, None, None, None], final, 0.0))
        h = _push(h, _frame(values[:, t + 1]), jnp.asarray(action[:, t]),
                         jnp.asarray(terminated[:, t] | truncated[:, t]))
    zeros = jnp.zeros((num_streams, num_steps))
    frames = np.stack([np.asarray(_frame(values[:, t])) for t in range(num_steps)], axis=1)
    final_frames = np.stack([np.asarray(_frame(final_values[:, t])) for t in range(num_steps)],
                            axis=1)
    trajectory = Trajectory(
        observation=frames, action=action, reward=zeros, terminated=terminated,
        truncated=truncated, search_policy=jnp.full((num_streams, num_steps, A), 1 / A),
        root_value=zeros, final_value=zeros, final_observation=final_frames,
        episode_return=zeros,
        episode_length=jnp.zeros((num_streams, num_steps), jnp.int32))
    return trajectory, jnp.stack(stacks, axis=1), jnp.stack(final_stacks, axis=1)


def test_replay_rebuilds_the_stacks_self_play_searched():
    B, T, H = 3, 40, 5
    trajectory, stacks, _ = _selfplay(B, T, H, seed=0)
    buf = replay.init(B, 64, (2, 2, 1), A, observation_dtype=jnp.uint8)
    buf = _add(buf, trajectory)
    slots = jnp.broadcast_to(jnp.arange(T), (B, T))
    rebuilt = _observations(buf, jnp.arange(B), slots, history_length=H)
    assert rebuilt.shape == (B, T, 2, 2, 2 * H) and rebuilt.dtype == jnp.float32
    np.testing.assert_array_equal(rebuilt, stacks)
    # Stacks at an episode's first position hold its first frame and nothing else.
    done = np.asarray(trajectory.terminated | trajectory.truncated)
    b, t = np.argwhere(done[:, :-1])[0]
    frames, codes = _frame_values(rebuilt[b, t + 1], H)
    assert list(frames[:-1]) == [0] * (H - 1) and frames[-1] > 0
    assert list(codes) == [-1] * H


def test_stacks_never_reach_into_overwritten_positions():
    B, T, H, L = 2, 60, 4, 24
    trajectory, stacks, _ = _selfplay(B, T, H, seed=1)
    buf = replay.init(B, L, (2, 2, 1), A, observation_dtype=jnp.uint8)
    for start in range(0, T, 12):
        buf = _add(buf, jax.tree.map(lambda x, s=start: x[:, s:s + 12], trajectory))
    oldest = T - L
    logical = np.arange(oldest, T)
    rebuilt = _observations(buf, jnp.arange(B), jnp.broadcast_to(logical % L, (B, L)),
                            history_length=H)
    # Positions with their whole history still held: exactly self-play's stacks.
    np.testing.assert_array_equal(rebuilt[:, H:], stacks[:, oldest + H:])
    # Older ones lose the overwritten frames and actions (zeros), never read newer
    # data instead.
    frames, codes = _frame_values(rebuilt[:, 0], H)
    expected, _ = _frame_values(stacks[:, oldest], H)
    np.testing.assert_array_equal(frames[:, -1], expected[:, -1])
    np.testing.assert_array_equal(frames[:, :-1], 0)
    np.testing.assert_array_equal(codes, -1)
    # And sampling never starts a window there.
    w = _sample(buf, jax.random.key(0), 256, 6, history_length=H)
    assert int(_num_windows(buf, 6, H)) == L - 6 + 1 - H
    starts = {int(p) for p in np.asarray(w.position)}
    assert starts == {x % L for x in range(oldest + H, T - 6 + 1)}


def test_final_stacks_at_time_limits_are_what_self_play_would_push():
    """Where a step truncated its episode, replay rebuilds the stack ending in the final
    frame exactly as self-play's history.push builds it (the Agent's acting-time value)."""
    B, T, H = 3, 40, 5
    trajectory, _, final_stacks = _selfplay(B, T, H, seed=2)
    buf = replay.init(B, 64, (2, 2, 1), A, observation_dtype=jnp.uint8)
    buf = _add(buf, trajectory)
    stream, position = np.nonzero(np.asarray(trajectory.truncated))
    assert len(stream) >= 3
    rebuilt, found = _final_observations(buf, jnp.asarray(stream), jnp.asarray(position),
                                         history_length=H)
    assert np.all(np.asarray(found))
    np.testing.assert_array_equal(rebuilt, np.asarray(final_stacks)[stream, position])
    # The final frame is the stack's newest and the row's action led to it.
    frames, codes = _frame_values(rebuilt, H)
    np.testing.assert_array_equal(frames[:, -1], np.asarray(
        trajectory.final_observation)[stream, position, 0, 0, 0])
    np.testing.assert_array_equal(codes[:, -1], np.asarray(trajectory.action)[stream, position])
