"""Column-wise log-sum-exp and softmax, with an optional mask.

For a ``rows × cols`` matrix ``M`` (tokens as columns) and the allowed set of each column (all
rows without a mask; see :mod:`unfold.symbolic.masks`)::

    LSE(M)₁ⱼ  = log Σᵢ exp Mᵢⱼ                      (1 × cols)
    Softmax(M)ᵢⱼ = exp Mᵢⱼ / Σₖ exp Mₖⱼ             (0 on excluded entries)

VJPs: ``LSE``: ``(1 G) ∘ Softmax(M)``; ``Softmax``: ``S∘G − S∘(1 (S∘G))`` with ``1`` the all-ones
``rows × rows``.  Row-wise forms are ``Node(Mᵀ)ᵀ``.  Torch: ``logsumexp``/``softmax`` along the
rows, or along the contiguous last dim of ``Mᵀ`` when ``M`` is computed here and used once; a mask
sets excluded scores to ``-inf`` (boolean) or adds itself (additive).  Explicit size: the
definitions, ``exp`` of an excluded entry being 0.  Display names the axis: ``Softmax_cols(M)``,
``Softmax_rows(M)`` for ``Node(Mᵀ)ᵀ`` (in LaTeX the axis a subscript, a mask a
superscript), plain ``Softmax(v)`` on a vector, where both agree.
"""

from __future__ import annotations

from functools import reduce
from typing import Any, Callable

import sympy as sp
from sympy import Basic, S
from sympy.matrices.expressions import (
    HadamardProduct, MatAdd, MatMul, MatrixExpr, OneMatrix, Transpose,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..masks import Causal, check_mask, transpose_mask
from ..nodes import MatFn, lazy_add, lazy_mul
from .reductions import SumAll
from ..tidy import transpose
from .registry import ATOM, Code, Primitive, register
from ._common import axis_arg, matrix_arg, no_constraint

__all__ = ["LSE", "Softmax", "lse", "lse_cols", "lse_rows", "softmax"]


class _MaskedColumnFn(MatFn):
    """A column-wise reduction with an optional mask (second argument): excluded entries take no
    part (``exp`` of them is 0)."""

    @property
    def mask(self) -> Basic | None:
        return self.args[1] if len(self.args) > 1 else None


class LSE(_MaskedColumnFn):
    """Column-wise log-sum-exp: ``LSE(M)₁ⱼ = log Σᵢ exp Mᵢⱼ`` (1×cols; over allowed ``i`` with a
    mask); VJP: ``(1 G) ∘ Softmax(M)`` (the same mask)."""

    def _shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (S.One, self.arg.cols)

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, HadamardProduct(lazy_mul(OneMatrix(self.arg.rows, 1), G), Softmax(*self.args)))]


class Softmax(_MaskedColumnFn):
    """Column-wise softmax (0 on masked entries); VJP: ``S∘G − S∘(1 (S∘G))`` with ``1`` the
    all-ones ``rows×rows``."""

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        SG = HadamardProduct(self, G)
        return [(self.arg, lazy_add(SG, lazy_mul(-1, HadamardProduct(self, lazy_mul(OneMatrix(self.rows, self.rows), SG)))))]


# ---- user functions ------------------------------------------------------------------------------
def _masked_args(M: MatrixExpr, mask: Any, who: str) -> tuple[Any, ...]:
    m = check_mask(mask, M, who)
    return (M,) if m is None else (M, m)


def lse_cols(M: MatrixExpr, mask: Any = None) -> MatrixExpr:
    """Column-wise log-sum-exp, a ``1 × cols`` row: ``log Σᵢ exp Mᵢⱼ`` (over allowed ``i``)."""
    M = matrix_arg(M, "lse_cols")
    return LSE(*_masked_args(M, mask, "lse_cols"))


def lse_rows(M: MatrixExpr, mask: Any = None) -> MatrixExpr:
    """Row-wise log-sum-exp, a ``rows × 1`` column: ``log Σⱼ exp Mᵢⱼ`` (over allowed ``j``)."""
    M = matrix_arg(M, "lse_rows")
    m = check_mask(mask, M, "lse_rows")
    inner = (Transpose(M),) if m is None else (Transpose(M), transpose_mask(m))
    return Transpose(LSE(*inner))


def lse(M: MatrixExpr, axis: int = 0, mask: Any = None) -> sp.Expr:
    """Sum over columns (``axis=0``) or rows (``axis=1``) of the log-sum-exp: a scalar.

    ``mask``: ``uf.causal`` (key ≤ query, the key being the reduced index) or a mask declared with
    ``uf.mask`` (boolean or additive at run time), oriented like ``M``; see
    :mod:`unfold.symbolic.masks`."""
    M = matrix_arg(M, "lse")
    return SumAll(lse_cols(M, mask) if axis_arg(axis, "lse") == 0 else lse_rows(M, mask))


def softmax(M: MatrixExpr, axis: int = 0, mask: Any = None) -> MatrixExpr:
    """Softmax of each column (``axis=0``) or each row (``axis=1``), 0 on masked entries
    (``mask`` as for :func:`lse`)."""
    M = matrix_arg(M, "softmax")
    m = check_mask(mask, M, "softmax")
    if axis_arg(axis, "softmax") == 0:
        return Softmax(M) if m is None else Softmax(M, m)
    inner = (Transpose(M),) if m is None else (Transpose(M), transpose_mask(m))
    return Transpose(Softmax(*inner))


