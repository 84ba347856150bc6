"""pgx board games (`pgx.make(id)`) behind the env protocol: ids `pgx/<game>`.

pgx games are pure JAX, so self-play, search and evaluation on them compile like
CartPole. The adapter reports every game from the view that two-player search
needs (`muzero_jax.search`: values alternate sign between plies):

- the observation is pgx's, which is already from the view of the player to move;
- the reward of a step is the reward of the player who moved (+1 for a win made
  by that move, -1 if it lost, 0 otherwise), so the reward and the next state's
  value are from opposite views and the search backs up with discount -1;
- `terminated` is pgx's end of game (pgx's own move caps, e.g. chess's 512 plies
  or Go's 2 x 81, end the game as a draw there, so they are terminations);
- a time limit of our own (`max_episode_steps`) is a truncation, as for any env.

The env's inner state is pgx's `State`, which AlphaZero mode searches with
(`muzero_jax.search.make_simulator_recurrent_fn`).

Games with chance (`STOCHASTIC_GAMES`) draw it from the key pgx's `step` is given:
2048's new tile after each slide, backgammon's dice at each change of turn. 2048 has
one player: its reward is the step's merged tiles (pgx's `rewards[0]`) and its spec
is a one-player env's, with no bound on a step's reward. Backgammon gives a player
the 1-4 plies of a turn (one per die) before the dice pass, where two-player search
and outcome targets here alternate views every ply: `PassingPgxEnv` makes plies
alternate by giving the other player a forced pass (one legal action, reward 0, the
board with no dice to play) between two plies of one turn.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from muzero_jax.config import ConfigError
from muzero_jax.envs.base import EnvSpec, JaxEnv, Transition

PREFIX = "pgx/"

# Two-player, zero-sum, perfect-information games with no chance: what this adapter
# (and the sign conventions of two-player search) is for.
GAMES = ("tic_tac_toe", "connect_four", "othello", "go_9x9", "go_19x19", "chess",
         "gardner_chess", "hex", "animal_shogi", "shogi")


class GameTraits(NamedTuple):
    """What the adapter needs to know of a game beyond pgx's own state."""

    players: int
    max_abs_reward: float | None  # a step's largest |reward|; None: no small bound
    passing: bool  # turns span several plies of one player: `PassingPgxEnv`


# `GAMES`: two players, outcomes +-1, one ply a turn.
BOARD_GAME = GameTraits(players=2, max_abs_reward=1.0, passing=False)
# Games whose step draws chance from its key. 2048's merges have no small bound;
# backgammon's gammons score 2, backgammons 3.
STOCHASTIC_GAMES = {"2048": GameTraits(players=1, max_abs_reward=None, passing=False),
                    "backgammon": GameTraits(players=2, max_abs_reward=3.0, passing=True)}


class PgxEnv(JaxEnv):
    """One pgx game as a `JaxEnv` (see the module docstring).

    Args:
      game: a pgx id, e.g. "tic_tac_toe" (`GAMES`, `STOCHASTIC_GAMES`).
      max_episode_steps: a time limit in plies, reported as truncation (None: the
        game's own end only).
    """

    def __init__(self, game: str, max_episode_steps: int | None = None):
        known = (*GAMES, *STOCHASTIC_GAMES)
        if game not in known:
            raise ConfigError(f"env={PREFIX + game!r}: expected one of "
                              f"{[PREFIX + g for g in known]} (board games, 2048)")
        import pgx

        self.game = game
        self.pgx_env = pgx.make(game)
        state = jax.eval_shape(self.pgx_env.init, jax.random.key(0))
        traits = STOCHASTIC_GAMES.get(game, BOARD_GAME)
        self.spec = EnvSpec(
            env_id=PREFIX + game,
            observation_shape=tuple(state.observation.shape),
            num_actions=int(state.legal_action_mask.shape[0]),
            max_episode_steps=max_episode_steps,
            max_abs_reward=traits.max_abs_reward,
            legal_actions=True,
            two_player=traits.players == 2,
        )

    def initial(self, key: chex.PRNGKey):
        state = self.pgx_env.init(key)
        return state, state.observation

    def transition(self, inner, action: chex.Array, key: chex.PRNGKey) -> Transition:
        mover = inner.current_player
        state = self.pgx_env.step(inner, action, key)
        return Transition(inner=state, observation=state.observation,
                          reward=state.rewards[mover],
                          terminated=state.terminated | state.truncated)

    def legal_action_mask(self, inner) -> chex.Array:
        return inner.legal_action_mask

    def current_player(self, inner) -> chex.Array:
        """`[]` int32: pgx's id (0 or 1) of the player to move (pgx draws who starts)."""
        return inner.current_player

    def terminated(self, inner) -> chex.Array:
        """`[]` bool: the game in `inner` is over."""
        return inner.terminated | inner.truncated


@chex.dataclass(frozen=True)
class PassingState:
    """A pgx state, and whether the player not to move in it owes a forced pass first.

    game: pgx's `State`. passing: `[]` bool.
    """

    game: Any
    passing: chex.Array


# The one legal action of a forced pass.
PASS = 0


class PassingPgxEnv(PgxEnv):
    """A pgx game whose turns may span several plies of one player (backgammon), made to
    alternate: after a ply that keeps the turn, the other player makes a forced pass.

    The pass is a ply of its own: one legal action (`PASS`), reward 0, no chance, and
    the observation pgx gives the player not to move (the board, no dice to play).
    Values then alternate sign every ply, as two-player search and outcome targets
    read them. The inner state is a `PassingState`.
    """

    def initial(self, key: chex.PRNGKey):
        state, observation = super().initial(key)
        return PassingState(game=state, passing=jnp.bool_(False)), observation

    def transition(self, inner, action: chex.Array, key: chex.PRNGKey) -> Transition:
        game, mover = inner.game, inner.game.current_player
        played = super().transition(game, action, key)
        keeps_turn = (played.inner.current_player == mover) & ~played.terminated
        with warnings.catch_warnings():  # pgx marks `observe(state, player)` deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            other_view = self.pgx_env.observe(played.inner, 1 - mover)
        # A pass hands the same state back to the player whose turn it is.
        after_pass = Transition(inner=PassingState(game=game, passing=jnp.bool_(False)),
                                observation=game.observation,
                                reward=jnp.zeros_like(played.reward),
                                terminated=jnp.zeros_like(played.terminated))
        after_ply = Transition(
            inner=PassingState(game=played.inner, passing=keeps_turn),
            observation=jnp.where(keeps_turn, other_view, played.observation),
            reward=played.reward, terminated=played.terminated)
        return jax.tree.map(lambda a, b: jnp.where(inner.passing, a, b), after_pass,
                            after_ply)

    def legal_action_mask(self, inner) -> chex.Array:
        only_pass = jnp.arange(self.spec.num_actions) == PASS
        return jnp.where(inner.passing, only_pass, inner.game.legal_action_mask)

    def current_player(self, inner) -> chex.Array:
        """`[]` int32: pgx's id of the player to move, the passer during a pass."""
        game = inner.game
        return jnp.where(inner.passing, 1 - game.current_player, game.current_player)

    def terminated(self, inner) -> chex.Array:
        return super().terminated(inner.game)


def make_pgx(env_id: str, max_episode_steps: int | None = None) -> PgxEnv:
    """The `PgxEnv` of an id `pgx/<game>` (`PassingPgxEnv` for backgammon)."""
    game = env_id[len(PREFIX):]
    if STOCHASTIC_GAMES.get(game, BOARD_GAME).passing:
        return PassingPgxEnv(game, max_episode_steps)
    return PgxEnv(game, max_episode_steps)

