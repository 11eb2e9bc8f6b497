"""Exact algebraic rewrites that make derived expressions cheaper to evaluate.

The reverse-mode engine returns gradients in the form the chain rule produces, and a step's update
multiplies them by preconditioners; printed as is, such rules repeat matrix products, invert
matrices whose product with a neighbour is the identity, and scale rows twice.  Before printing,
:func:`optimize` rewrites the expression with identities that hold for every input (no assumption
on the values, so nothing here needs checking at run time):

* **factoring** — a common leading or trailing run of factors leaves a sum:
  ``A B₁ C + A B₂ C → A (B₁ + B₂) C`` (one product per factor instead of one per term);
* **cancellation** — products are flattened so sympy's canonicalisation cancels ``X X⁻¹`` and
  ``X⁻¹ X`` (e.g. ``(∇ Wᵀ W) (WᵀW)⁻¹ → ∇``);
* **diagonal scaling** — a Hadamard product with a row-constant matrix ``v 1ᵀ`` is the row scaling
  ``diag(v) M``, which commutes with right factors: ``(v1ᵀ) ∘ (M N) = ((v1ᵀ) ∘ M) N`` (and with
  left factors for a column-constant ``1 wᵀ``); ``diag(v)⁻¹ ((v1ᵀ) ∘ M) = M``, distributing the
  inverse over a sum when one of its terms cancels this way;
* **collecting** — a scalar multiple of a sum is distributed into an enclosing sum when that
  creates like terms, which sympy then merges (``Y − α(Y − Z) → (1 − α) Y + α Z``);
* **merged elementwise maps** — ``f(M) ∘ g(M) = (u ↦ f(u) g(u))(M)``, with
  ``max(0, u) H(u) = max(0, u)`` (ReLU times its derivative, exact at ``u = 0`` too).

The displayed forms (``Energy.grad``, ``step.update_rule()``) are untouched: only the code is
generated from the rewritten tree.  The tests compare generated code with and without the rewrites.
"""

from __future__ import annotations

from typing import Optional

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import (
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatrixExpr,
    OneMatrix,
)

from ..symbolic.nodes import U, Elementwise
from ..symbolic.tidy import intern

__all__ = ["optimize"]

Factors = list[MatrixExpr]


# ---- products as (coefficient, factors) ------------------------------------------------------------
def split_mul(e: MatrixExpr) -> tuple[sp.Expr, Factors]:
    """``e = c · F₁ ⋯ Fₖ`` with nested products flattened."""
    if not isinstance(e, MatMul):
        return sp.S.One, [e]
    coeff: Basic = sp.S.One
    mats: list[Basic] = []
    for a in e.args:
        if isinstance(a, MatMul):
            c, f = split_mul(a)
            coeff, mats = coeff * c, mats + f
        elif isinstance(a, MatrixExpr):
            mats.append(a)
        else:
            coeff = coeff * a
    return coeff, mats


def make_mul(coeff: sp.Expr, factors: Factors) -> MatrixExpr:
    """``c · F₁ ⋯ Fₖ`` in sympy's canonical form (which cancels adjacent ``X X⁻¹``)."""
    if len(factors) == 1 and coeff == 1:
        return factors[0]
    return MatMul(coeff, *factors).doit(deep=False)


# ---- row- and column-constant matrices -------------------------------------------------------------
def row_constant(B: Basic) -> Optional[tuple[sp.Expr, Factors]]:
    """``(c, K)`` when ``B = c · K · 1`` (a product ending in an all-ones matrix): every row of ``B``
    is constant, ``B = diag(c K 1) 1ᵀ``; the trailing all-ones factors are dropped from ``K``."""
    if not isinstance(B, MatrixExpr):
        return None
    c, f = split_mul(B)
    k = len(f)
    while k and isinstance(f[k - 1], OneMatrix):
        k -= 1
    if k == len(f) or k == 0:
        return None
    for o in f[k:-1]:  # 1_{a×b} 1_{b×c} = b 1_{a×c}
        c = c * o.cols
    return c, f[:k]


def col_constant(B: Basic) -> Optional[tuple[sp.Expr, Factors]]:
    """``(c, K)`` when ``B = c · 1 · K`` (every column constant)."""
    if not isinstance(B, MatrixExpr):
        return None
    c, f = split_mul(B)
    k = 0
    while k < len(f) and isinstance(f[k], OneMatrix):
        k += 1
    if k == 0 or k == len(f):
        return None
    for o in f[1:k]:
        c = c * o.rows
    return c, f[k:]


