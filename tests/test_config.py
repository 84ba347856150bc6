import dataclasses
import json
import pathlib
import typing

import pytest

import muzero_jax as mz
from muzero_jax import checkpoint, config
from muzero_jax.config import ConfigError, validate

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("field, value, expected", [
    ("num_simulations", 0, "num_simulations=0: expected an integer >= 1"),
    ("unroll_steps", 0, "unroll_steps=0: expected an integer >= 1"),
    ("td_steps", -1, "td_steps=-1"),
    ("num_envs", 2.5, "num_envs=2.5: expected an integer"),
    ("discount", 1.5, "discount=1.5: expected 0 < discount <= 1"),
    ("search", "alphazero", "policy='alphazero': expected 'muzero' or 'gumbel'"),
    ("optimizer", "rmsprop", "optimizer='rmsprop'"),
    ("dirichlet_fraction", 2.0, "dirichlet_fraction=2.0: expected a value in \\[0, 1\\]"),
    ("learning_rate", 0.0, "learning_rate=0.0: expected a value > 0"),
    ("capacity", 64, "capacity=64"),
])
def test_bad_fields_are_named(field, value, expected):
    with pytest.raises(ConfigError, match=expected):
        validate(mz.cartpole(**{field: value}))


def _first_field(cls, wanted):
    hints = typing.get_type_hints(cls)
    return next((f.name for f in dataclasses.fields(cls) if wanted(hints[f.name])), None)


@pytest.mark.parametrize("stage, cls", list(config.STAGES.items()))
def test_every_stage_checks_its_fields_by_type(stage, cls):
    """An int field given 16.0 (as a JSON file may hold it) and a Literal field given
    another string are named on one line, by the stage alone and by `validate`."""
    name = _first_field(cls, lambda hint: hint is int)
    bad = cls(**{name: 16.0})
    with pytest.raises(ConfigError, match=rf"^{name}=16.0: expected an integer$"):
        config.check_types(bad)
    with pytest.raises(ConfigError, match=rf"^{name}=16.0: expected an integer$"):
        validate(mz.Config().replace(**{stage: bad}))
    literal = _first_field(cls, lambda hint: typing.get_origin(hint) is typing.Literal)
    if literal is not None:
        choices = " or ".join(map(repr, typing.get_args(typing.get_type_hints(cls)[literal])))
        with pytest.raises(ConfigError) as error:
            validate(mz.Config().replace(**{stage: {literal: "nope"}}))
        assert str(error.value) == f"{literal}='nope': expected {choices}"
    config.check_types(cls())  # the defaults are of their types


def test_replace_routes_fields_by_name_and_by_stage():
    base = mz.Config()
    by_name = base.replace(num_simulations=8, td_steps=3)
    assert (by_name.search.num_simulations, by_name.loss.td_steps) == (8, 3)
    assert by_name.network is base.network  # stages not named are the same objects
    by_stage = base.replace(search=dict(num_simulations=8), loss=dict(td_steps=3))
    assert by_stage == by_name
    as_object = base.replace(search=mz.SearchConfig(num_simulations=8, policy="gumbel"))
    assert (as_object.search.num_simulations, as_object.search.policy) == (8, "gumbel")
    # a string for a stage sets its main choice
    choices = base.replace(env="gymnax/Acrobot-v1", search="gumbel", network="resnet")
    assert (choices.env.id, choices.search.policy, choices.network.kind) == (
        "gymnax/Acrobot-v1", "gumbel", "resnet")
    # a field by name and its stage's dict in one call: both apply
    both = base.replace(num_simulations=8, search=dict(policy="gumbel"))
    assert (both.search.num_simulations, both.search.policy) == (8, "gumbel")
    # and a field by name wins over its stage's object, in either order
    for changes in (dict(num_simulations=8, search=mz.SearchConfig(num_simulations=3)),
                    dict(search=mz.SearchConfig(num_simulations=3), num_simulations=8)):
        assert base.replace(**changes).search.num_simulations == 8


@pytest.mark.parametrize("changes, message", [
    (dict(num_simulation=8), "unknown config field 'num_simulation'"),
    (dict(replay_capacity=64), "replay_capacity: now replay.capacity"),
    (dict(tie_break="index"), "tie_break: removed"),
    (dict(search=dict(td_steps=3)), r"search: unknown field\(s\) \['td_steps'\]"),
    (dict(search=3), "search=3: expected a SearchConfig or a dict of its fields"),
])
def test_replace_names_a_field_it_cannot_place(changes, message):
    with pytest.raises(ConfigError, match=message) as error:
        mz.Config().replace(**changes)
    assert "\n" not in str(error.value)


