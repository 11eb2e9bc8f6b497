r"""A typed catalogue claim: "the generated layer equals (or descends, or approximates) an independent
reference", declared as data and run by one generic runner.

A :class:`Claim` names

* ``kind`` — exact / descent / approximate / asymptotic / gradient (:data:`~unfold.catalogue.base.CLAIM_KINDS`);
* ``inputs(config)`` — how the inputs are drawn for a :class:`~unfold.catalogue.base.RunConfig`
  (seeded by ``config.generator``, in ``config.dtype``, smaller when ``config.quick``);
* ``layer(inputs)`` — the generated layer (built by ``unfold.steps``) and what it predicts;
* ``reference(inputs)`` — the independent reference (a standard PyTorch module, or the paper's
  formula in plain torch), returning the same named parts;
* ``tol64`` — the tolerance at float64 on the scaled error ``max|layer − ref| / max(1, max|ref|)``
  of every part, read at other precisions by the precision rule :meth:`RunConfig.tol`;
* ``assumptions`` — :class:`Predicate`\ s evaluated on the drawn inputs;
* ``conditions`` — further statements of the claim itself (e.g. "the symbolic update rule is
  ``X softmax(βXᵀΞ)``"), :class:`Predicate`\ s the check needs to pass;
* ``controls`` — :class:`Control`\ s: a wrong layer or a wrong reference the comparison must reject
  (shown as controls, never as a failed assumption).  Every ``exact`` and ``gradient`` claim (both
  compare to the working precision) also gets the *mutation control*: the layer's output shifted by
  ``1e-3·max(1, max|ref|)`` must fail, so the tolerance at the working precision is below the size of
  a real discrepancy;

A :class:`Descent` is the typed form of a descent claim: ``runs(inputs)`` names the generated models
and their starting points, and the claim is that the energy each layer reports never increases along
any of them (checked step by step by :func:`unfold.verify.check_descent`, within ``64·ε·scale``).

What a symbolic proof of the claim covers is not a field of the claim: it is read from the entry's
proof statements that back it (``Entry.proofs``, :meth:`~unfold.catalogue.base.Entry.proof_scope`),
the one source of a check's scope.

The runner fills in the entry and check names, the claim kind, the scaled tolerance and its note,
the per-part errors (``data["errors"]``) and the controls.  A claim whose check needs more than
"compare named tensors" stays a free-form :class:`~unfold.catalogue.base.Check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from ..verify.descent import DescentResult, check_descent
from .base import EXACT_CAP, AssumptionResult, CheckResult, ClaimKind, ControlResult, Figure, RunConfig
from ._measure import scaled_error
__all__ = ["Claim", "Control", "Descent", "EnergyPlot", "Predicate", "MUTATION", "MUTATED_KINDS", "Inputs", "Outputs"]


#: Size of the mutation control of an exact claim (a wrong term, scale or transpose errs by more).
MUTATION: float = 1e-3
#: The claim kinds compared to the working precision, which get the mutation control.
MUTATED_KINDS: tuple[str, ...] = ("exact", "gradient")

Inputs = Mapping[str, Any]
#: A layer's or reference's result: one tensor, or named parts compared part by part (a single
#: tensor on one side is compared with every named part on the other).
Outputs = Union[torch.Tensor, Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class Predicate:
    """An assumption of a claim, evaluated on its drawn inputs: ``test(inputs, config) -> (holds, detail)``."""

    name: str
    test: Callable[[Inputs, RunConfig], tuple[bool, str]]

    def evaluate(self, inputs: Inputs, config: RunConfig) -> AssumptionResult:
        holds, detail = self.test(inputs, config)
        return AssumptionResult(self.name, bool(holds), detail)

    @classmethod
    def of(cls, name: str, result: Callable[[Inputs, RunConfig], AssumptionResult]) -> "Predicate":
        """A predicate from a function that evaluates it to an :class:`AssumptionResult` (e.g. a shared
        step-size condition); ``name`` is the predicate's, the holds/detail the result's."""
        return cls(name, lambda inputs, config: (lambda a: (a.holds, a.detail))(result(inputs, config)))

    @classmethod
    def by_construction(cls, name: str, detail: str) -> "Predicate":
        """An assumption that holds on every draw because of how the inputs or the reference are built
        (e.g. tied weights); ``detail`` says how.  It is listed with the claim's assumptions like any other."""
        return cls(name, lambda inputs, config: (True, detail))


