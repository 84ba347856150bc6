"""Two-player board games on pgx: the adapter, sign conventions, outcome targets, search
through discount -1, AlphaZero mode and the perfect tic-tac-toe player."""


import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import ROOT, script_in_process

import muzero_jax as mz
from muzero_jax import opponents
from muzero_jax.config import ConfigError, EnvConfig
from muzero_jax.envs import pgx_env
from muzero_jax.presets import board
from muzero_jax.search import Exploration
from muzero_jax.targets import game_outcomes

BOARD = os.path.join(ROOT, "experiments", "board.py")

TTT = pgx_env.PgxEnv("tic_tac_toe")


def tiny(mode="muzero", **overrides):
    cfg = dict(num_envs=4, rollout_length=10, hidden_size=16, latent_size=16,
               num_hidden_layers=1, num_simulations=8, max_num_considered_actions=9,
               batch_size=8, updates_per_iteration=1, capacity=4 * 40,
               min_size=16)
    cfg.update(overrides)
    return board("tic_tac_toe", mode, **cfg)


def play_moves(moves, env=TTT):
    """The env state after `moves` from a fixed start, and each step's output."""
    state = env.reset(jax.random.key(0))
    outs = []
    for a in moves:
        state, out = env.step(state, jnp.int32(a))
        outs.append(out)
    return state, outs


def test_spec_and_id_rule():
    env = mz.envs.make(EnvConfig(id="pgx/tic_tac_toe"))
    assert isinstance(env, pgx_env.PgxEnv)
    spec = env.spec
    assert (spec.observation_shape, spec.num_actions) == ((3, 3, 2), 9)
    assert spec.two_player and spec.legal_actions and spec.max_abs_reward == 1.0
    with pytest.raises(ConfigError, match="pgx/kuhn_poker"):
        pgx_env.PgxEnv("kuhn_poker")


def test_reward_is_the_movers_and_the_game_resets():
    # Mover A plays 0, 1, 2 (top row); mover B plays 3, 4. A's third move wins.
    state, outs = play_moves([0, 3, 1, 4])
    assert state.legal_action_mask.tolist() == [False, False, True, False, False] + [True] * 4
    # The observation is from the view of the player to move (A): plane 0 is A's marks.
    np.testing.assert_array_equal(state.observation[..., 0].reshape(-1)[:3], [1, 1, 0])
    np.testing.assert_array_equal(state.observation[..., 1].reshape(-1)[3:5], [1, 1])
    assert [float(o.reward) for o in outs] == [0.0] * 4
    state, out = TTT.step(state, jnp.int32(2))
    assert float(out.reward) == 1.0 and bool(out.terminated) and not bool(out.truncated)
    assert int(out.episode_length) == 5
    assert int(state.step_count) == 0 and bool(state.legal_action_mask.all())  # reset


def test_a_losing_move_is_rewarded_from_the_movers_view():
    # An illegal move ends a pgx game with a penalty for the mover: -1 from its view.
    state, _ = play_moves([0])
    _, out = TTT.step(state, jnp.int32(0))
    assert float(out.reward) == -1.0 and bool(out.terminated)


def test_time_limit_is_a_truncation():
    env = pgx_env.PgxEnv("tic_tac_toe", max_episode_steps=2)
    state, outs = play_moves([0, 4], env)
    assert bool(outs[-1].truncated) and not bool(outs[-1].terminated)


