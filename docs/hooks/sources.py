"""MkDocs hook: pages whose source lives outside docs/, so that the site shows the very
files users run and read in the repository.

`quickstart.ipynb` is examples/quickstart.ipynb (rendered by mkdocs-jupyter with its saved
outputs, not executed), `changelog.md` is CHANGELOG.md. Runs before the other plugins'
`on_files`, so that mkdocs-jupyter sees the notebook as one of the docs.
"""

from __future__ import annotations

import pathlib
import sys

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = pathlib.Path(__file__).resolve().parents[2]


def on_startup(command, dirty) -> None:
    # For every hook: config_tables.py and api_index.py import the package at page time.
    # The package of this checkout, whatever else is installed: the site documents the
    # tree it is built from (mkdocs takes back what a hook does to sys.path on import).
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@event_priority(100)
def on_files(files: Files, config) -> Files:
    # A File with its own src_dir, not a generated one: mkdocs-jupyter reads the
    # notebook from `abs_src_path`, which a generated File leaves unset.
    files.append(File("quickstart.ipynb", src_dir=str(ROOT / "examples"),
                      dest_dir=config["site_dir"],
                      use_directory_urls=config["use_directory_urls"]))
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