@dataclass(frozen=True)
class Control:
    """A case the claim's comparison must reject: ``layer`` and/or ``reference`` replaced by a wrong one
    (e.g. the construction without one of its blocks).  It *passes as a control* (is rejected) when
    the scaled error exceeds the tolerance and ``at_least``."""

    name: str
    layer: Optional[Callable[[Inputs], Outputs]] = None
    reference: Optional[Callable[[Inputs], Outputs]] = None
    at_least: float = 0.0  # the error must also exceed this (a discrepancy resolvable at any precision)


def _parts(x: Outputs, names: Sequence[str] = ("output",)) -> dict[str, torch.Tensor]:
    """Named parts of ``x``; a single tensor stands for every part in ``names``."""
    return {k: x for k in names} if isinstance(x, torch.Tensor) else dict(x)


def _pair(got: Outputs, want: Outputs) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Layer and reference as matching named parts (one tensor on either side is compared with every
    named part of the other: several references for one layer, or several layers for one reference)."""
    names = [*(got if not isinstance(got, torch.Tensor) else ()), *(want if not isinstance(want, torch.Tensor) else ())]
    names = list(dict.fromkeys(names)) or ["output"]
    g, w = _parts(got, names), _parts(want, names)
    if set(g) != set(w):
        raise KeyError(f"layer parts {sorted(g)} differ from reference parts {sorted(w)}")
    return g, w


def _errors(got: Outputs, want: Outputs) -> dict[str, float]:
    """Scaled error of every named part (``want`` is the reference)."""
    g, w = _pair(got, want)
    return {k: scaled_error(g[k], w[k]) for k in w}


def _shifted(x: Outputs, size: float, want: Outputs) -> dict[str, torch.Tensor]:
    """Every part of ``x`` plus ``size·max(1, max|ref part|)``: off by exactly ``size`` in scaled error."""
    g, w = _pair(x, want)
    return {k: t + size * max(1.0, float(w[k].abs().max())) for k, t in g.items()}


@dataclass(frozen=True)
class Claim:
    """A layer-versus-reference claim (module docstring).  ``describe(inputs)`` states the sizes and
    settings for the detail line; ``data(inputs)`` adds numbers to the result."""

    name: str
    kind: ClaimKind
    description: str
    inputs: Callable[[RunConfig], dict[str, Any]]
    layer: Callable[[Inputs], Outputs]
    reference: Callable[[Inputs], Outputs]
    tol64: float = 1e-12
    cap: float = EXACT_CAP
    assumptions: tuple[Predicate, ...] = ()
    conditions: tuple[Predicate, ...] = ()
    controls: tuple[Control, ...] = ()
    quick: bool = True
    describe: Optional[Callable[[Inputs], str]] = None
    data: Optional[Callable[[Inputs], dict[str, Any]]] = None
    figures: Optional[Callable[[Inputs, dict[str, float], RunConfig], list[Figure]]] = None  # plots of the errors
    extra: tuple[str, ...] = field(default=())  # free-form notes appended to the detail

    @property
    def claim(self) -> str:
        """The claim kind (the attribute every check has)."""
        return self.kind

    def run(self, config: RunConfig) -> CheckResult:
        """Draw the inputs, compare layer and reference part by part, evaluate the assumptions, the
        conditions and the controls.  Passes when every part is within :meth:`RunConfig.tol` of
        ``tol64``, every condition holds and every control is rejected."""
        inp = self.inputs(config)
        tol = config.tol(self.tol64, self.cap)
        got, want = self.layer(inp), self.reference(inp)
        errs = _errors(got, want)
        err = max(errs.values())
        controls = [self._control(c, inp, got, want, tol) for c in self.controls]
        if self.kind in MUTATED_KINDS:
            e = max(_errors(_shifted(got, MUTATION, want), want).values())
            controls.append(ControlResult(f"layer shifted by {MUTATION:g}", e > tol, e,
                                          f"scaled error {e:.2e} vs tol {tol:.1e}"))
        head = self.describe(inp) if self.describe is not None else ""
        if len(errs) <= 6:
            parts = "; ".join(f"{k} {v:.1e}" for k, v in errs.items())
        else:                                   # many parts (e.g. one per layer): the worst one
            worst = max(errs, key=lambda k: errs[k])
            parts = f"max over {len(errs)} parts {err:.1e} ({worst})"
        detail = f"{head}, {config.dtype_name}: {parts}" if head else f"{config.dtype_name}: {parts}"
        for x in self.extra:
            detail += f"; {x}"
        conds = [p.evaluate(inp, config) for p in self.conditions]
        for c in conds:
            detail += f"; {c.name}: {c.holds}" + (f" ({c.detail})" if c.detail else "")
        extra = self.data(inp) if self.data is not None else {}
        return CheckResult(
            passed=err <= tol and all(c.rejected for c in controls) and all(c.holds for c in conds),
            error=err, tol=tol,
            detail=detail + config.tol_note(self.tol64, self.cap),
            assumptions=[a.evaluate(inp, config) for a in self.assumptions],
            controls=controls, data={"errors": errs, **extra},
            figures=self.figures(inp, errs, config) if self.figures is not None else [],
        )

    def _control(self, c: Control, inp: Inputs, got: Outputs, want: Outputs, tol: float) -> ControlResult:
        g = c.layer(inp) if c.layer is not None else got
        w = c.reference(inp) if c.reference is not None else want
        e = max(_errors(g, w).values())
        bound = max(tol, c.at_least)
        return ControlResult(c.name, e > bound, e, f"scaled error {e:.2e} vs {bound:.1e}")


#: One run of a descent claim: ``(model, x0, inputs)`` for ``check_descent(model, x0, **inputs)``
#: (``depth`` among the inputs runs a single step that many times).
Run = tuple[Any, torch.Tensor, Mapping[str, Any]]


@dataclass(frozen=True)
class EnergyPlot:
    """How a :class:`Descent` draws its energy curves: one series per run, x = step ``first, first + 1, …``."""

    name: str
    title: str
    ylabel: str
    xlabel: str = "step"
    kind: str = "line"
    first: int = 0


def _batch_mean(E: torch.Tensor) -> torch.Tensor:
    return E.mean(-1)


@dataclass(frozen=True)
class Descent:
    """A descent claim (module docstring): passes when every run descends and every condition holds.

    The result's error is the largest energy increase over the runs, clamped at 0 (0: the energy never
    went up); it has no single tolerance (``check_descent``'s is per step, ``64·ε·scale``, stated in the
    detail).  ``data["energies"]`` and the figure hold ``curve(energies)`` per run (default: the mean over
    the batch); with one run the detail and the data are that run's, without its label.

    ``data(inputs, results)`` measures the runs (e.g. per-run decreases, the energy along a run against
    the paper's formula): the numbers are added to the result's data, and the assumptions and conditions
    are evaluated on the inputs together with them.  ``figures(inputs, results)`` adds plots (after
    ``plot``'s)."""

    name: str
    description: str
    inputs: Callable[[RunConfig], dict[str, Any]]
    runs: Callable[[Inputs], Mapping[str, Run]]
    assumptions: tuple[Predicate, ...] = ()
    conditions: tuple[Predicate, ...] = ()
    curve: Callable[[torch.Tensor], torch.Tensor] = _batch_mean
    plot: Optional[EnergyPlot] = None
    describe: Optional[Callable[[Inputs], str]] = None
    extra: tuple[str, ...] = ()  # free-form notes appended to the detail
    data: Optional[Callable[[Inputs, Mapping[str, DescentResult]], dict[str, Any]]] = None  # measurements
    figures: Optional[Callable[[Inputs, Mapping[str, DescentResult]], list[Figure]]] = None  # further plots
    quick: bool = True

    @property
    def claim(self) -> str:
        return "descent"

    def run(self, config: RunConfig) -> CheckResult:
        inp = self.inputs(config)
        res: dict[str, DescentResult] = {k: check_descent(m, x0, **kw) for k, (m, x0, kw) in self.runs(inp).items()}
        curves = {k: self.curve(r.energies).tolist() for k, r in res.items()}
        single = len(res) == 1
        detail = "; ".join(r.detail if single else f"{k}: {r.detail}" for k, r in res.items())
        if self.describe is not None:
            detail = f"{self.describe(inp)}; {detail}"
        for x in self.extra:
            detail += f"; {x}"
        measured = self.data(inp, res) if self.data is not None else {}
        seen = {**inp, **measured}                # what the assumptions and conditions are evaluated on
        conds = [p.evaluate(seen, config) for p in self.conditions]
        for c in conds:
            detail += f"; {c.name}: {c.holds}" + (f" ({c.detail})" if c.detail else "")
        figures = []
        if self.plot is not None:
            p, n = self.plot, len(next(iter(curves.values())))
            figures.append(Figure(p.name, p.title, [float(p.first + k) for k in range(n)], curves,
                                  xlabel=p.xlabel, ylabel=p.ylabel, kind=p.kind))
        if self.figures is not None:
            figures += self.figures(inp, res)
        return CheckResult(
            passed=all(r.passed for r in res.values()) and all(c.holds for c in conds),
            error=max(0.0, max(r.max_increase for r in res.values())), tol=None, detail=detail,
            assumptions=[a.evaluate(seen, config) for a in self.assumptions],
            data={"energies": next(iter(curves.values())) if single else curves, **measured},
            figures=figures,
        )