def test_game_outcomes_from_each_players_view():
    # One stream, L = 8, written in order: a game of 5 plies won by its last mover
    # (rows 0-4), then a game still going (rows 5-7).
    reward = jnp.array([[0, 0, 0, 0, 1, 0, 0, 0]], jnp.float32)
    terminated = jnp.zeros((1, 8), bool).at[0, 4].set(True)
    truncated = jnp.zeros((1, 8), bool)
    slots = jnp.arange(8)[None]
    z, known = game_outcomes(reward, terminated, truncated, jnp.int32(8), slots)
    np.testing.assert_array_equal(z[0], [1, -1, 1, -1, 1, 0, 0, 0])
    np.testing.assert_array_equal(known[0], [True] * 5 + [False] * 3)
    # The same stream after wrapping: count 11, so slot s holds logical s + 8 for s < 3.
    # Slots 0-2 are a new game lost by its last mover at slot 2 (reward -1 there).
    reward = reward.at[0, :3].set(jnp.array([0, 0, -1.0]))
    terminated = terminated.at[0, :3].set(jnp.array([False, False, True]))
    z, known = game_outcomes(reward, terminated, truncated, jnp.int32(11), slots)
    np.testing.assert_array_equal(z[0, :3], [-1, 1, -1])
    # Slots 5-7 (logical 5-7) belong to the game that ended at slot 2 (logical 10).
    np.testing.assert_array_equal(z[0, 5:], [1, -1, 1])
    assert bool(known[0].all()) or not bool(known[0, 3])  # slot 3-4: an older, cut game
    # A game cut by a time limit has no known outcome.
    cut = jnp.zeros((1, 8), bool).at[0, 4].set(True)
    z, known = game_outcomes(jnp.zeros((1, 8)), jnp.zeros((1, 8), bool), cut,
                             jnp.int32(8), slots)
    assert not bool(known[0].any())


def test_window_targets_of_a_two_player_window():
    # One stream of a 5-ply game won by its last mover (row 4), then a new game. A window
    # from row 2 with K = 3: rows 2, 3, 4 are the game's last plies, row 5 the next game.
    from muzero_jax.replay import Window
    from muzero_jax.targets import window_targets

    reward = jnp.array([[0, 0, 0, 0, 1, 0, 0, 0]], jnp.float32)
    terminated = jnp.zeros((1, 8), bool).at[0, 4].set(True)
    truncated = jnp.zeros((1, 8), bool)
    z, known = game_outcomes(reward, terminated, truncated, jnp.int32(8),
                             (jnp.int32(2) + jnp.arange(4))[None])
    rows = slice(2, 7)  # W = K + n + 1 = 5
    window = Window(observation=jnp.zeros((1, 3, 3, 2)), action=jnp.arange(8)[None, rows],
                    reward=reward[:, rows], terminated=terminated[:, rows],
                    truncated=truncated[:, rows], search_policy=jnp.ones((1, 5, 9)) / 9,
                    root_value=jnp.zeros((1, 5)), final_value=jnp.zeros((1, 5)),
                    stream=jnp.zeros(1, jnp.int32), position=jnp.full(1, 2, jnp.int32),
                    weight=jnp.ones(1))
    t = window_targets(window, discount=1.0, td_steps=1, unroll_steps=3, outcome=(z, known))
    # Values from the view of the player to move: row 2's mover (the winner) +1, row 3's
    # -1, row 4's (who makes the winning move) +1; row 5 lies past the end: absorbing 0.
    np.testing.assert_array_equal(t.value[0], [1, -1, 1, 0])
    np.testing.assert_array_equal(t.value_mask[0], [1, 1, 1, 1])
    # r^k predicts the reward of row k - 1 from its mover's view: only the winning move's.
    np.testing.assert_array_equal(t.reward[0], [0, 0, 1])
    np.testing.assert_array_equal(t.policy_mask[0], [1, 1, 1, 0])


@pytest.mark.parametrize("mode", ["muzero", pytest.param("alphazero", marks=pytest.mark.slow)])
def test_both_modes_learn_a_step(mode):
    agent = mz.Agent(tiny(mode))
    state = agent.init(jax.random.key(0))
    buffer = agent.init_replay()
    env_state = agent.reset(jax.random.key(1))
    for i in range(2):
        env_state, trajectory = agent.rollout(state, env_state, jax.random.key(i))
        buffer = agent.add(buffer, trajectory)
    # Targets: outcomes of finished games, +-1 or 0 (draws), alternating in sign
    # between consecutive plies of one game (each from its player-to-move's view).
    t = agent.make_batch(buffer, jax.random.key(4)).targets
    v, m = np.asarray(t.value), np.asarray(t.value_mask)
    assert set(np.unique(np.abs(v[m > 0]))) <= {0.0, 1.0}
    reward, done = np.asarray(trajectory.reward), np.asarray(trajectory.terminated)
    assert set(np.unique(reward[~done])) <= {0.0}  # board games reward only the end
    state, buffer, metrics = agent.update(state, buffer, jax.random.key(3))
    assert np.isfinite(float(metrics["loss"]))
    assert (float(metrics["reward_loss"]) == 0.0) == (mode == "alphazero")
    # Only legal moves are played: pgx would end the game with a -1 penalty otherwise,
    # and the winner of a game always has the last move's reward +1 (or a draw's 0).
    assert (np.asarray(trajectory.reward) >= 0).all()


