"""One Markdown page per catalogue entry, generated from the entry's data (the documentation site
builds its catalogue section from :func:`entry_markdown`; a new entry gets a page without edits).

A page states the source, the summary, the energy, every check with its claim kind and the scope
of the proofs behind it, every proof statement with its scope and method, the assumptions, the
parameter mapping and the conventions (the entry's notes).
"""

from __future__ import annotations

from typing import Sequence

from ..catalogue.base import Entry
from ..catalogue._proof import PROOF_SCOPES
from .write import energy_text

__all__ = ["entry_markdown", "catalogue_index_markdown"]


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def entry_markdown(entry: Entry, notebook: str = "") -> str:
    """The page of ``entry`` (``notebook``: a relative link to its derivation notebook, if any)."""
    m = [f"# {entry.title}", "", f"`{entry.name}` · {entry.source}", "", entry.summary, ""]
    if notebook:
        m += [f"Derivation and plots: [the {entry.name} notebook]({notebook}).", ""]
    et = energy_text(entry)
    if et:
        m += ["## Energy", "", "```text", et, "```", ""]
    m += ["## Checks", "", "Run by `unfold verify " + entry.name + "`.", "",
          "| check | claim | proof scope | what is compared |", "|---|---|---|---|"]
    for c in entry.checks:
        scope = entry.proof_scope(c.name) or "—"
        m.append(f"| `{c.name}` | {c.claim} | {scope} | {_cell(c.description)} |")
    m.append("")
    if entry.proofs:
        m += ["## Symbolic proofs", "",
              f"Proved by `proofs/proof_{entry.name}.py`. Scopes, strongest first: "
              + ", ".join(f"**{s}**" for s in PROOF_SCOPES) + " (see the README, \"What proved means here\").", "",
              "| statement | scope | method | backs |", "|---|---|---|---|"]
        for p in entry.proofs:
            backs = ", ".join(f"`{b}`" for b in p.backs) or "(lemma)"
            m.append(f"| {_cell(p.statement)} | {p.scope} | {_cell(p.method)} | {backs} |")
        m.append("")
    if entry.assumptions:
        m += ["## Assumptions", ""] + [f"- {a}" for a in entry.assumptions] + [""]
    if entry.mapping:
        m += ["## Parameter mapping", "", entry.mapping, ""]
    if entry.notes:
        m += ["## Conventions and notes", "", entry.notes, ""]
    return "\n".join(m)


def catalogue_index_markdown(all_entries: Sequence[Entry]) -> str:
    """The catalogue's index page: one row per entry with its claim kinds and proof scopes."""
    m = ["# Catalogue", "", "Each entry is one paper's \"this architecture is energy minimisation\" result, "
         "checked by `unfold verify`.", "", "| entry | source | claims | proof scopes |", "|---|---|---|---|"]
    for e in all_entries:
        scopes = sorted({p.scope for p in e.proofs}, key=PROOF_SCOPES.index)
        m.append(f"| [{e.name}]({e.name}.md) | {_cell(e.source)} | {', '.join(e.claims)} | "
                 f"{', '.join(scopes) or '—'} |")
    m.append("")
    return "\n".join(m)
