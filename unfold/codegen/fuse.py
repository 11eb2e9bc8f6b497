"""Fusions: pattern rewrites of the expression DAG into fused node types, before printing.

:func:`fuse` takes the roots of one generated function (after :func:`.optimize.optimize`), counts
how often every sub-expression is used over the whole DAG, and replaces each match of a pattern
below by a fused node whose lowering is one call (:class:`.printer.TorchCodePrinter` has a plain
rule per fused node).  A match is replaced only when the parts it consumes are used nowhere else:
fusing a shared softmax or normaliser away would compute it twice.

* **attention** — ``c·softmax_rows(S; mask) V₁⋯Vₖ`` with ``S = (c F₁⋯Fⱼ)ᵀ`` (the row-wise softmax
  is the column-wise node ``Softmax(c F₁⋯Fⱼ)`` transposed; ``F₁⋯Fⱼ`` are keys × queries) →
  :class:`FusedAttention` (``F.scaled_dot_product_attention``: no materialised scores);
* **attention, tokens as columns** — ``c V₁⋯Vₖ Softmax(c' F₁⋯Fⱼ; mask)`` (the column-wise softmax
  the last factor) is ``c (softmax_rows(S; maskᵀ) (V₁⋯Vₖ)ᵀ)ᵀ`` with ``S = (c' F₁⋯Fⱼ)ᵀ``: the
  transpose of a :class:`FusedAttention` with the values ``Vₖᵀ⋯V₁ᵀ`` (same guards);
* **normalised exponential** — ``diag(Γ 1)⁻¹ Γ V₁⋯Vₖ`` with ``Γ = exp(S)`` entrywise is
  ``softmax_rows(S) V``.  When every term of ``S`` is a score product ``c G₁⋯Gⱼ`` (one, queries ×
  keys), a row-constant term ``r 1ᵀ`` (``c K 1``) or a column-constant term ``1 bᵀ`` (``c 1 K``),
  it is :class:`FusedAttention` with the scores ``c (G₁⋯Gⱼ)ᵀ = c Gⱼᵀ⋯G₁ᵀ``, the column-constant
  terms as an additive key-bias row ``bᵀ`` (``1 × keys``, broadcast over the queries) and the
  row-constant terms dropped: ``exp(sᵢⱼ + rᵢ) / Σₖ exp(sᵢₖ + rᵢ) = exp(sᵢⱼ) / Σₖ exp(sᵢₖ)``
  exactly (the factor ``exp(rᵢ)`` cancels between numerator and denominator; in floating point
  the fused kernel subtracts the row maximum, so dropping ``rᵢ`` also avoids its overflow).
  Fused only when ``Γ`` is used by this normaliser and this product alone (the Yang–Huang–Wipf
  attention majorization-minimization step, whose ``S`` carries both bias terms);
* **affine layer norm** — ``γ LN_row(x) + 1 bᵀ`` (a row-wise layer norm times a scalar gain plus a
  bias row; the row-wise node is the column-wise ``LayerNorm(xᵀ)`` transposed) →
  :class:`AffineLayerNorm` (one ``F.layer_norm`` with weight and bias), the other terms of the sum
  kept.

The fused nodes exist only between :func:`fuse` and the printer (after differentiation: they need
no VJP, and are never displayed, validated or parsed).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import (
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Transpose,
)

from ..symbolic.axes import AxisSum, MatAxisSum, axes_of
from ..symbolic.masks import Causal, transpose_mask
from ..symbolic.nodes import Elementwise
from ..symbolic.primitives.layernorm import LayerNorm
from ..symbolic.primitives.softmax import Softmax
from ..symbolic.tidy import intern, transpose
from .optimize import col_constant, row_constant, split_mul

__all__ = ["FusedAttention", "AffineLayerNorm", "fuse", "uses"]


class FusedAttention(MatrixExpr):
    """``softmax_rows(Sᵀ + mask) V`` with ``S = scores = c F₁⋯Fⱼ`` (keys × queries), ``V = values``
    (keys × v) and ``mask`` queries × keys (or ``1 × keys``, broadcast over the queries): boolean
    or additive, :data:`~unfold.symbolic.masks.causal`, or ``0`` for none.  Shape queries × v."""

    def __new__(cls, scores: MatrixExpr, values: MatrixExpr, mask: Basic = sp.S.Zero) -> "FusedAttention":
        return Basic.__new__(cls, scores, values, mask)

    @property
    def scores(self) -> MatrixExpr:
        return self.args[0]

    @property
    def values(self) -> MatrixExpr:
        return self.args[1]

    @property
    def mask(self) -> Basic | None:
        m = self.args[2]
        return None if m == sp.S.Zero else m

    @property
    def scale(self) -> Basic:
        return split_mul(self.scores)[0]

    @property
    def score_factors(self) -> list[MatrixExpr]:
        return split_mul(self.scores)[1]

    @property
    def value_factors(self) -> list[MatrixExpr]:
        v = self.values
        return [a for a in v.args if isinstance(a, MatrixExpr)] if isinstance(v, MatMul) else [v]

    @property
    def shape(self) -> tuple[Basic, Basic]:
        return (self.scores.cols, self.values.cols)


class AffineLayerNorm(MatrixExpr):
    """``gain · LN_row(x) + 1 biasᵀ``: each row of ``x`` normalised (biased variance, ``eps`` a
    number), a scalar ``gain`` and a ``1 × cols`` bias row.  Shape that of ``x``."""

    def __new__(cls, x: MatrixExpr, eps: Basic, gain: Basic, bias: MatrixExpr) -> "AffineLayerNorm":
        return Basic.__new__(cls, x, eps, gain, bias)

    @property
    def x(self) -> MatrixExpr:
        return self.args[0]

    @property
    def eps(self) -> Basic:
        return self.args[1]

    @property
    def gain(self) -> Basic:
        return self.args[2]

    @property
    def bias(self) -> MatrixExpr:
        return self.args[3]

    @property
    def shape(self) -> tuple[Basic, Basic]:
        return self.x.shape


def _leaf(e: Basic) -> bool:
    return not e.args or isinstance(e, (sp.Lambda, MatrixSymbol)) or e.is_Atom


def uses(roots: Sequence[Basic]) -> Counter[Basic]:
    """How many times each sub-expression is an argument of a distinct node of the DAG of
    ``roots`` (a root counts once; elementwise bodies are not entered)."""
    count: Counter[Basic] = Counter()
    stack = list(roots)
    while stack:
        x = stack.pop()
        count[x] += 1
        if count[x] == 1 and not _leaf(x):
            stack.extend(x.args)
    return count


def _product(factors: Sequence[MatrixExpr], coeff: Basic = sp.S.One) -> MatrixExpr:
    """``c F₁⋯Fₖ`` as one flat product (no nested MatMul, which the printer would not see into)."""
    if coeff == 1:
        return factors[0] if len(factors) == 1 else MatMul(*factors)
    return MatMul(coeff, *factors)


def _plain_scores(factors: Sequence[MatrixExpr]) -> bool:
    """At least two factors, none an inverse or all-ones matrix (a product SDPA can split)."""
    return len(factors) >= 2 and not any(isinstance(f, (Inverse, OneMatrix)) for f in factors)


# ---- attention: softmax_rows(scores) V -------------------------------------------------------------
def _attention_of(S: Softmax, values: MatrixExpr) -> Optional[FusedAttention]:
    """``Sᵀ V`` (``S = Softmax(c F₁⋯Fⱼ; mask)`` column-wise, i.e. ``Sᵀ`` the row-wise softmax of the
    queries × keys scores) as :class:`FusedAttention`, the mask transposed to queries × keys;
    ``None`` when the scores are not a plain product."""
    if not _plain_scores(split_mul(S.arg)[1]):
        return None
    m = S.mask
    mask = sp.S.Zero if m is None else m if isinstance(m, Causal) else transpose_mask(m)
    return FusedAttention(S.arg, values, mask)


def _softmax_attention(e: MatMul, n: Counter[Basic]) -> Optional[MatrixExpr]:
    coeff, mats = split_mul(e)
    if len(mats) < 2 or not (isinstance(mats[0], Transpose) and isinstance(mats[0].arg, Softmax)):
        return None
    S = mats[0].arg
    if n[S] > 1 or n[mats[0]] > 1:
        return None
    fused = _attention_of(S, _product(mats[1:]))
    return None if fused is None else _product([fused], coeff)


def _column_softmax_attention(e: MatMul, n: Counter[Basic]) -> Optional[MatrixExpr]:
    """``c V₁⋯Vₖ S`` with ``S = Softmax(c' F₁⋯Fⱼ; mask)`` column-wise (the tokens-as-columns layout,
    ``X softmax_col(β Xᵀ ξ)``) is ``c (Sᵀ (V₁⋯Vₖ)ᵀ)ᵀ``: the transpose of the row pattern with the
    values ``Vₖᵀ⋯V₁ᵀ``."""
    coeff, mats = split_mul(e)
    if len(mats) < 2 or not isinstance(mats[-1], Softmax):
        return None
    S = mats[-1]
    if n[S] > 1:
        return None
    fused = _attention_of(S, _product([transpose(v) for v in reversed(mats[:-1])]))
    return None if fused is None else _product([Transpose(fused)], coeff)


# ---- attention: diag(exp(S) 1)⁻¹ exp(S) V -------------------------------------------------------
def _is_exp(g: Basic) -> bool:
    if not isinstance(g, Elementwise):
        return False
    lam = g.function
    return bool(lam.expr == sp.exp(lam.variables[0]))


def _normaliser_of(inv: Basic) -> Optional[Basic]:
    """``Γ`` when ``inv = diag(Γ 1)⁻¹``, i.e. ``Inverse(I ∘ (Γ 1))`` with coefficient 1."""
    if not isinstance(inv, Inverse) or not isinstance(inv.arg, HadamardProduct) or len(inv.arg.args) != 2:
        return None
    others = [a for a in inv.arg.args if not isinstance(a, Identity)]
    if len(others) != 1:
        return None
    rc = row_constant(others[0])
    if rc is None or rc[0] != 1 or len(rc[1]) != 1:
        return None
    return rc[1][0]


def _normalised_exp_attention(e: MatMul, n: Counter[Basic]) -> Optional[MatrixExpr]:
    coeff, mats = split_mul(e)
    if len(mats) < 3:
        return None
    inv, gamma = mats[0], mats[1]
    if _normaliser_of(inv) != gamma or not _is_exp(gamma):
        return None
    # Γ read by Γ 1 and by this product only; the normaliser's nodes by this product only
    rowsum = inv.arg.args[0] if not isinstance(inv.arg.args[0], Identity) else inv.arg.args[1]
    if n[gamma] > 2 or n[rowsum] > 1 or n[inv.arg] > 1 or n[inv] > 1:
        return None
    S = gamma.expr
    terms = list(S.args) if isinstance(S, MatAdd) else [S]
    score: Optional[tuple[Basic, list[MatrixExpr]]] = None
    bias: list[MatrixExpr] = []
    for t in terms:
        if row_constant(t) is not None:
            continue  # r 1ᵀ: cancels in the normalisation
        cc = col_constant(t)
        if cc is not None:
            c, K = cc  # c 1 K: the key-bias row is c 1ᵀ K (1 × keys)
            row = list(K) if K[0].rows == 1 else [OneMatrix(1, K[0].rows), *K]
            bias.append(_product(row, c))
            continue
        c, F = split_mul(t)
        if score is not None or not _plain_scores(F):
            return None
        score = (c, F)
    if score is None:
        return None
    c, F = score
    keys_by_queries = [transpose(f) for f in reversed(F)]
    scores = _product(keys_by_queries, c)
    mask: Basic = sp.S.Zero if not bias else bias[0] if len(bias) == 1 else MatAdd(*bias)
    values, rest = _split_values(mats[2:])
    return _product([FusedAttention(scores, _product(values), mask), *rest], coeff)


def _split_values(factors: Sequence[MatrixExpr]) -> tuple[list[MatrixExpr], list[MatrixExpr]]:
    """``V₁⋯Vₖ`` split after the first factor that brings in a named axis (a head's projection,
    ``Y W_s^hᵀ``): attention then mixes head-width values and the rest (``U_h``, an output projection)
    multiplies its result — inside ``Σ_h`` one product contracting over the heads too."""
    seen = axes_of(factors[0])
    for i, f in enumerate(factors[1:], start=1):
        if axes_of(f) - seen:
            return list(factors[:i + 1]), list(factors[i + 1:])
    return list(factors), []


# ---- affine layer norm ------------------------------------------------------------------------------
def _affine_layernorm(e: MatAdd, n: Counter[Basic]) -> Optional[MatrixExpr]:
    ln = bias = None
    for t in e.args:
        coeff, mats = split_mul(t)
        if (ln is None and len(mats) == 1 and isinstance(mats[0], Transpose)
                and isinstance(mats[0].arg, LayerNorm) and isinstance(mats[0].arg.arg, Transpose)
                and mats[0].arg.eps.is_number and n[mats[0]] <= 1 and n[t] <= 1):
            ln = (t, coeff, mats[0].arg)
        elif (bias is None and coeff == 1 and len(mats) == 2 and isinstance(mats[0], OneMatrix)
              and mats[0].cols == 1 and mats[1].rows == 1):
            bias = (t, mats[1])
    if ln is None or bias is None:
        return None
    t_ln, gain, node = ln
    fused = AffineLayerNorm(node.arg.arg, node.eps, gain, bias[1])
    rest = [t for t in e.args if t is not t_ln and t is not bias[0]]
    return fused if not rest else MatAdd(fused, *rest)


_PATTERNS = {
    MatMul: (_softmax_attention, _column_softmax_attention, _normalised_exp_attention),
    MatAdd: (_affine_layernorm,),
}


def _contracted_axis_sum(e: Basic) -> bool:
    """True for ``Σ_h c F₁⋯Fₖ`` (k ≥ 2, no inverse or all-ones factor, the body ranging over ``h``):
    the printer contracts the last product over ``h`` too (``_axis_mm``)."""
    if not isinstance(e, (AxisSum, MatAxisSum)) or not isinstance(e.body, MatMul):
        return False
    return e.args[1] in axes_of(e.body) and _plain_scores(split_mul(e.body)[1])


def fuse(roots: Sequence[Basic]) -> list[Basic]:
    """``roots`` with every match of the patterns above replaced by its fused node (each distinct
    node rewritten once; a match's parts are fused in turn)."""
    n = uses(roots)
    memo: dict[Basic, Basic] = {}

    def rebuild(e: Basic) -> Basic:
        if _contracted_axis_sum(e):
            # Σ_h F₁⋯Fₖ is printed as one product contracting over h too (``_axis_mm``): its body is
            # not fused at the top (the values' projections stay inside the contraction)
            body = e.body
            args = [go(a) for a in body.args]
            if any(a is not o for a, o in zip(args, body.args)):
                body = body.func(*args)
            return e.func(body, *e.args[1:]) if body is not e.body else e
        args = [go(a) for a in e.args]
        return e.func(*args) if any(a is not o for a, o in zip(args, e.args)) else e

    def go(e: Basic) -> Basic:
        hit = memo.get(e)
        if hit is not None:
            return hit
        if _leaf(e):
            return e
        out: Optional[Basic] = None
        for pattern in _PATTERNS.get(type(e), ()):
            out = pattern(e, n)
            if out is not None:
                break
        new = memo[e] = rebuild(out if out is not None else e)
        return new

    return [intern(go(r)) for r in roots]