def _flat_0_1(preset: str) -> dict:
    """The flat config 0.1 wrote for `preset` (tests/fixtures/presets_v0.1.json, one
    `dataclasses.asdict` of 0.1's single Config per preset)."""
    return json.loads((FIXTURES / "presets_v0.1.json").read_text())[preset]


def test_a_flat_config_json_of_0_1_loads_through_the_run_directory(tmp_path):
    """config.json as 0.1 wrote it (one flat dataclass) loads onto the stages."""
    flat = _flat_0_1("cartpole")
    assert "num_simulations" in flat and flat["search"] == "gumbel" and "loss" not in flat
    (tmp_path / "config.json").write_text(json.dumps(flat, indent=2))
    loaded = checkpoint.load_config(str(tmp_path))
    assert loaded == mz.cartpole()
    assert (loaded.search.policy, loaded.env.id, loaded.replay.capacity) == (
        "gumbel", "jax/CartPole-v1", 50_000)
    assert config.from_dict(config.to_dict(loaded)) == loaded  # and stage dicts load too


# What a preset changed on purpose since 0.1 (CHANGELOG.md), as Config.replace takes it.
CHANGED_SINCE_0_1 = {"sample_efficient": {"q_min_range": 1.0},
                     "minatar": {"kind": "conv_mlp", "total_env_steps": 2_000_000,
                                 "off_policy_correction_steps": 10_000}}
# Presets 0.1 did not have.
NEW_SINCE_0_1 = {"2048", "2048_accelerator", "backgammon", "control"}


def test_every_preset_of_0_1_maps_onto_the_same_preset():
    """The flat config of every preset as 0.1 wrote it is today's preset, field for field,
    but for the changes CHANGELOG.md lists."""
    old = json.loads((FIXTURES / "presets_v0.1.json").read_text())
    assert set(old) == set(mz.PRESETS) - NEW_SINCE_0_1
    for name, flat in old.items():
        loaded = config.from_dict(flat).replace(**CHANGED_SINCE_0_1.get(name, {}))
        assert loaded == mz.PRESETS[name](), name


def test_a_removed_knob_loads_at_its_only_value_and_fails_at_another():
    flat = _flat_0_1("cartpole")
    assert (flat["tie_break"], flat["opportunist_games"]) == ("noise", 0.0)
    assert config.from_dict(flat) == mz.cartpole()
    for name, value in (("tie_break", "index"), ("opportunist_games", 0.5),
                        ("augment_symmetries", True), ("dirichlet_schedule", [[0.5, 0.1]])):
        with pytest.raises(ConfigError) as error:
            config.from_dict({**flat, name: value})
        assert str(error.value) == (f"{name}={value!r}: removed in 0.2; expected "
                                    f"{config.REMOVED[name]!r} (its only behaviour now)")


def test_an_unknown_flat_field_or_stage_is_named():
    with pytest.raises(ConfigError, match="unknown config field 'num_simulation'"):
        config.from_dict({"num_simulation": 8})
    with pytest.raises(ConfigError, match=r"unknown config stage\(s\) \['searches'\]"):
        config.from_dict({"searches": {"num_simulations": 8}})


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
    assert mz.cartpole().loss.window_length == 5 + 50 + 1


def test_atari_paper_has_the_papers_numbers():
    """Each number as the paper gives it (Appendices B, E-G and its pseudocode)."""
    cfg = mz.atari_paper()
    assert (cfg.replay.priority_alpha, cfg.replay.priority_beta) == (1.0, 1.0)
    assert cfg.samples_per_state == pytest.approx(0.1)  # 1024 per 10,240 env steps
    assert (cfg.learner.batch_size, cfg.loss.td_steps, cfg.loss.unroll_steps,
            cfg.loss.discount) == (1024, 10, 5, 0.997)
    assert (cfg.search.policy, cfg.search.num_simulations, cfg.search.q_normalisation) == (
        "muzero", 50, "tree_min_max")
    assert (cfg.search.dirichlet_alpha, cfg.search.dirichlet_fraction, cfg.search.pb_c_init,
            cfg.search.pb_c_base) == (0.25, 0.25, 1.25, 19652.0)
    assert (cfg.learner.optimizer, cfg.learner.learning_rate, cfg.learner.momentum,
            cfg.learner.weight_decay) == ("sgd", 0.05, 0.9, 1e-4)
    assert (cfg.learner.lr_decay, cfg.learner.lr_decay_steps, cfg.learner.lr_end_fraction) == (
        "exponential", 350_000, 0.1)
    assert cfg.acting.temperature_schedule == ((0.5, 0.5), (0.75, 0.25))
    assert (cfg.network.value_support_size, cfg.network.reward_support_size) == (300, 300)
    assert (cfg.network.resnet_channels, cfg.network.dynamics_blocks,
            cfg.network.prediction_blocks) == (256, 16, 0)
    assert (cfg.env.frame_size, cfg.env.grayscale, cfg.env.history_length) == (
        (96, 96), False, 32)
    assert cfg.env.max_episode_steps == 27_000 and cfg.loss.value_loss_weight == 1.0
    assert not cfg.learner.use_target_network and cfg.num_reanalyzed == 0  # plain MuZero
    updates = cfg.run.total_env_steps // (cfg.acting.num_envs * cfg.acting.rollout_length)
    assert updates == 1_000_000


