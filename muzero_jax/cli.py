"""The command line: flags from dataclasses, every `Config` field as `--config.FIELD VALUE`.

    python experiments/train.py --env CartPole-v1 --search.num_simulations 8 \
        --learner.max_grad_norm none --env.observation_shape 4

tyro (https://brentyi.github.io/tyro/) builds the parser from the dataclasses
themselves: a field's type gives its parser and metavar (`Literal` fields take one
of their choices, `X | None` fields also `none`), its comment in the source is its
`--help` text, shown beside its default (the chosen preset's), a nested dataclass
gets a prefix (`--config.`), a misspelt flag gets "Perhaps you meant", and `-` and
`_` are interchangeable in flag names. Tuples take their items space-separated:
`--env.observation_shape 4 84 84`, and `--acting.temperature_schedule 0.5 0.5
0.75 0.25` for ((0.5, 0.5), (0.75, 0.25)); a bare `--acting.temperature_schedule`
is ().

What we add to tyro: booleans and None in any case (`true`, `False`, `none`, as
config.json and Python spell them), and errors on one line, `PROG: error: ...`
with exit code 2 (argparse's convention; tyro draws a box), before anything
compiles.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import re
import sys
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


def error(message: str, prog: str | None = None, *, code: int = 2) -> NoReturn:
    """Ends the program as argparse does: `PROG: error: MESSAGE` on one line, exit `code`."""
    prog = prog or os.path.basename(sys.argv[0])
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
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


def parse(flags_type: type[T], argv: Sequence[str], *, default: T, description: str,
          prog: str | None = None) -> T:
    """The flags of `flags_type` (a dataclass) from argv, over the values in `default`.

    `--help` prints every field with its comment and its value in `default`, then
    exits 0; a bad flag or value exits 2 with one line (`error`).
    """
    prog = prog or os.path.basename(sys.argv[0])
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


def build(config: Config, **overrides) -> Config:
    """`config` with `overrides` (fields given as flags), validated; raises `ConfigError`."""
    return config_lib.validate(config.replace(**overrides))


def refuse_old_flags(argv: Sequence[str]) -> None:
    """Ends with one line naming the new spelling of a flat `--config.FIELD` flag."""
    for token in argv:
        if token.startswith("--config."):
            name = token.split("=", 1)[0][len("--config."):].replace("-", "_")
            try:
                new = "--" + config_lib.path_of(name)
            except ConfigError as e:
                error(f"{token}: flags are grouped by stage now (--STAGE.FIELD); {e}")
            error(f"{token}: flags are grouped by stage now; use {new}")


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

    preset: str = "cartpole"  # named configuration to start from
    config: Annotated[Config, tyro.conf.arg(name="")] = Config()  # defaults: the preset's


def parse_config(argv: Sequence[str] | None = None, *, preset: str = "cartpole",
                 description: str = "MuZero configuration") -> Config:
    """`--preset NAME` and `--config.FIELD VALUE` into a validated `Config`, for scripts
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
