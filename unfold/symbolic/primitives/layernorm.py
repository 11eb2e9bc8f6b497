"""Layer norm of each column (tokens as columns) and its inverse standard deviation.

For a column ``x ∈ Rᵈ`` and an explicit ``eps > 0`` (biased variance, no gain)::

    LayerNorm(x) = (x − mean x) · s,     LNInvStd(x) = s·1,     s = 1/sqrt(var x + eps)

VJPs: ``LayerNorm``: ``s ∘ (G − J G − y ∘ J(G ∘ y))`` with ``J = 1/d`` all-ones, ``y`` the output,
and ``−½ Σ G ∘ y ∘ s ∘ s`` to a symbolic ``eps``; ``LNInvStd``: ``−(1/d) s∘s∘y∘(1 G)`` and
``−½ Σ G ∘ s³`` to ``eps``.  Torch: ``F.layer_norm`` over the rows (numeric ``eps``), else the
formula with ``_invstd``.  Explicit size: the definitions per column.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import sympy as sp
from sympy import Basic, S
from sympy.matrices.expressions import HadamardProduct, MatrixExpr, OneMatrix, Transpose

from ...errors import ShapeMismatchError
from ..nodes import MatFn, lazy_add, lazy_mul
from .reductions import SumAll
from .registry import ATOM, MUL, Code, Primitive, register
from ._common import axis_arg, basic_text, column_apply, matrix_arg, no_constraint, operator_latex

__all__ = ["LayerNorm", "LNInvStd", "layernorm"]

Scalar = Union[sp.Expr, int, float]


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

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        d = self.rows
        y = LayerNorm(self.arg, self.eps)
        colsum = lazy_mul(OneMatrix(d, d), G)
        out: list[tuple[Basic, Basic]] = [(self.arg, lazy_mul(S.NegativeOne / d, HadamardProduct(self, self, y, colsum)))]
        if self.eps.free_symbols:  # ∂s/∂eps = −½ s³
            out.append((self.eps, -S.Half * SumAll(HadamardProduct(G, self, self, self))))
        return out


def layernorm(M: MatrixExpr, eps: Scalar, gain: Optional[Scalar] = None, axis: int = 0) -> MatrixExpr:
    """Per-token layer norm ``gain·(x − mean x)/sqrt(var x + eps)`` (biased variance).

    Tokens are columns for ``axis=0`` and rows for ``axis=1``.  ``eps`` must be given explicitly
    and be positive; ``gain`` is a scalar or ``None`` (a per-feature gain would make the layer-norm
    Jacobian non-symmetric, which the Energy-Transformer argument forbids: add it outside).
    """
    M = matrix_arg(M, "layernorm")
    eps_s = sp.sympify(eps) if isinstance(eps, (int, float, sp.Expr)) else None  # safe: numbers
    if eps_s is None or isinstance(eps_s, MatrixExpr):
        raise ShapeMismatchError(f"layernorm(): eps must be a positive scalar, got {eps!r}")
    if eps_s.is_positive is not True:
        raise ShapeMismatchError(
            f"layernorm(): eps must be positive (got {eps!r}); eps = 0 makes the Jacobian blow up "
            "for constant tokens. Use e.g. eps=1e-5"
        )
    ax = axis_arg(axis, "layernorm")
    out = LayerNorm(M, eps_s) if ax == 0 else Transpose(LayerNorm(Transpose(M), eps_s))
    if gain is None:
        return out
    if isinstance(gain, MatrixExpr):
        raise ShapeMismatchError(
            "layernorm(): gain must be a scalar; a per-feature gain breaks the symmetry of the "
            "layer-norm Jacobian. Multiply by a diagonal parameter outside layernorm if you need it"
        )
    return sp.sympify(gain) * out  # safe: scalar sympy expression or number


# ---- explicit size -------------------------------------------------------------------------------
def _centred_and_invstd(c: sp.Matrix, eps: sp.Expr) -> tuple[list[Any], Any]:
    n = c.rows
    mu = sum(c) / n
    var = sum((x - mu) ** 2 for x in c) / n
    return [x - mu for x in c], 1 / sp.sqrt(var + eps)


def _ln_explicit(e: Any, ev: Callable[[Basic], Any]) -> sp.Matrix:
    eps = ev(e.eps)

    def col(c: sp.Matrix) -> sp.Matrix:
        centred, s = _centred_and_invstd(c, eps)
        return sp.Matrix([[x * s] for x in centred])

    return column_apply(ev(e.arg), col)


def _invstd_explicit(e: Any, ev: Callable[[Basic], Any]) -> sp.Matrix:
    eps = ev(e.eps)
    return column_apply(ev(e.arg), lambda c: sp.ones(c.rows, 1) * _centred_and_invstd(c, eps)[1])


# ---- torch ---------------------------------------------------------------------------------------
def _ln_lower(printer: Any, e: Any) -> Code:
    x = printer.hoist(e.arg)
    if e.eps.is_number:
        return printer.transposed(f"torch.nn.functional.layer_norm({x}.mT, ({x}.shape[-2],), eps={float(e.eps)!r})"), ATOM
    return f"({x} - {x}.mean(dim=-2, keepdim=True)) * _invstd({x}, {printer.code(e.eps)})", MUL


def _invstd_lower(printer: Any, e: Any) -> Code:
    return f"_invstd({printer.code(e.arg)}, {printer.code(e.eps)})", ATOM


register(Primitive(LayerNorm, vjp=LayerNorm._vjp, explicit=_ln_explicit, lower=_ln_lower,
                   validate=no_constraint, text=basic_text, example=lambda X: LayerNorm(X, S.One / 10),
                   latex=operator_latex("LN"),
                   parser={"layernorm": layernorm}, kernels=("_invstd",)))
register(Primitive(LNInvStd, vjp=LNInvStd._vjp, explicit=_invstd_explicit, lower=_invstd_lower,
                   validate=no_constraint, text=basic_text, example=lambda X: LNInvStd(X, S.One / 10),
                   latex=operator_latex("invstd"), kernels=("_invstd",)))