def test_reanalyze_preset_is_the_papers_reanalyze():
    """The paper's MuZero Reanalyze (its Appendix H): target-network values in every z,
    fresh policies for 80% of each batch, value loss weight 0.25, n = 5."""
    cfg = mz.PRESETS["reanalyze"]()
    assert cfg == mz.muzero_reanalyze()
    assert cfg.learner.use_target_network  # so every window bootstraps from the target network
    assert cfg.num_reanalyzed == cfg.learner.batch_size
    assert cfg.num_reanalyzed_policies == round(0.8 * cfg.learner.batch_size)
    assert (cfg.loss.value_loss_weight, cfg.loss.td_steps) == (0.25, 5)
    # the settings the README's table of the paper's machinery measured beside the paper's
    assert (cfg.search.policy, cfg.search.q_min_range, cfg.learner.target_ema,
            cfg.learner.target_update_period) == ("gumbel", 1.0, 0.95, 0)
    assert (cfg.acting.num_envs, cfg.acting.rollout_length, cfg.learner.updates_per_iteration,
            cfg.learner.batch_size, cfg.replay.min_size) == (8, 25, 100, 256, 800)
    # sample_efficient is not it: a quarter reanalyzed, no target network, n = 50.
    other = mz.sample_efficient()
    assert (other.num_reanalyzed, other.learner.use_target_network, other.loss.td_steps) == (
        64, False, 50)


def test_sample_efficient_keeps_the_settings_its_readme_table_measured():
    """The README's figures were measured with 100 updates of 256 per 8 x 25 env steps,
    learning from 400 positions, Gumbel noise at scale 0.5, an evaluation every
    iteration."""
    cfg = mz.sample_efficient()
    assert (cfg.acting.num_envs, cfg.acting.rollout_length, cfg.learner.batch_size) == (
        8, 25, 256)
    assert (cfg.learner.updates_per_iteration, cfg.replay.min_size, cfg.run.eval_every) == (
        100, 400, 1)
    assert cfg.search.gumbel_scale == 0.5


def test_classic_stops_at_a_margin_over_each_envs_gymnasium_threshold():
    assert mz.classic().env.id == "Acrobot-v1" and mz.classic().run.solve_return == -90.0
    assert mz.classic(env="gymnax/Acrobot-v1").run.solve_return == -90.0  # its Gymnasium twin
    assert mz.classic(env="CartPole-v1").run.solve_return == 490.0
    assert mz.classic(env="FrozenLake-v1").run.solve_return == 0.7  # reward_threshold itself
    assert mz.classic(env="gymnax/Breakout-MinAtar").run.solve_return is None  # none known
    assert mz.classic(env="CartPole-v1", solve_return=400.0).run.solve_return == 400.0
    assert mz.classic(env="CartPole-v1", run=dict(solve_return=400.0)).run.solve_return == 400.0
    given = mz.classic(env="CartPole-v1", run=mz.RunConfig(seed=3, solve_return=400.0)).run
    assert (given.seed, given.solve_return) == (3, 400.0)


def test_classic_supports_hold_unit_rewards_at_its_discount():
    validate(mz.classic(), max_abs_reward=1.0)  # value support holds 1 / (1 - 0.99) = 100
    with pytest.raises(ConfigError, match="value_support_size"):
        validate(mz.classic(discount=0.997), max_abs_reward=1.0)


def test_support_squash_is_checked_and_sizes_the_supports():
    with pytest.raises(ConfigError, match="support_squash='log': expected 'h' or 'identity'"):
        validate(mz.cartpole(support_squash="log"))
    # identity atoms hold |x| <= S: CartPole's 333 needs 334 atoms a side, not h's 18
    with pytest.raises(ConfigError, match=r"value_support_size=20: represents \|value\| <= "
                                          r"20.*expected value_support_size >= 334"):
        validate(mz.cartpole(support_squash="identity"), max_abs_reward=1.0)
