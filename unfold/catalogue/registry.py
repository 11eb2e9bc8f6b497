"""The catalogue registry: every module of ``unfold.catalogue`` that defines ``ENTRY`` (one discovery).

Entries are discovered (no central list to edit) and sorted by ``(Entry.order, Entry.name)``.  A
module that fails to import does not hide the others: it appears as an entry whose single check
fails with the import error, so ``unfold verify`` reports it instead of crashing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from functools import lru_cache
from typing import Optional, Sequence

from ..errors import UndeclaredSymbolError
from .base import Check, CheckResult, Entry, RunConfig

__all__ = ["entries", "get_entry", "entries_named", "module_of"]

#: modules of the package that are machinery, not entries (``_``-prefixed modules are skipped too)
NOT_ENTRIES = frozenset({"base", "claim", "proof", "registry", "runner"})


def _broken_entry(module: str, exc: BaseException) -> Entry:
    """A stand-in for a catalogue module that fails to import: one check that fails with the error."""
    msg = f"importing unfold.catalogue.{module} raised {type(exc).__name__}: {exc}"

    def run(config: RunConfig) -> CheckResult:
        return CheckResult(passed=False, detail=msg)

    return Entry(name=module, title=f"{module} (module failed to import)", source="—", summary=msg,
                 energy=lambda: None, checks=(Check("import", "import", "the module imports", run),),
                 order=10_000)


def _entry_of(module: str) -> Optional[Entry]:
    """The ``ENTRY`` of ``unfold.catalogue.<module>`` (a broken-module stand-in when importing fails)."""
    try:
        mod = importlib.import_module(f"unfold.catalogue.{module}")
    except Exception as exc:
        return _broken_entry(module, exc)
    entry = getattr(mod, "ENTRY", None)
    return entry if isinstance(entry, Entry) else None


def _sorted(found: Sequence[Entry]) -> list[Entry]:
    return sorted(found, key=lambda e: (e.order, e.name))


@lru_cache(maxsize=1)
def _discover() -> tuple[Entry, ...]:
    from .. import catalogue

    found = []
    for info in pkgutil.iter_modules(catalogue.__path__):
        if info.name.startswith("_") or info.name in NOT_ENTRIES:
            continue
        entry = _entry_of(info.name)
        if entry is not None:
            found.append(entry)
    return tuple(_sorted(found))


def entries() -> list[Entry]:
    """Every catalogue entry."""
    return list(_discover())


def get_entry(name: str) -> Entry:
    """The entry called ``name``."""
    for e in _discover():
        if e.name == name:
            return e
    raise UndeclaredSymbolError(f"no catalogue entry {name!r}; entries: {[e.name for e in _discover()]}")


def entries_named(names: Sequence[str]) -> list[Entry]:
    """The entries for ``NAME`` / ``NAME:CHECK`` arguments, importing only their modules when each
    entry lives in ``unfold/catalogue/<name>.py`` (fast start for ``unfold verify NAME``); otherwise,
    or with no names, every entry (:func:`entries`)."""
    wanted = list(dict.fromkeys(n.partition(":")[0] for n in names))
    if not wanted:
        return entries()
    found: list[Entry] = []
    for name in wanted:
        if not name.isidentifier() or name.startswith("_") or name in NOT_ENTRIES:
            return entries()
        entry = _entry_of(name) if importlib.util.find_spec(f"unfold.catalogue.{name}") else None
        if entry is None or entry.name != name:
            return entries()
        found.append(entry)
    return _sorted(found)


def module_of(entry: Entry) -> Optional[str]:
    """The catalogue module defining ``entry`` as its ``ENTRY`` (so a worker process can import it
    by name), or None for entries that exist only in this process."""
    for name, mod in list(sys.modules.items()):
        if name.startswith("unfold.catalogue.") and getattr(mod, "ENTRY", None) is entry:
            return name
    return None
