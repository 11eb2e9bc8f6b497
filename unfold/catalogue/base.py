"""The catalogue record: one paper's "this architecture is energy minimisation" claim as data.

An :class:`Entry` declares the energy (in unfold's language), how the unfolded layer is built from
``unfold.steps`` (never hand-written), an independent reference implementation of the architecture
(plain torch ops or standard modules, written from the paper), the parameter mapping, the claim
kinds, the assumptions as predicates, and a list of :class:`Check`s.  ``unfold verify``, the tests,
the notebooks and the report all run the same checks and read the same :class:`CheckResult`s.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Optional

import torch

__all__ = [
    "ClaimKind", "CLAIM_KINDS", "RunConfig", "AssumptionResult", "Figure", "CheckResult", "Check",
    "Entry", "EntryReport", "run_entry",
]

ClaimKind = Literal["exact", "descent", "approximate", "asymptotic", "gradient"]
#: ``exact``: equal to float64 precision; ``descent``: energy non-increasing along the forward pass;
#: ``approximate``: measured error reported with the regime where it is small; ``asymptotic``: a
#: limit statement (e.g. directional convergence of training); ``gradient``: a derived gradient
#: agrees with autograd and the explicit-size reference.
CLAIM_KINDS: tuple[str, ...] = ("exact", "descent", "approximate", "asymptotic", "gradient")


@dataclass(frozen=True)
class RunConfig:
    """How to run checks: seed (same seed → identical numbers), dtype, and the quick profile."""

    seed: int = 0
    dtype: torch.dtype = torch.float64
    quick: bool = False

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)


@dataclass
class AssumptionResult:
    """A predicate a claim depends on, evaluated on the data of a check."""

    name: str
    holds: bool
    detail: str = ""


@dataclass
class Figure:
    """A plot as data: named series over a common x axis (``kind`` "line", "semilogy" or "box")."""

    name: str
    title: str
    x: list[float]
    series: dict[str, list[float]]
    xlabel: str = ""
    ylabel: str = ""
    kind: str = "line"
    bands: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


@dataclass
class CheckResult:
    """The outcome of one check.

    ``error`` is the measured quantity compared with ``tol`` (``error <= tol`` passes for exact
    claims; for other kinds ``detail`` says what was compared).  ``assumptions`` lists the
    predicates evaluated on the check's data.  ``data`` holds extra numbers (tables, regimes);
    ``figures`` holds plots.
    """

    entry: str
    check: str
    claim: str
    passed: bool
    error: Optional[float] = None
    tol: Optional[float] = None
    detail: str = ""
    seconds: float = 0.0
    assumptions: list[AssumptionResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One check of an entry: ``run(config) -> CheckResult``."""

    name: str
    claim: str
    description: str
    run: Callable[[RunConfig], CheckResult]
    quick: bool = True  # included in the quick profile


@dataclass(frozen=True)
class Entry:
    """A catalogue entry (see the module docstring)."""

    name: str
    title: str
    source: str
    summary: str
    energy: Callable[[], Any]
    checks: tuple[Check, ...]
    assumptions: tuple[str, ...] = ()
    mapping: str = ""
    notes: str = ""
    order: int = 100  # display order in ``unfold list`` (then by name)

    @property
    def claims(self) -> tuple[str, ...]:
        seen: list[str] = []
        for c in self.checks:
            if c.claim not in seen:
                seen.append(c.claim)
        return tuple(seen)


@dataclass
class EntryReport:
    entry: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def run_entry(entry: Entry, config: RunConfig = RunConfig(), only: Optional[list[str]] = None) -> EntryReport:
    """Run an entry's checks (all, the quick ones when ``config.quick``, or those named in ``only``).

    A check that raises is reported as failed with the error message, never hidden.
    """
    results = []
    for c in entry.checks:
        if only is not None and c.name not in only:
            continue
        if config.quick and not c.quick:
            continue
        t0 = time.perf_counter()
        try:
            r = c.run(config)
        except Exception as exc:  # reported, not swallowed: the check fails with the message
            r = CheckResult(entry.name, c.name, c.claim, False, detail=f"raised {type(exc).__name__}: {exc}")
        r.seconds = time.perf_counter() - t0
        results.append(r)
    return EntryReport(entry.name, results)
