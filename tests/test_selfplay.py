import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import replay


def test_rollout_shapes_and_row_layout(tiny_agent):
    cfg = tiny_agent.config
    state = tiny_agent.init(jax.random.key(0))
    env_state = tiny_agent.reset(jax.random.key(1))
    first_obs = np.asarray(env_state.observation)
    env_state, traj = tiny_agent.rollout(state, env_state, jax.random.key(2), num_steps=40)
    b, t = cfg.acting.num_envs, 40
    assert traj.observation.shape == (b, t, 4) and traj.observation.dtype == jnp.float32
    assert traj.action.shape == (b, t) and traj.action.dtype == jnp.int32
    assert traj.search_policy.shape == (b, t, 2)
    assert traj.root_value.shape == traj.reward.shape == traj.final_value.shape == (b, t)
    np.testing.assert_array_equal(traj.observation[:, 0], first_obs)
    np.testing.assert_array_equal(traj.reward, 1.0)
    done = np.asarray(traj.terminated | traj.truncated)
    assert done.any(), "untrained CartPole episodes end within 40 steps"
    # An episode's recorded return is the number of steps since the previous end.
    for stream in range(b):
        ends = np.flatnonzero(done[stream])
        starts = np.r_[0, ends[:-1] + 1]
        for s, e in zip(starts[1:], ends[1:], strict=True):
            assert float(traj.episode_return[stream, e]) == e - s + 1
    # No truncation at a 500 step limit: no bootstrap values recorded.
    np.testing.assert_array_equal(traj.final_value, 0.0)


def test_truncation_records_the_bootstrap_value(tiny_config):
    import muzero_jax as mz
    agent = mz.Agent(tiny_config.replace(max_episode_steps=5))
    state = agent.init(jax.random.key(0))
    # Tilt the value head's logits towards high atoms so that the recorded value is visible
    # (a constant shift would leave the softmax uniform and the value 0).
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + jnp.linspace(0.0, 2.0, x.shape[0])
        if "prediction" in str(path) and "'Dense_1'" in str(path) and "bias" in str(path)
        else x, state.params)
    state = state.replace(params=params)
    env_state = agent.reset(jax.random.key(1))
    _, traj = agent.rollout(state, env_state, jax.random.key(2), num_steps=10)
    trunc = np.asarray(traj.truncated)
    assert trunc[:, 4].all() and trunc[:, 9].all()
    assert trunc.sum() == 2 * agent.config.acting.num_envs
    # The observation reached is recorded beside the one searched: the next row starts
    # a new episode, so at a truncation the two differ; elsewhere it is the next row's.
    final = np.asarray(traj.final_observation)
    np.testing.assert_array_equal(final[:, :4], np.asarray(traj.observation)[:, 1:5])
    assert not np.allclose(final[:, 4], np.asarray(traj.observation)[:, 5])
    # The acting network's value of it is the bootstrap value recorded there.
    values = agent.model.initial_inference(params, jnp.asarray(final[trunc])).value
    np.testing.assert_allclose(np.asarray(traj.final_value)[trunc], values, rtol=1e-5)
    assert np.all(np.abs(np.asarray(values)) > 0.1)
    np.testing.assert_array_equal(np.asarray(traj.final_value)[~trunc], 0.0)


def test_trajectories_feed_replay(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    buffer = tiny_agent.init_replay()
    env_state = tiny_agent.reset(jax.random.key(1))
    for i in range(3):
        env_state, traj = tiny_agent.rollout(state, env_state, jax.random.key(i))
        buffer = tiny_agent.add(buffer, traj)
    assert int(buffer.count) == 3 * tiny_agent.config.acting.rollout_length
    assert tiny_agent.ready_to_learn(buffer)
    batch = tiny_agent.make_batch(buffer, jax.random.key(9), state)
    k = tiny_agent.config.loss.unroll_steps
    assert batch.targets.value.shape == (tiny_agent.config.learner.batch_size, k + 1)
    assert int(replay.num_windows(buffer, tiny_agent.config.loss.window_length)) > 0


def _exploration(repeat, epsilon):
    from muzero_jax.search import Exploration

    return Exploration(temperature=jnp.float32(1.0), dirichlet_fraction=jnp.float32(0.0),
                       gumbel_scale=jnp.float32(1.0), repeat_probability=jnp.float32(repeat),
                       epsilon=jnp.float32(epsilon))


def test_explore_actions_repeats_and_draws_random_legal_actions_at_their_rates():
    from muzero_jax.selfplay import explore_actions

    n = 20_000
    action = jnp.zeros(n, jnp.int32)
    previous = jnp.where(jnp.arange(n) < 100, -1, 1)  # the first 100 have none to repeat
    legal = jnp.ones((n, 4), bool)
    key = jax.random.key(0)
    np.testing.assert_array_equal(
        explore_actions(key, action, previous, _exploration(0.0, 0.0), legal), 0)
    out = np.asarray(explore_actions(key, action, previous, _exploration(0.75, 0.0), legal))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out[:100], 0)
    assert abs(out[100:].mean() - 0.75) < 0.01  # fixed key: deterministic
    # epsilon 1, no repeats: uniform over the legal actions (here 1 and 3).
    legal = jnp.zeros((n, 4), bool).at[:, 1].set(True).at[:, 3].set(True)
    out = np.asarray(explore_actions(key, action, previous, _exploration(0.0, 1.0), legal))
    assert set(np.unique(out)) == {1, 3} and abs((out == 3).mean() - 0.5) < 0.01
    # A previous action that is no longer legal is never repeated.
    previous = jnp.full(n, 2, jnp.int32)
    out = np.asarray(explore_actions(key, action, previous, _exploration(0.99, 0.0), legal))
    np.testing.assert_array_equal(out, 0)


