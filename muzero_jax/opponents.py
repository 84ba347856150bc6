"""Opponents for two-player pgx games, and an arena that plays them against each other.

A player is a pure function `policy(params, key, states) -> [G] int32` actions for a
`[G]` batch of pgx states (only the rows whose player is to move are used); `params`
are its weights (None for the fixed players), an argument rather than constants
closed over, so that one compiled match serves any parameters (closed over, each
parameter set compiled a program of its own, with the weights baked in). Here:

- `random_player`: a uniform legal move.
- `search_player`: the pure-search baseline: mctx PUCT with pgx's real step, a
  uniform prior and the value of one random rollout to the end of the game.
- `minimax_player`: perfect tic-tac-toe from a table of every position's game
  value (negamax over the 5,478 legal positions, built once on the host); ties
  between equally good moves are broken at random.
- `agent_player`: a trained Agent's greedy search (AlphaZero mode: on the env state).

`play` plays G games of two players in one `lax.while_loop`, each game with its own
first mover; `Match` compiles it once per pair of players for G games as first and G
as second player, vmapped together, and reports wins, draws and losses per side.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import mctx
import numpy as np

from muzero_jax.search import ILLEGAL_LOGIT, Exploration

Policy = Callable[[object, chex.PRNGKey, object], jax.Array]


def _masked_logits(legal: chex.Array) -> jax.Array:
    return jnp.where(legal, 0.0, ILLEGAL_LOGIT)


def random_player(params, key: chex.PRNGKey, states) -> jax.Array:
    """A uniform legal move in each of the `[G]` states (`params` unused)."""
    del params
    return jax.random.categorical(key, _masked_logits(states.legal_action_mask)).astype(
        jnp.int32)


def random_rollout_value(pgx_env, key: chex.PRNGKey, state) -> jax.Array:
    """The outcome of uniform random play from one (unbatched) pgx state to the end,
    from the view of the player to move in it (0 if the game is already over)."""

    def going(carry):
        state, _, _, _ = carry
        return ~(state.terminated | state.truncated)

    def ply(carry):
        state, key, value, sign = carry
        key, pick = jax.random.split(key)
        mover = state.current_player
        action = jax.random.categorical(pick, _masked_logits(state.legal_action_mask))
        state = pgx_env.step(state, action)
        return state, key, value + sign * state.rewards[mover], -sign

    _, _, value, _ = jax.lax.while_loop(going, ply, (state, key, jnp.float32(0.0),
                                                      jnp.float32(1.0)))
    return value


def search_player(pgx_env, num_simulations: int) -> Policy:
    """The pure-search baseline: mctx `muzero_policy` on pgx's real step, uniform
    prior, random-rollout values, `num_simulations` simulations, most visited move."""
    rollout = jax.vmap(functools.partial(random_rollout_value, pgx_env))

    def recurrent_fn(params, key, action, states):
        del params
        step_key, rollout_key = jax.random.split(key)
        movers = states.current_player
        nxt = jax.vmap(pgx_env.step)(states, action,
                                     jax.random.split(step_key, action.shape[0]))
        reward = nxt.rewards[jnp.arange(action.shape[0]), movers]
        over = nxt.terminated | nxt.truncated
        value = jnp.where(over, 0.0, rollout(jax.random.split(rollout_key, action.shape[0]),
                                             nxt))
        return mctx.RecurrentFnOutput(
            reward=reward, discount=jnp.where(over, 0.0, -1.0),
            prior_logits=_masked_logits(nxt.legal_action_mask), value=value), nxt

    def policy(params, key, states):
        del params
        root_key, search_key = jax.random.split(key)
        batch = states.current_player.shape[0]
        root = mctx.RootFnOutput(
            prior_logits=_masked_logits(states.legal_action_mask),
            value=rollout(jax.random.split(root_key, batch), states), embedding=states)
        out = mctx.muzero_policy(None, search_key, root, recurrent_fn, num_simulations,
                                 invalid_actions=~states.legal_action_mask,
                                 dirichlet_fraction=0.0, temperature=0.0)
        return out.action.astype(jnp.int32)

    return policy


# --- perfect tic-tac-toe ---------------------------------------------------------------
_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
          (2, 4, 6))
_POWERS = 3 ** np.arange(9)


@functools.lru_cache(maxsize=1)
def tic_tac_toe_table() -> np.ndarray:
    """`[3**9, 9]` float32: the game value of each move for the player to move, from
    that player's view (+1 win, 0 draw, -1 loss with best play), -inf where illegal.

    A position is coded as sum_i cell_i 3^i with cell 0 empty, 1 the mover's mark,
    2 the opponent's (the view pgx's observation gives: plane 0 mine, plane 1 theirs).
    """
    table = np.full((3**9, 9), -np.inf, np.float32)
    memo: dict[tuple, float] = {}

    def wins(cells, who):
        return any(all(cells[i] == who for i in line) for line in _LINES)

    def value(cells: tuple) -> float:  # for the player to move (marks 1)
        if cells in memo:
            return memo[cells]
        qs = []
        for a in range(9):
            if cells[a]:
                continue
            after = list(cells)
            after[a] = 1
            if wins(after, 1):
                q = 1.0
            elif all(after):
                q = 0.0
            else:  # the opponent moves next: swap the marks
                q = -value(tuple({0: 0, 1: 2, 2: 1}[c] for c in after))
            qs.append((a, q))
        code = int(np.dot(cells, _POWERS))
        for a, q in qs:
            table[code, a] = q
        memo[cells] = max(q for _, q in qs)
        return memo[cells]

    value((0,) * 9)
    return table


def tic_tac_toe_code(observation: chex.Array) -> jax.Array:
    """`[G]` table codes of `[G, 3, 3, 2]` pgx tic-tac-toe observations."""
    obs = jnp.asarray(observation).reshape(observation.shape[0], 9, 2).astype(jnp.int32)
    cells = obs[..., 0] + 2 * obs[..., 1]
    return jnp.sum(cells * jnp.asarray(_POWERS, jnp.int32), axis=-1)


def minimax_player(params, key: chex.PRNGKey, states) -> jax.Array:
    """A perfect tic-tac-toe move (random among the best) in each of `[G]` states
    (`params` unused)."""
    del params
    q = jnp.asarray(tic_tac_toe_table())[tic_tac_toe_code(states.observation)]
    best = (q == jnp.max(q, axis=-1, keepdims=True)) & states.legal_action_mask
    return jax.random.categorical(key, jnp.where(best, 0.0, ILLEGAL_LOGIT)).astype(jnp.int32)


def agent_player(agent) -> Policy:
    """A trained Agent's greedy search on pgx states (`agent.env` must be the PgxEnv);
    its `params` are the Agent's network parameters."""

    def policy(params, key, states):
        out = agent.searcher(params, key, states.observation.astype(jnp.float32),
                             Exploration.greedy(), ~states.legal_action_mask, states)
        return out.action

    return policy