def test_mode_checks():
    with pytest.raises(ConfigError, match="unroll_steps=5: mode='alphazero'"):
        mz.config.validate(tiny("alphazero").replace(unroll_steps=5))
    with pytest.raises(ConfigError, match="unroll_steps=0: expected an integer >= 1"):
        mz.config.validate(tiny().replace(unroll_steps=0))
    with pytest.raises(ConfigError, match="mode='alphazero' searches with the env's own"):
        mz.Agent(mz.cartpole(env="CartPole-v1", mode="alphazero", unroll_steps=0))


def _position(moves):
    """pgx states `[1]` after `moves` from a fixed start."""
    state = TTT.pgx_env.init(jax.random.key(0))
    for a in moves:
        state = TTT.pgx_env.step(state, jnp.int32(a))
    return jax.tree.map(lambda x: x[None], state)


# Board cells: 0 1 2 / 3 4 5 / 6 7 8. The player to move (A) started.
WIN = [0, 3, 1, 4]      # A holds 0 1, B holds 3 4: A wins only with 2 (B threatens 5).
BLOCK = [0, 3, 8, 4]    # A holds 0 8, B holds 3 4 and threatens 5: A must block at 5.


@pytest.mark.parametrize("search", [pytest.param("muzero", marks=pytest.mark.slow), "gumbel"])
def test_search_through_discount_minus_one_wins_and_blocks(search):
    # AlphaZero mode with an untrained network (uniform prior, value 0): only the
    # game's rewards, backed up with discount -1 between plies, can find the moves.
    cfg = tiny("alphazero", search=search, num_simulations=128)
    agent = mz.Agent(cfg)
    assert agent.searcher.discount == -1.0
    params = agent.init(jax.random.key(0)).params
    states = jax.tree.map(lambda *x: jnp.concatenate(x), _position(WIN), _position(BLOCK))
    out = jax.jit(agent.searcher.__call__)(  # compiled whole, as the library runs it
        params, jax.random.key(1), states.observation.astype(jnp.float32),
        Exploration.greedy(), ~states.legal_action_mask, states)
    np.testing.assert_array_equal(out.action, [2, 5])
    assert float(out.root_value[0]) > 0  # the win is seen from the mover's view
    # The minimax player agrees.
    np.testing.assert_array_equal(opponents.minimax_player(None, jax.random.key(2), states), [2, 5])


def _winnable(observation):
    """From `[..., 3, 3, 2]` tic-tac-toe observations (plane 0: the mover's marks):
    `[...]` bool, the mover can complete a line at once, and `[..., 9]` bool empty cells."""
    obs = np.asarray(observation).reshape(*np.shape(observation)[:-3], 9, 2)
    empty = obs.sum(-1) == 0
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
             (2, 4, 6)]
    can_win = np.zeros(obs.shape[:-2], bool)
    for line in lines:
        can_win |= (obs[..., list(line), 0].sum(-1) == 2) & (empty[..., list(line)].sum(-1) == 1)
    return can_win, empty


def test_counterfactual_moves_label_the_win_not_played_and_the_moves_beside_one_played():
    from muzero_jax.extensions import counterfactual

    # Jitted: op by op, every op of the game's step would compile alone.
    move_rewards = jax.jit(lambda key, inner: counterfactual.move_rewards(TTT, key, inner))
    counterfactual_moves = jax.jit(counterfactual.counterfactual_moves)
    win_state, _ = play_moves(WIN)
    states = jax.tree.map(lambda a: jnp.stack([a] * 100), win_state)
    rewards = move_rewards(jax.random.key(0), states.inner)
    legal = np.asarray(win_state.legal_action_mask)
    np.testing.assert_array_equal(np.asarray(rewards[0])[legal], [1, 0, 0, 0, 0])  # 2 5 6 7 8
    mask = states.legal_action_mask
    # Played 5 (a block, not the win): the counterfactual is the win, every time.
    action, reward = counterfactual_moves(jax.random.key(1), rewards, mask,
                                          jnp.full(100, 5, jnp.int32))
    assert (np.asarray(action) == 2).all() and (np.asarray(reward) == 1).all()
    # Played the win: a legal move beside it, uniformly, rewarded 0.
    action, reward = counterfactual_moves(jax.random.key(2), rewards, mask,
                                          jnp.full(100, 2, jnp.int32))
    assert set(np.asarray(action).tolist()) == {5, 6, 7, 8} and (np.asarray(reward) == 0).all()
    # No reward differs: another legal move; only one legal move: that one.
    action, reward = counterfactual_moves(
        jax.random.key(3), jnp.zeros((2, 3)), jnp.array([[True, True, False],
                                                          [False, True, False]]),
        jnp.array([0, 1], jnp.int32))
    assert np.asarray(action).tolist() == [1, 1] and np.asarray(reward).tolist() == [0, 0]


