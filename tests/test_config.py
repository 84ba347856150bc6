import pytest

import muzero_jax as mz
from muzero_jax.config import ConfigError, validate


@pytest.mark.parametrize("field, value, expected", [
    ("num_simulations", 0, "num_simulations=0: expected an integer >= 1"),
    ("unroll_steps", 0, "unroll_steps=0: expected an integer >= 1"),
    ("td_steps", -1, "td_steps=-1"),
    ("num_envs", 2.5, "num_envs=2.5: expected an integer"),
    ("discount", 1.5, "discount=1.5: expected 0 < discount <= 1"),
    ("search", "alphazero", "search='alphazero': expected 'muzero' or 'gumbel'"),
    ("optimizer", "rmsprop", "optimizer='rmsprop'"),
    ("dirichlet_fraction", 2.0, "dirichlet_fraction=2.0: expected a value in \\[0, 1\\]"),
    ("learning_rate", 0.0, "learning_rate=0.0: expected a value > 0"),
    ("replay_capacity", 64, "replay_capacity=64"),
])
def test_bad_fields_are_named(field, value, expected):
    with pytest.raises(ConfigError, match=expected):
        validate(mz.cartpole(**{field: value}))


def test_a_value_support_too_small_for_the_returns():
    # CartPole returns reach 1 / (1 - 0.997) = 333; 10 atoms a side hold h^-1(10) = 118.
    cfg = mz.cartpole(value_support_size=10)
    with pytest.raises(ConfigError, match=r"value_support_size=10: .*333.*expected "
                                          r"value_support_size >= 18"):
        mz.Agent(cfg)


def test_a_reward_support_too_small_for_the_rewards():
    # 2 atoms a side hold |reward| <= h^-1(2) = 7.95.
    with pytest.raises(ConfigError, match=r"reward_support_size=2: .*7.95.*expected "
                                          r"reward_support_size >= 3"):
        validate(mz.cartpole(), max_abs_reward=10.0)


def test_observation_shape_must_match_the_env():
    with pytest.raises(ConfigError, match=r"observation_shape=\(8,\).*observes shape \(4,\)"):
        mz.Agent(mz.cartpole(observation_shape=(8,)))


def test_unknown_env_fails_before_compiling():
    with pytest.raises(ValueError, match="env='Pong'"):
        mz.Agent(mz.cartpole(env="Pong"))


def test_presets_validate():
    for preset in mz.PRESETS.values():
        validate(preset())
    assert mz.cartpole().window_length == 5 + 50 + 1


def test_classic_stops_at_a_margin_over_each_envs_gymnasium_threshold():
    assert mz.classic().env == "Acrobot-v1" and mz.classic().solve_return == -90.0
    assert mz.classic(env="gymnax/Acrobot-v1").solve_return == -90.0  # its Gymnasium twin
    assert mz.classic(env="CartPole-v1").solve_return == 490.0
    assert mz.classic(env="FrozenLake-v1").solve_return == 0.7  # reward_threshold itself
    assert mz.classic(env="gymnax/Breakout-MinAtar").solve_return is None  # none known
    assert mz.classic(env="CartPole-v1", solve_return=400.0).solve_return == 400.0


def test_classic_supports_hold_unit_rewards_at_its_discount():
    validate(mz.classic(), max_abs_reward=1.0)  # value support holds 1 / (1 - 0.99) = 100
    with pytest.raises(ConfigError, match="value_support_size"):
        validate(mz.classic(discount=0.997), max_abs_reward=1.0)
