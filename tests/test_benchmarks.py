import jax.numpy as jnp

from benchmarks import machine, solve
from benchmarks.timing import measure


def test_measure_keeps_the_warm_up_call_apart():
    calls = []

    def fn():
        calls.append(1)
        return jnp.zeros(())

    timing = measure(fn, repeats=3, min_repeat_seconds=0.0)
    # one warm-up call, one calibration call, then repeats x calls_per_repeat
    assert timing.calls_per_repeat == 1 and timing.repeats == 3
    assert len(calls) == 2 + 3
    assert len(timing.samples_s) == 3
    assert timing.min_s <= timing.median_s <= timing.max_s
    rate = timing.rate(10)
    assert rate["min"] <= rate["median"] <= rate["max"]
    assert rate["median"] == 10 / timing.median_s


def test_device_name_is_a_file_name_slug():
    name = machine.device_name()
    assert name.startswith("cpu-") and name.endswith(f"-{machine.cpu_count()}c")
    assert all(c.isalnum() or c == "-" for c in name)
    assert machine._slug("Intel(R) Xeon(R) CPU @ 2.20GHz") == "intel-xeon"
    assert machine._slug("AMD EPYC 7B13 64-Core Processor") == "amd-epyc-7b13"


def test_solve_summary_counts_only_solved_seeds(tmp_path, monkeypatch):
    runs = {0: {"seed": 0, "solved": True, "wall_seconds": 20.0, "env_steps": 12000},
            1: {"seed": 1, "solved": False, "wall_seconds": 90.0, "env_steps": 250000},
            2: {"seed": 2, "solved": True, "wall_seconds": 30.0, "env_steps": 30000}}
    monkeypatch.setattr(solve, "run_seed", lambda seed, out, extra=(): {
        **runs[seed], "final_eval_return": 500.0, "final_eval_episodes": 100})
    result = solve.time_to_solve([0, 1, 2], str(tmp_path), log=lambda _: None)
    assert result["solved"] == 2
    assert result["wall_seconds"] == {"median": 25.0, "min": 20.0, "max": 30.0}
    assert result["env_steps"] == {"median": 21000, "min": 12000, "max": 30000}


def test_board_tactics_masks_are_the_games_own_outcomes():
    """A winning move wins for its mover; a losing move lets the opponent win next."""
    import jax
    import numpy as np
    import pgx

    from benchmarks.board_tactics import random_positions

    game = pgx.make("tic_tac_toe")
    states, wins, loses = jax.jit(lambda k: random_positions(game, k, 16, 6))(
        jax.random.key(0))
    wins, loses = np.asarray(wins), np.asarray(loses)
    assert wins.shape == loses.shape == (96, 9) and wins.any() and loses.any()
    for i, a in zip(*np.nonzero(wins), strict=True):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        assert float(game.step(state, a).rewards[state.current_player]) == 1.0
    i, a = next(zip(*np.nonzero(loses), strict=True))
    nxt = game.step(jax.tree.map(lambda x: x[i], states), a)
    assert any(float(game.step(nxt, b).rewards[nxt.current_player]) == 1.0
               for b in np.flatnonzero(np.asarray(nxt.legal_action_mask)))


def test_games_against_random_count_wins_taken_and_blocks_made():
    """A player that takes every win at once and makes every forced block is counted as
    missing none; the random player misses some of both and loses after a missed block."""
    import jax
    import jax.numpy as jnp
    import pgx

    from benchmarks.board_tactics import games_against_random, one_move_masks
    from muzero_jax import opponents

    game = pgx.make("tic_tac_toe")

    def tactician(params, key, states):  # win, else avoid a move that loses at once
        wins, loses = one_move_masks(game, states)
        good = jnp.where(wins.any(-1, keepdims=True), wins,
                         states.legal_action_mask & ~loses)
        good = jnp.where(good.any(-1, keepdims=True), good, states.legal_action_mask)
        return jax.random.categorical(key, jnp.where(good, 0.0, -1e9)).astype(jnp.int32)

    sharp = games_against_random(game, tactician, None, jax.random.key(0), 32)
    for side in sharp.values():
        assert side["could_win_at_once"] > 0 and side["losses_after_a_missed_block"] == 0
        assert side["took_the_win"] == side["could_win_at_once"]
        assert side["blocked"] == side["had_to_block"]
    assert sharp["second"]["had_to_block"] > 0  # random's threats, met as second
    rand = games_against_random(game, opponents.random_player, None, jax.random.key(0), 32)
    assert all(s["blocked"] < s["had_to_block"] for s in rand.values())
    assert all(s["took_the_win"] < s["could_win_at_once"] for s in rand.values())
    assert sum(s["losses_after_a_missed_block"] for s in rand.values()) > 0


