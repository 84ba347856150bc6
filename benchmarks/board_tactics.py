"""One-move tactics of a trained board-game agent: does it take a win, does it block?

    python -m benchmarks.board_tactics RUN_DIR [--positions 1000] [--games 200]

Positions come from random play of the run's pgx game (the positions a random opponent
leads to). Two sets: positions where the player to move has a winning move, and
positions where all legal moves but one let the opponent win at once (one saving
move). For each, the share where the agent's greedy search (as it plays at evaluation)
and its prior's best legal move pick a right move, and, in MuZero mode, the model's
predicted reward for winning and for other legal moves. Then the same two questions in
games against the uniform random player (`--games` a side): how often the agent could
win at once and did, had to block and did, and how many of its losses followed a
missed block or a missed win. Writes RUN_DIR/tactics.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import checkpoint, opponents
from muzero_jax.agent import Agent
from muzero_jax.search import Exploration


def _mover_rewards(game, state):
    """`[A]`: each move's reward for the player making it, in one pgx state."""
    return jax.vmap(lambda a: game.step(state, a).rewards[state.current_player])(
        jnp.arange(state.legal_action_mask.shape[0]))


def _opponent_wins_after(game, state):
    """`[A]`: after each move, can the opponent win at once?"""
    def after(a):
        nxt = game.step(state, a)
        return jnp.any(nxt.legal_action_mask & ~nxt.terminated
                       & (_mover_rewards(game, nxt) > 0))
    return jax.vmap(after)(jnp.arange(state.legal_action_mask.shape[0]))


def one_move_masks(game, states):
    """`[N, A]` masks of `[N]` pgx states: legal moves that win at once, and legal moves
    after which the opponent can win at once."""
    legal = states.legal_action_mask
    wins = legal & (jax.vmap(functools.partial(_mover_rewards, game))(states) > 0)
    loses = legal & jax.vmap(functools.partial(_opponent_wins_after, game))(states)
    return wins, loses


def random_positions(game, key, num_games: int = 256, plies: int = 30):
    """pgx states `[plies * num_games]` of random play (finished games restart), with
    `[N, A]` masks: which moves win at once, and which let the opponent win at once."""

    def body(states, key):
        move_key, reset_key = jax.random.split(key)
        legal = states.legal_action_mask
        wins, loses = one_move_masks(game, states)
        action = jax.random.categorical(move_key, jnp.where(legal, 0.0, -jnp.inf))
        nxt = jax.vmap(game.step)(states, action)
        fresh = jax.vmap(game.init)(jax.random.split(reset_key, num_games))
        nxt = jax.tree.map(lambda f, n: jnp.where(
            nxt.terminated.reshape((-1,) + (1,) * (n.ndim - 1)), f, n), fresh, nxt)
        return nxt, (states, wins, loses)

    init_key, key = jax.random.split(key)
    states = jax.vmap(game.init)(jax.random.split(init_key, num_games))
    _, out = jax.lax.scan(body, states, jax.random.split(key, plies))
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out)


