"""The table of closed-form proximal maps ``prox_{t g}(v) = argmin_p g(p) + ‖p − v‖²/(2t)``.

=================  ==========================================  ==================================
``g``              ``prox_{t g}(v)``                           optimality: ``(v − p)/t ∈ ∂g(p)``
=================  ==========================================  ==================================
``L1(λ)``          ``λ‖x‖₁``: soft-threshold ``S_{tλ}(v)``     ``= λ sign p`` (p ≠ 0), ``|·| ≤ λ`` (p = 0)
``NonNegative()``  ``ι{x ≥ 0}``: ``relu(v)``                   ``= 0`` (p > 0), ``≤ 0`` (p = 0)
``NonNegL1(λ)``    ``λ Σx + ι{x ≥ 0}``: ``relu(v − tλ)``       ``= λ`` (p > 0), ``≤ λ`` (p = 0)
``Box(lo, hi)``    ``ι{lo ≤ x ≤ hi}``: ``min(max(v, lo), hi)`` ``= 0`` inside, ``≤ 0`` at lo, ``≥ 0`` at hi
``Sphere(axis)``   ``ι{‖column‖ = 1}``: ``v / ‖v‖`` per column  ``∈ span(p)`` (normal cone of the sphere)
=================  ==========================================  ==================================

Each map has a symbolic form (so a proximal step's update rule is a sympy expression and its code
is generated), a direct torch form, the value of ``g`` (``inf`` outside its domain) and the
residual of its optimality condition.  ``Sphere`` is a non-convex set: its "prox" is the projection
(a global minimiser of the prox problem for ``v`` with non-zero columns), and descent of a
proximal-gradient step with it needs ``η < 1/L`` rather than ``2/L``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import sympy as sp
import torch
from sympy.matrices.expressions import HadamardPower, HadamardProduct, MatrixExpr, OneMatrix

from ..errors import InputError, ShapeMismatchError
from ..symbolic.nodes import U, ew
from ..symbolic.ops import soft_threshold
from ..symbolic.symbols import ScalarParam

__all__ = ["Prox", "L1", "NonNegative", "NonNegL1", "Box", "Sphere"]

Tensor = torch.Tensor
Number = Union[int, float, ScalarParam]


def _number_or_symbol(v: Any, what: str, positive: bool = True) -> sp.Expr:
    if isinstance(v, ScalarParam):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{what} must be a number or a scalar declared with uf.scalar, got {v!r}")
    if positive and not v > 0:
        raise InputError(f"{what} must be positive, got {v!r}")
    return sp.Float(float(v)) if not float(v).is_integer() else sp.Integer(int(v))


def _bsum(x: Tensor) -> Tensor:
    return x.sum(dim=(-2, -1))


def _bmax(x: Tensor) -> Tensor:
    return x.amax(dim=(-2, -1))


class Prox:
    """A non-smooth term ``g`` with a closed-form proximal map (see the module table)."""

    name = "g"
    lam: Any                       # λ (a number or a ScalarParam), set by maps that have one
    lam_value: Optional[float]     # λ as a number, or None when it is a call-time input

    def symbols(self) -> tuple[ScalarParam, ...]:
        """Scalar symbols the map depends on (their values are call-time inputs)."""
        return tuple(sorted((s for s in self._params() if isinstance(s, ScalarParam)), key=str))

    def _params(self) -> tuple[sp.Expr, ...]:
        return ()

    def _lam(self, inputs: Mapping[str, Any]) -> Any:
        """The value of ``λ``: the number given, or the call-time input of its symbol."""
        if self.lam_value is not None:
            return self.lam_value
        name = str(self.lam)
        if name not in inputs:
            raise InputError(f"{type(self).__name__}: give the value of {name} as an input")
        v = inputs[name]
        return v[..., None, None] if isinstance(v, Tensor) and v.dim() else v

    # interface -----------------------------------------------------------------------------------
    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        """``prox_{t g}(v)`` as a matrix expression."""
        raise NotImplementedError  # pragma: no cover

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        """``prox_{t g}(v)`` in torch (``t`` a number or a tensor of batch shape)."""
        raise NotImplementedError  # pragma: no cover

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        """``g(x)`` per batch element (``inf`` outside the domain)."""
        raise NotImplementedError  # pragma: no cover

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def optimality_residual(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        """Distance of ``(v − p)/t`` from ``∂g(p)`` (max over entries), ``p = prox_{t g}(v)``."""
        p = self.apply(v, t, **inputs)
        tt = torch.as_tensor(t, dtype=v.dtype)
        tt = tt[..., None, None] if tt.dim() else tt
        return self._residual(p, (v - p) / tt, **inputs)

    def __repr__(self) -> str:
        args = ", ".join(f"{float(a):g}" if a.is_number else str(a) for a in self._params())
        return f"{type(self).__name__}({args})"


def _t(t: Any, like: Tensor) -> Any:
    if isinstance(t, Tensor) and t.dim():
        return t[..., None, None]
    return t


class L1(Prox):
    """``g = λ‖x‖₁``; ``prox = S_{tλ}`` (soft-threshold)."""

    name = "l1"

    def __init__(self, lam: Number) -> None:
        self.lam = _number_or_symbol(lam, "L1: lam")
        self.lam_value = None if isinstance(self.lam, ScalarParam) else float(lam)

    def _params(self) -> tuple[sp.Expr, ...]:
        return (self.lam,)

    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        return soft_threshold(v, t * self.lam)

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        thr = _t(t, v) * self._lam(inputs)
        return torch.sign(v) * torch.clamp(v.abs() - thr, min=0)

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        return self._lam(inputs) * _bsum(x.abs())

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        lam = self._lam(inputs)
        r = torch.where(p != 0, (w - lam * torch.sign(p)).abs(), torch.clamp(w.abs() - lam, min=0))
        return _bmax(r)


class NonNegative(Prox):
    """``g = ι{x ≥ 0}``; ``prox = relu``."""

    name = "nonneg"

    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        return ew(sp.Max(U, 0), v)

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        return torch.relu(v)

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        feasible = (x >= 0).all(dim=-1).all(dim=-1)
        return torch.where(feasible, torch.zeros((), dtype=x.dtype), torch.full((), float("inf"), dtype=x.dtype))

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        r = torch.where(p > 0, w.abs(), torch.clamp(w, min=0))
        r = torch.where(p < 0, torch.full_like(r, float("inf")), r)
        return _bmax(r)


class NonNegL1(Prox):
    """``g = λ Σ x + ι{x ≥ 0}`` (non-negative l1); ``prox = relu(v − tλ)``."""

    name = "nonneg_l1"

    def __init__(self, lam: Number) -> None:
        self.lam = _number_or_symbol(lam, "NonNegL1: lam")
        self.lam_value = None if isinstance(self.lam, ScalarParam) else float(lam)

    def _params(self) -> tuple[sp.Expr, ...]:
        return (self.lam,)

    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        return ew(sp.Max(U - t * self.lam, 0), v)

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        return torch.relu(v - _t(t, v) * self._lam(inputs))

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        val = self._lam(inputs) * _bsum(x)
        feasible = (x >= 0).all(dim=-1).all(dim=-1)
        return torch.where(feasible, val, torch.full_like(val, float("inf")))

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        lam = self._lam(inputs)
        r = torch.where(p > 0, (w - lam).abs(), torch.clamp(w - lam, min=0))
        r = torch.where(p < 0, torch.full_like(r, float("inf")), r)
        return _bmax(r)


class Box(Prox):
    """``g = ι{lo ≤ x ≤ hi}``; ``prox = min(max(v, lo), hi)``."""

    name = "box"

    def __init__(self, lo: float, hi: float) -> None:
        if isinstance(lo, bool) or isinstance(hi, bool) or not isinstance(lo, (int, float)) \
                or not isinstance(hi, (int, float)) or not lo < hi:
            raise InputError(f"Box(lo, hi) needs numbers with lo < hi, got lo={lo!r}, hi={hi!r}")
        self.lo, self.hi = float(lo), float(hi)

    def _params(self) -> tuple[sp.Expr, ...]:
        return (sp.Float(self.lo), sp.Float(self.hi))

    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        return ew(sp.Min(sp.Max(U, sp.Float(self.lo)), sp.Float(self.hi)), v)

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        return torch.clamp(v, min=self.lo, max=self.hi)

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        feasible = ((x >= self.lo) & (x <= self.hi)).all(dim=-1).all(dim=-1)
        return torch.where(feasible, torch.zeros((), dtype=x.dtype), torch.full((), float("inf"), dtype=x.dtype))

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        r = torch.where(p == self.lo, torch.clamp(w, min=0),
                        torch.where(p == self.hi, torch.clamp(-w, min=0), w.abs()))
        r = torch.where((p < self.lo) | (p > self.hi), torch.full_like(r, float("inf")), r)
        return _bmax(r)

    def __repr__(self) -> str:
        return f"Box({self.lo}, {self.hi})"


class Sphere(Prox):
    """``g = ι{every column (axis=0) or row (axis=1) has unit norm}``; ``prox = normalise``."""

    name = "sphere"

    def __init__(self, axis: int = 0, feasibility_tol: float = 1e-10) -> None:
        if axis not in (0, 1):
            raise ShapeMismatchError(f"Sphere: axis must be 0 (columns) or 1 (rows), got {axis!r}")
        self.axis, self.tol = axis, float(feasibility_tol)

    def symbolic(self, v: MatrixExpr, t: sp.Expr) -> MatrixExpr:
        sq = HadamardProduct(v, v)
        norms2 = OneMatrix(v.rows, v.rows) * sq if self.axis == 0 else sq * OneMatrix(v.cols, v.cols)
        return HadamardProduct(v, HadamardPower(norms2, sp.Rational(-1, 2)))

    def _dim(self) -> int:
        return -2 if self.axis == 0 else -1

    def apply(self, v: Tensor, t: Any, /, **inputs: Any) -> Tensor:
        return v / torch.linalg.vector_norm(v, dim=self._dim(), keepdim=True)

    def value(self, x: Tensor, /, **inputs: Any) -> Tensor:
        n = torch.linalg.vector_norm(x, dim=self._dim())
        feasible = ((n - 1).abs() <= self.tol).all(dim=-1)
        return torch.where(feasible, torch.zeros((), dtype=x.dtype), torch.full((), float("inf"), dtype=x.dtype))

    def _residual(self, p: Tensor, w: Tensor, /, **inputs: Any) -> Tensor:
        d = self._dim()
        along = (w * p).sum(dim=d, keepdim=True) * p  # the component of w in span(p)
        r = torch.linalg.vector_norm(w - along, dim=d)
        infeasible = (torch.linalg.vector_norm(p, dim=d) - 1).abs() > self.tol
        r = torch.where(infeasible, torch.full_like(r, float("inf")), r)
        return r.amax(dim=-1)

    def __repr__(self) -> str:
        return f"Sphere(axis={self.axis})"
