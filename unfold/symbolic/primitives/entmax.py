"""Sparse attention primitives: α-entmax (sparsemax at α = 2) and its convex conjugate.

For ``α > 1`` and a column ``θ ∈ R^n`` (Peters, Niculae, Martins 2019; Tsallis entropy
``H_α(p) = Σ_j (p_j − p_j^α)/(α(α−1))``)::

    entmax_α(θ) = argmax_{p∈Δ} ⟨p, θ⟩ + H_α(p) = [(α−1)θ − τ]_+^{1/(α−1)},   τ such that Σ_j = 1
    Ω*_α(θ)     = max_{p∈Δ} ⟨p, θ⟩ + H_α(p)            (convex; ∇Ω*_α = entmax_α, envelope theorem)

``entmax_lse`` is the α-analogue of ``lse`` (``α → 1`` gives log-sum-exp): the sum over columns of
``Ω*_α``.  Jacobian (implicit differentiation of the optimality conditions; symmetric PSD)::

    ∂entmax/∂θ = Diag(g) − g gᵀ/Σ_j g_j,     g_j = p_j^{2−α} on the support, 0 off it

(sparsemax: ``g`` = the support indicator).  Everything about the nodes lives here: the nodes and
their vector-Jacobian rules (:class:`Entmax`, :class:`EntmaxLSE`; :class:`EntmaxWeights` is ``g``), the
explicit-size expansion used by leg 2 of the gradient check (opaque scalar functions of a column
evaluated in mpmath — τ by sorting for α = 2, by bisection otherwise — whose derivatives are the
Jacobian entries above), the primitives users call, and the torch lowerings, which call the kernels
of :mod:`unfold.codegen.kernels.entmax` (``_entmax_cols``, ``_entmax_weights``, ``_entmax_conj_cols``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import mpmath
import sympy as sp
from sympy import Basic, S
from sympy.matrices.expressions import HadamardProduct, MatrixExpr, OneMatrix, Transpose

from ...errors import ShapeMismatchError, UnsupportedNodeError
from ..nodes import MatFn, U, ew, lazy_add, lazy_mul
from .reductions import SumAll
from .registry import ATOM, Code, Primitive, register
from ._common import axis_arg as _axis, basic_text, matrix_arg as _mat, no_constraint

__all__ = ["Entmax", "EntmaxLSE", "EntmaxWeights", "entmax", "sparsemax", "entmax_lse", "check_alpha",
           "mp_entmax", "mp_conjugate"]


def check_alpha(alpha: Any, who: str) -> sp.Expr:
    """``α`` as an exact sympy number, refused unless it is a number ``> 1``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, sp.Number)):
        raise ShapeMismatchError(f"{who}(): alpha must be a number > 1 (got {alpha!r}); use softmax/lse for α = 1")
    a = sp.nsimplify(alpha) if isinstance(alpha, float) else sp.sympify(alpha)  # safe: a number
    if not a > 1:
        raise ShapeMismatchError(f"{who}(): alpha must be > 1 (got {alpha!r}); α = 1 is softmax/lse")
    return a


class _AlphaFn(MatFn):
    def __new__(cls, M: MatrixExpr, alpha: Any) -> "_AlphaFn":
        return MatFn.__new__(cls, M, check_alpha(alpha, cls.__name__))

    @property
    def alpha(self) -> sp.Expr:
        return self.args[1]


class Entmax(_AlphaFn):
    """Column-wise α-entmax.  VJP: ``g∘G − g∘(1(g∘G)) ∘ 1/(1g)`` with ``g`` = :class:`EntmaxWeights`."""

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        g = EntmaxWeights(self.arg, self.alpha)
        ones = OneMatrix(self.rows, self.rows)
        gG = HadamardProduct(g, G)
        coupling = HadamardProduct(g, lazy_mul(ones, gG), ew(1 / U, lazy_mul(ones, g)))
        return [(self.arg, lazy_add(gG, lazy_mul(-1, coupling)))]

    def _explicit(self, ev: Callable[[Basic], Any]) -> sp.Matrix:
        return _columns(ev(self.arg), lambda col: [_entry_fn("p", self.alpha, len(col), i)(*col) for i in range(len(col))])


class EntmaxWeights(_AlphaFn):
    """``g = p^{2−α}`` on the support of ``p = entmax(M)``, 0 off it (the Jacobian's weights)."""

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        raise UnsupportedNodeError("second derivatives of entmax are not supported")

    def _explicit(self, ev: Callable[[Basic], Any]) -> sp.Matrix:
        return _columns(ev(self.arg), lambda col: [_entry_fn("g", self.alpha, len(col), i)(*col) for i in range(len(col))])


