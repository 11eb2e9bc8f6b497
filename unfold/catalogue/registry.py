"""The catalogue registry: every module of ``unfold.catalogue`` that defines ``ENTRY``.

Entries are discovered (no central list to edit) and sorted by ``(Entry.order, Entry.name)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from ..errors import UndeclaredSymbolError
from .base import Entry

__all__ = ["entries", "get_entry"]

_NOT_ENTRIES = {"base", "registry", "proof"}


@lru_cache(maxsize=1)
def _discover() -> tuple[Entry, ...]:
    from .. import catalogue

    found = []
    for info in pkgutil.iter_modules(catalogue.__path__):
        if info.name.startswith("_") or info.name in _NOT_ENTRIES:
            continue
        mod = importlib.import_module(f"unfold.catalogue.{info.name}")
        entry = getattr(mod, "ENTRY", None)
        if isinstance(entry, Entry):
            found.append(entry)
    return tuple(sorted(found, key=lambda e: (e.order, e.name)))


def entries() -> list[Entry]:
    """Every catalogue entry."""
    return list(_discover())


def get_entry(name: str) -> Entry:
    """The entry called ``name``."""
    for e in _discover():
        if e.name == name:
            return e
    raise UndeclaredSymbolError(f"no catalogue entry {name!r}; entries: {[e.name for e in _discover()]}")
