"""MkDocs hook: the tables of docs/configuration.md, generated from the code at build time.

`<!-- generated: presets -->` becomes one section per preset of `muzero_jax.PRESETS`
(its docstring's first line and every field it sets away from `Config()`'s default);
`<!-- generated: fields -->` one table per stage of `muzero_jax.config.Config` (each
field's flag, type, default and the comment beside it in muzero_jax/config.py, through
`muzero_jax.cli.field_comments`, the text `--help` shows). A page without both markers
fails the build, so the page cannot fall out of step with the config classes.
"""

from __future__ import annotations

import dataclasses
import html

from mkdocs.exceptions import PluginError

# The package is importable at page time: sources.py, the first hook, puts this
# checkout's root on sys.path at startup.


PAGE = "configuration.md"
PRESETS_MARKER = "<!-- generated: presets -->"
FIELDS_MARKER = "<!-- generated: fields -->"


def _cell(value: object) -> str:
    """Markdown table cell text: pipes escaped, code in backticks."""
    return str(value).replace("|", "\\|")


def _code(value: object) -> str:
    """Code in a table cell: an HTML code element, since a pipe escaped inside backticks
    would show its backslash."""
    return f"<code>{html.escape(str(value)).replace('|', '&#124;')}</code>"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def preset_sections() -> str:
    from muzero_jax import PRESETS
    from muzero_jax.config import STAGES, Config

    default = Config()
    lines = ["| preset | what it is |", "|---|---|"]
    lines += [f"| [`{name}`](#preset-{name}) | {_cell(_first_line(make.__doc__))} |"
              for name, make in PRESETS.items()]
    for name, make in PRESETS.items():
        config = make()
        lines += ["", f"### `{name}` {{#preset-{name}}}", "",
                  _cell(_first_line(make.__doc__)), "",
                  f"`muzero_jax.presets.{make.__name__}`: the fields it sets "
                  f"(all others keep the defaults below).", "",
                  "| field | value | default |", "|---|---|---|"]
        for stage in STAGES:
            mine, base = getattr(config, stage), getattr(default, stage)
            for field in dataclasses.fields(mine):
                value, was = getattr(mine, field.name), getattr(base, field.name)
                if value != was:
                    lines.append(f"| `{stage}.{field.name}` | {_code(repr(value))} | "
                                 f"{_code(repr(was))} |")
    return "\n".join(lines)


def field_tables() -> str:
    from muzero_jax.cli import field_comments
    from muzero_jax.config import STAGES, Config

    default = Config()
    lines: list[str] = []
    for stage, cls in STAGES.items():
        comments = field_comments(cls)
        doc = (cls.__doc__ or "").strip()
        head, _, rest = doc.partition("\n\n")
        lines += [f"### `{stage}`: {cls.__name__} {{#stage-{stage}}}", "",
                  head.replace("\n", " "), ""]
        if rest:
            lines += [" ".join(rest.split()), ""]
        lines += ["| flag | type | default | what it is |", "|---|---|---|---|"]
        for field in dataclasses.fields(cls):
            value = getattr(getattr(default, stage), field.name)
            lines.append(f"| `--{stage}.{field.name}` | {_code(field.type)} | "
                         f"{_code(repr(value))} | {_cell(comments.get(field.name, ''))} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    for marker in (PRESETS_MARKER, FIELDS_MARKER):
        if marker not in markdown:
            raise PluginError(f"docs/{PAGE}: the marker {marker!r} is missing; expected "
                              "both generated sections")
    return (markdown.replace(PRESETS_MARKER, preset_sections())
            .replace(FIELDS_MARKER, field_tables()))