def test_the_opening_plies_are_random_legal_moves_whatever_else_explores():
    from muzero_jax.selfplay import explore_actions

    n = 20_000
    action = jnp.zeros(n, jnp.int32)
    previous = jnp.full(n, 0, jnp.int32)  # repeating it would play 0 too
    legal = jnp.zeros((n, 4), bool).at[:, 1].set(True).at[:, 3].set(True)
    ply = jnp.arange(n) % 4  # plies 0-3 of their games
    exploration = _exploration(0.5, 0.0).replace(opening_plies=jnp.int32(2))
    out = np.asarray(explore_actions(jax.random.key(0), action, previous, exploration, legal,
                                     ply=ply))
    opening = np.asarray(ply) < 2
    assert set(np.unique(out[opening])) == {1, 3}  # never the search's (illegal) 0
    assert abs((out[opening] == 3).mean() - 0.5) < 0.02
    np.testing.assert_array_equal(out[~opening], 0)  # the search's, or the repeated 0
    # Without plies (the host actors) or at opening_plies 0 the rule is off.
    for kwargs, plies in (({}, 2), ({"ply": ply}, 0)):
        off = explore_actions(jax.random.key(0), action, previous,
                              exploration.replace(opening_plies=jnp.int32(plies)), legal, **kwargs)
        np.testing.assert_array_equal(off, 0)


def test_random_openings_on_a_board_game_and_not_at_evaluation(tiny_config):
    """pgx tic-tac-toe: with random_opening_plies 2 the first two moves of training games
    spread over the board; greedy rollouts from the same state play the search's."""
    import muzero_jax as mz
    from muzero_jax.presets import board
    from muzero_jax.search import Exploration

    # No noise, and the most visited move played (sample_moves=0): the rule's moves are
    # then told from the search's.
    config = board("tic_tac_toe", num_envs=64, rollout_length=3, num_simulations=4,
                   random_opening_plies=2, dirichlet_fraction=0.0,
                   sample_moves=0)
    agent = mz.Agent(config)
    state = agent.init(jax.random.key(0))
    env_state = agent.reset(jax.random.key(1))
    _, training = agent.actor.rollout(state.params, env_state, jax.random.key(2),
                                      Exploration.training(config), 3)
    _, greedy = agent.actor.rollout(state.params, env_state, jax.random.key(2),
                                    Exploration.greedy(), 3)
    for ply in (0, 1):  # 64 random moves over the 9 (then 8) free cells
        assert len(np.unique(np.asarray(training.action[:, ply]))) >= 7
    # Greedy play keeps the search's choice, a most visited move; the rule's moves often
    # are not one.
    def most_visited(trajectory, ply):
        policy = np.asarray(trajectory.search_policy[:, ply])
        chosen = np.take_along_axis(policy, np.asarray(trajectory.action[:, ply, None]), -1)
        return chosen[:, 0] == policy.max(-1)

    assert most_visited(greedy, 0).all() and most_visited(greedy, 1).all()
    assert not most_visited(training, 0).all()
    with pytest.raises(mz.ConfigError, match="random_opening_plies=-1"):
        mz.Agent(config.replace(random_opening_plies=-1))


@pytest.mark.parametrize("env_id", ["jax/CartPole-v1", "CartPole-v1"])
def test_training_rollouts_repeat_actions_and_greedy_ones_do_not(tiny_config, env_id):
    """Both actors: runs of one action while training; the search's own choice when greedy."""
    import muzero_jax as mz
    agent = mz.Agent(tiny_config.replace(env=env_id, exploration_repeat_probability=0.9))
    state = agent.init(jax.random.key(0))

    def repeated(trajectory):
        action = np.asarray(trajectory.action)
        done = np.asarray(trajectory.terminated | trajectory.truncated)
        same = (action[:, 1:] == action[:, :-1])[~done[:, :-1]]
        return same.mean()

    _, trajectory = agent.rollout(state, agent.reset(jax.random.key(1)), jax.random.key(2),
                                  num_steps=40)
    assert repeated(trajectory) > 0.9
    # With epsilon as well, some runs start from random actions: both actions are played.
    noisy = mz.Agent(tiny_config.replace(env=env_id, exploration_repeat_probability=0.9,
                             exploration_epsilon=1.0))
    _, trajectory = noisy.rollout(state, noisy.reset(jax.random.key(1)), jax.random.key(2),
                                  num_steps=40)
    assert repeated(trajectory) > 0.85 and set(np.unique(trajectory.action)) == {0, 1}
    # The stored policy target is still the search's, not the action repeated.
    assert not np.allclose(np.asarray(trajectory.search_policy).max(-1), 1.0)
    # Greedy play (evaluation) ignores it: the same actions as an agent without repeats.
    plain = mz.Agent(tiny_config.replace(env=env_id))
    greedy = [a.rollout(state, a.reset(jax.random.key(1)), jax.random.key(2), num_steps=40,
                        greedy=True)[1] for a in (agent, plain)]
    np.testing.assert_array_equal(greedy[0].action, greedy[1].action)
    np.testing.assert_array_equal(greedy[0].observation, greedy[1].observation)