# --- the arena ------------------------------------------------------------------------
def play(pgx_env, player: Policy, opponent: Policy, key: chex.PRNGKey,
         player_first: chex.Array, player_params=None, opponent_params=None) -> jax.Array:
    """`[G]` outcomes from `player`'s view (+1, 0 or -1) of G games against `opponent`.

    `player_first`: `[G]` bool, whether `player` makes the first move of each game
    (pgx draws which player id starts; "first" is whoever moves first). Pure; all G
    games advance one ply per step of one `lax.while_loop` until every one is over.
    """
    num_games = player_first.shape[0]
    init_key, key = jax.random.split(key)
    states = jax.vmap(pgx_env.init)(jax.random.split(init_key, num_games))
    player_id = jnp.where(player_first, states.current_player, 1 - states.current_player)

    def going(carry):
        states, _, _ = carry
        return ~jnp.all(states.terminated | states.truncated)

    def ply(carry):
        states, key, score = carry
        key, key_a, key_b, step_key = jax.random.split(key, 4)
        action = jnp.where(states.current_player == player_id,
                           player(player_params, key_a, states),
                           opponent(opponent_params, key_b, states))
        states = jax.vmap(pgx_env.step)(states, action,
                                        jax.random.split(step_key, num_games))
        score = score + states.rewards[jnp.arange(num_games), player_id]
        return states, key, score

    _, _, score = jax.lax.while_loop(going, ply, (states, key, jnp.zeros(num_games)))
    return jnp.sign(score)


def tally(outcomes) -> dict[str, int]:
    """Wins, draws and losses of `[G]` outcomes (+1, 0, -1)."""
    outcomes = np.asarray(outcomes)
    return {"wins": int(np.sum(outcomes > 0)), "draws": int(np.sum(outcomes == 0)),
            "losses": int(np.sum(outcomes < 0))}


class Match:
    """`player` against `opponent`, `games_per_side` games as first and as second player.

    One compiled program plays all 2 x `games_per_side` games side by side (the first
    half with `player` moving first); calling it again with other parameters or keys
    does not compile again. Call: `match(key, player_params=None, opponent_params=None)`
    -> {"first": {wins, draws, losses}, "second": {...}} from `player`'s view.
    """

    def __init__(self, pgx_env, player: Policy, opponent: Policy, games_per_side: int):
        self.games_per_side = games_per_side
        first = jnp.arange(2 * games_per_side) < games_per_side
        self.outcomes = jax.jit(lambda key, player_params, opponent_params: play(
            pgx_env, player, opponent, key, first, player_params, opponent_params))

    def __call__(self, key: chex.PRNGKey, player_params=None,
                 opponent_params=None) -> dict[str, dict[str, int]]:
        outcomes = np.asarray(self.outcomes(key, player_params, opponent_params))
        return {"first": tally(outcomes[:self.games_per_side]),
                "second": tally(outcomes[self.games_per_side:])}


def match(pgx_env, player: Policy, opponent: Policy, key: chex.PRNGKey,
          games_per_side: int, player_params=None,
          opponent_params=None) -> dict[str, dict[str, int]]:
    """One `Match` of `games_per_side` games each side, played once."""
    return Match(pgx_env, player, opponent, games_per_side)(key, player_params,
                                                            opponent_params)
