"""MkDocs hook: the catalogue pages, generated from ``unfold.catalogue`` at build time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: Any) -> Files:
    from unfold.catalogue import entries
    from unfold.report.entry_page import catalogue_index_markdown, entry_markdown

    all_entries = entries()
    files.append(File.generated(config, "catalogue/index.md", content=catalogue_index_markdown(all_entries)))
    for e in all_entries:
        nb = ROOT / "notebooks" / f"{e.name}.ipynb"
        link = f"../notebooks/{e.name}.ipynb" if nb.exists() else ""
        files.append(File.generated(config, f"catalogue/{e.name}.md", content=entry_markdown(e, link)))
    return files