# ---- explicit size -------------------------------------------------------------------------------
def _explicit(e: Any, ev: Callable[[Basic], Any]) -> sp.Matrix:
    """From the definitions: ``exp`` of an excluded entry is 0 and an additive mask adds its
    (finite) value; the mask's explicit value has numbers, ``-oo`` where excluded, broadcast over
    a unit dimension; the causal mask allows row index ≤ column index."""
    M = ev(e.arg)
    m = e.mask
    mask = None if m is None or isinstance(m, Causal) else ev(m)
    r, c = M.shape

    def entry(i: int, j: int) -> Any:
        if m is None:
            return sp.exp(M[i, j])
        if mask is None:
            return sp.exp(M[i, j]) if i <= j else S.Zero
        v = mask[i if mask.rows > 1 else 0, j if mask.cols > 1 else 0]
        if v == -sp.oo:
            return S.Zero
        return sp.exp(M[i, j]) if v == 0 else sp.exp(M[i, j] + v)

    cols = []
    for j in range(c):
        ex = [entry(i, j) for i in range(r)]
        total = sum(ex)
        if isinstance(e, LSE):
            cols.append(sp.Matrix([[sp.log(total)]]))
        else:
            cols.append(sp.Matrix(r, 1, lambda i, _: ex[i] / total))
    return reduce(lambda a, b: a.row_join(b), cols)


# ---- torch ---------------------------------------------------------------------------------------
def _contiguous_transpose(printer: Any, a: Basic) -> Basic | None:
    """``aᵀ`` when ``a`` is computed here (a product, sum or elementwise map) and used only once:
    a column-wise reduction of ``a`` is then a row-wise one of ``aᵀ``, which runs along the
    contiguous axis of the freshly computed ``aᵀ`` (twice as fast for softmax at 1024 tokens)."""
    if printer._env or printer._shared(a) > 1 or a in printer._memo:
        return None
    if not isinstance(a, (MatMul, MatAdd, HadamardProduct, ElementwiseApplyFunction)):
        return None
    t = transpose(a)
    return None if isinstance(t, Transpose) else t


def _masked_scores(printer: Any, e: Any) -> tuple[str, int]:
    """The scores with excluded entries at ``-inf`` (boolean masks) or the additive mask added,
    and the dim the reduction runs along: the transposed scores (keys along the last, contiguous
    dim) when they are computed here."""
    m = e.mask
    t = _contiguous_transpose(printer, e.arg)
    if t is not None:
        mc = "None" if m is None else '"causal"' if isinstance(m, Causal) else printer.code(transpose_mask(m))
        return f"_masked({printer.code(t)}, {mc}, -1)", -1
    mc = '"causal"' if isinstance(m, Causal) else printer.code(m)
    return f"_masked({printer.code(e.arg)}, {mc})", -2


def _reduction(fn: str, keepdim: bool) -> Callable[[Any, Any], Code]:
    """``torch.<fn>`` along the rows of the scores (masked or not)."""
    kd = ", keepdim=True" if keepdim else ""

    def lower(printer: Any, e: Any) -> Code:
        if e.mask is not None:
            code, dim = _masked_scores(printer, e)
            out = f"torch.{fn}({code}, dim={dim}{kd})"
            return (printer.transposed(out) if dim == -1 else out), ATOM
        t = _contiguous_transpose(printer, e.arg)
        if t is not None:
            return printer.transposed(f"torch.{fn}({printer.code(t)}, dim=-1{kd})"), ATOM
        return f"torch.{fn}({printer.code(e.arg)}, dim=-2{kd})", ATOM

    return lower


# ---- display -------------------------------------------------------------------------------------
def _shown(e: Any, rows: bool) -> tuple[str, Basic, Basic | None]:
    """The axis label, the scores as the user wrote them and their mask, of ``e`` (``rows``: of
    ``eᵀ``, the row-wise form of the scores ``e.argᵀ``).  The label is empty on a vector (scores of
    one column, or one row for the row-wise form), where both axes agree."""
    axis = "" if e.arg.cols == 1 else "rows" if rows else "cols"
    if rows:
        return axis, transpose(e.arg), transpose_mask(e.mask)
    return axis, e.arg, e.mask


def _text(name: str, rows: bool) -> Callable[[Any, Any], str]:
    """``Name_cols(M)`` / ``Name_rows(M)`` (``Name(v)`` on a vector), then ``, mask``."""
    def text(printer: Any, e: Any) -> str:
        axis, M, m = _shown(e, rows)
        args = printer._print(M) + ("" if m is None else ", " + printer._print(m))
        return f"{name}{'_' + axis if axis else ''}({args})"

    return text


def _latex(name: str, rows: bool) -> Callable[[Any, Any], str]:
    """``\\operatorname{name}_{\\text{cols}}^{mask}(M)`` (``rows`` for the row-wise form, no
    subscript on a vector)."""
    def latex(printer: Any, e: Any) -> str:
        axis, M, m = _shown(e, rows)
        sub = "" if not axis else r"_{\text{" + axis + "}}"
        sup = "" if m is None else "^{" + printer._print(m) + "}"
        return r"\operatorname{" + name + "}" + sub + sup + r"\left(" + printer._print(M) + r"\right)"

    return latex


register(Primitive(LSE, vjp=LSE._vjp, explicit=_explicit, lower=_reduction("logsumexp", True),
                   validate=no_constraint, text=_text("LSE", False), example=lambda X: LSE(X), latex=_latex("lse", False),
                   transposed_text=_text("LSE", True), transposed_latex=_latex("lse", True),
                   parser={"lse": lse, "lse_cols": lse_cols, "lse_rows": lse_rows}, kernels=("_masked",)))
register(Primitive(Softmax, vjp=Softmax._vjp, explicit=_explicit, lower=_reduction("softmax", False),
                   validate=no_constraint, text=_text("Softmax", False), example=lambda X: Softmax(X),
                   latex=_latex("softmax", False), transposed_text=_text("Softmax", True),
                   transposed_latex=_latex("softmax", True),
                   parser={"softmax": softmax}, kernels=("_masked",)))