class EntmaxLSE(_AlphaFn):
    """Column-wise conjugate ``Ω*_α`` (a 1×cols row).  VJP: ``(1 G) ∘ Entmax(M)`` (envelope theorem)."""

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (S.One, self.arg.cols)

    def _vjp(self, G: MatrixExpr) -> list[tuple[Basic, Basic]]:
        return [(self.arg, HadamardProduct(lazy_mul(OneMatrix(self.arg.rows, 1), G), Entmax(self.arg, self.alpha)))]

    def _explicit(self, ev: Callable[[Basic], Any]) -> sp.Matrix:
        M = ev(self.arg)
        return sp.Matrix(1, M.cols, lambda _, j: _entry_fn("conj", self.alpha, M.rows, 0)(*M[:, j]))


def _columns(M: sp.Matrix, f: Callable[[list[Any]], list[Any]]) -> sp.Matrix:
    cols = [f(list(M[:, j])) for j in range(M.cols)]
    return sp.Matrix(M.rows, M.cols, lambda i, j: cols[j][i])


# ---- the primitives ------------------------------------------------------------------------------
def entmax(M: MatrixExpr, alpha: Any, axis: int = 0) -> MatrixExpr:
    """α-entmax of each column (``axis=0``) or each row (``axis=1``); ``alpha`` a number > 1."""
    M = _mat(M, "entmax")
    if _axis(axis, "entmax") == 0:
        return Entmax(M, alpha)
    return Transpose(Entmax(Transpose(M), alpha))


def sparsemax(M: MatrixExpr, axis: int = 0) -> MatrixExpr:
    """Sparsemax (the Euclidean projection onto the simplex) of each column or row: ``entmax(M, 2)``."""
    return entmax(M, 2, axis)


def entmax_lse(M: MatrixExpr, alpha: Any, axis: int = 0) -> sp.Expr:
    """``Σ`` over columns (``axis=0``) or rows (``axis=1``) of ``Ω*_α``: a scalar whose gradient is ``entmax``."""
    M = _mat(M, "entmax_lse")
    if _axis(axis, "entmax_lse") == 0:
        return SumAll(EntmaxLSE(M, alpha))
    return SumAll(Transpose(EntmaxLSE(Transpose(M), alpha)))


# ---- explicit size: opaque scalar functions of one column, evaluated in mpmath --------------------
def mp_entmax(theta: list[Any], alpha: Any) -> list[Any]:
    """α-entmax of a list of mpmath numbers at the current precision: τ by sorting for α = 2
    (``k* = max{k : 1 + kθ_(k) > Σ_{r≤k} θ_(r)}``), by bisection on ``Σ[(α−1)θ − τ]_+^{1/(α−1)} = 1`` otherwise."""
    a = mpmath.mpf(alpha)
    th = [mpmath.mpf(t) for t in theta]
    if a == 2:
        srt = sorted(th, reverse=True)
        csum, k_star, total = mpmath.mpf(0), 1, srt[0]
        for k, t in enumerate(srt, start=1):
            csum += t
            if 1 + k * t > csum:
                k_star, total = k, csum
        tau = (total - 1) / k_star
        return [max(t - tau, mpmath.mpf(0)) for t in th]
    z = [(a - 1) * t for t in th]
    hi_z = max(z)
    lo, hi = hi_z - 1, hi_z - mpmath.mpf(len(z)) ** (1 - a)

    def mass(tau: Any) -> Any:
        return mpmath.fsum(max(x - tau, 0) ** (1 / (a - 1)) for x in z)

    for _ in range(mpmath.mp.prec + 20):
        mid = (lo + hi) / 2
        if mass(mid) >= 1:
            lo = mid
        else:
            hi = mid
    p = [max(x - lo, 0) ** (1 / (a - 1)) for x in z]
    s = mpmath.fsum(p)
    return [x / s for x in p]


def mp_conjugate(theta: list[Any], alpha: Any) -> Any:
    """``Ω*_α(θ) = ⟨p, θ⟩ + H_α(p)`` at ``p = entmax_α(θ)``."""
    a = mpmath.mpf(alpha)
    p = mp_entmax(theta, alpha)
    H = mpmath.fsum(x - x ** a for x in p) / (a * (a - 1))
    return mpmath.fsum(x * mpmath.mpf(t) for x, t in zip(p, theta)) + H


