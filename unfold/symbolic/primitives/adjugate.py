"""The adjugate ``adj(A)`` (transpose of the cofactor matrix) and the gradient of ``det`` through it.

For a square ``A`` (``n × n``)::

    adj(A)ᵢⱼ = (−1)^{i+j} det(A with row j and column i removed),     A·adj(A) = adj(A)·A = det(A)·I

so ``adj(A) = det(A)·A⁻¹`` where ``A`` is invertible, and ``adj`` is a polynomial in the entries of
``A`` (degree ``n − 1``), defined at every ``A``.  The gradient of the determinant is

    ∂ det(A) / ∂A = adj(A)ᵀ                  (Jacobi's formula; = det(A)·A⁻ᵀ where A is invertible)

and it is written that way by the gradient engine, so ``∇ det`` is finite at singular ``A`` too (rank
``n − 1``: ``adj(A)`` has rank 1; rank ≤ ``n − 2``: ``adj(A) = 0``).  ``adj(Aᵀ) = adj(A)ᵀ``.

Second derivatives (the VJP of ``adj`` itself, cotangent ``G``) use the inverse::

    ∂⟨G, adj(A)⟩/∂A = tr(Gᵀ adj(A))·A⁻ᵀ − adj(A)ᵀ G A⁻ᵀ

exact where ``A`` is invertible; at a singular ``A`` the generated code refuses (``inv``).  The
torch kernel (:mod:`unfold.codegen.kernels.adjugate`) computes ``adj`` from an SVD without dividing by singular
values, and its own autograd/forward-mode rules (Hessian-vector products of a gradient containing
``adj``) are finite at singular ``A`` as well.  Leg 2 of the gradient check expands ``adj`` with
sympy's ``Matrix.adjugate`` (cofactors, no inverse).
"""

from __future__ import annotations

from typing import Any, Callable

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import Inverse, MatrixExpr, Trace, Transpose

from ...errors import ShapeMismatchError
from ..nodes import MatFn, lazy_add, lazy_mul
from ..tidy import doit as cached_doit
from .registry import ATOM, Code, Primitive, register
from ._common import matrix_arg, no_constraint, operator_latex

__all__ = ["Adjugate", "adj"]


class Adjugate(MatFn):
    """``adj(A)``, the adjugate of a square matrix (``det(A)·A⁻¹`` where ``A`` is invertible).

    VJP: ``tr(Gᵀ adj(A))·A⁻ᵀ − adj(A)ᵀ G A⁻ᵀ`` (needs ``A`` invertible; see the module docstring).
    """

    def __new__(cls, M: MatrixExpr) -> "Adjugate":
        if not isinstance(M, MatrixExpr) or M.rows != M.cols:
            shape = f"{M.rows}×{M.cols}" if isinstance(M, MatrixExpr) else type(M).__name__
            raise ShapeMismatchError(f"adj needs a square matrix, {M} is {shape}")
        return MatFn.__new__(cls, M)

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        A = self.arg
        inv_t = Transpose(Inverse(A))
        coupling = Trace(lazy_mul(Transpose(G), self))
        return [(A, lazy_add(lazy_mul(coupling, inv_t), lazy_mul(-1, Transpose(self), G, inv_t)))]

    def _eval_transpose(self) -> "Adjugate":
        """``adj(A)ᵀ = adj(Aᵀ)`` (as sympy writes ``(A⁻¹)ᵀ = (Aᵀ)⁻¹``; sympy's own transposes use it)."""
        return _transpose(self)

    def _sympystr(self, printer: Any) -> str:
        return _text(printer, self)


def adj(M: MatrixExpr) -> MatrixExpr:
    """The adjugate ``adj(M)`` of a square matrix (``det(M)·M⁻¹`` where ``M`` is invertible; defined at
    every ``M``)."""
    M = matrix_arg(M, "adj")
    if M.rows != M.cols:
        raise ShapeMismatchError(f"adj() needs a square matrix, {M} is {M.rows}×{M.cols}")
    return Adjugate(M)


def _explicit(e: Any, ev: Callable[[Basic], Any]) -> sp.Matrix:
    return ev(e.arg).adjugate(method="berkowitz")


def _transpose(e: Any) -> "Adjugate":
    return Adjugate(cached_doit(Transpose(e.arg)))


def _text(printer: Any, e: Any) -> str:
    return f"adj({printer._print(e.arg)})"


def _lower(printer: Any, e: Any) -> Code:
    """``_adjugate`` (:mod:`unfold.codegen.kernels.adjugate`: from an SVD, finite at singular ``A``)."""
    return f"_adjugate({printer.code(e.arg)})", ATOM


register(Primitive(Adjugate, vjp=Adjugate._vjp, explicit=_explicit, lower=_lower, validate=no_constraint,
                   text=_text, example=lambda X: Adjugate(X),
                   latex=operator_latex("adj"), transpose=_transpose, parser={"adj": adj},
                   kernels=("_adjugate",)))