def _hadamard_scaling(e: HadamardProduct) -> MatrixExpr:
    """``(v1ᵀ) ∘ (M N) → ((v1ᵀ) ∘ M) N`` and ``(1wᵀ) ∘ (N M) → N ((1wᵀ) ∘ M)``, coefficients
    pulled out; applied until the product has a single factor."""
    if len(e.args) != 2:
        return e
    for i in (0, 1):
        B, M = e.args[i], e.args[1 - i]
        cm, fm = split_mul(M)
        if len(fm) < 2:
            continue
        rc = row_constant(B)
        if rc is not None:
            cb, K = rc
            inner = make_mul(sp.S.One, fm[:-1])
            scale = make_mul(sp.S.One, K + [OneMatrix(K[-1].cols, inner.cols)])
            had = _hadamard_scaling(HadamardProduct(scale, inner))
            return make_mul(cb * cm, [had, fm[-1]])
        cc = col_constant(B)
        if cc is not None:
            cb, K = cc
            inner = make_mul(sp.S.One, fm[1:])
            scale = make_mul(sp.S.One, [OneMatrix(inner.rows, K[0].rows)] + K)
            had = _hadamard_scaling(HadamardProduct(scale, inner))
            return make_mul(cb * cm, [fm[0], had])
    return e


# ---- merged elementwise maps -----------------------------------------------------------------------
def _simplify_body(body: sp.Expr) -> sp.Expr:
    """``max(0, u) · H(u) → max(0, u)`` (and its powers): the only body rewrite, exact everywhere."""
    relu, step = sp.Max(0, U), sp.Heaviside(U)
    if isinstance(body, sp.Mul) and relu in body.args and step in body.args:
        return body.func(*[a for a in body.args if a != step])
    return body


def _elementwise(body: sp.Expr, M: MatrixExpr) -> MatrixExpr:
    """``(u ↦ body)(M)``; a constant body (e.g. ``√u · 1/(2√u) = 1/2``) is ``body · 1``."""
    if not body.has(U):
        return make_mul(body, [OneMatrix(*M.shape)])
    return Elementwise(sp.Lambda(U, body), M)


def _merge_elementwise(e: HadamardProduct) -> MatrixExpr:
    """``f(M) ∘ g(M) → (u ↦ f(u) g(u))(M)`` for elementwise maps of the same argument."""
    coeff, parts = sp.S.One, []
    for a in e.args:
        c, f = split_mul(a)
        if len(f) == 1 and isinstance(f[0], Elementwise):
            coeff, a = coeff * c, f[0]
        parts.append(a)
    groups: dict[Basic, sp.Expr] = {}
    rest: list[MatrixExpr] = []
    for a in parts:
        if isinstance(a, Elementwise):
            lam = a.function
            body = lam.expr.xreplace({lam.variables[0]: U})
            groups[a.expr] = groups.get(a.expr, sp.S.One) * body
        else:
            rest.append(a)
    if len(groups) + len(rest) == len(parts) and coeff == 1:
        return e
    merged = [_elementwise(_simplify_body(b), m) for m, b in groups.items()]
    items = merged + rest
    core = items[0] if len(items) == 1 else HadamardProduct(*items)
    return make_mul(coeff, [core])


# ---- sums ---------------------------------------------------------------------------------------
def _factor_sum(e: MatAdd) -> MatrixExpr:
    """Factor the longest common leading (or trailing) run of factors out of the terms sharing it.

    Terms that would be left with no factor are not grouped (``A + A B`` stays: factoring it needs
    an identity matrix)."""
    terms = [split_mul(t) for t in e.args]
    best: Optional[tuple[int, str, tuple[MatrixExpr, ...]]] = None
    for side in ("left", "right"):
        counts: dict[tuple[MatrixExpr, ...], int] = {}
        for _, f in terms:
            for k in range(1, len(f)):  # leave at least one factor
                run = tuple(f[:k]) if side == "left" else tuple(f[-k:])
                counts[run] = counts.get(run, 0) + 1
        for run, cnt in counts.items():
            if cnt >= 2 and (best is None or (cnt, len(run)) > (best[0], len(best[2]))):
                best = (cnt, side, run)
    if best is None:
        return e
    _, side, run = best
    k = len(run)
    inside, outside = [], []
    for (c, f), t in zip(terms, e.args):
        hit = len(f) > k and (tuple(f[:k]) == run if side == "left" else tuple(f[-k:]) == run)
        if hit:
            inside.append(make_mul(c, f[k:] if side == "left" else f[:-k]))
        else:
            outside.append(t)
    inner = optimize(MatAdd(*inside).doit(deep=False))
    grouped = make_mul(sp.S.One, list(run) + [inner] if side == "left" else [inner] + list(run))
    return grouped if not outside else MatAdd(grouped, *outside).doit(deep=False)


