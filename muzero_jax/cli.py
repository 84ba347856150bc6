"""The command line: flags from dataclasses, every config field as `--STAGE.FIELD VALUE`.

    python experiments/train.py --env CartPole-v1 --search.num_simulations 8 \
        --learner.max_grad_norm none --env.observation_shape 4

tyro (https://brentyi.github.io/tyro/) builds the parser from the dataclasses
themselves: a field's type gives its parser and metavar (`Literal` fields take one
of their choices, `X | None` fields also `none`), its comment in the source is its
`--help` text, shown beside its default (the chosen preset's), each stage of the
config gets its prefix (`--search.`), a misspelt flag gets "Perhaps you meant", and
`-` and `_` are interchangeable in flag names. Tuples take their items
space-separated: `--env.observation_shape 4 84 84`, and `--acting.temperature_schedule
0.5 0.5 0.75 0.25` for ((0.5, 0.5), (0.75, 0.25)); a bare
`--acting.temperature_schedule` is ().

What we add to tyro: help in three sizes (`--help` one screen: the script's own
flags and a line per stage; `--help STAGE` one stage's flags; `--help-all` every
flag), booleans and None in any case (`true`, `False`, `none`, as config.json and
Python spell them), a flat `--config.FIELD` answered with its new spelling, and
errors on one line, `PROG: error: ...` with exit code 2 (argparse's convention;
tyro draws a box), before anything compiles.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import functools
import inspect
import io
import os
import re
import shutil
import sys
import textwrap
import tokenize
import typing
from collections.abc import Sequence
from typing import Annotated, NoReturn, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from muzero_jax import config as config_lib
from muzero_jax.config import Config, ConfigError
from muzero_jax.errors import RunFault
from muzero_jax.presets import PRESETS

T = TypeVar("T")

REGISTRY = ConstructorRegistry()

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@REGISTRY.primitive_rule
def _bool_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    # tyro's own takes only True/False; users type `false`, and config.json has it.
    if info.type is not bool:
        return None

    def parse(args: list[str]) -> bool:
        text = args[0].lower()
        if text not in _TRUE + _FALSE:
            raise ValueError(f"{args[0]!r} is not a boolean; expected true or false")
        return text in _TRUE

    return PrimitiveConstructorSpec(
        nargs=1, metavar="{true,false}", instance_from_str=parse,
        is_instance=lambda x: isinstance(x, bool),
        str_from_instance=lambda x: ["true" if x else "false"])


@REGISTRY.primitive_rule
def _none_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    # tyro's own takes only `None`; `none` is what the README has always shown.
    if info.type is not type(None):
        return None

    def parse(args: list[str]) -> None:
        if args[0].lower() != "none":
            raise ValueError(f"{args[0]!r} is not none")

    return PrimitiveConstructorSpec(
        nargs=1, metavar="none", instance_from_str=parse, is_instance=lambda x: x is None,
        str_from_instance=lambda x: ["none"])


def one_error_line(message: str, prog: str | None = None) -> str:
    """`PROG: error: MESSAGE` on one line, as argparse writes it."""
    prog = prog or os.path.basename(sys.argv[0])
    return f"{prog}: error: {' '.join(str(message).split())}"


def error(message: str, prog: str | None = None, *, code: int = 2) -> NoReturn:
    """Ends the program as argparse does: `PROG: error: MESSAGE` on one line, exit `code`."""
    print(one_error_line(message, prog), file=sys.stderr)
    sys.exit(code)


DEBUG_ENV = "MUZERO_JAX_DEBUG"  # set (not 0): faults show their traceback, as --debug


def debugging(argv: Sequence[str]) -> bool:
    """Whether faults should show their traceback: `--debug` in argv or MUZERO_JAX_DEBUG set."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "0") not in ("", "0")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """`--debug` for the argparse entry points (evaluate, play), as the experiment flags have."""
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of a fault instead of its one line "
                        f"(also: {DEBUG_ENV}=1)")


def check_output_file(flag: str, path: str) -> None:
    """Raises `ConfigError` unless the directory of `path` (an output file's, given as
    `flag`) exists: checked before the work whose result the file would hold."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{flag} {path}: no directory {folder}; expected a file in an "
                          "existing directory")


