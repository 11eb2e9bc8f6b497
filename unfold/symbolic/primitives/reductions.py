"""Scalar reductions of one matrix: ``sum`` of the entries and ``log det``.

* ``SumAll(M) = Σᵢⱼ Mᵢⱼ``; VJP ``G·1``; torch ``M.sum(dim=(-2, -1), keepdim=True)``; shown as
  ``lse(M)``, ``lse_rows(M)``, ``‖M‖₁`` when it sums a column log-sum-exp (of ``M`` or ``Mᵀ``) or
  an entrywise ``|M|``, else ``sum(M)``.
* ``LogDet(M) = log det M`` for ``det M > 0`` (e.g. positive definite); VJP ``G·M⁻ᵀ``; torch
  ``_logdet_pd`` (``slogdet``, a clear error where ``det M ≤ 0``); explicit size: ``log`` of the
  Berkowitz determinant.
"""

from __future__ import annotations

from typing import Any, Callable

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import Identity, Inverse, MatrixExpr, OneMatrix, Transpose
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ...errors import ShapeMismatchError
from ..display import elementwise_name
from ..masks import transpose_mask
from ..nodes import ScalarMatFn, _matrix_arg, lazy_mul
from .elementary import abs_
from .registry import ATOM, Code, Primitive, register
from ._common import basic_text, matrix_arg, no_constraint

__all__ = ["SumAll", "LogDet", "sum_entries", "l1", "logdet"]


class SumAll(ScalarMatFn):
    """``Σᵢⱼ Mᵢⱼ``; VJP: ``G·1``."""

    def _vjp(self, G: sp.Expr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, lazy_mul(G, OneMatrix(*self.arg.shape)))]


def _square(M: MatrixExpr, who: str = "logdet") -> MatrixExpr:
    if M.rows != M.cols:
        raise ShapeMismatchError(f"{who} needs a square matrix, {M} is {M.rows}×{M.cols}")
    return M


class LogDet(ScalarMatFn):
    """``log det M`` for a positive-definite ``M``; VJP: ``G·M⁻ᵀ``."""

    def __new__(cls, M: MatrixExpr) -> "LogDet":
        M = _matrix_arg(M, "logdet")
        _square(M)
        return sp.Expr.__new__(cls, M)

    def _vjp(self, G: sp.Expr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, lazy_mul(G, Transpose(Inverse(self.arg))))]


def _validate_logdet(e: Any) -> None:
    _square(e.arg)


# ---- user functions ------------------------------------------------------------------------------
def sum_entries(M: MatrixExpr) -> sp.Expr:
    """Sum of all entries ``1ᵀ M 1``."""
    return SumAll(matrix_arg(M, "sum_entries"))


def l1(M: MatrixExpr) -> sp.Expr:
    """Entrywise l1 norm ``Σ|Mᵢⱼ|``."""
    return SumAll(abs_(matrix_arg(M, "l1")))


def logdet(M: MatrixExpr) -> sp.Expr:
    """``log det M`` for a matrix with det M > 0 (e.g. positive definite); evaluated with ``slogdet``,
    and a clear InputError when det M ≤ 0."""
    return LogDet(_square(matrix_arg(M, "logdet"), "logdet()"))


# ---- display -------------------------------------------------------------------------------------
def _sum_kind(expr: SumAll) -> tuple[str, Basic, Basic | None] | None:
    """Recognise ``SumAll(LSE(M))`` (lse), ``SumAll(LSE(M.T).T)`` (lse over rows), ``SumAll(|M|)``;
    the third entry is the mask oriented like ``M`` (None without one)."""
    from .softmax import LSE  # softmax's lse() builds a SumAll: imported here, not at the top

    a = expr.arg
    if isinstance(a, LSE):
        return ("lse", a.arg, a.mask)
    if isinstance(a, Transpose) and isinstance(a.arg, LSE):
        m = a.arg.mask
        return ("lse_rows", Transpose(a.arg.arg).doit(), None if m is None else transpose_mask(m))
    if isinstance(a, ElementwiseApplyFunction) and elementwise_name(a) == "abs":
        return ("l1", a.expr, None)
    return None


def _sum_text(printer: Any, expr: Any) -> str:
    k = _sum_kind(expr)
    if k is None:
        return f"sum({printer._print(expr.arg)})"
    name, M, mask = k
    if name == "l1":
        return f"‖{printer._print(M)}‖₁"
    return f"{name}({printer._print(M)}" + ("" if mask is None else f", mask={printer._print(mask)}") + ")"


def _sum_latex(printer: Any, expr: Any) -> str:
    k = _sum_kind(expr)
    if k is None:
        return r"\mathbf{1}^\top\left(" + printer._print(expr.arg) + r"\right)\mathbf{1}"
    name, M, mask = k
    if name == "l1":
        return r"\left\|" + printer._print(M) + r"\right\|_1"
    sub = "" if name == "lse" else r"_{\text{rows}}"
    if mask is not None:
        sub += r"^{" + printer._print(mask) + "}"
    return r"\operatorname{lse}" + sub + r"\left(" + printer._print(M) + r"\right)"


def _logdet_latex(printer: Any, e: Any) -> str:
    return r"\log\det\left(" + printer._print(e.arg) + r"\right)"


# ---- torch ---------------------------------------------------------------------------------------
def _sum_lower(printer: Any, e: Any) -> Code:
    return f"{printer._p(e.arg, ATOM)}.sum(dim=(-2, -1), keepdim=True)", ATOM


def _logdet_lower(printer: Any, e: Any) -> Code:
    return f"_logdet_pd({printer.code(e.arg)})", ATOM


def _sum_explicit(e: Any, ev: Callable[[Basic], Any]) -> Any:
    return sum(ev(e.arg))


def _logdet_explicit(e: Any, ev: Callable[[Basic], Any]) -> Any:
    return sp.log(ev(e.arg).det(method="berkowitz"))


register(Primitive(SumAll, vjp=SumAll._vjp, explicit=_sum_explicit, lower=_sum_lower,
                   validate=no_constraint, text=_sum_text, example=lambda X: SumAll(X), latex=_sum_latex,
                   parser={"sum_entries": sum_entries, "l1": l1}))
register(Primitive(LogDet, vjp=LogDet._vjp, explicit=_logdet_explicit, lower=_logdet_lower,
                   validate=_validate_logdet, text=basic_text, example=lambda X: LogDet(X.T * X + Identity(X.rows)), latex=_logdet_latex,
                   parser={"logdet": logdet}, kernels=("_logdet_pd",)))
