"""Recognising energies whose gradient is ``c·x + r`` (a scalar-Hessian quadratic in ``x``), and
numerical curvature checks by Hessian-vector products.

For such an energy the minimiser of ``E(x) + ⟨G, x⟩`` is ``x = −(r + G)/c`` in closed form (when
``c > 0``): the CCCP update and the closed-form MM update are built on it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import sympy as sp
import torch
from sympy import Basic
from sympy.matrices.expressions import MatMul, MatrixExpr, ZeroMatrix

from ..symbolic.energy import Energy
from ..symbolic.tidy import tidy
from ..sampling import random_inputs

__all__ = ["scalar_quadratic", "curvature_range", "random_points"]


def scalar_quadratic(energy: Energy, v: Basic) -> Optional[tuple[sp.Expr, Basic]]:
    """``(c, r)`` with ``∇_v E = c·v + r``, ``c`` a scalar and ``r`` free of ``v``; else None."""
    g = energy.grad(v)
    r = tidy(g.xreplace({v: ZeroMatrix(*v.shape)}))
    if r.has(v):
        return None
    lin = tidy(g - r)
    if lin == v:
        return sp.S.One, r
    if isinstance(lin, MatMul):
        mats = [a for a in lin.args if isinstance(a, MatrixExpr)]
        scal = [a for a in lin.args if not isinstance(a, MatrixExpr)]
        if mats == [v]:
            c = sp.Mul(*scal)
            return (c, r) if not c.has(v) else None
    return None


def random_points(energy: Energy, n: int, seed: int = 0, batch: tuple[int, ...] = (4,)) -> list[dict[str, Any]]:
    """``n`` random input sets (states batched) at distinct small sizes, float64."""
    return [random_inputs(energy, {d: 3 + (i + k) % 3 for i, d in enumerate(energy.dims)}, batch=batch,
                          seed=seed + k) for k in range(n)]


def curvature_range(grad: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n_dirs: int = 8,
                    seed: int = 0) -> tuple[float, float]:
    """``min`` and ``max`` of the Rayleigh quotient ``⟨u, ∇²E u⟩/‖u‖²`` over random directions ``u``
    (Hessian-vector products by ``torch.func.jvp`` of the gradient)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = float("inf"), float("-inf")
    x = x.detach()
    for _ in range(n_dirs):
        u = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        hu = torch.func.jvp(grad, (x,), (u,))[1]
        q = (u * hu).sum(dim=(-2, -1)) / (u * u).sum(dim=(-2, -1))
        lo, hi = min(lo, float(q.min())), max(hi, float(q.max()))
    return lo, hi