def test_acting_measures_the_length_of_episodes_that_ended(tiny_config):
    """Uniformly random actions keep CartPole's pole up for about 22 steps on average;
    one action over and over, for about 9."""

    import jax

    import muzero_jax as mz
    from benchmarks.acting import acting, episode_lengths

    # epsilon > 0 in the config compiles the actor's random-action path in
    agent = mz.Agent(tiny_config.replace(exploration_epsilon=0.5))
    params = agent.init(jax.random.key(0)).params
    random = episode_lengths(agent, params, jax.random.key(1),
                             acting(1.0, 0.0, epsilon=1.0), num_envs=16, steps=400)
    assert random["episodes"] > 200 and 17 < random["mean"] < 28
    greedy = episode_lengths(agent, params, jax.random.key(1), acting(0.0, 0.0),
                             num_envs=16, steps=400)
    assert greedy["mean"] < 12  # an untrained network's search settles on one action
    none = episode_lengths(agent, params, jax.random.key(1), acting(1.0, 0.0),
                           num_envs=2, steps=5)  # no episode ends within 5 steps
    assert none["episodes"] == 0 and none["mean"] != none["mean"]


def test_cartpole_ends_says_how_episodes_ended(tiny_config):
    """An untrained network's search settles on one action: the pole falls (about 9
    steps) long before the cart, pushed one way, reaches the track's end."""
    import jax

    import muzero_jax as mz
    from benchmarks.cartpole_ends import episode_ends

    agent = mz.Agent(tiny_config)
    params = agent.init(jax.random.key(0)).params
    ends = episode_ends(agent, params, jax.random.key(1), num_envs=8, steps=100)
    assert ends["episodes"] > 50 and ends["mean_length"] < 12
    assert ends["pole"] == ends["episodes"] and ends["track"] == 0
    assert ends["root_value_min"] <= ends["root_value_max"]


def test_figures_band_holds_each_curve_between_its_points_and_after_its_end():
    """The median and range at each grid point over the curves' last values at or before
    it; a curve that ended keeps its last value, one not yet started is left out."""
    import numpy as np

    from benchmarks.figures import band

    a = (np.array([1.0, 3.0]), np.array([10.0, 30.0]))
    b = (np.array([2.0]), np.array([20.0]))
    c = (np.array([2.0, 4.0]), np.array([0.0, 50.0]))
    median, low, high = band([a, b, c], np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(median, [np.nan, 10.0, 10.0, 20.0, 30.0])
    np.testing.assert_array_equal(low, [np.nan, 10.0, 0.0, 0.0, 20.0])
    np.testing.assert_array_equal(high, [np.nan, 10.0, 20.0, 30.0, 50.0])


def test_figures_read_the_evaluations_of_each_run_of_a_metrics_csv(tmp_path):
    from benchmarks.figures import eval_runs

    path = tmp_path / "metrics.csv"
    path.write_text("run,env_steps,wall_seconds,eval_return,loss\n"
                    "seed0,100,1.5,,0.3\nseed1,100,1.5,7.0,0.2\nseed0,200,2.5,9.0,0.1\n")
    runs = eval_runs(str(path))
    assert sorted(runs) == ["seed0", "seed1"]
    assert runs["seed0"]["env_steps"].tolist() == [200.0]
    assert runs["seed0"]["wall_seconds"].tolist() == [2.5]
    assert runs["seed1"]["eval_return"].tolist() == [7.0]


def test_benchmark_tables_land_in_a_directory_named_by_what_they_measure(tmp_path, monkeypatch):
    """`--only solve` writes OUT/solve/<device>.json and .md; the solve runs and their
    curves go under OUT/cartpole-solve/, and the table links the curves from there."""
    from benchmarks import machine, run

    seen = {}

    def fake_time_to_solve(seeds, out, extra_args=(), log=print):
        seen["runs"] = out
        return {"seeds": seeds, "solved": 0, "wall_seconds": None, "env_steps": None,
                "runs": []}

    monkeypatch.setattr(solve, "time_to_solve", fake_time_to_solve)
    monkeypatch.setattr(solve, "plot", lambda result, path, title: seen.setdefault("png", path))
    run.main(["--only", "solve", "--out", str(tmp_path)])
    device = machine.device_name()
    assert seen["runs"] == str(tmp_path / "cartpole-solve" / device)
    assert seen["png"] == str(tmp_path / "cartpole-solve" / f"{device}.png")
    assert sorted(p.name for p in (tmp_path / "solve").iterdir()) == [f"{device}.json",
                                                                     f"{device}.md"]
    table = (tmp_path / "solve" / f"{device}.md").read_text()
    assert f"![learning curves](../cartpole-solve/{device}.png)" in table