def test_self_play_keeps_counterfactual_rewards_through_replay_to_the_loss():
    cfg = tiny(counterfactual_rewards=True, rollout_length=30)
    agent = mz.Agent(cfg)
    state = agent.init(jax.random.key(0))
    _, trajectory = agent.rollout(state, agent.reset(jax.random.key(1)), jax.random.key(2))
    # Where the mover could win at once and did not, the win is the counterfactual
    # (+1); where no move wins, every move's reward is 0.
    can_win, empty = _winnable(trajectory.observation)
    reward = np.asarray(trajectory.reward)
    counter = np.asarray(trajectory.extra["counter_reward"])
    assert (can_win & (reward < 1)).sum() >= 3
    assert (counter[can_win & (reward < 1)] == 1).all() and (counter[~can_win] == 0).all()
    action = np.asarray(trajectory.extra["counter_action"])
    assert np.take_along_axis(empty, action[..., None], -1).all()  # legal moves only

    buffer = agent.add(agent.init_replay(), trajectory)
    np.testing.assert_array_equal(buffer.extra["counter_action"][:, :30], action)
    with pytest.raises(ValueError, match=r"extension fields \['counter_action', "
                                         r"'counter_reward'\]; the buffer keeps \[\]"):
        mz.replay.add(mz.replay.init(4, 40, (3, 3, 2), 9), trajectory)
    # Targets: the stored moves of rows 0..K-1, their rewards (0 past a game's end)
    # under the reward's mask.
    k = cfg.loss.unroll_steps
    batch, window, _ = jax.jit(agent.sample_batch)(state, buffer, jax.random.key(3))
    extra, t = batch.targets.extra, batch.targets
    np.testing.assert_array_equal(extra["counter_action"], window.extra["counter_action"][:, :k])
    np.testing.assert_array_equal(extra["counter_mask"], t.reward_mask)
    done = np.cumsum(np.asarray(window.terminated | window.truncated)[:, :k], axis=1) > 0
    past_end = np.concatenate([np.zeros((len(done), 1), bool), done[:, :-1]], axis=1)
    assert past_end.any() and (~past_end).any()
    np.testing.assert_array_equal(
        extra["counter_reward"], np.where(past_end, 0.0, window.extra["counter_reward"][:, :k]))
    _, _, metrics = agent.update(state, buffer, jax.random.key(4))
    assert float(metrics["counterfactual_reward_loss"]) > 0


def test_counterfactual_rewards_checks():
    with pytest.raises(ConfigError, match="counterfactual_rewards=True: mode='alphazero'"):
        mz.config.validate(tiny("alphazero").replace(counterfactual_rewards=True))
    with pytest.raises(ConfigError, match=r"extension Counterfactual: 'CartPole-v1' is a "
                                          r"host env"):
        mz.Agent(mz.cartpole(env="CartPole-v1", counterfactual_rewards=True))


def test_minimax_table_on_known_positions():
    table = opponents.tic_tac_toe_table()
    empty = table[0]
    np.testing.assert_array_equal(empty, np.zeros(9))  # every opening draws
    # X in a corner, O on an adjacent edge: X (to move) wins with best play.
    code = int(opponents.tic_tac_toe_code(_position([0, 1]).observation)[0])
    assert table[code].max() == 1.0
    # X in a corner: O must take the centre; every other reply loses.
    code = int(opponents.tic_tac_toe_code(_position([0]).observation)[0])
    assert table[code, 4] == 0.0
    assert all(table[code, a] == -1.0 for a in (1, 2, 3, 5, 6, 7, 8))
    # Mover to play with a win on the board and a threat against it: the win.
    code = int(opponents.tic_tac_toe_code(_position(WIN).observation)[0])
    assert table[code, 2] == 1.0 and table[code, 6] == -1.0  # 6 lets B win at 5


