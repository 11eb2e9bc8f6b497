"""Expression nodes sympy lacks (or differentiates wrongly), each with its vector-Jacobian rule.

Conventions: matrices are ``rows × cols``; "column-wise" nodes act on every column independently
(tokens as columns); the row-wise forms are written as ``Node(M.T).T`` by :mod:`unfold.symbolic.ops`.

Each node's ``_vjp(G)`` receives the cotangent ``G`` (same shape as the node; a scalar expression
for scalar nodes) and returns ``[(child, cotangent_of_child), ...]`` with every cotangent of the
child's own shape, so gradients stay matrix expressions.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy import Basic, S
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatrixExpr,
    OneMatrix,
    Transpose,
)

from ..errors import ShapeMismatchError, UnsupportedNodeError
from .shape_memo import install as _memoise_sympy_shapes, memoised_shape
from .tidy import doit as cached_doit

_memoise_sympy_shapes()

__all__ = [
    "U",
    "ew",
    "lazy_mul",
    "lazy_add",
    "ScalarMatFn",
    "SumAll",
    "LogDet",
    "MatFn",
    "LSE",
    "Softmax",
    "LayerNorm",
    "LNInvStd",
    "SoftThreshold",
]

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


class SumAll(ScalarMatFn):
    """``Σᵢⱼ Mᵢⱼ``; VJP: ``G·1``."""

    def _vjp(self, G: sp.Expr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, lazy_mul(G, OneMatrix(*self.arg.shape)))]


class LogDet(ScalarMatFn):
    """``log det M`` for a positive-definite ``M``; VJP: ``G·M⁻ᵀ``."""

    def __new__(cls, M: MatrixExpr) -> "LogDet":
        M = _matrix_arg(M, "logdet")
        if M.rows != M.cols:
            raise ShapeMismatchError(f"logdet needs a square matrix, {M} is {M.rows}×{M.cols}")
        return sp.Expr.__new__(cls, M)

    def _vjp(self, G: sp.Expr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, lazy_mul(G, Transpose(Inverse(self.arg))))]

    def _latex(self, printer: Any) -> str:
        return r"\log\det\left(" + printer._print(self.arg) + r"\right)"


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

    def _latex(self, printer: Any) -> str:
        name = self._latex_name
        return r"\operatorname{" + name + r"}\left(" + printer._print(self.arg) + r"\right)"

    _latex_name = "f"


class _MaskedColumnFn(MatFn):
    """A column-wise reduction with an optional mask (second argument; see
    :mod:`unfold.symbolic.masks`): excluded entries take no part (``exp`` of them is 0)."""

    @property
    def mask(self) -> Basic | None:
        return self.args[1] if len(self.args) > 1 else None

    def _latex(self, printer: Any) -> str:
        m = self.mask
        sub = "" if m is None else "_{" + printer._print(m) + "}"
        return (r"\operatorname{" + self._latex_name + "}" + sub + r"\left(" + printer._print(self.arg)
                + r"\right)")


class LSE(_MaskedColumnFn):
    """Column-wise log-sum-exp: ``LSE(M)₁ⱼ = log Σᵢ exp Mᵢⱼ`` (1×cols; over allowed ``i`` with a
    mask); VJP: ``(1 G) ∘ Softmax(M)`` (the same mask)."""

    _latex_name = "lse"

    def _shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (S.One, self.arg.cols)

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, HadamardProduct(lazy_mul(OneMatrix(self.arg.rows, 1), G), Softmax(*self.args)))]


class Softmax(_MaskedColumnFn):
    """Column-wise softmax (0 on masked entries); VJP: ``S∘G − S∘(1 (S∘G))`` with ``1`` the
    all-ones ``rows×rows``."""

    _latex_name = "softmax"

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        SG = HadamardProduct(self, G)
        return [(self.arg, lazy_add(SG, lazy_mul(-1, HadamardProduct(self, lazy_mul(OneMatrix(self.rows, self.rows), SG)))))]


class _ColumnStatFn(MatFn):
    """A column-wise function of the column statistics with an explicit ``eps`` (second argument)."""

    def __new__(cls, M: MatrixExpr, eps: Any) -> "_ColumnStatFn":
        return MatFn.__new__(cls, M, eps)

    @property
    def eps(self) -> sp.Expr:
        return self.args[1]


class LayerNorm(_ColumnStatFn):
    """Column-wise layer norm ``(x − mean x)/sqrt(var x + eps)`` (biased variance, no gain).

    VJP: ``s ∘ (G − J G − y ∘ J(G ∘ y))`` with ``J = 1/rows`` all-ones, ``y`` the output and
    ``s = LNInvStd``; to a symbolic ``eps``: ``−½ Σ G ∘ y ∘ s ∘ s``.
    """

    _latex_name = "LN"

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        d = self.rows
        J = lazy_mul(S.One / d, OneMatrix(d, d))
        inner = lazy_add(G, lazy_mul(-1, J, G), lazy_mul(-1, HadamardProduct(self, lazy_mul(J, HadamardProduct(G, self)))))
        s = LNInvStd(self.arg, self.eps)
        out: list[tuple[Basic, Basic]] = [(self.arg, HadamardProduct(s, inner))]
        if self.eps.free_symbols:  # ∂y/∂eps = −½ y∘s∘s  (y = (x − μ) s, s = (var + eps)^(−1/2))
            out.append((self.eps, -S.Half * SumAll(HadamardProduct(G, self, s, s))))
        return out


class LNInvStd(_ColumnStatFn):
    """``1/sqrt(var + eps)`` of each column, broadcast to the argument's shape.

    VJP: ``−(1/rows) s∘s∘y∘(1 G)`` with ``y = LayerNorm``, ``1`` all-ones ``rows×rows``; to a
    symbolic ``eps``: ``−½ Σ G ∘ s³``.
    """

    _latex_name = "invstd"

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        d = self.rows
        y = LayerNorm(self.arg, self.eps)
        colsum = lazy_mul(OneMatrix(d, d), G)
        out: list[tuple[Basic, Basic]] = [(self.arg, lazy_mul(S.NegativeOne / d, HadamardProduct(self, self, y, colsum)))]
        if self.eps.free_symbols:  # ∂s/∂eps = −½ s³
            out.append((self.eps, -S.Half * SumAll(HadamardProduct(G, self, self, self))))
        return out


class SoftThreshold(MatFn):
    """``sign(M) ∘ max(|M| − t, 0)``: the proximal map of ``t‖·‖₁``.

    VJP: ``G ∘ [|M| > t]`` to ``M`` and ``−Σ G ∘ sign(M) ∘ [|M| > t]`` to ``t``.
    """

    _latex_name = "S"

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

    def _latex(self, printer: Any) -> str:
        return (r"\mathcal{S}_{" + printer._print(self.threshold) + r"}\left("
                + printer._print(self.arg) + r"\right)")
