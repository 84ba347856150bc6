import dataclasses
import re

import pytest

import muzero_jax as mz
from muzero_jax import cli


def parse(argv):
    return cli.parse_config(argv, preset="cartpole")


def test_overrides_are_typed_from_the_annotations():
    cfg = parse(["--search.num_simulations", "8", "--learner.learning_rate=2e-3",
                 "--learner.max_grad_norm", "none", "--search.policy", "muzero",
                 "--env.observation_shape", "4", "--run.checkpoint_replay", "false",
                 "--search.max_depth", "7", "--run.solve_return", "400"])
    assert cfg.search.num_simulations == 8 and isinstance(cfg.search.num_simulations, int)
    assert cfg.learner.learning_rate == 2e-3
    assert cfg.learner.max_grad_norm is None
    assert cfg.search.policy == "muzero"
    assert cfg.env.observation_shape == (4,)
    assert cfg.run.checkpoint_replay is False
    assert cfg.search.max_depth == 7
    assert cfg.run.solve_return == 400.0
    # Everything not given is the preset's.
    assert cfg.network.hidden_size == mz.cartpole().hidden_size
    assert cfg.replace(num_simulations=16, learning_rate=1e-3,
                               max_grad_norm=5.0, search="gumbel", observation_shape=None,
                               checkpoint_replay=None, max_depth=None,
                               solve_return=490.0) == mz.cartpole()


@pytest.mark.parametrize("text, value", [("none", None), ("None", None), ("NONE", None),
                                         ("true", True), ("True", True), ("yes", True),
                                         ("false", False), ("False", False), ("0", False)])
def test_booleans_and_none_parse_in_any_case(text, value):
    assert parse(["--run.checkpoint_replay", text]).checkpoint_replay is value


def test_tuples_take_their_items_space_separated():
    cfg = parse(["--env.observation_shape", "4", "84", "84",
                 "--acting.temperature_schedule", "0.5", "0.5", "0.75", "0.25",
                 "--network.representation_blocks", "1", "2", "3"])
    assert cfg.env.observation_shape == (4, 84, 84)
    assert cfg.acting.temperature_schedule == ((0.5, 0.5), (0.75, 0.25))
    assert cfg.network.representation_blocks == (1, 2, 3)
    assert parse(["--acting.temperature_schedule"]).temperature_schedule == ()
    assert parse(["--env.observation_shape", "none"]).observation_shape is None


def test_flag_names_take_hyphens_or_underscores():
    assert parse(["--search.num_simulations", "4"]).num_simulations == 4


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_an_unknown_field_exits_2_with_a_suggestion(capsys):
    code, err = _exit_message(capsys, ["--config.num_simulation", "8"])
    assert code == 2
    assert "Unrecognized options: --config.num_simulation" in err
    assert "Perhaps you meant: --search.num_simulations" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, expected", [
    (["--search.num_simulations", "eight"],
     "Error parsing --search.num_simulations: invalid literal for int() with base 10: 'eight'"),
    (["--search.policy", "alphazero"],
     "invalid choice 'alphazero' for argument '--search.policy'. Expected one of "
     "('muzero', 'gumbel')"),
    (["--run.checkpoint_replay", "maybe"], "'maybe' is not a boolean; expected true or false"),
    (["--learner.max_grad_norm", "off"], "could not convert string to float: 'off'"),
    # The comma syntax of the hand-written parser before tyro gets a pointer to the new one.
    (["--env.observation_shape", "4,84,84"], "tuple items go space-separated"),
    (["--search.num_simulations", "0"], "num_simulations=0: expected an integer >= 1"),
    (["--preset", "atari9"], "--preset 'atari9': expected one of"),
])
def test_a_bad_value_exits_2_with_one_line_naming_it(capsys, argv, expected):
    code, err = _exit_message(capsys, argv)
    assert code == 2
    assert err.count("\n") == 1, err  # one line: no box, no usage, no traceback
    assert re.match(r"\S+: error: ", err)
    assert expected in err


def _help(capsys, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "100")  # one column of boxes, however wide the terminal
    with pytest.raises(SystemExit) as exit_info:
        parse(argv + ["--help"])
    assert exit_info.value.code == 0
    # The text without tyro's box borders, lines joined.
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_help_lists_every_field_with_its_comment_and_the_presets_default(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, [])
    assert ("--search.num_simulations INT paper: 50 Atari, 800 board games (default: 16)"
            in text)
    assert ("--learner.max_grad_norm none|FLOAT global-norm clipping; None: off (default: 5.0)"
            in text)
    # Comments over several lines arrive whole.
    assert ("--env.id STR jax/<name>, gymnax/<id>, ALE/<Game>-v5 or a gymnasium id "
            "(muzero_jax.envs: the rule that maps an id to its env) (default: jax/CartPole-v1)"
            in text)
    assert ("--network.representation_blocks INT INT INT residual blocks of h after the first "
            "strided conv, after the second, after the first average pool (paper: 2, 3, 3) "
            "(default: 2 3 3)" in text)
    assert "() = off. Paper (Atari): ((0.5, 0.5), (0.75, 0.25))" in text
    # Every field is there, and none without a comment: "--config.NAME METAVAR (default:"
    # with nothing between would be an undocumented field.
    for field in dataclasses.fields(mz.Config):
        assert f"--config.{field.name} " in text, field.name
    assert not re.search(r"--config\.\w+ \S+ \(default:", text), \
        re.search(r"--config\.\w+ \S+ \(default:", text).group()


def test_help_shows_the_chosen_presets_defaults(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, ["--preset", "atari_tiny"])
    assert "--preset STR named configuration to start from (default: atari_tiny)" in text
    assert "(default: ALE/Breakout-v5)" in text
    assert re.search(r"--config\.history_length INT .*? \(default: 4\)", text)


def test_build_applies_overrides_and_validates():
    base = mz.cartpole(hidden_size=32, seed=4)
    cfg = cli.build(base, total_env_steps=1000)
    assert (cfg.network.hidden_size, cfg.run.seed, cfg.run.total_env_steps) == (32, 4, 1000)
    with pytest.raises(mz.ConfigError, match="total_env_steps=-1"):
        cli.build(base, total_env_steps=-1)


def test_one_line_reads_tyros_box():
    box = ("╭─ Unrecognized options ───╮\n"
           "│ Unrecognized options: --x │\n"
           "│ ───────────────────────── │\n"
           "│ Perhaps you meant:        │\n"
           "│     --y INT               │\n"
           "│ ───────────────────────── │\n"
           "│ For full helptext, run p  │\n"
           "╰───────────────────────────╯\n")
    assert cli.one_line(box) == "Unrecognized options: --x; Perhaps you meant: --y INT"


def test_an_output_file_needs_an_existing_directory(tmp_path):
    cli.check_output_file("--svg", str(tmp_path / "game.svg"))  # its directory exists
    missing = tmp_path / "no" / "game.svg"
    with pytest.raises(mz.ConfigError, match=f"--svg {missing}: no directory {missing.parent};"):
        cli.check_output_file("--svg", str(missing))
