"""Descent check: the energy a layer descends never increases along the forward pass.

For every layer ``k`` (with energy ``E_k``, the energy that layer's step descends) the check
evaluates ``E_k(x_k)`` and ``E_k(x_{k+1})`` and requires

    E_k(x_{k+1}) − E_k(x_k) ≤ tol_k,   tol_k = factor · ε · max(1, |E_k(x_k)|, Σ_t |E_{k,t}(x_k)|)

with ``ε`` the machine epsilon of the dtype and ``E_{k,t}`` the energy terms: the rounding error
of a sum of terms of size ``Σ|E_t|`` is a few ``ε`` of that size, so a genuine increase is never
hidden unless it is below rounding.  Works for :class:`~unfold.steps.Unrolled` models (tied or
untied: each layer is checked against its own energy) and for a single step (repeated ``depth``
times).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..errors import CheckFailedError, InputError
from .protocols import DescentStep, StepStack

__all__ = ["DescentViolation", "DescentResult", "check_descent", "assert_descent"]


@dataclass
class DescentViolation:
    """The first layer (and batch element) at which the energy went up by more than rounding."""

    layer: int
    batch_index: tuple[int, ...]
    before: float
    after: float
    increase: float
    tol: float


@dataclass
class DescentResult:
    """Result of :func:`check_descent`; ``energies`` is ``(depth+1, ...)`` (layer ``k``'s energy at
    ``x_k`` and, in the last row, the last layer's energy at the output)."""

    passed: bool
    depth: int
    energies: torch.Tensor
    max_increase: float
    first_violation: Optional[DescentViolation] = None
    tol_factor: float = 64.0
    violations: int = 0
    detail: str = field(default="")

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.detail


def _layers(model: Any, depth: Optional[int]) -> list[Any]:
    if isinstance(model, StepStack):
        n = model.depth if depth is None else depth
        if n > model.depth:
            raise InputError(f"check_descent: the model has {model.depth} layers, asked for {n}")
        return [model.layer(k) for k in range(n)]
    if not isinstance(model, DescentStep):
        raise InputError(
            f"check_descent needs a descent step or an Unrolled model (something with .energy), got "
            f"{type(model).__name__}"
        )
    return [model] * (10 if depth is None else depth)


def _scale(layer: Any, x: Any, e: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
    s = torch.clamp(e.abs(), min=1.0)
    if isinstance(layer, DescentStep):
        terms = layer.energy_terms(x, **inputs)
        if terms:
            tot = sum(t.abs() for t in terms.values())
            s = torch.maximum(s, torch.as_tensor(tot, dtype=e.dtype))
    return s


def check_descent(model: Any, x0: Any, /, *, depth: Optional[int] = None, tol_factor: float = 64.0,
                  **inputs: Any) -> DescentResult:
    """Run ``model`` from ``x0`` and check the energy never increases (see the module docstring)."""
    layers = _layers(model, depth)
    x = x0
    rows: list[torch.Tensor] = []
    worst = float("-inf")
    first: Optional[DescentViolation] = None
    count = 0
    with torch.no_grad():
        for k, lay in enumerate(layers):
            e0 = lay.energy(x, **inputs)
            x_next = lay(x, **inputs)
            e1 = lay.energy(x_next, **inputs)
            rows.append(e0)
            eps = torch.finfo(e0.dtype).eps
            tol = tol_factor * eps * _scale(lay, x, e0, inputs)
            inc = e1 - e0
            bad = ~(inc <= tol)  # NaN counts as a violation
            finite_inc = torch.where(torch.isfinite(inc), inc, torch.full_like(inc, float("inf")))
            worst = max(worst, float(finite_inc.max()))
            if bool(bad.any()):
                count += int(bad.sum())
                if first is None:
                    idx = tuple(int(i) for i in torch.nonzero(bad)[0]) if bad.dim() else ()
                    first = DescentViolation(
                        layer=k, batch_index=idx, before=float(e0[idx]), after=float(e1[idx]),
                        increase=float(inc[idx]), tol=float(tol[idx] if tol.dim() else tol),
                    )
            x = x_next
        rows.append(e1)
    energies = torch.stack(rows)
    passed = first is None
    name = type(model).__name__
    if passed:
        detail = (f"descent holds for {name} over {len(layers)} layers: energy "
                  f"{float(energies[0].max()):.6g} → {float(energies[-1].max()):.6g}, largest change "
                  f"{worst:.3g} (tolerance {tol_factor:g}·ε·scale)")
    else:
        f = first
        assert f is not None  # a failure has a first violation
        detail = (f"descent FAILS for {name}: first at layer {f.layer}, batch element {f.batch_index}: "
                  f"energy {f.before:.10g} → {f.after:.10g} (increase {f.increase:.3g} > tolerance "
                  f"{f.tol:.3g}); {count} violation(s) in {len(layers)} layers")
    return DescentResult(passed, len(layers), energies, worst, first, tol_factor, count, detail)


def assert_descent(model: Any, x0: Any, /, **kwargs: Any) -> DescentResult:
    """:func:`check_descent`, raising :class:`~unfold.errors.CheckFailedError` when it fails."""
    res = check_descent(model, x0, **kwargs)
    if not res.passed:
        raise CheckFailedError(res.detail)
    return res
