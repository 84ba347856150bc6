"""Board symmetries (`muzero_jax.symmetry`): the maps pgx's games declare, and the
augmentation of learner samples by them."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import symmetry
from muzero_jax.config import ConfigError, board
from muzero_jax.envs import pgx_env


@pytest.mark.parametrize("game,count", [("tic_tac_toe", 8), ("connect_four", 2),
                                        ("othello", 4), ("go_9x9", 8)])
def test_a_game_played_with_mapped_moves_shows_the_mapped_board(game, count):
    env = pgx_env.PgxEnv(game)
    game_env, (height, width) = env.pgx_env, env.spec.observation_shape[:2]
    assert len(env.spec.symmetries) == count
    step = jax.jit(game_env.step)
    rng = np.random.default_rng(0)
    for s in env.spec.symmetries:
        points, moves = np.asarray(s.points), np.asarray(s.actions)
        state = mapped = game_env.init(jax.random.key(0))
        for _ in range(10):
            legal = np.flatnonzero(np.asarray(state.legal_action_mask))
            if bool(state.terminated):
                break
            action = int(rng.choice(legal))
            state, mapped = step(state, jnp.int32(action)), step(mapped, jnp.int32(moves[action]))
            board_ = np.asarray(state.observation).reshape(height * width, -1)
            moved = np.empty_like(board_)
            moved[points] = board_
            np.testing.assert_array_equal(
                moved, np.asarray(mapped.observation).reshape(height * width, -1))
            legal_mask = np.asarray(state.legal_action_mask)
            moved_mask = np.empty_like(legal_mask)
            moved_mask[moves] = legal_mask
            np.testing.assert_array_equal(moved_mask, np.asarray(mapped.legal_action_mask))


def test_chess_declares_none():
    assert pgx_env.PgxEnv("chess").spec.symmetries == ()


def test_square_board_is_the_dihedral_group_with_the_pass_fixed():
    maps = symmetry.square_board(3, 10)
    assert len({m.points for m in maps}) == 8
    assert all(m.actions[9] == 9 for m in maps)
    # A quarter turn (one of the eight): the corner 0 goes to a corner, the centre stays.
    assert all(m.points[4] == 4 for m in maps)
    assert {m.points[0] for m in maps} == {0, 2, 6, 8}
    with pytest.raises(ValueError, match="num_actions=8"):
        symmetry.square_board(3, 8)
    with pytest.raises(ValueError, match="not a permutation"):
        symmetry.check((symmetry.Symmetry((0, 0), (0,)),), 2, 1)


def test_augment_mirrors_observation_actions_and_policy_together():
    mirror = symmetry.column_mirror(6, 7)
    obs = jnp.arange(2 * 6 * 7 * 2, dtype=jnp.float32).reshape(2, 6, 7, 2)
    actions = jnp.array([[0, 1, 6], [2, 3, 4]])
    policy = jnp.asarray(np.random.default_rng(0).dirichlet(np.ones(7), (2, 4)), jnp.float32)
    seen = set()
    for seed in range(8):
        o, a, p = symmetry.augment(jax.random.key(seed), mirror, obs, actions, policy)
        assert o.dtype == obs.dtype and a.dtype == actions.dtype and p.shape == policy.shape
        for b in range(2):
            if bool((o[b] == obs[b]).all()):
                np.testing.assert_array_equal(a[b], actions[b])
                np.testing.assert_array_equal(p[b], policy[b])
                seen.add("identity")
            else:
                np.testing.assert_array_equal(o[b], obs[b][:, ::-1])
                np.testing.assert_array_equal(a[b], 6 - actions[b])
                np.testing.assert_array_equal(p[b], policy[b][:, ::-1])
                seen.add("mirror")
    assert seen == {"identity", "mirror"}


def tiny(**overrides):
    return board("connect_four", num_envs=4, rollout_length=12, hidden_size=16,
                 latent_size=16, num_hidden_layers=1, num_simulations=4, batch_size=16,
                 updates_per_iteration=1, replay_capacity=4 * 40, min_replay_size=16,
                 unroll_steps=2, **overrides)


def test_augmented_batches_keep_values_and_rewards():
    plain, augmented = mz.Agent(tiny()), mz.Agent(tiny(augment_symmetries=True))
    state = plain.init(jax.random.key(0))
    buffer, env_state = plain.init_replay(), plain.reset(jax.random.key(1))
    for i in range(3):
        env_state, trajectory = plain.rollout(state, env_state, jax.random.key(2 + i))
        buffer = plain.add(buffer, trajectory)
    key = jax.random.key(9)
    # The augmented agent samples with half of its key: the same windows, mapped.
    base = plain.make_batch(buffer, jax.random.split(key)[0])
    mapped = augmented.make_batch(buffer, key)
    for field in ("value", "value_mask", "reward", "reward_mask", "policy_mask"):
        np.testing.assert_array_equal(getattr(mapped.targets, field),
                                      getattr(base.targets, field))
    flipped = ~np.all(np.asarray(mapped.observation == base.observation), axis=(1, 2, 3))
    assert 0 < flipped.sum() < 16
    np.testing.assert_array_equal(np.asarray(mapped.observation)[flipped],
                                  np.asarray(base.observation)[flipped][:, :, ::-1])
    np.testing.assert_array_equal(np.asarray(mapped.targets.actions)[flipped],
                                  6 - np.asarray(base.targets.actions)[flipped])
    state, _, metrics = augmented.update(augmented.init(jax.random.key(0)), buffer,
                                         jax.random.key(3))
    assert np.isfinite(float(metrics["loss"]))


def test_augmenting_an_env_without_symmetries_is_refused_before_compiling():
    from muzero_jax.config import cartpole

    with pytest.raises(ConfigError, match="augment_symmetries=True: 'jax/CartPole-v1'"):
        mz.Agent(dataclasses.replace(cartpole(), augment_symmetries=True))