def games_against_random(game, player, params, key, games: int = 200) -> dict:
    """A player (`opponents.Policy`; a trained agent's is `opponents.agent_player`)
    against the uniform random player, `games` as first and as many as second player:
    per side, wins and losses, how often the player could win at once and did, how often
    it had to block (no win of its own, some moves let the opponent win at once, some do
    not) and did, and the losses that followed a missed block or a missed win.

    For small boards where a stone never leaves (tic-tac-toe, connect four): games are
    played for as many plies as the board has points, and every position costs A^2
    steps of the game for its one-move masks.
    """
    plies = int(np.prod(game.observation_shape[:2]))

    # Both sides in one compiled program, as `opponents.Match` plays them: the first
    # `games` with the player moving first.
    first = jnp.arange(2 * games) < games

    @jax.jit
    def play(key):
        init_key, key = jax.random.split(key)
        states = jax.vmap(game.init)(jax.random.split(init_key, 2 * games))
        player_id = jnp.where(first, states.current_player, 1 - states.current_player)

        def ply(states, key):
            player_key, random_key, step_key = jax.random.split(key, 3)
            wins, loses = one_move_masks(game, states)
            mine = states.current_player == player_id
            action = jnp.where(mine, player(params, player_key, states),
                               opponents.random_player(None, random_key, states))
            over = states.terminated | states.truncated
            nxt = jax.vmap(game.step)(states, action,
                                      jax.random.split(step_key, 2 * games))
            reward = jnp.where(over, 0.0, nxt.rewards[jnp.arange(2 * games), player_id])
            return nxt, (mine & ~over, states.legal_action_mask, wins, loses, action, reward)

        _, out = jax.lax.scan(ply, states, jax.random.split(key, plies))
        return out

    mine, legal, wins, loses, action, reward = jax.device_get(play(key))  # [T, 2G, ...]
    picked = np.eye(legal.shape[-1], dtype=bool)[action]  # [T, 2G, A]
    can_win = mine & wins.any(-1)
    must_block = mine & ~wins.any(-1) & loses.any(-1) & (legal & ~loses).any(-1)
    missed_win = can_win & ~(picked & wins).any(-1)
    missed_block = must_block & (picked & loses).any(-1)
    outcome = reward.sum(0)
    result = {}
    for side, games_of_side in (("first", slice(None, games)), ("second", slice(games, None))):
        lost = outcome[games_of_side] < 0
        result[side] = {
            "games": games, "wins": int((outcome[games_of_side] > 0).sum()),
            "losses": int(lost.sum()),
            "could_win_at_once": int(can_win[:, games_of_side].sum()),
            "took_the_win": int((can_win & ~missed_win)[:, games_of_side].sum()),
            "had_to_block": int(must_block[:, games_of_side].sum()),
            "blocked": int((must_block & ~missed_block)[:, games_of_side].sum()),
            "losses_after_a_missed_block": int(
                (lost & missed_block[:, games_of_side].any(0)).sum()),
            "losses_after_a_missed_win": int(
                (lost & missed_win[:, games_of_side].any(0)).sum())}
    return result


def tactics(run_dir: str, positions: int = 1000, games: int = 200) -> dict:
    config = checkpoint.load_config(run_dir)
    agent = Agent(config)
    checkpointer = checkpoint.Checkpointer(
        os.path.join(run_dir, checkpoint.CHECKPOINT_DIR), create=False)
    try:
        step = checkpointer.all_steps()[-1]
        _, trees, _ = checkpointer.restore({"train_state": agent.init(jax.random.key(0))},
                                           step=step)
    finally:
        checkpointer.close()
    params = trees["train_state"].params
    states, wins, loses = jax.jit(lambda k: random_positions(agent.env.pgx_env, k))(
        jax.random.key(5))
    wins, loses = np.asarray(wins), np.asarray(loses)
    legal = np.asarray(states.legal_action_mask)
    saving = legal & ~loses
    has_win = wins.any(-1)
    one_saving = ~has_win & (saving.sum(-1) == 1) & (legal.sum(-1) > 1)

    @jax.jit
    def choose(s):
        obs = s.observation.astype(jnp.float32)
        out = agent.searcher(params, jax.random.key(0), obs, Exploration.greedy(),
                             ~s.legal_action_mask, s)
        root = agent.model.initial_inference(params, obs)
        prior = jnp.argmax(jnp.where(s.legal_action_mask, root.policy_logits, -jnp.inf), -1)
        return out.action, prior, root.state

    result = {"checkpoint": int(step), "config": {"mode": config.search.mode,
                                                  "network": config.network.kind}}
    for name, select, right in (("take_the_win", has_win, wins),
                                ("block_the_only_threat", one_saving, saving)):
        idx = np.flatnonzero(select)[:positions]
        picked = jax.tree.map(lambda x, idx=idx: x[idx], states)
        search, prior, latent = choose(picked)
        search, prior = np.asarray(search), np.asarray(prior)
        rows = np.arange(len(idx))
        entry = {"positions": int(len(idx)),
                 "search_right": float(right[idx][rows, search].mean()),
                 "prior_right": float(right[idx][rows, prior].mean())}
        if name == "take_the_win" and config.search.mode == "muzero":
            reward = np.stack([np.asarray(agent.model.recurrent_inference(
                params, latent, jnp.full((len(idx),), a, jnp.int32)).reward)
                for a in range(legal.shape[-1])], -1)
            entry["model_reward_winning_moves"] = float(reward[wins[idx]].mean())
            entry["model_reward_other_legal_moves"] = float(
                reward[legal[idx] & ~wins[idx]].mean())
        result[name] = entry
    result["against_random"] = games_against_random(
        agent.env.pgx_env, opponents.agent_player(agent), params, jax.random.key(11), games)
    with open(os.path.join(run_dir, "tactics.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--games", type=int, default=200,
                        help="games against the random player, per side")
    args = parser.parse_args(argv)
    print(json.dumps(tactics(args.run_dir, args.positions, args.games), indent=1))


if __name__ == "__main__":
    main()