def test_arena_minimax_beats_random():
    outcomes = jax.jit(lambda k: opponents.play(
        TTT.pgx_env, opponents.minimax_player, opponents.random_player, k,
        jnp.arange(20) < 10))(jax.random.key(0))
    tally = opponents.tally(outcomes)
    assert tally["losses"] == 0 and tally["wins"] > 14 and sum(tally.values()) == 20


def test_match_plays_both_sides_in_one_program_with_params_as_an_argument():
    # A "player" whose params say which cell it prefers: the same compiled match must
    # follow new params without compiling again, and count each side's games apart.
    def prefer(params, key, states):
        logits = jnp.where(states.legal_action_mask, -jnp.abs(jnp.arange(9) - params), -1e9)
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    match = opponents.Match(TTT.pgx_env, prefer, opponents.minimax_player, games_per_side=6)
    for preference in (0, 4):
        result = match(jax.random.key(0), jnp.int32(preference))
        for side in ("first", "second"):
            assert sum(result[side].values()) == 6
            assert result[side]["wins"] == 0  # nobody beats perfect play
    assert match.outcomes._cache_size() == 1


def test_search_tree_in_alphazero_mode_searches_the_env_state():
    agent = mz.Agent(tiny("alphazero", num_simulations=64))
    state = agent.init(jax.random.key(0))
    states = _position(WIN)
    tree = agent.search_tree(state, jax.random.key(1), states.observation,
                             invalid_actions=~states.legal_action_mask, embedding=states)
    visits = np.asarray(tree.children_visits[0, tree.ROOT_INDEX])
    assert visits.argmax() == 2  # the winning move
    assert (visits[np.asarray(~states.legal_action_mask[0])] == 0).all()


@pytest.mark.slow
def test_arena_both_ways_and_pure_search_baseline():
    games = 50
    vs_random = opponents.match(TTT.pgx_env, opponents.minimax_player,
                                opponents.random_player, jax.random.key(0), games)
    vs_self = opponents.match(TTT.pgx_env, opponents.minimax_player,
                              opponents.minimax_player, jax.random.key(1), games)
    for side in ("first", "second"):
        assert vs_random[side]["losses"] == 0
        assert sum(vs_random[side].values()) == games
        assert vs_self[side]["draws"] == games
    policy = opponents.search_player(TTT.pgx_env, num_simulations=200)
    states = jax.tree.map(lambda *x: jnp.concatenate(x), _position(WIN), _position(BLOCK))
    np.testing.assert_array_equal(policy(None, jax.random.key(0), states), [2, 5])


def test_play_asks_again_until_a_legal_move():
    from muzero_jax import play

    answers = iter(["", "x", "9", "0", "4"])
    said = []
    legal = np.array([False] + [True] * 8)
    move = play.ask_move(legal, lambda prompt: next(answers), said.append)
    assert move == 4
    assert any("'x' is not a move number" in s for s in said)
    assert any("9 is not a legal move" in s for s in said)
    assert any("0 is not a legal move" in s for s in said)
    assert play.ask_move(legal, lambda prompt: "q", said.append) is None
    board_text = play.draw(jax.tree.map(lambda x: x[0], _position(WIN)))
    assert board_text.splitlines()[0].startswith("X X .")


@pytest.mark.slow
def test_play_a_whole_game_and_write_svg(tmp_path):
    from muzero_jax import play

    agent = mz.Agent(tiny("alphazero"))
    params = agent.init(jax.random.key(0)).params
    moves = iter(str(a) for a in range(9) for _ in range(1))
    states, result = play.play_game(agent, params, read=lambda prompt: next(moves),
                                    write=lambda s: None)
    assert result in (-1.0, 0.0, 1.0)
    play.save_svg(states, str(tmp_path / "game.svg"))
    assert (tmp_path / "game.svg").read_text().startswith("<?xml")