@contextlib.contextmanager
def one_line_errors(debug: bool = False, prog: str | None = None):
    """Turns the errors a user can cause or must act on into `error`'s one line.

    `ConfigError` and `RunFault` (checkpoints, non-finite values, signals: its own exit
    code) end the program with their message, Ctrl-C outside training with exit 130;
    with `debug` they propagate, traceback and all.
    """
    try:
        yield
    except (ConfigError, RunFault) as e:
        if debug:
            raise
        if getattr(e, "at_once", False):
            # The chunk under way still runs in XLA's threads, and the interpreter's exit
            # would wait for it: minutes for a large preset on a CPU. Every file the run
            # wrote is closed by now.
            print(one_error_line(str(e), prog), file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(e.exit_code)
        error(str(e), prog, code=getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        # Outside training's own handler (which saves a checkpoint first): while building,
        # compiling before it, or evaluating after it.
        if debug:
            raise
        error("interrupted (SIGINT) outside training: nothing was written after the last "
              "checkpoint", prog, code=130)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RULE_CHARS = "╭╮╰╯─-"


def one_line(box: str) -> str:
    """tyro's error box as one line: its sections joined, without borders, its title,
    the argument's help text or the pointer to --help."""
    lines = [_ANSI.sub("", line).strip().strip("│").strip() for line in box.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith("╭")]
    lines = lines[starts[-1] if starts else 0:]
    sections, current = [], []
    for line in lines[1:]:  # the first holds the box's title
        if line and not line.strip(_RULE_CHARS):  # a rule between sections, or the bottom
            sections.append(" ".join(current))
            current = []
        elif line:
            current.append(line)
    sections.append(" ".join(current))
    kept = [s for s in sections
            if s and not s.startswith(("Argument helptext", "For full helptext"))]
    message = "; ".join(kept) or " ".join(box.split())
    if "Could not find valid parse" in message:  # a tuple in another syntax, e.g. 4,84,84
        message += " (tuple items go space-separated, e.g. --env.observation_shape 4 84 84)"
    return message


HELP_ALL = "--help-all"
HELP_FLAGS = ("-h", "--help")


def parse(flags_type: type[T], argv: Sequence[str], *, default: T, description: str,
          details: str = "", prog: str | None = None) -> T:
    """The flags of `flags_type` (a dataclass) from argv, over the values in `default`.

    Help, each printed to stdout, then exit 0: `--help` one screen (the script's own
    flags, one line per stage), `--help STAGE` that stage's flags, `--help presets`
    `details`, `--help-all` every flag; a stage flag's help is its field's comment in
    muzero_jax/config.py and its value in `default`. A bad flag or value, or a flat
    `--config.FIELD`, exits 2 with one line (`error`).
    """
    prog = prog or os.path.basename(sys.argv[0])
    refuse_old_flags(argv, prog)
    topic = help_topic(argv, prog)
    if topic == "short":
        print(short_help(flags_type, default, prog=prog, description=description))
        sys.exit(0)
    if topic == "presets":
        print(details)
        sys.exit(0)
    first_line = description.split("\n")[0]  # the rest is the short screen's
    if topic in config_lib.STAGES:
        stage_type = _stage_flags(topic)
        _tyro_parse(stage_type, ["--help"], default=stage_type(getattr(_config_of(default), topic)),
                    prog=prog, description=f"{first_line}\n\n{_stage_comment(topic)}: "
                    f"--{topic}.FIELD VALUE")
    if topic == "all":
        argv = [token for token in argv if token != HELP_ALL] + ["--help"]
        description = f"{first_line}\n\n{details}".strip()
    return _tyro_parse(flags_type, argv, default=default, prog=prog, description=description)


def _tyro_parse(flags_type, argv, *, default, prog, description):
    # tyro prints an error as a box on stderr: caught and told as one line instead.
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            flags = tyro.cli(flags_type, args=list(argv), default=default, prog=prog,
                             description=description, use_underscores=True,
                             config=(tyro.conf.FlagConversionOff,), registry=REGISTRY)
    except SystemExit as e:
        if e.code not in (0, None):
            error(one_line(captured.getvalue()), prog)
        sys.stderr.write(captured.getvalue())
        raise
    sys.stderr.write(captured.getvalue())
    return flags


def help_topic(argv: Sequence[str], prog: str | None = None) -> str | None:
    """What help argv asks for: "all" (`--help-all`), a stage or "presets" (`--help
    NAME`), "short" (`--help` alone), or None; exits 2 naming the topics for another."""
    argv = list(argv)
    if HELP_ALL in argv:
        return "all"
    for i, token in enumerate(argv):
        if token in HELP_FLAGS:
            name = argv[i + 1] if i + 1 < len(argv) else None
            if name is None or name.startswith("-"):
                return "short"
            topics = [*config_lib.STAGES, "presets"]
            if name not in topics:
                error(f"{token} {name}: expected a stage or presets, one of {topics} (or "
                      f"{HELP_ALL} for every flag)", prog)
            return name
    return None


@functools.cache
def _stage_flags(stage: str) -> type:
    # Only the stage as a field named after it, so that its flags read --STAGE.FIELD.
    return dataclasses.make_dataclass(
        f"{stage.title()}Flags", [(stage, config_lib.STAGES[stage])], frozen=True)


def _config_of(flags) -> Config:
    for field in dataclasses.fields(flags):
        value = getattr(flags, field.name)
        if isinstance(value, Config):
            return value
    raise TypeError(f"{type(flags).__name__} holds no Config")


def _stage_comment(stage: str) -> str:
    return field_comments(Config)[stage]


def field_comments(cls: type) -> dict[str, str]:
    """The comment of each field of the dataclass `cls` and its bases: the one beside
    the field, else the comment lines right above it, joined into one line."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        names = {field.name for field in dataclasses.fields(klass)}
        source = textwrap.dedent(inspect.getsource(klass))
        above: list[str] = []
        beside: dict[str, str] = {}
        field = None  # the field whose (possibly continued) line the tokens are on
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            col = token.start[1]
            if token.type == tokenize.COMMENT:
                text = token.string.lstrip("#").strip()
                if field is not None:
                    beside[field] = f"{beside[field]} {text}" if field in beside else text
                else:
                    above.append(text)
            elif token.type == tokenize.NEWLINE:
                field = None
            elif token.type == tokenize.NAME and col == 4 and token.string in names:
                field = token.string
                if above:
                    comments[field] = " ".join(above)
                above = []
            elif token.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT) and col <= 4:
                above = []  # a comment above a method or the docstring is no field's
        comments.update(beside)
    return comments


def short_help(flags_type: type, default, *, prog: str, description: str) -> str:
    """One screen: the script's own flags with their comments and defaults, one line per
    stage of the config, and where the rest is."""
    width = max(min(shutil.get_terminal_size().columns, 100), 60)
    usage = f"usage: {prog} [--help [STAGE] | {HELP_ALL}] [FLAGS] [--STAGE.FIELD VALUE ...]"
    lines = textwrap.wrap(usage, width, subsequent_indent="    ", break_on_hyphens=False) + [""]
    for paragraph in description.split("\n"):
        lines += _wrap(paragraph, width) or [""]
    lines += ["", "flags:"]
    comments = field_comments(flags_type)
    hints = typing.get_type_hints(flags_type, include_extras=True)
    for field in dataclasses.fields(flags_type):
        value = getattr(default, field.name)
        if isinstance(value, Config):
            continue
        metavar, shown = _metavar_and_default(hints[field.name], value)
        lines += _two_columns(f"--{field.name} {metavar}".rstrip(),
                              f"{comments.get(field.name, '')} {shown}".strip(), width)
    lines += _two_columns("-h, --help [STAGE]", "this screen; a stage's flags; presets: "
                          f"what each is ({HELP_ALL}: every flag)", width)
    lines += [""] + _wrap("stages: --STAGE.FIELD VALUE sets a field (default: the preset's; "
                          "- or _ alike, tuples space-separated, none for no value); --help "
                          "STAGE lists a stage's flags", width)
    for stage, cls in config_lib.STAGES.items():
        count = len(dataclasses.fields(cls))
        lines += _two_columns(stage, f"{_stage_comment(stage)}: {count} flags, --help {stage}",
                              width, column=12)
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)


def _metavar_and_default(hint, value) -> tuple[str, str]:
    # Flags built with `tyro.conf.arg(metavar=..., help_behavior_hint=...)` say both.
    metavar, shown = None, None
    for extra in getattr(hint, "__metadata__", ()):
        metavar = getattr(extra, "metavar", None) or metavar
        shown = getattr(extra, "help_behavior_hint", None) or shown
    hint = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    if metavar is None:
        types_ = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        metavar = ("{true,false}" if types_[0] is bool
                   else getattr(types_[0], "__name__", str(types_[0])).upper())
    if shown is None:
        text = ("none" if value is None else str(value).lower() if isinstance(value, bool)
                else " ".join(map(str, value)) if isinstance(value, tuple) else str(value))
        shown = f"(default: {text})"
    return metavar, shown


def _two_columns(left: str, text: str, width: int, *, indent: int = 2,
                 column: int = 26) -> list[str]:
    # argparse's layout: the flag, then its help wrapped in a column of its own.
    left = " " * indent + left
    wrapped = _wrap(text, width - column) or [""]
    if len(left) + 2 > column:
        return [left] + [" " * column + line for line in wrapped]
    return [left.ljust(column) + wrapped[0]] + [" " * column + line for line in wrapped[1:]]


def build(config: Config, **overrides) -> Config:
    """`config` with `overrides` (fields given as flags), validated; raises `ConfigError`."""
    return config_lib.validate(config.replace(**overrides))


def refuse_old_flags(argv: Sequence[str], prog: str | None = None) -> None:
    """Ends with one line naming the new spelling of a flat `--config.FIELD` flag (or,
    for a name no field had, the closest field's)."""
    for token in argv:
        if not token.startswith("--config."):
            continue
        flag = token.split("=", 1)[0]
        name = flag[len("--config."):].replace("-", "_")
        try:
            new = "--" + config_lib.path_of(name)
        except ConfigError as e:
            if name in config_lib.REMOVED:
                error(f"{flag}: {e}", prog)
            near = difflib.get_close_matches(name, _field_names(), n=1)
            guess = f"; perhaps you meant --{config_lib.path_of(near[0])}" if near else ""
            error(f"{flag}: no such field; flags are --STAGE.FIELD{guess}", prog)
        error(f"{flag}: flags are grouped by stage; use {new}", prog)


def _field_names() -> list[str]:
    return [field.name for cls in config_lib.STAGES.values()
            for field in dataclasses.fields(cls)]


def pre_parse(argv: Sequence[str], *names: str) -> argparse.Namespace:
    """The values of the flags `names` (e.g. "--preset") in argv, or None each, read before
    the full parser is built: they choose its defaults (the preset, the run to resume)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in names:
        pre.add_argument(name, default=None)
    known, _ = pre.parse_known_args(list(argv))
    return known


@dataclasses.dataclass(frozen=True)
class ConfigFlags:
    """A preset and overrides of any of its fields."""

    preset: Annotated[str, tyro.conf.arg(metavar="NAME")] = "cartpole"  # preset to start from
    config: Annotated[Config, tyro.conf.arg(name="")] = Config()  # defaults: the preset's


def parse_config(argv: Sequence[str] | None = None, *, preset: str = "cartpole",
                 description: str = "MuZero configuration") -> Config:
    """`--preset NAME` and `--STAGE.FIELD VALUE` into a validated `Config`, for scripts
    that need nothing else (experiments use `experiment.main`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = pre_parse(argv, "--preset").preset or preset
    if name not in PRESETS:
        error(f"--preset {name!r}: expected one of {sorted(PRESETS)}")
    flags = parse(ConfigFlags, argv, default=ConfigFlags(name, PRESETS[name]()),
                  description=description)
    try:
        return build(flags.config)
    except ConfigError as e:
        error(str(e))
