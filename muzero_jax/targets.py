"""Training targets from replay windows.

For a window starting at position t, unroll step k (0..K) gets:

- value target z_{t+k} = sum_j gamma^j u_{t+k+j} + gamma^n v_{t+k+n}, where the sum
  stops at an episode's end: after a termination nothing more is added (the
  terminal state is absorbing, value 0); after a truncation (a time limit) the
  network's value of the observation reached is added instead, discounted.
- reward target u_{t+k-1} for the prediction r^k of g (k >= 1).
- policy target pi_{t+k}, the search policy stored there.

Two-player games (`EnvSpec.two_player`) replace z by the game's outcome from the
view of the player to move at t + k (`game_outcomes`): read from the row where the
game ended, however far ahead, not summed over a window as long as the game; rows
whose game has not ended yet (or ended at a time limit) get no value loss.

Positions past the end of the window's first episode are handled as the paper
says: past a termination the state is absorbing (value 0, reward 0, no policy
loss); past a truncation nothing is known, so value, reward and policy are all
masked out of the loss.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from muzero_jax.replay import Window


@chex.dataclass(frozen=True)
class Targets:
    """Targets for a batch of N windows, K unroll steps.

    actions: `[N, K]` the actions a_t..a_{t+K-1} fed to g.
    value: `[N, K + 1]` value targets z_{t+k}; value_mask: `[N, K + 1]` float32.
    reward: `[N, K]` targets for r^1..r^K; reward_mask: `[N, K]` float32.
    policy: `[N, K + 1, A]` policy targets; policy_mask: `[N, K + 1]` float32.
    extra: name -> `[N, ...]`, the extensions' targets (`Extension.targets`).
    """

    actions: chex.Array
    value: chex.Array
    value_mask: chex.Array
    reward: chex.Array
    reward_mask: chex.Array
    policy: chex.Array
    policy_mask: chex.Array
    extra: dict[str, chex.Array] = dataclasses.field(default_factory=dict)


def n_step_values(reward: chex.Array, terminated: chex.Array, truncated: chex.Array,
                  bootstrap: chex.Array, final_value: chex.Array, *, discount: float,
                  td_steps: int, num_values: int) -> chex.Array:
    """n-step value targets z_0..z_{num_values-1} along one stream segment.

    Args:
      reward, terminated, truncated, final_value: `[W]` rows of the segment.
      bootstrap: `[W]` the value to bootstrap from at each row (search root values,
        or fresh network values).
      discount: gamma.
      td_steps: n.
      num_values: how many targets, from row 0; needs W >= num_values + n.

    Returns:
      `[num_values]` float32.
    """
    chex.assert_rank(reward, 1)
    if reward.shape[0] < num_values + td_steps:
        raise ValueError(f"segment of {reward.shape[0]} rows; {num_values} targets with "
                         f"n = {td_steps} need {num_values + td_steps}")
    done = (terminated | truncated).astype(jnp.float32)
    rows = jnp.arange(num_values)[:, None] + jnp.arange(td_steps)[None, :]  # [V, n]
    # alive[k, j]: no episode end in rows k..k+j-1, so row k+j still counts.
    ended = done[rows]
    alive = jnp.cumprod(jnp.concatenate(
        [jnp.ones((num_values, 1)), 1.0 - ended[:, :-1]], axis=1), axis=1)
    alive_after = alive[:, -1] * (1.0 - ended[:, -1])
    powers = discount ** jnp.arange(td_steps, dtype=jnp.float32)
    # A truncation at row k+j adds the discounted value of the state it reached.
    step_value = reward[rows] + discount * truncated[rows] * final_value[rows]
    returns = jnp.sum(alive * powers * step_value, axis=1)
    return returns + alive_after * discount**td_steps * bootstrap[td_steps:td_steps + num_values]


def horizon_values(reward: chex.Array, terminated: chex.Array, truncated: chex.Array,
                   bootstrap: chex.Array, final_value: chex.Array, horizon: chex.Array, *,
                   discount: float, td_steps: int, num_values: int) -> chex.Array:
    """`n_step_values` with a traced n = `horizon` (`[]` int32, 1..td_steps): the first
    `horizon` rewards and the bootstrap at row k + horizon (`corrected_td_steps`).

    Args and returns as `n_step_values`; the segment still needs num_values + td_steps rows.
    """
    chex.assert_rank(reward, 1)
    done = (terminated | truncated).astype(jnp.float32)
    rows = jnp.arange(num_values)[:, None] + jnp.arange(td_steps)[None, :]  # [V, n]
    ended = done[rows]
    # alive[k, j]: no episode end in rows k..k+j-1; its last column is row k+td_steps's.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones((num_values, 1)), 1.0 - ended], axis=1),
                        axis=1)
    counted = jnp.arange(td_steps) < horizon
    powers = discount ** jnp.arange(td_steps, dtype=jnp.float32)
    step_value = reward[rows] + discount * truncated[rows] * final_value[rows]
    returns = jnp.sum(jnp.where(counted, alive[:, :-1] * powers * step_value, 0.0), axis=1)
    boot = jnp.take(bootstrap, jnp.arange(num_values) + horizon)
    return returns + alive[:, horizon] * discount**horizon.astype(jnp.float32) * boot


def corrected_td_steps(age: chex.Array, *, td_steps: int, correction_steps: int) -> jax.Array:
    """EfficientZero's off-policy correction of the bootstrap horizon.

    Data collected long ago was played by an older policy, so its n-step return
    measures that policy rather than today's: EfficientZero shortens n by one for
    each `correction_steps` transitions collected since the data's own (its
    `auto_td_steps`: a share, 0.3, of the training run's steps), never below one
    step nor above `td_steps`: n = clip(td_steps - floor(age / correction_steps), 1,
    td_steps).

    Args:
      age: `[N]` int, env steps collected (over all envs) since each window's start.
      td_steps: n for fresh data. correction_steps: age that costs one step of n.

    Returns:
      `[N]` int32 n of each window.
    """
    return jnp.clip(td_steps - age // correction_steps, 1, td_steps).astype(jnp.int32)


def value_prefix_targets(reward: chex.Array, horizon_len: int) -> jax.Array:
    """Value prefix targets: each unroll step's rewards summed since the prefix's start.

    The prefix restarts every `horizon_len` steps (EfficientZero's `lstm_horizon_len`),
    as the model's LSTM does: step k (1..K) sums reward targets j of its segment up to
    k, segments being steps 1..H, H+1..2H, ... Rewards past an episode's end are 0 in
    `reward` already, so the prefix stays where the episode left it.

    Args:
      reward: `[N, K]` per-step reward targets (`Targets.reward`).
      horizon_len: H.

    Returns:
      `[N, K]` float32.
    """
    steps = jnp.arange(reward.shape[-1])
    segment = steps // horizon_len
    # sums[j, k]: reward j counts towards step k's prefix.
    sums = (steps[:, None] <= steps[None, :]) & (segment[:, None] == segment[None, :])
    return reward @ sums.astype(reward.dtype)


def episode_masks(terminated: chex.Array, truncated: chex.Array,
                  num_steps: int) -> tuple[chex.Array, chex.Array]:
    """Whether rows 0..num_steps-1 lie past the first episode's end, and past a truncation.

    Args:
      terminated, truncated: `[W]` with W >= num_steps.

    Returns:
      past_end: `[num_steps]` bool, an episode ended on an earlier row of the window.
      past_truncation: `[num_steps]` bool, and that first end was a truncation.
    """
    done = (terminated | truncated)[:num_steps]
    past_end = jnp.concatenate([jnp.zeros((1,), bool), jnp.cumsum(done)[:-1] > 0])
    first_end = done & ~past_end
    trunc_first = jnp.cumsum(first_end & truncated[:num_steps]) > 0
    past_truncation = jnp.concatenate([jnp.zeros((1,), bool), trunc_first[:-1]])
    return past_end, past_truncation


def game_outcomes(reward: chex.Array, terminated: chex.Array, truncated: chex.Array,
                  count: chex.Array, slots: chex.Array, *,
                  discount: float = -1.0) -> tuple[jax.Array, jax.Array]:
    """The outcome of the game each position belongs to, from its player-to-move's view.

    For a position i whose game ended on row e >= i with the mover's reward r_e
    (rewards of board games come only at the end), z_i = discount^(e - i) r_e:
    with discount -1, +r_e on the plies of the player who made the last move and
    -r_e on the opponent's.

    Args:
      reward, terminated, truncated: `[N, L]` one replay stream per row, in the
        buffer's physical layout (slot s holds the newest logical position
        `count - 1 - (count - 1 - s) % L`).
      count: `[]` positions written per stream (`ReplayBuffer.count`).
      slots: `[N, P]` int32 physical slots to evaluate.
      discount: between plies (-1: two players, zero-sum).

    Returns:
      z: `[N, P]` float32. known: `[N, P]` bool, the game has ended by termination
        (not yet ended, or cut by a time limit: unknown).
    """
    length = reward.shape[1]
    # Oldest-first order: order[i] is slot (count + i) % L (unwritten slots first,
    # which are never done and so never end a game).
    order = (count + jnp.arange(length)) % length
    done = (terminated | truncated)[:, order]
    index = jnp.arange(length)
    end = jax.lax.cummin(jnp.where(done, index, length), axis=1, reverse=True)  # [N, L]
    at = (slots - count) % length  # [N, P] order index of each slot
    end_at = jnp.take_along_axis(end, at, axis=1)
    found = end_at < length
    end_slot = order[jnp.minimum(end_at, length - 1)]
    final_reward = jnp.take_along_axis(reward, end_slot, axis=1)
    known = found & jnp.take_along_axis(terminated, end_slot, axis=1)
    plies = (end_at - at).astype(jnp.float32)
    sign = jnp.where(discount < 0, jnp.where(plies % 2 == 0, 1.0, -1.0), 1.0)
    z = sign * jnp.abs(discount) ** plies * final_reward
    return jnp.where(known, z, 0.0), known


def window_masks(window: Window, unroll_steps: int) -> tuple[jax.Array, jax.Array]:
    """`episode_masks` of rows 0..K of each window: past_end, past_truncation `[N, K + 1]`."""
    return jax.vmap(lambda te, tr: episode_masks(te, tr, unroll_steps + 1))(
        window.terminated, window.truncated)


def window_targets(window: Window, *, discount: float, td_steps: int,
                   unroll_steps: int, bootstrap_value: chex.Array | None = None,
                   outcome: tuple[chex.Array, chex.Array] | None = None,
                   horizon: chex.Array | None = None) -> Targets:
    """Targets for a batch of windows (see the module docstring), without `extra`.

    Args:
      window: `[N, W]` windows with W = K + n + 1.
      discount, td_steps, unroll_steps: gamma, n, K.
      bootstrap_value: optional `[N, W]` values to bootstrap from instead of the
        stored search root values (Reanalyze, target network).
      outcome: two-player games: `game_outcomes` (z, known) of rows 0..K, `[N, K + 1]`
        each, the value targets instead of n-step returns.
      horizon: optional `[N]` int32, each window's own n <= td_steps
        (`corrected_td_steps`), in place of td_steps.

    Returns:
      `Targets` for K unroll steps.
    """
    k1 = unroll_steps + 1
    bootstrap = window.root_value if bootstrap_value is None else bootstrap_value
    use_outcome = outcome is not None
    num_windows = window.reward.shape[0]
    if not use_outcome:
        outcome = (jnp.zeros((num_windows, k1)), jnp.ones((num_windows, k1), bool))
    own_horizon = horizon is not None
    if not own_horizon:
        horizon = jnp.zeros((num_windows,), jnp.int32)

    def one(reward, terminated, truncated, boot, final_value, policy, action, z_game, known,
            past_end, past_trunc, n):
        if use_outcome:
            z = z_game
            value_mask = (~past_trunc & (known | past_end)).astype(jnp.float32)
        elif own_horizon:
            z = horizon_values(reward, terminated, truncated, boot, final_value, n,
                               discount=discount, td_steps=td_steps, num_values=k1)
            value_mask = (~past_trunc).astype(jnp.float32)
        else:
            z = n_step_values(reward, terminated, truncated, boot, final_value,
                              discount=discount, td_steps=td_steps, num_values=k1)
            value_mask = (~past_trunc).astype(jnp.float32)
        value = jnp.where(past_end, 0.0, z)
        policy_mask = (~past_end).astype(jnp.float32)
        # r^k predicts the reward of row k-1; k = 1..K reads rows 0..K-1.
        reward_target = jnp.where(past_end[:-1], 0.0, reward[:unroll_steps])
        reward_mask = (~past_trunc[:-1]).astype(jnp.float32)
        return Targets(actions=action[:unroll_steps], value=value, value_mask=value_mask,
                       reward=reward_target, reward_mask=reward_mask,
                       policy=policy[:k1], policy_mask=policy_mask)

    return jax.vmap(one)(window.reward, window.terminated, window.truncated, bootstrap,
                         window.final_value, window.search_policy, window.action, *outcome,
                         *window_masks(window, unroll_steps), horizon)