def _collect(e: MatAdd) -> MatrixExpr:
    """Distribute ``c · (Σ tᵢ)`` into the enclosing sum when some ``tᵢ`` is a like term of another
    summand (same matrix part), so the merged sum has fewer terms."""
    args = list(e.args)
    keys = {tuple(split_mul(t)[1]) for t in args}
    for i, t in enumerate(args):
        c, f = split_mul(t)
        if len(f) != 1 or not isinstance(f[0], MatAdd):
            continue
        inner = f[0].args
        others = keys - {tuple(f)}
        if any(tuple(split_mul(s)[1]) in others for s in inner):
            new = args[:i] + [make_mul(c, [s]) if c != 1 else s for s in inner] + args[i + 1:]
            return MatAdd(*new).doit(deep=False)
    return e


# ---- products -----------------------------------------------------------------------------------
def _diag_vector(D: Basic) -> Optional[tuple[str, sp.Expr, Factors]]:
    """For ``D = I ∘ B`` with ``B`` row- (or column-) constant: ``("row"|"col", c, K)``."""
    if not isinstance(D, HadamardProduct) or len(D.args) != 2:
        return None
    others = [a for a in D.args if not isinstance(a, Identity)]
    if len(others) != 1:
        return None
    rc = row_constant(others[0])
    if rc is not None:
        return ("row", *rc)
    cc = col_constant(others[0])
    if cc is not None:
        return ("col", *cc)
    return None


def _scaled_by(M: Basic, kind: str, K: Factors) -> Optional[tuple[sp.Expr, MatrixExpr]]:
    """``(c, N)`` when ``M = c · (B ∘ N)`` with ``B`` row- (``kind="row"``) or column-constant on ``K``."""
    c, f = split_mul(M)
    if len(f) != 1 or not isinstance(f[0], HadamardProduct) or len(f[0].args) != 2:
        return None
    for i in (0, 1):
        B, N = f[0].args[i], f[0].args[1 - i]
        got = row_constant(B) if kind == "row" else col_constant(B)
        if got is not None and got[1] == K:
            return c * got[0], N
    return None


def _cancel_diagonal(coeff: sp.Expr, f: Factors) -> Optional[MatrixExpr]:
    """``diag(v)⁻¹ · ((v1ᵀ) ∘ N) → N`` (and the mirrored column form), distributing the inverse over
    a sum one of whose terms cancels."""
    for i, a in enumerate(f):
        if not isinstance(a, Inverse):
            continue
        dv = _diag_vector(a.arg)
        if dv is None:
            continue
        kind, cd, K = dv
        j = i + 1 if kind == "row" else i - 1
        if not 0 <= j < len(f):
            continue
        nb = f[j]
        terms = list(nb.args) if isinstance(nb, MatAdd) else [nb]
        hits = [_scaled_by(t, kind, K) for t in terms]
        if not any(h is not None for h in hits):
            continue
        new_terms = []
        for t, h in zip(terms, hits):
            if h is not None:
                new_terms.append(make_mul(h[0] / cd, [h[1]]))
            else:
                new_terms.append(make_mul(sp.S.One, [a, t] if kind == "row" else [t, a]))
        mid = new_terms[0] if len(new_terms) == 1 else MatAdd(*new_terms).doit(deep=False)
        lo, hi = (i, j) if kind == "row" else (j, i)
        return make_mul(coeff, f[:lo] + [mid] + f[hi + 1:])
    return None


def _rewrite_mul(e: MatMul) -> MatrixExpr:
    c, f = split_mul(e)
    out = _cancel_diagonal(c, f)
    if out is not None:
        return out
    return make_mul(c, f)


# ---- driver -------------------------------------------------------------------------------------
def _rewrite(e: Basic) -> Basic:
    if isinstance(e, MatMul):
        return _rewrite_mul(e)
    if isinstance(e, HadamardProduct):
        out = _merge_elementwise(e)
        return _hadamard_scaling(out) if isinstance(out, HadamardProduct) else out
    if isinstance(e, MatAdd):
        out = _collect(e)
        return _factor_sum(out) if isinstance(out, MatAdd) else out
    return e


_MAX_PASSES = 8


def optimize(expr: Basic) -> Basic:
    """``expr`` rewritten bottom-up with the identities above until nothing changes (or a pass
    bound is reached); the value is the same matrix for every input."""
    memo: dict[Basic, Basic] = {}

    def go(e: Basic, depth: int = 0) -> Basic:
        if e in memo:
            return memo[e]
        if not e.args or isinstance(e, sp.Lambda) or e.is_Atom or not isinstance(e, (MatrixExpr, sp.Expr)):
            return e
        args = [go(a, depth) for a in e.args]
        cur = e.func(*args) if any(n is not o for n, o in zip(args, e.args)) else e
        new = _rewrite(cur)
        if new != cur and depth < _MAX_PASSES:
            new = go(new, depth + 1)
        new = memo[e] = intern(new)  # equal sub-trees shared: comparisons stop at the first level
        return new

    return go(expr)