def _weights(p: list[Any], alpha: Any) -> list[Any]:
    a = mpmath.mpf(alpha)
    return [x ** (2 - a) if x > 0 else mpmath.mpf(0) for x in p]


class _ColumnScalar(sp.Function):
    """An entry of a column function: ``kind`` (``p``, ``g``, ``conj`` or ``J``), ``alpha``, indices."""

    kind = "p"
    alpha: Any = 2
    i = 0
    j = 0
    is_real = True

    @classmethod
    def eval(cls, *args: Any) -> None:  # safe: sympy's Function.eval hook on built nodes, no text
        return None  # stays a node: evaluated numerically only

    def _eval_evalf(self, prec: int) -> Any:
        if not all(a.is_number for a in self.args):
            return None
        with mpmath.workprec(prec + 40):
            theta = [mpmath.mpf(sp.Float(a, mpmath.mp.dps)) for a in self.args]
            if self.kind == "conj":
                v = mp_conjugate(theta, self.alpha)
            else:
                p = mp_entmax(theta, self.alpha)
                if self.kind == "p":
                    v = p[self.i]
                else:
                    g = _weights(p, self.alpha)
                    if self.kind == "g":
                        v = g[self.i]
                    else:
                        v = (g[self.i] if self.i == self.j else 0) - g[self.i] * g[self.j] / mpmath.fsum(g)
        return sp.Float(v, mpmath.libmp.prec_to_dps(prec))

    def fdiff(self, argindex: int = 1) -> Basic:
        n = len(self.args)
        if self.kind == "conj":
            return _entry_fn("p", self.alpha, n, argindex - 1)(*self.args)
        if self.kind == "p":
            return _entry_fn("J", self.alpha, n, self.i, argindex - 1)(*self.args)
        raise UnsupportedNodeError("second derivatives of entmax are not supported")


@lru_cache(maxsize=None)
def _entry_fn(kind: str, alpha: Any, n: int, i: int, j: int = 0) -> type:
    """The scalar function class for one entry (one class per kind, α, column length and index)."""
    name = f"entmax{alpha}_{kind}_{i}" + (f"_{j}" if kind == "J" else "")
    return type(name, (_ColumnScalar,), {"kind": kind, "alpha": alpha, "i": i, "j": j, "nargs": n})


# ---- registration --------------------------------------------------------------------------------
def _alpha_latex(name: str) -> Callable[[Any, Any], str]:
    """LaTeX ``\\operatorname{name}_{α}(arg)``: the node's α shown as a subscript (``entmax_{2}`` is sparsemax)."""
    def latex(printer: Any, e: Any) -> str:
        return (r"\operatorname{" + name + "}_{" + printer._print(e.args[1]) + r"}\left("
                + printer._print(e.args[0]) + r"\right)")

    return latex


def _kernel(name: str) -> Callable[[Any, Any], Code]:
    """A call of the torch kernel ``name(x, α)`` (:mod:`unfold.codegen.kernels.entmax`)."""
    def lower(printer: Any, e: Any) -> Code:
        return f"{name}({printer.code(e.arg)}, {float(e.alpha)!r})", ATOM

    return lower


register(Primitive(Entmax, vjp=Entmax._vjp, explicit=Entmax._explicit, lower=_kernel("_entmax_cols"),
                   validate=no_constraint, text=basic_text, example=lambda X: Entmax(X, sp.Rational(3, 2)),
                   latex=_alpha_latex("entmax"),
                   parser={"entmax": entmax, "sparsemax": sparsemax}, kernels=("_entmax_cols",)))
register(Primitive(EntmaxWeights, vjp=EntmaxWeights._vjp, explicit=EntmaxWeights._explicit, lower=_kernel("_entmax_weights"),
                   validate=no_constraint, text=basic_text, example=lambda X: EntmaxWeights(X, sp.Rational(3, 2)),
                   latex=_alpha_latex("g"), kernels=("_entmax_weights",)))
register(Primitive(EntmaxLSE, vjp=EntmaxLSE._vjp, explicit=EntmaxLSE._explicit, lower=_kernel("_entmax_conj_cols"),
                   validate=no_constraint, text=basic_text, example=lambda X: EntmaxLSE(X, 2),
                   latex=_alpha_latex("lse"),
                   parser={"entmax_lse": entmax_lse}, kernels=("_entmax_conj_cols",)))
