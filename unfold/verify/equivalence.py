"""Equivalence check: a layer against an independent implementation on the same inputs.

Reports the maximum absolute error ``max|a − b|`` and the relative error ``max|a − b| / max|b|``;
passes when ``max|a − b| ≤ tol · max(1, max|b|)`` and the shapes agree exactly (no broadcasting).
Outputs may be tensors or (nested) tuples, lists or dicts of tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from .protocols import StateStep, StepStack, WrapsStep
from ..errors import CheckFailedError, InputError

__all__ = ["EquivalenceResult", "check_equivalence", "assert_equivalence"]


@dataclass
class EquivalenceResult:
    passed: bool
    max_abs_error: float
    max_rel_error: float
    tol: float
    reference_scale: float
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    detail: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.detail


def _flatten(out: Any, where: str = "output") -> list[tuple[str, torch.Tensor]]:
    if isinstance(out, torch.Tensor):
        return [(where, out)]
    if isinstance(out, Mapping):
        return [p for k in sorted(out) for p in _flatten(out[k], f"{where}[{k!r}]")]
    if isinstance(out, (tuple, list)):
        return [p for i, o in enumerate(out) for p in _flatten(o, f"{where}[{i}]")]
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return [(where, torch.tensor(float(out), dtype=torch.float64))]
    raise InputError(f"check_equivalence: {where} is a {type(out).__name__}, not a tensor (or a tuple/dict of them)")


def _state_name(layer: Any) -> str | None:
    """The state a descent step, a model wrapping one, or a stack of them takes positionally."""
    if isinstance(layer, StateStep):
        return layer.wrt_name
    if isinstance(layer, WrapsStep) and isinstance(layer.step, StateStep):
        return layer.step.wrt_name
    if isinstance(layer, StepStack):
        first = layer.layer(0)
        return first.wrt_name if isinstance(first, StateStep) else None
    return None


def _call(fn: Callable[..., Any], inputs: Mapping[str, Any]) -> Any:
    """``fn(**inputs)``; a descent step or model gets its state positionally."""
    name = _state_name(fn)
    if name is not None and name in inputs:
        rest = {k: v for k, v in inputs.items() if k != name}
        return fn(inputs[name], **rest)
    return fn(**inputs)


def check_equivalence(layer: Callable[..., Any], reference: Callable[..., Any], inputs: Mapping[str, Any],
                      tol: float = 1e-12) -> EquivalenceResult:
    """Compare ``layer(**inputs)`` with ``reference(**inputs)`` (see the module docstring)."""
    with torch.no_grad():
        a = _flatten(_call(layer, inputs))
        b = _flatten(_call(reference, inputs))
    if len(a) != len(b):
        raise InputError(f"check_equivalence: the layer returns {len(a)} tensors, the reference {len(b)}")
    worst_abs, scale, shapes, problems = 0.0, 0.0, [], []
    for (wa, ta), (_, tb) in zip(a, b):
        shapes.append((tuple(ta.shape), tuple(tb.shape)))
        if ta.shape != tb.shape:
            problems.append(f"{wa}: shape {tuple(ta.shape)} vs reference {tuple(tb.shape)}")
            continue
        ta, tb = ta.to(torch.float64), tb.to(torch.float64)
        diff = (ta - tb).abs()
        err = float(diff.max()) if diff.numel() else 0.0
        if not torch.isfinite(diff).all():
            err = float("inf")
        worst_abs = max(worst_abs, err)
        scale = max(scale, float(tb.abs().max()) if tb.numel() else 0.0)
    rel = worst_abs / scale if scale > 0 else worst_abs
    passed = not problems and worst_abs <= tol * max(1.0, scale)
    detail = (f"{'equivalent' if passed else 'NOT equivalent'}: max abs error {worst_abs:.3e}, relative "
              f"{rel:.3e} (tol {tol:.0e} × max(1, {scale:.3g}))" + ("; " + "; ".join(problems) if problems else ""))
    return EquivalenceResult(passed, worst_abs, rel, tol, scale, shapes, detail)


def assert_equivalence(layer: Callable[..., Any], reference: Callable[..., Any], inputs: Mapping[str, Any],
                       tol: float = 1e-12) -> EquivalenceResult:
    """:func:`check_equivalence`, raising :class:`~unfold.errors.CheckFailedError` when it fails."""
    res = check_equivalence(layer, reference, inputs, tol)
    if not res.passed:
        raise CheckFailedError(res.detail)
    return res
