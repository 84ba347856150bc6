import ast
import dataclasses
import os
import re
import tokenize

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
    assert cfg.network.hidden_size == mz.cartpole().network.hidden_size
    preset = mz.cartpole()
    assert cfg.replace(
        num_simulations=preset.search.num_simulations,
        learning_rate=preset.learner.learning_rate, max_grad_norm=preset.learner.max_grad_norm,
        search=preset.search.policy, observation_shape=preset.env.observation_shape,
        checkpoint_replay=preset.run.checkpoint_replay, max_depth=preset.search.max_depth,
        solve_return=preset.run.solve_return) == preset


@pytest.mark.parametrize("text, value", [("none", None), ("None", None), ("NONE", None),
                                         ("true", True), ("True", True), ("yes", True),
                                         ("false", False), ("False", False), ("0", False)])
def test_booleans_and_none_parse_in_any_case(text, value):
    assert parse(["--run.checkpoint_replay", text]).run.checkpoint_replay is value


def test_tuples_take_their_items_space_separated():
    cfg = parse(["--env.observation_shape", "4", "84", "84",
                 "--acting.temperature_schedule", "0.5", "0.5", "0.75", "0.25",
                 "--network.representation_blocks", "1", "2", "3"])
    assert cfg.env.observation_shape == (4, 84, 84)
    assert cfg.acting.temperature_schedule == ((0.5, 0.5), (0.75, 0.25))
    assert cfg.network.representation_blocks == (1, 2, 3)
    assert parse(["--acting.temperature_schedule"]).acting.temperature_schedule == ()
    assert parse(["--env.observation_shape", "none"]).env.observation_shape is None


def test_flag_names_take_hyphens_or_underscores():
    assert parse(["--search.num-simulations", "4"]).search.num_simulations == 4
    assert parse(["--search.num_simulations", "4"]).search.num_simulations == 4


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_an_unknown_field_exits_2_with_a_suggestion(capsys):
    code, err = _exit_message(capsys, ["--search.num_simulation", "8"])
    assert code == 2
    assert "Unrecognized options: --search.num_simulation" in err
    assert "Perhaps you meant: --search.num_simulations" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, expected", [
    (["--config.num_simulations", "8"],
     "error: --config.num_simulations: flags are grouped by stage; use "
     "--search.num_simulations\n"),
    (["--config.num-simulations=8"], "use --search.num_simulations\n"),
    (["--config.replay_capacity", "64"], "use --replay.capacity\n"),
    (["--config.env", "CartPole-v1"], "use --env.id\n"),
    (["--config.num_simulation", "8"],
     "--config.num_simulation: no such field; flags are --STAGE.FIELD; perhaps you meant "
     "--search.num_simulations\n"),
    (["--config.tie_break", "noise"], "--config.tie_break: tie_break: removed"),
])
def test_an_old_config_flag_exits_2_naming_its_new_spelling(capsys, argv, expected):
    code, err = _exit_message(capsys, argv)
    assert code == 2
    assert err.count("\n") == 1, err
    assert expected in err


