"""The record of one reproduced figure: measured criteria (asserted or reported) and the figures.

A :class:`Criterion` is a number measured on a trained model against a bound.  ``asserted``
criteria are the claims the experiment stands behind (``unfold reproduce`` exits non-zero when one
fails); ``asserted=False`` marks a paper's *trend* that is measured and reported either way, so a
trained model that does not show it is said so, with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..catalogue.base import Figure

__all__ = ["Criterion", "Experiment", "ExperimentResult", "Profile"]


@dataclass
class Criterion:
    """``measured (sense) bound``, e.g. test accuracy ≥ 0.93."""

    name: str
    measured: float
    bound: float
    sense: str  # "≥" or "≤"
    asserted: bool = True
    detail: str = ""

    @property
    def passed(self) -> bool:
        m = self.measured
        return bool(m == m and (m >= self.bound if self.sense == "≥" else m <= self.bound))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "measured": self.measured, "bound": self.bound, "sense": self.sense,
                "asserted": self.asserted, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Profile:
    """``quick``: the reduced version the test suite runs; ``seed``; ``progress``: tqdm bars;
    ``threads``: torch's intra-op threads while the experiments run (the models are small: on a
    shared 2-core machine a second thread measured 2–6× more CPU time per epoch, not less wall time)."""

    quick: bool = False
    seed: int = 0
    progress: bool = False
    threads: int = 1


@dataclass
class ExperimentResult:
    """What an experiment measured: criteria, figures, notes, seconds."""

    name: str
    title: str
    source: str
    criteria: list[Criterion] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria if c.asserted)

    def criterion(self, name: str) -> Criterion:
        for c in self.criteria:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "source": self.source, "passed": self.passed,
                "criteria": [c.as_dict() for c in self.criteria], "notes": list(self.notes),
                "figures": [{"name": f.name, "title": f.title, "x": list(f.x),
                             "series": {k: list(v) for k, v in f.series.items()}} for f in self.figures]}


@dataclass(frozen=True)
class Experiment:
    """A named experiment: ``run(profile) -> ExperimentResult``."""

    name: str
    title: str
    run: Callable[[Profile], ExperimentResult]
