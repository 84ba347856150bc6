"""Command-line overrides for every `Config` field, with `--help` from config.py's comments.

    python experiments/cartpole.py --preset cartpole --config.num_simulations 8 \
        --config.max_grad_norm none --config.observation_shape 4

Each field `f` of `Config` becomes an option `--config.f VALUE` (or
`--config.f=VALUE`), typed from the field's annotation: ints, floats, strings,
booleans (true/false, yes/no, 1/0), choices for `Literal` fields, `none` for
optional fields, comma-separated ints for tuples, `a:b,c:d` for tuples of
pairs (temperature_schedule). `--help` shows each field's
comment from config.py and its default in the chosen preset. A bad value or an
unknown field ends the program with a message and exit code 2 (argparse's
convention), before anything compiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from muzero_jax import config as config_lib
from muzero_jax.config import PRESETS, Config, ConfigError

PREFIX = "--config."


def field_comments() -> dict[str, str]:
    """Field name -> the comment on its line in `Config`'s source."""
    comments = {}
    pattern = re.compile(r"^\s+(\w+):[^#]*#\s*(.*)$")
    for line in inspect.getsource(Config).splitlines():
        match = pattern.match(line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError(text)


def _converter(annotation: Any) -> tuple[Callable[[str], Any], str]:
    """A str -> value function for a field's type, and the metavar shown in --help."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        convert, metavar = _converter(inner)

        def optional(text: str) -> Any:
            return None if text.strip().lower() == "none" else convert(text)

        optional.__name__ = convert.__name__  # argparse names the type in its errors
        return optional, f"{metavar}|none"
    if origin is Literal:
        choices = [str(a) for a in args]

        def choice(text: str) -> str:
            if text not in choices:
                raise ValueError(text)
            return text

        choice.__name__ = f"choice (one of {', '.join(choices)})"
        return choice, "{" + ",".join(choices) + "}"
    if origin is tuple and typing.get_origin(args[0]) is tuple:
        # Pairs such as temperature_schedule: "0.5:0.5,0.75:0.25" (empty: no pairs).
        first, second = (_converter(a)[0] for a in typing.get_args(args[0]))

        def to_pairs(text: str) -> tuple:
            pairs = [p for p in text.strip("()[] ").split(",") if p.strip()]
            out = []
            for pair in pairs:
                left, sep, right = pair.partition(":")
                if not sep:
                    raise ValueError(text)
                out.append((first(left.strip()), second(right.strip())))
            return tuple(out)

        to_pairs.__name__ = "list of pairs A:B,C:D (e.g. 0.5:0.5,0.75:0.25)"
        return to_pairs, "A:B,C:D,..."
    if origin is tuple:
        element, _ = _converter(args[0])

        def to_tuple(text: str) -> tuple:
            parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
            return tuple(element(p.strip()) for p in parts)

        to_tuple.__name__ = "tuple of ints (e.g. 4,84,84)"
        return to_tuple, "A,B,..."
    if annotation is bool:
        _parse_bool.__name__ = "bool (true/false)"
        return _parse_bool, "true|false"
    if annotation is int:
        return int, "INT"
    if annotation is float:
        return float, "FLOAT"
    if annotation is str:
        return str, "STR"
    raise TypeError(f"no command-line parser for config type {annotation!r}")


def add_config_arguments(parser: argparse.ArgumentParser, defaults: Config) -> None:
    """Adds `--config.FIELD` for every field of `Config`, documented from config.py."""
    hints = typing.get_type_hints(Config)
    comments = field_comments()
    group = parser.add_argument_group(
        "config overrides", "every Config field; defaults are the preset's")
    for f in dataclasses.fields(Config):
        convert, metavar = _converter(hints[f.name])
        comment = comments.get(f.name, "")
        default = getattr(defaults, f.name)
        group.add_argument(PREFIX + f.name, dest="config." + f.name, type=convert,
                           metavar=metavar, default=argparse.SUPPRESS,
                           help=f"{comment} (default: {default!r})".replace("%", "%%"))


def check_unknown_fields(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Exits (code 2) naming any `--config.NAME` that is not a field, with a suggestion."""
    names = [f.name for f in dataclasses.fields(Config)]
    for arg in argv:
        if arg.startswith(PREFIX):
            name = arg[len(PREFIX):].split("=", 1)[0]
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
                parser.error(f"unknown config field {name!r}{hint} (see --help for all fields)")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The `--config.FIELD` values given on the command line, by field name."""
    return {key[len("config."):]: value for key, value in vars(args).items()
            if key.startswith("config.")}


def preset_from(argv: Sequence[str], default: str) -> str:
    """The `--preset NAME` in argv (or `default`), read before the full parser is built."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=default)
    known, _ = pre.parse_known_args(argv)
    return known.preset


def add_preset_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--preset", default=default, choices=sorted(PRESETS),
                        help=f"named configuration to start from (default: {default})")


def build(parser: argparse.ArgumentParser, preset: str, overrides: dict[str, Any],
          base: Config | None = None) -> Config:
    """`base` (or the preset) with `overrides`, validated; a bad value exits with code 2."""
    try:
        cfg = (dataclasses.replace(base, **overrides) if base is not None
               else PRESETS[preset](**overrides))
        return config_lib.validate(cfg)
    except (ConfigError, TypeError) as e:
        parser.error(str(e))
    raise AssertionError("unreachable")  # parser.error exits


def parse(argv: Sequence[str] | None = None, *, preset: str = "cartpole",
          description: str | None = None) -> tuple[Config, argparse.Namespace]:
    """Parses `--preset` and `--config.FIELD` options into a validated `Config`.

    For scripts that need nothing else; experiments with flags of their own call
    `add_preset_argument`, `add_config_arguments`, `check_unknown_fields` and `build`.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=description)
    add_preset_argument(parser, preset)
    chosen = preset_from(argv, preset)
    if chosen not in PRESETS:
        parser.error(f"--preset {chosen!r}: expected one of {sorted(PRESETS)}")
    add_config_arguments(parser, PRESETS[chosen]())
    check_unknown_fields(parser, argv)
    args = parser.parse_args(argv)
    return build(parser, args.preset, overrides_from(args)), args