@pytest.mark.parametrize("argv, expected", [
    (["--search.num_simulations", "eight"],
     "Error parsing --search.num_simulations: invalid literal for int() with base 10: 'eight'"),
    (["--search.policy", "alphazero"],
     "invalid choice 'alphazero' for argument '--search.policy'. Expected one of "
     "('muzero', 'gumbel', 'stochastic', 'stochastic_gumbel')"),
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


def _help(capsys, monkeypatch, argv, columns=100):
    monkeypatch.setenv("COLUMNS", str(columns))  # one column of boxes, however wide
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _joined(text):
    # The text without tyro's box borders, lines joined.
    return " ".join(text.replace("│", " ").split())


def _config_comments():
    """{(stage, field): the comment beside the field} read from config.py's source: the
    text every flag's help must hold, whole."""
    path = os.path.join(os.path.dirname(mz.__file__), "config.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    with open(path) as f:
        comments = {tok.start[0]: tok.string[1:].strip()
                    for tok in tokenize.generate_tokens(f.readline)
                    if tok.type == tokenize.COMMENT}
    stage_of_class = {cls.__name__: stage for stage, cls in mz.config.STAGES.items()}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in stage_of_class:
            for item in node.body:
                if isinstance(item, ast.AnnAssign):
                    found[stage_of_class[node.name], item.target.id] = comments[item.lineno]
    return found


def _flag_helps(text):
    """{flag: its help text, joined} from tyro's boxes (one column)."""
    helps, flag = {}, None
    for line in text.splitlines():
        line = line.strip().strip("│").strip()
        if re.match(r"--\w+\.\w+( |$)", line):
            # The help beside the flag where both fit, after a gap of 2+ spaces.
            invocation, _, beside = re.split(r"( {2,}|$)", line, maxsplit=1)
            flag = invocation.split()[0]
            helps[flag] = beside.strip()
        elif flag and line and not line.startswith(("╰", "╭")):
            helps[flag] = (helps[flag] + " " + line).strip()
        else:
            flag = None
    return helps


def _shown(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple):
        return " ".join(_shown(v) for v in (x for item in value for x in
                                             (item if isinstance(item, tuple) else (item,))))
    return str(value)


@pytest.mark.parametrize("stage", list(mz.config.STAGES))
def test_each_flags_help_is_its_fields_whole_comment_and_the_presets_value(
        capsys, monkeypatch, stage):
    comments = _config_comments()
    preset = mz.PRESETS["atari_tiny"]()
    helps = _flag_helps(_help(capsys, monkeypatch, ["--preset", "atari_tiny", "--help",
                                                    stage]))
    fields = [f.name for f in dataclasses.fields(mz.config.STAGES[stage])]
    assert sorted(helps) == sorted(f"--{stage}.{name}" for name in fields)
    for name in fields:
        value = getattr(getattr(preset, stage), name)
        help_text = helps[f"--{stage}.{name}"]
        # Whole, and no other field's: the comment, then the default, and nothing else.
        assert help_text.startswith(comments[stage, name] + " (default: "), (name, help_text)
        shown = help_text[len(comments[stage, name]) + len(" (default: "):-1]
        assert shown.lower() == _shown(value).lower(), (name, shown, value)


def test_help_all_lists_every_flag_with_its_comment(capsys, monkeypatch):
    comments = _config_comments()
    text = _help(capsys, monkeypatch, ["--help-all"])
    helps = _flag_helps(text)
    assert len(helps) == len(comments) == sum(
        len(dataclasses.fields(cls)) for cls in mz.config.STAGES.values())
    for (stage, name), comment in comments.items():
        assert helps[f"--{stage}.{name}"].startswith(comment + " (default: ")


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_help_fits_one_screen_and_names_each_stage(capsys, monkeypatch, columns):
    text = _help(capsys, monkeypatch, ["--preset", "atari_tiny", "--help"], columns)
    lines = text.splitlines()
    assert len(lines) <= 60
    assert max(map(len, lines)) <= max(columns, 80)
    assert "--preset NAME" in text and "(default: atari_tiny)" in text
    for stage in mz.config.STAGES:
        assert re.search(rf"^  {stage} +.*--help {stage}$", text, re.M), stage
    assert "--search.num_simulations" not in text  # a stage's flags are one flag away


def test_help_of_an_unknown_topic_exits_2_naming_the_stages(capsys):
    code, err = _exit_message(capsys, ["--help", "serch"])
    assert code == 2 and err.count("\n") == 1
    assert "--help serch: expected a stage or presets, one of ['env', 'network'" in err


def test_field_comments_read_the_comment_beside_or_above_each_field():
    from muzero_jax import experiment

    comments = cli.field_comments(experiment.Flags)
    assert comments["preset"] == "named configuration to start from"  # beside
    assert comments["resume"] == ("continue the run in DIR from its latest checkpoint, flags "
                                  "on top of its config.json")  # the line above
    # A field written over two lines keeps its own comment; the next field has its own.
    assert comments["compile_cache"].startswith("reuse compiled programs kept here")
    assert comments["coordinator"].startswith("several processes (jax.distributed)")
    assert "debug" in comments and "config" in comments
    assert cli.field_comments(mz.Config)["search"] == "the search"


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
