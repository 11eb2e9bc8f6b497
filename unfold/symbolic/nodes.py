"""The machinery of unfold's expression nodes: elementwise maps, lazy products and sums, and the
base classes of the nodes sympy lacks (or differentiates wrongly).  The nodes themselves, each with
all of its rules, are the modules of :mod:`unfold.symbolic.primitives`.

Conventions: matrices are ``rows × cols``; "column-wise" nodes act on every column independently
(tokens as columns); the row-wise forms are written as ``Node(M.T).T`` by :mod:`unfold.symbolic.ops`.

Each node's ``_vjp(G)`` receives the cotangent ``G`` (same shape as the node; a scalar expression
for scalar nodes) and returns ``[(child, cotangent_of_child), ...]`` with every cotangent of the
child's own shape, so gradients stay matrix expressions.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    MatAdd,
    MatMul,
    MatrixExpr,
    Transpose,
)

from ..errors import ShapeMismatchError, UnsupportedNodeError
from .shape_memo import install as _memoise_sympy_shapes, memoised_shape
from .tidy import doit as cached_doit

_memoise_sympy_shapes()

__all__ = ["U", "ew", "lazy_mul", "lazy_add", "ScalarMatFn", "MatFn"]

#: The single real variable of every elementwise ``Lambda``: equal lambdas hash equally, so like
#: terms merge and CSE can share them, and ``Abs`` differentiates to ``sign`` (not the complex form).
U = sp.Symbol("u", real=True)


def _is_identity(f: sp.Lambda) -> bool:
    """``u ↦ u`` (sympy's ``IdentityFunction`` reports ``is_identity = False``)."""
    return len(f.variables) == 1 and f.expr == f.variables[0]


class Elementwise(ElementwiseApplyFunction):
    """sympy's ``ElementwiseApplyFunction`` without its ``1×1`` shortcut.

    For a ``1×1`` argument sympy applies the scalar function to the *matrix itself*, which turns
    ``Abs(M)`` into a product of matrix square roots and makes ``Max(M, 0)`` or ``1/(1+exp(-M))``
    raise.  Here an elementwise function stays elementwise at every shape, and composition in
    ``doit`` keeps the single variable ``U``.
    """

    def __new__(cls, function: Any, expr: Any) -> "Elementwise":
        if not isinstance(function, sp.Lambda) or not getattr(expr, "is_Matrix", False):
            return ElementwiseApplyFunction(function, expr)
        if _is_identity(function):  # e.g. exp∘log composed by doit: sympy's Lambda(_x, _x)
            return expr
        return MatrixExpr.__new__(cls, function, expr)

    def doit(self, **hints: Any) -> Any:
        if not hints.get("deep", True):
            expr = self.expr
        elif set(hints) <= {"deep"}:  # a plain deep doit: the cached one (the same result)
            expr = cached_doit(self.expr)
        else:
            expr = self.expr.doit(**hints)
        f = self.function
        if _is_identity(f):
            return expr
        if isinstance(expr, sp.MatrixBase):
            return expr.applyfunc(f)
        if isinstance(expr, ElementwiseApplyFunction):
            g = expr.function
            inner = g.expr.xreplace({g.variables[0]: U})
            return ew(f.expr.xreplace({f.variables[0]: inner}), expr.expr).doit(**hints)
        return self.func(f, expr)

    def _eval_transpose(self) -> "Elementwise":
        """``f(M)ᵀ = f(Mᵀ)`` entrywise (sympy's rule, with the cached ``doit``)."""
        return self.func(self.function, cached_doit(Transpose(self.expr)))


def ew(body: sp.Expr, M: MatrixExpr) -> MatrixExpr:
    """Apply the scalar function ``u ↦ body`` to every entry of ``M``."""
    return Elementwise(sp.Lambda(U, body), M)


def lazy_mul(*factors: Any) -> Any:
    """The product of scalar and matrix factors, built without sympy's eager ``doit``.

    ``A * B`` on matrix expressions re-canonicalises both operands in full (a deep ``doit``), so
    building a cotangent by repeated products is quadratic in its size; VJP rules build with this
    and :func:`lazy_add` and the gradient engine canonicalises once at the end
    (:func:`unfold.symbolic.tidy.doit`).
    """
    if any(isinstance(f, MatrixExpr) for f in factors):
        return MatMul(*factors)
    return sp.Mul(*factors)


def lazy_add(*terms: Any) -> Any:
    """The sum of matrix (or of scalar) terms, built without sympy's eager ``doit``."""
    if any(isinstance(t, MatrixExpr) for t in terms):
        flat: list[Any] = []
        for t in terms:  # sums of sums are flattened (as canonicalisation does) so each is done once
            flat.extend(t.args if isinstance(t, MatAdd) else (t,))
        return MatAdd(*flat)
    return sp.Add(*terms)


def _matrix_arg(M: Any, who: str) -> MatrixExpr:
    if not isinstance(M, MatrixExpr):
        raise ShapeMismatchError(f"{who} takes a matrix expression, got {M!r} ({type(M).__name__})")
    return M


class ScalarMatFn(sp.Expr):
    """A scalar-valued function of one matrix."""

    is_commutative = True
    is_real = True

    def __new__(cls, M: MatrixExpr) -> "ScalarMatFn":
        return sp.Expr.__new__(cls, _matrix_arg(M, cls.__name__))

    @property
    def arg(self) -> MatrixExpr:
        return self.args[0]

    def _eval_derivative(self, s: sp.Symbol) -> sp.Expr:  # pragma: no cover - guarded path
        raise UnsupportedNodeError(
            f"{type(self).__name__}: use unfold's gradient engine (Energy.grad), not sympy .diff"
        )


class MatFn(MatrixExpr):
    """A matrix-valued function of one matrix (plus scalar constants such as ``eps``)."""

    def __new__(cls, M: MatrixExpr, *extra: Any) -> "MatFn":
        _matrix_arg(M, cls.__name__)
        return Basic.__new__(cls, M, *map(sp.sympify, extra))  # safe: numbers/symbols only

    @property
    def arg(self) -> MatrixExpr:
        return self.args[0]

    def _shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.args[0].shape

    shape = memoised_shape(lambda self: self._shape())

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        raise UnsupportedNodeError(f"{type(self).__name__} has no symbolic entries; use uf.expand_explicit")

