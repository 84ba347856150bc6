import argparse
import dataclasses

import pytest

import muzero_jax as mz
from muzero_jax import cli


def parse(argv):
    return cli.parse(argv, preset="cartpole")[0]


def test_overrides_are_typed_from_the_annotations():
    cfg = parse(["--config.num_simulations", "8", "--config.learning_rate=2e-3",
                 "--config.max_grad_norm", "none", "--config.search", "muzero",
                 "--config.observation_shape", "4", "--config.checkpoint_replay", "false",
                 "--config.max_depth", "7", "--config.solve_return", "400"])
    assert cfg.num_simulations == 8 and isinstance(cfg.num_simulations, int)
    assert cfg.learning_rate == 2e-3
    assert cfg.max_grad_norm is None
    assert cfg.search == "muzero"
    assert cfg.observation_shape == (4,)
    assert cfg.checkpoint_replay is False
    assert cfg.max_depth == 7
    assert cfg.solve_return == 400.0
    # Everything not given is the preset's.
    assert cfg.hidden_size == mz.cartpole().hidden_size
    assert dataclasses.replace(cfg, num_simulations=16, learning_rate=1e-3,
                               max_grad_norm=5.0, search="gumbel", observation_shape=None,
                               checkpoint_replay=None, max_depth=None,
                               solve_return=490.0) == mz.cartpole()


def test_tuples_parse_with_or_without_brackets():
    convert, _ = cli._converter(tuple[int, ...] | None)
    assert convert("4,84,84") == (4, 84, 84)
    assert convert("(4, 84, 84)") == (4, 84, 84)
    assert convert("None") is None


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_an_unknown_field_exits_2_with_a_suggestion(capsys):
    code, err = _exit_message(capsys, ["--config.num_simulation", "8"])
    assert code == 2
    assert "unknown config field 'num_simulation'" in err
    assert "did you mean --config.num_simulations?" in err


@pytest.mark.parametrize("argv, expected", [
    (["--config.num_simulations", "eight"], "--config.num_simulations: invalid int value: "
                                             "'eight'"),
    (["--config.search", "alphazero"], "--config.search: invalid choice"),
    (["--config.checkpoint_replay", "maybe"], "--config.checkpoint_replay: invalid bool"),
    (["--config.num_simulations", "0"], "num_simulations=0: expected an integer >= 1"),
    (["--preset", "atari9"], "--preset"),
])
def test_a_bad_value_exits_2_naming_it(capsys, argv, expected):
    code, err = _exit_message(capsys, argv)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_help_lists_every_field_with_its_comment_and_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--config.num_simulations INT paper: 50 Atari, 800 board games (default: 16)" in text
    assert "--config.max_grad_norm FLOAT|none global-norm clipping; None: off (default: 5.0)" \
        in text
    for field in dataclasses.fields(mz.Config):
        assert f"--config.{field.name} " in text, field.name


def test_every_config_field_has_a_comment():
    # --help shows these comments; a field without one would be undocumented.
    comments = cli.field_comments()
    missing = [f.name for f in dataclasses.fields(mz.Config) if not comments.get(f.name)]
    assert missing == []


def test_build_applies_overrides_on_a_saved_config():
    parser = argparse.ArgumentParser()
    base = mz.cartpole(hidden_size=32, seed=4)
    cfg = cli.build(parser, "cartpole", {"total_env_steps": 1000}, base)
    assert (cfg.hidden_size, cfg.seed, cfg.total_env_steps) == (32, 4, 1000)
