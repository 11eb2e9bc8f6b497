"""The catalogue registry: entries by name, in a stable order."""

from __future__ import annotations

import importlib

from ..errors import UndeclaredSymbolError
from .base import Entry

__all__ = ["ENTRY_MODULES", "entries", "get_entry"]

#: Modules under ``unfold.catalogue`` that each define ``ENTRY``; the order is the display order.
ENTRY_MODULES: tuple[str, ...] = ()


def entries() -> list[Entry]:
    """Every catalogue entry, importing its module on first use."""
    out = []
    for mod in ENTRY_MODULES:
        out.append(importlib.import_module(f"unfold.catalogue.{mod}").ENTRY)
    return out


def get_entry(name: str) -> Entry:
    """The entry called ``name``."""
    for e in entries():
        if e.name == name:
            return e
    raise UndeclaredSymbolError(f"no catalogue entry {name!r}; entries: {[e.name for e in entries()]}")
