"""The determinant ``det A`` of a square matrix (sympy's ``Determinant`` node).

VJP (Jacobi's formula): ``G·adj(A)ᵀ``, through :class:`~unfold.symbolic.primitives.adjugate.Adjugate`,
so the gradient is finite at singular ``A`` (``= G·det(A)·A⁻ᵀ`` where ``A`` is invertible).  Torch:
``torch.linalg.det``, kept ``(…, 1, 1)``.  Explicit size: the Berkowitz determinant (division-free).
Displayed as sympy displays it.
"""

from __future__ import annotations

from typing import Any, Callable

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import Determinant, MatrixExpr, Transpose
from sympy.printing.printer import Printer

from ...errors import ShapeMismatchError
from ..nodes import lazy_mul
from .adjugate import Adjugate
from .registry import ATOM, Code, Primitive, register
from ._common import matrix_arg

__all__ = ["det"]


def _square(M: MatrixExpr, who: str) -> MatrixExpr:
    if M.rows != M.cols:
        raise ShapeMismatchError(f"{who} needs a square matrix, {M} is {M.rows}×{M.cols}")
    return M


def det(M: MatrixExpr) -> sp.Expr:
    """Determinant."""
    return Determinant(_square(matrix_arg(M, "det"), "det()"))


def _vjp(e: Any, G: Any) -> list[tuple[Basic, Basic]]:
    return [(e.arg, lazy_mul(G, Transpose(Adjugate(e.arg))))]  # Jacobi: ∂det A/∂A = adj(A)ᵀ


def _explicit(e: Any, ev: Callable[[Basic], Any]) -> Any:
    return ev(e.arg).det(method="berkowitz")


def _lower(printer: Any, e: Any) -> Code:
    return f"torch.linalg.det({printer.code(e.arg)})[..., None, None]", ATOM


def _validate(e: Any) -> None:
    _square(e.arg, "Determinant")


def _sympy_display(printer: Any, e: Any) -> str:
    """sympy's own display of the node (``Determinant(A)``, ``\\left|{A}\\right|``)."""
    return Printer._print(printer, e)


register(Primitive(Determinant, vjp=_vjp, explicit=_explicit, lower=_lower, validate=_validate,
                   text=_sympy_display, example=lambda X: Determinant(X), latex=_sympy_display,
                   parser={"det": det}))
