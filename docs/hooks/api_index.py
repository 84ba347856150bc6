"""MkDocs hook: the table of `muzero_jax`'s public names on docs/reference/muzero_jax.md.

`<!-- generated: top-level -->` becomes one row per name of `muzero_jax.__all__`: the
name, what it is (its docstring's first line) and a cross-reference to where its module
is documented, so that the list is the package's own and cannot fall behind it.
"""

from __future__ import annotations

import inspect
import types

from mkdocs.exceptions import PluginError

# The package is importable at page time: sources.py, the first hook, puts this
# checkout's root on sys.path at startup.


PAGE = "reference/muzero_jax.md"
MARKER = "<!-- generated: top-level -->"


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


def top_level_table() -> str:
    import muzero_jax

    rows = ["| name | what it is |", "|---|---|"]
    for name in muzero_jax.__all__:
        obj = getattr(muzero_jax, name)
        if isinstance(obj, types.ModuleType):
            target, what = obj.__name__, _first_line(obj)
        elif inspect.isfunction(obj) or inspect.isclass(obj):
            target = f"{obj.__module__}.{obj.__qualname__}" if inspect.getdoc(obj) else None
            what = _first_line(obj)
        else:  # a value (PRESETS, __version__): documented with its module
            target, what = None, f"`{type(obj).__name__}`"
            if isinstance(obj, dict):
                what += ": " + ", ".join(f"`{key}`" for key in obj)
        label = f"`mz.{name}`"
        rows.append(f"| {f'[{label}][{target}]' if target else label} | {what} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{PAGE}: the marker {MARKER!r} is missing")
    return markdown.replace(MARKER, top_level_table())
