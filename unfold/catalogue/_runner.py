"""Running catalogue checks: selection (``entry`` / ``entry:check``), the quick profile, reseeding,
names filled in, a check that raises reported as failed, and a process pool for ``--jobs``.

Every way of running checks — ``unfold verify``, the tests, the notebooks, the report — goes
through :func:`run_entry` (one entry, in this process) or :func:`run_checks` (a selection, with
progress and worker processes); both give identical numbers for the same :class:`RunConfig`.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence

import torch

from .base import CheckLike, CheckResult, Entry, EntryReport, RunConfig
from .registry import module_of

__all__ = ["run_entry", "run_check", "run_checks", "select", "RunSummary", "Progress"]


class Progress(Protocol):
    """What :func:`run_checks` reports to (``unfold.report.progress.Progress`` implements it)."""

    total: int

    def start(self, label: str) -> None: ...
    def done(self, label: str, passed: bool) -> None: ...
    def close(self) -> None: ...


def run_check(entry: Entry, check: CheckLike, config: RunConfig) -> CheckResult:
    """Run one check: reseed torch from ``config.seed``, time it, fill in the entry, check and claim
    names.  A check that raises is reported as failed with the error message, never hidden."""
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    try:
        r = check.run(config)
    except Exception as exc:  # reported, not swallowed: the check fails with the message
        r = CheckResult(passed=False, detail=f"raised {type(exc).__name__}: {exc}")
    r.seconds = time.perf_counter() - t0
    r.entry, r.check, r.claim = entry.name, check.name, check.claim
    r.proof = entry.proof_scope(check.name)
    return r


def _selected(entry: Entry, only: Optional[Sequence[str]], quick: bool) -> list[CheckLike]:
    """The checks named in ``only`` (any profile), else all, or the quick ones under ``quick``."""
    if only is not None:
        return [c for c in entry.checks if c.name in only]
    return [c for c in entry.checks if c.quick or not quick]


def run_entry(entry: Entry, config: RunConfig = RunConfig(), only: Optional[Sequence[str]] = None) -> EntryReport:
    """Run an entry's checks (all, the quick ones when ``config.quick``, or those named in ``only``)."""
    return EntryReport(entry.name, [run_check(entry, c, config) for c in _selected(entry, only, config.quick)])


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


@dataclass
class RunSummary:
    """Everything one ``unfold verify`` run produced."""

    config: RunConfig
    entries: list[Entry]
    reports: list[EntryReport]
    seconds: float = 0.0
    started: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    """The run was stopped by Ctrl-C (``KeyboardInterrupt``); ``results`` are the checks that finished."""
    not_run: list[str] = field(default_factory=list)
    """``entry:check`` of the checks that did not finish because the run was interrupted."""

    @property
    def results(self) -> list[CheckResult]:
        return [r for rep in self.reports for r in rep.results]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures


def _environment() -> dict[str, str]:
    import sympy

    from .._version import __version__

    return {
        "unfold": __version__, "torch": torch.__version__, "sympy": sympy.__version__,
        "python": platform.python_version(), "threads": str(torch.get_num_threads()),
    }


def _run_in_worker(module: str, check: str, config: RunConfig) -> CheckResult:
    """Run one check of ``module``'s ``ENTRY`` in a worker process (same numbers as in this one)."""
    import importlib

    entry: Entry = importlib.import_module(module).ENTRY
    (c,) = [c for c in entry.checks if c.name == check]
    return run_check(entry, c, config)


def _init_worker() -> None:
    torch.set_num_threads(1)  # the processes share the cores; small tensors never thread anyway


def _run_pool(
    todo: Sequence[tuple[Entry, CheckLike]],
    remote: set[int],
    modules: dict[str, str],
    config: RunConfig,
    jobs: int,
    progress: Optional[Progress],
    finish: Callable[[int, CheckResult], None],
) -> None:
    """Run the checks ``remote`` (indices into ``todo``) in ``jobs`` spawned worker processes.

    On ``KeyboardInterrupt`` the checks not yet started are cancelled and the workers are not waited
    for; the interrupt is re-raised to :func:`run_checks`, which keeps the results already finished.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # fork is unsafe after torch/OpenMP start-up
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker)
    try:
        futures = {pool.submit(_run_in_worker, modules[todo[i][0].name], todo[i][1].name, config): i
                   for i in sorted(remote)}
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
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_checks(
    selection: Sequence[tuple[Entry, Optional[list[str]]]],
    config: RunConfig = RunConfig(),
    progress: Optional[Progress] = None,
    jobs: int = 1,
) -> RunSummary:
    """Run every selected check (the quick profile when ``config.quick``, except checks named
    explicitly) with progress; ``jobs > 1`` runs them in that many worker processes.

    Every check runs through :func:`run_check` with the same ``config`` (seed, dtype and profile),
    and results are collected in catalogue order, so the numbers do not depend on ``jobs``.
    A ``KeyboardInterrupt`` (Ctrl-C) stops the run: the checks that finished are returned as usual
    and the others are listed in :attr:`RunSummary.not_run`.
    """
    todo = [(e, c) for e, only in selection for c in _selected(e, only, config.quick)]
    if progress is not None:
        progress.total = max(len(todo), 1)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out: list[Optional[CheckResult]] = [None] * len(todo)
    modules = {e.name: m for e, _ in selection if (m := module_of(e)) is not None}
    remote = {i for i, (e, _) in enumerate(todo) if e.name in modules} if jobs > 1 else set()

    def finish(i: int, r: CheckResult) -> None:
        out[i] = r
        if progress is not None:
            progress.done(f"{todo[i][0].name}: {todo[i][1].name}", r.passed)

    interrupted = False
    try:
        for i, (e, c) in enumerate(todo):
            if i in remote:
                continue
            if progress is not None:
                progress.start(f"{e.name}: {c.name}")
            finish(i, run_check(e, c, config))
        if remote:
            _run_pool(todo, remote, modules, config, jobs, progress, finish)
    except KeyboardInterrupt:  # Ctrl-C: keep what finished, list the rest as not run
        interrupted = True
    if progress is not None:
        progress.close()
    reports: dict[str, EntryReport] = {}
    for (e, _), res in zip(todo, out):
        if res is not None:
            reports.setdefault(e.name, EntryReport(e.name, [])).results.append(res)
    ents = [e for e, _ in selection if e.name in reports]
    not_run = [f"{e.name}:{c.name}" for (e, c), res in zip(todo, out) if res is None]
    return RunSummary(
        config, ents, [reports[e.name] for e in ents], time.perf_counter() - t0, started, _environment(),
        interrupted, not_run,
    )