def test_board_script_mode_takes_its_presets_values_unless_given(monkeypatch, tmp_path):
    import importlib.util
    import os
    import sys

    from muzero_jax import experiment

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "experiments", "board.py")
    spec = importlib.util.spec_from_file_location("board_script", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up
    spec.loader.exec_module(script)

    class Parsed(Exception):
        pass

    def parsed_config(*argv):
        """The config the script would train, from its flags (training stubbed out)."""
        def train(config, **kwargs):
            raise Parsed(config)

        monkeypatch.setattr(experiment, "train", train)
        with pytest.raises(Parsed) as caught:
            script.main([*argv, "--out", str(tmp_path / "run")])
        return caught.value.args[0]

    muzero = board("tic_tac_toe")
    alphazero = board("tic_tac_toe", "alphazero")
    assert alphazero.learner.updates_per_iteration != muzero.learner.updates_per_iteration
    assert alphazero.run.total_env_steps != muzero.run.total_env_steps

    config = parsed_config("--mode", "alphazero")
    assert config == alphazero.replace(mode="alphazero", unroll_steps=0)
    assert parsed_config() == muzero
    # A flag stands even where its value is the other mode's preset's: it was given.
    config = parsed_config("--mode", "alphazero", "--learner.updates_per_iteration",
                           str(muzero.learner.updates_per_iteration))
    assert config.learner.updates_per_iteration == muzero.learner.updates_per_iteration
    assert config.run.total_env_steps == alphazero.run.total_env_steps
    config = parsed_config("--mode", "muzero", "--learner.updates_per_iteration",
                           str(alphazero.learner.updates_per_iteration))
    assert config.learner.updates_per_iteration == alphazero.learner.updates_per_iteration
    assert config.run.total_env_steps == muzero.run.total_env_steps
    assert config.loss.unroll_steps == muzero.loss.unroll_steps


@pytest.mark.parametrize("args, message", [(["--game", "nope"], "--game 'nope'"),
                                           (["--mode", "alpha"], "--mode 'alpha'")])
def test_board_script_rejects_bad_input_before_compiling(args, message, tmp_path, monkeypatch,
                                                         capsys):
    # In this process (the script's main as `python experiments/board.py ARGS` runs it):
    # a refusal needs no process and imports of its own.
    code, err = script_in_process(BOARD, args, monkeypatch, capsys, tmp_path)
    assert code == 2, err[-500:]
    assert message in err


@pytest.mark.slow
def test_board_script_trains_and_writes_opponents(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/board.py", "--game", "tic_tac_toe", "--mode",
         "alphazero", "--out", str(out), "--total-env-steps", "1024", "--eval-episodes", "4",
         "--baseline-simulations", "8", "--acting.num_envs", "8",
         "--search.num_simulations", "8", "--replay.min_size", "64"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["opponents"]) == {"random", "search8", "minimax"}
    for result in summary["opponents"].values():
        assert sum(result["first"].values()) == 4 and sum(result["second"].values()) == 4


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["alphazero", "muzero"])
def test_tic_tac_toe_bar_never_loses_to_minimax(mode, tmp_path):
    # The board bar: the preset's training (at most 10 minutes on a quiet 2-core CPU),
    # then no loss in 100 games as each side against perfect play.
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/board.py", "--game", "tic_tac_toe", "--mode", mode,
         "--out", str(out), "--baseline-simulations", "16"],
        capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    minimax = summary["opponents"]["minimax"]
    print(f"\ntic-tac-toe {mode}: {summary['env_steps']} env steps, "
          f"{summary['wall_seconds']:.0f} s wall; vs minimax {minimax}")
    assert minimax["first"]["losses"] == 0 and minimax["second"]["losses"] == 0


@pytest.mark.slow
def test_connect_four_bar_beats_random_and_the_search_baseline(tmp_path):
    # The board bar, MuZero mode: the preset's training (at most 30 minutes on a quiet
    # 2-core CPU), then at least 95% wins against random as either side and a winning
    # score against the 100-simulation pure-search baseline.
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/board.py", "--game", "connect_four", "--out", str(out)],
        capture_output=True, text=True, timeout=3 * 3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    rivals = summary["opponents"]
    print(f"\nconnect four: {summary['env_steps']} env steps, "
          f"{summary['wall_seconds']:.0f} s wall; {rivals}")
    for side in ("first", "second"):
        assert rivals["random"][side]["wins"] >= 95
    search = [rivals["search100"][side] for side in ("first", "second")]
    assert sum(s["wins"] for s in search) > sum(s["losses"] for s in search)
