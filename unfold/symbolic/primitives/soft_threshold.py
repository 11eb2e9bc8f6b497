"""Soft-thresholding ``S_t(M) = sign(M) ∘ max(|M| − t, 0)``: the proximal map of ``t‖·‖₁``.

VJP: ``G ∘ [|M| > t]`` to ``M`` and ``−Σ G ∘ sign(M) ∘ [|M| > t]`` to a symbolic ``t``.  Torch:
``sign(x)·relu(|x| − t)``.  Explicit size: the definition entry by entry.
"""

from __future__ import annotations

from typing import Any, Callable

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import HadamardProduct, MatrixExpr

from ...errors import ShapeMismatchError
from ..nodes import MatFn, U, ew
from .reductions import SumAll
from .registry import MUL, Code, Primitive, register
from ._common import basic_text, matrix_arg, no_constraint

__all__ = ["SoftThreshold", "soft_threshold"]


class SoftThreshold(MatFn):
    """``sign(M) ∘ max(|M| − t, 0)``: the proximal map of ``t‖·‖₁``.

    VJP: ``G ∘ [|M| > t]`` to ``M`` and ``−Σ G ∘ sign(M) ∘ [|M| > t]`` to ``t``.
    """

    def __new__(cls, M: MatrixExpr, t: Any) -> "SoftThreshold":
        return MatFn.__new__(cls, M, t)

    @property
    def threshold(self) -> sp.Expr:
        return self.args[1]

    def _mask(self) -> MatrixExpr:
        return ew(sp.Heaviside(sp.Abs(U) - self.threshold), self.arg)

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        mask = self._mask()
        out: list[tuple[Basic, Basic]] = [(self.arg, HadamardProduct(G, mask))]
        if self.threshold.free_symbols:
            out.append((self.threshold, -SumAll(HadamardProduct(G, mask, ew(sp.sign(U), self.arg)))))
        return out


def soft_threshold(M: MatrixExpr, t: Any) -> MatrixExpr:
    """Soft-threshold ``sign(M)∘max(|M| − t, 0)``, the prox of ``t‖·‖₁`` (``t`` a scalar)."""
    if isinstance(t, MatrixExpr) or isinstance(t, str) or not isinstance(t, (sp.Expr, int, float)):
        raise ShapeMismatchError(
            f"soft_threshold(): the threshold must be a scalar (a number or uf.scalar), got {t!r}"
            + (f" ({t.rows}×{t.cols})" if isinstance(t, MatrixExpr) else "")
        )
    return SoftThreshold(matrix_arg(M, "soft_threshold"), sp.sympify(t))  # safe: a number or sympy scalar


def _explicit(e: Any, ev: Callable[[Basic], Any]) -> sp.Matrix:
    t = ev(e.threshold)
    return ev(e.arg).applyfunc(lambda x: sp.sign(x) * sp.Max(sp.Abs(x) - t, 0))


def _lower(printer: Any, e: Any) -> Code:
    x = printer.hoist(e.arg)
    return f"torch.sign({x}) * torch.relu(torch.abs({x}) - {printer._p(e.threshold, MUL + 1)})", MUL


def _latex(printer: Any, e: Any) -> str:
    return r"\mathcal{S}_{" + printer._print(e.threshold) + r"}\left(" + printer._print(e.arg) + r"\right)"


register(Primitive(SoftThreshold, vjp=SoftThreshold._vjp, explicit=_explicit, lower=_lower,
                   validate=no_constraint, text=basic_text, example=lambda X: SoftThreshold(X, sp.Rational(1, 10)),
                   latex=_latex,
                   parser={"soft_threshold": soft_threshold}))
