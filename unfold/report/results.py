"""Running the selected catalogue checks, and their results as JSON-ready data.

``results.json`` holds only what the seed determines (errors, verdicts, assumptions, data, figure
data), so two runs with the same seed give byte-identical files; wall-clock times go to
``timings.json`` — ``CheckResult.seconds`` and any ``"seconds"`` key inside ``CheckResult.data``
(the convention for timings a check records).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from ..catalogue.base import Check, CheckResult, Entry, EntryReport, RunConfig, run_entry
from .progress import Progress

__all__ = ["RunSummary", "load_entries", "entries_named", "run_checks", "results_json", "timings_json", "jsonable", "select"]


def _broken_entry(module: str, exc: BaseException) -> Entry:
    """A stand-in for a catalogue module that fails to import: one check that fails with the error."""
    msg = f"importing unfold.catalogue.{module} raised {type(exc).__name__}: {exc}"

    def run(config: RunConfig) -> CheckResult:
        return CheckResult(module, "import", "import", False, detail=msg)

    return Entry(name=module, title=f"{module} (module failed to import)", source="—", summary=msg,
                 energy=lambda: None, checks=(Check("import", "import", "the module imports", run),),
                 order=10_000)


def load_entries() -> list[Entry]:
    """Every catalogue entry (:func:`unfold.catalogue.registry.entries`).

    When a catalogue module fails to import, the others still load and the broken one appears as
    an entry whose single check fails with the import error, so ``unfold verify`` reports it
    instead of crashing.
    """
    from ..catalogue import registry

    try:
        return registry.entries()
    except Exception:
        pass
    import importlib
    import pkgutil

    from .. import catalogue

    found: list[Entry] = []
    for info in pkgutil.iter_modules(catalogue.__path__):
        if info.name.startswith("_") or info.name in registry._NOT_ENTRIES:
            continue
        try:
            mod = importlib.import_module(f"unfold.catalogue.{info.name}")
        except Exception as exc:
            found.append(_broken_entry(info.name, exc))
            continue
        entry = getattr(mod, "ENTRY", None)
        if isinstance(entry, Entry):
            found.append(entry)
    return sorted(found, key=lambda e: (e.order, e.name))


@dataclass
class RunSummary:
    """Everything one ``unfold verify`` run produced."""

    config: RunConfig
    entries: list[Entry]
    reports: list[EntryReport]
    seconds: float = 0.0
    started: str = ""
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def results(self) -> list[CheckResult]:
        return [r for rep in self.reports for r in rep.results]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures


def entries_named(names: Sequence[str]) -> list[Entry]:
    """The entries for ``NAME`` arguments, importing only their modules when each entry lives in
    ``unfold/catalogue/<name>.py`` (fast start for ``unfold verify NAME``); otherwise, or with no
    names, every entry (:func:`load_entries`)."""
    import importlib

    wanted = list(dict.fromkeys(n.partition(":")[0] for n in names))
    found: list[Entry] = []
    for name in wanted:
        if not name.isidentifier() or name in ("base", "registry"):
            return load_entries()
        try:
            entry = getattr(importlib.import_module(f"unfold.catalogue.{name}"), "ENTRY", None)
        except ImportError:
            return load_entries()
        if not isinstance(entry, Entry) or entry.name != name:
            return load_entries()
        found.append(entry)
    return sorted(found, key=lambda e: (e.order, e.name)) if wanted else load_entries()


def select(all_entries: Sequence[Entry], names: Sequence[str]) -> list[tuple[Entry, Optional[list[str]]]]:
    """Resolve ``NAME`` arguments: ``entry`` (all its checks) or ``entry:check``.

    Raises ``KeyError`` with the available names when a name matches nothing.
    """
    if not names:
        return [(e, None) for e in all_entries]
    by_name = {e.name: e for e in all_entries}
    chosen: dict[str, Optional[list[str]]] = {}
    for raw in names:
        ename, _, cname = raw.partition(":")
        if ename not in by_name:
            raise KeyError(f"no catalogue entry {ename!r}; entries: {', '.join(by_name)}")
        if cname:
            checks = [c.name for c in by_name[ename].checks]
            if cname not in checks:
                raise KeyError(f"entry {ename!r} has no check {cname!r}; checks: {', '.join(checks)}")
            prev = chosen.get(ename, [])
            if prev is not None:
                chosen[ename] = prev + [cname]
        else:
            chosen[ename] = None
    return [(e, chosen[e.name]) for e in all_entries if e.name in chosen]


def _environment() -> dict[str, str]:
    import sympy

    from .. import __version__

    return {
        "unfold": __version__, "torch": torch.__version__, "sympy": sympy.__version__,
        "python": platform.python_version(), "threads": str(torch.get_num_threads()),
    }


def _module_of(entry: Entry) -> Optional[str]:
    """The catalogue module defining ``entry`` as its ``ENTRY`` (so a worker process can import
    it by name), or None for entries that exist only in this process."""
    import sys

    for c in entry.checks:
        mod = getattr(c.run, "__module__", None)
        if mod and getattr(sys.modules.get(mod), "ENTRY", None) is entry:
            return mod
    return None


def _run_one(module: Optional[str], entry: Entry | None, check: str, seed: int, dtype: str) -> CheckResult:
    """Run one check (in this process or a worker): reseed torch, run through ``run_entry``."""
    import importlib

    if entry is None:
        assert module is not None
        entry = importlib.import_module(module).ENTRY
    torch.manual_seed(seed)
    rep = run_entry(entry, RunConfig(seed, getattr(torch, dtype), False), only=[check])
    return rep.results[0]


def _init_worker() -> None:
    torch.set_num_threads(1)  # the processes share the cores; small tensors never thread anyway


def run_checks(
    selection: Sequence[tuple[Entry, Optional[list[str]]]],
    config: RunConfig = RunConfig(),
    progress: Optional[Progress] = None,
    jobs: int = 1,
) -> RunSummary:
    """Run every selected check (respecting ``config.quick``) with progress; ``jobs > 1`` runs
    them in that many worker processes.

    Each check runs through :func:`unfold.catalogue.base.run_entry`, so a check that raises is
    reported as failed with its message.  The torch seed is reset before every check, and results
    are collected in catalogue order, so the numbers do not depend on ``jobs``.
    """
    todo = [
        (e, c) for e, only in selection for c in e.checks
        if (only is None or c.name in only) and (not config.quick or c.quick or only is not None)
    ]
    if progress is not None:
        progress.total = max(len(todo), 1)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    dtype = str(config.dtype).replace("torch.", "")
    out: list[Optional[CheckResult]] = [None] * len(todo)
    modules = {e.name: _module_of(e) for e, _ in selection}
    remote = [i for i, (e, _) in enumerate(todo) if modules[e.name] is not None] if jobs > 1 else []
    local = [i for i in range(len(todo)) if i not in set(remote)]

    def finish(i: int, r: CheckResult) -> None:
        out[i] = r
        if progress is not None:
            progress.done(f"{todo[i][0].name}: {todo[i][1].name}", r.passed)

    for i in local:
        e, c = todo[i]
        if progress is not None:
            progress.start(f"{e.name}: {c.name}")
        finish(i, _run_one(None, e, c.name, config.seed, dtype))
    if remote:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # fork is unsafe after torch/OpenMP start-up
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {
                pool.submit(_run_one, modules[todo[i][0].name], None, todo[i][1].name, config.seed, dtype): i
                for i in remote
            }
            if progress is not None:
                progress.start(f"{len(remote)} checks in {jobs} processes")
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # a worker died: reported as a failed check
                    e, c = todo[i]
                    r = CheckResult(e.name, c.name, c.claim, False, detail=f"worker failed: {type(exc).__name__}: {exc}")
                finish(i, r)
    if progress is not None:
        progress.close()
    reports: dict[str, EntryReport] = {}
    for (e, _), r in zip(todo, out):
        assert r is not None
        reports.setdefault(e.name, EntryReport(e.name, [])).results.append(r)
    ents = [e for e, _ in selection if e.name in reports]
    return RunSummary(
        config, ents, [reports[e.name] for e in ents], time.perf_counter() - t0, started, _environment()
    )


def jsonable(x: Any) -> Any:
    """Plain JSON data: tensors and arrays become lists, non-finite floats become strings."""
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist())
    if isinstance(x, torch.dtype):
        return str(x).replace("torch.", "")
    if hasattr(x, "tolist"):  # numpy
        return jsonable(x.tolist())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return {k: jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return str(x)


def _split_seconds(x: Any) -> tuple[Any, Any]:
    """(``x`` without any ``"seconds"`` key, the removed timings) — for JSON-ready data."""
    if isinstance(x, dict):
        kept, timed = {}, {}
        for k, v in x.items():
            if k == "seconds":
                timed[k] = v
                continue
            kv, tv = _split_seconds(v)
            kept[k] = kv
            if tv not in (None, {}):
                timed[k] = tv
        return kept, timed
    if isinstance(x, list):
        parts = [_split_seconds(v) for v in x]
        timed_list = [t for _, t in parts]
        return [k for k, _ in parts], (timed_list if any(t not in (None, {}) for t in timed_list) else None)
    return x, None


def _result(r: CheckResult) -> dict[str, Any]:
    d = jsonable(r)
    d.pop("seconds", None)
    d["data"], _ = _split_seconds(d["data"])
    return d


def results_json(s: RunSummary) -> dict[str, Any]:
    """Deterministic results (no timings): same seed and dtype → identical data."""
    return {
        "config": {"seed": s.config.seed, "dtype": jsonable(s.config.dtype), "quick": s.config.quick},
        "summary": {"checks": len(s.results), "passed": len(s.results) - len(s.failures),
                    "failed": len(s.failures)},
        "entries": [
            {
                "name": e.name, "title": e.title, "source": e.source, "claims": list(e.claims),
                "assumptions": list(e.assumptions), "passed": rep.passed,
                "checks": [_result(r) for r in rep.results],
            }
            for e, rep in zip(s.entries, s.reports)
        ],
    }


def timings_json(s: RunSummary) -> dict[str, Any]:
    """Wall-clock times and environment (not deterministic; kept out of results.json)."""
    return {
        "started": s.started, "seconds": s.seconds, "environment": s.environment,
        "checks": {f"{r.entry}:{r.check}": r.seconds for r in s.results},
        "data": {
            f"{r.entry}:{r.check}": t for r in s.results
            for t in [_split_seconds(jsonable(r.data))[1]] if t
        },
    }
