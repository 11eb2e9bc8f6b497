r"""The catalogue record: one paper's "this architecture is energy minimisation" claim as data.

An :class:`Entry` declares the energy (in unfold's language), the parameter mapping, and its checks:
typed :class:`~unfold.catalogue._claim.Claim`\ s (the generated layer, the independent reference, how
inputs are drawn, the float64 tolerance, the assumptions as predicates, the controls) and, where a
claim needs more than a layer-versus-reference comparison, free-form :class:`Check`\ s.  The runner
(:mod:`unfold.catalogue._runner`) fills in the names and the precision rule; ``unfold verify``, the
tests, the notebooks and the report all run the same checks and read the same :class:`CheckResult`\ s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Protocol, Sequence

import torch

from ._proof import Proof, strongest_scope

__all__ = [
    "ClaimKind", "CLAIM_KINDS", "EPS64", "EXACT_CAP", "RunConfig", "AssumptionResult", "Figure", "CheckResult", "Check",
    "CheckLike", "ControlResult", "Entry", "EntryReport",
]

ClaimKind = Literal["exact", "descent", "approximate", "asymptotic", "gradient"]
#: ``exact``: equal to the working precision (float64 by default; tolerances scale by
#: :meth:`RunConfig.tol`); ``descent``: energy non-increasing along the forward pass;
#: ``approximate``: measured error reported with the regime where it is small; ``asymptotic``: a
#: limit statement (e.g. directional convergence of training); ``gradient``: a derived gradient
#: agrees with autograd and the explicit-size reference.
CLAIM_KINDS: tuple[str, ...] = ("exact", "descent", "approximate", "asymptotic", "gradient")


#: Unit roundoff reference: every catalogue tolerance is written for float64 (``ε₆₄ = 2⁻⁵²``).
EPS64: float = torch.finfo(torch.float64).eps
#: The largest tolerance :meth:`RunConfig.tol` gives an exact claim at a lower precision.
EXACT_CAP: float = 1e-3


@dataclass(frozen=True)
class RunConfig:
    """How to run checks: seed (same seed → identical numbers), dtype, and the quick profile."""

    seed: int = 0
    dtype: torch.dtype = torch.float64
    quick: bool = False

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    @property
    def dtype_name(self) -> str:
        """``"float64"``, ``"float32"``, …"""
        return str(self.dtype).removeprefix("torch.")

    @property
    def eps(self) -> float:
        """``ε`` of the working precision (``torch.finfo(dtype).eps``)."""
        return torch.finfo(self.dtype).eps

    def tol(self, tol64: float, cap: float = EXACT_CAP) -> float:
        """The tolerance at the working precision of a check written with tolerance ``tol64`` at float64.

        The rule (one for the whole catalogue; derivation in ``docs/numerics.md``)::

            tol(dtype) = tol64                                  dtype = float64 (returned unchanged)
            tol(dtype) = min(k · ε(dtype), cap),  k = tol64/ε₆₄  otherwise

        i.e. a float64 tolerance is read as ``k`` ulps of the working precision.  An exact claim
        computed in floating point carries a rounding error ``≤ c·ε`` (first order in the unit
        roundoff, ``c`` fixed by the computation: depth, sizes, conditioning, not by the precision),
        so the same ``k`` that bounds ``c`` at float64 bounds it at any precision: ``1e-12`` is
        ``k ≈ 4504`` ulps, ``5.4e-4`` at float32.  ``cap`` keeps a scaled tolerance below the size
        of a real discrepancy (a wrong term, scale or transpose errs by ≥ 1e-3; tests assert that a
        layer perturbed by 1e-3 still fails at float32), and bounds the rule where the first-order
        model stops holding (``k·ε`` no longer small); a check may state a tighter ``cap``, never a
        looser one.
        """
        if self.dtype == torch.float64:
            return tol64
        return min(tol64 / EPS64 * self.eps, cap)

    def ulps(self, tol64: float) -> float:
        """``k = tol64/ε₆₄``: a float64 tolerance as a number of ulps of the working precision."""
        return tol64 / EPS64

    def tol_note(self, tol64: float, cap: float = EXACT_CAP) -> str:
        """``""`` at float64; otherwise how :meth:`tol` scaled ``tol64`` (appended to a check's detail)."""
        if self.dtype == torch.float64:
            return ""
        t, name, k = self.tol(tol64, cap), self.dtype_name, self.ulps(tol64)
        if t == cap:
            return f" [tolerance {t:.1e} at {name}: {tol64:g} at float64 is {k:.0f} ulps, capped at {cap:g}]"
        return f" [tolerance {t:.1e} = {k:.0f} ulps of {name} ({tol64:g} at float64)]"


@dataclass
class AssumptionResult:
    """A predicate a claim depends on, evaluated on the data of a check."""

    name: str
    holds: bool
    detail: str = ""


@dataclass
class ControlResult:
    """A case the check must reject (a wrong layer, a wrong construction, the layer shifted by 1e-3),
    and whether it was rejected.  A control that is rejected is the expected outcome."""

    name: str
    rejected: bool
    error: Optional[float] = None
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
    predicates evaluated on the check's data; ``controls`` the cases the check rejected (or, failing,
    did not).  ``data`` holds extra numbers (tables, regimes); ``figures`` holds plots.  ``entry``,
    ``check`` and ``claim`` are filled in by the runner from the :class:`Check` or claim, and so is
    ``proof``: the strongest scope of the entry's symbolic proof statements that back this check
    (:data:`~unfold.catalogue._proof.PROOF_SCOPES`; ``None``: none).
    """

    entry: str = ""
    check: str = ""
    claim: str = ""
    passed: bool = False
    error: Optional[float] = None
    tol: Optional[float] = None
    detail: str = ""
    seconds: float = 0.0
    assumptions: list[AssumptionResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    controls: list[ControlResult] = field(default_factory=list)
    proof: Optional[str] = None


class CheckLike(Protocol):
    """What the runner needs of a check: a :class:`Check` or a :class:`~unfold.catalogue._claim.Claim`."""

    @property
    def name(self) -> str: ...
    @property
    def claim(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def quick(self) -> bool: ...
    def run(self, config: RunConfig) -> CheckResult: ...


@dataclass(frozen=True)
class Check:
    """A free-form check of an entry: ``run(config) -> CheckResult`` (names filled in by the runner)."""

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
    checks: Sequence[CheckLike]
    assumptions: tuple[str, ...] = ()
    mapping: str = ""
    notes: str = ""
    order: int = 100  # display order in ``unfold list`` (then by name)
    proofs: tuple[Proof, ...] = ()  # symbolic proof statements with their scope (proofs/proof_<name>.py)

    @property
    def claims(self) -> tuple[str, ...]:
        seen: list[str] = []
        for c in self.checks:
            if c.claim not in seen:
                seen.append(c.claim)
        return tuple(seen)

    def proofs_for(self, check: str) -> tuple[Proof, ...]:
        """The proof statements that back the check called ``check``."""
        return tuple(p for p in self.proofs if check in p.backs)

    def proof_scope(self, check: str) -> Optional[str]:
        """The strongest scope (:data:`~unfold.catalogue._proof.PROOF_SCOPES`) among the proof
        statements backing ``check``; ``None`` when none does.  ``Entry.proofs`` is the one source of
        a check's scope: claims and checks carry none of their own."""
        return strongest_scope(self.proofs_for(check))


@dataclass
class EntryReport:
    entry: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)
