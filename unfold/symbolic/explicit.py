"""Expansion of an unfold expression at explicit small sizes into scalar sympy.

Every matrix symbol becomes an ``sp.Matrix`` of real scalar symbols and every node is evaluated
entry by entry from its textbook definition (``log det`` through the Berkowitz determinant,
softmax as ``exp/Σexp``, ...).  The result is independent of the gradient engine and of the torch
printer, so differentiating it with plain scalar ``sp.diff`` gives the second leg of the gradient
check, and ``cancel`` on it gives exact proofs at small sizes.
"""

from __future__ import annotations

from functools import reduce
from itertools import product
from typing import Any, Mapping, Union

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixSymbol,
    OneMatrix,
    Trace,
    Transpose,
    ZeroMatrix,
)

from ..errors import UnsupportedNodeError
from .axes import Axis, AxisSum, MatAxisSum, axes_of
from .primitives.registry import primitive_of, scalar_function_of
from .nodes import U
from .symbols import Dim

__all__ = ["explicit_env", "expand_explicit"]

Value = Union[sp.Expr, sp.Matrix]


def explicit_env(symbols: Any, sizes: Mapping[Dim, int]) -> dict[Basic, Any]:
    """Map each matrix symbol to a matrix of real entry symbols ``X_i_j`` and each dim to its size.
    A matrix over named axes maps to a dict from index tuples (in its ``over`` order) to matrices
    of entry symbols ``X[k]_i_j``."""
    env: dict[Basic, Any] = dict(sizes)
    for s in symbols:
        if isinstance(s, MatrixSymbol):
            r, c = (int(sp.sympify(x).subs(sizes)) for x in s.shape)  # safe: dims/ints only
            axes = getattr(s, "axes", ())
            if not axes:
                env[s] = sp.Matrix(r, c, lambda i, j: sp.Symbol(f"{s.name}_{i}_{j}", real=True))
                continue
            ranges = [range(int(sp.sympify(a.size).subs(sizes))) for a in axes]  # safe: dims/ints
            env[s] = {
                key: sp.Matrix(r, c, lambda i, j, key=key: sp.Symbol(
                    f"{s.name}[{','.join(map(str, key))}]_{i}_{j}", real=True))
                for key in product(*ranges)
            }
    return env


def _defined(body: Basic) -> Basic:
    """``body`` with every registered scalar function that has a definition in other functions
    (``softplus(u) = log(1 + exp u)``) replaced by that definition, innermost first."""
    def rule(n: Basic) -> Basic:
        f = scalar_function_of(n.func) if isinstance(n, sp.Function) else None
        return f.definition(*n.args) if f is not None and f.definition is not None else n

    memo: dict[Basic, Basic] = {}

    def up(e: Basic) -> Basic:
        if not e.args or isinstance(e, sp.Lambda):
            return e
        hit = memo.get(e)
        if hit is None:
            args = [up(a) for a in e.args]
            hit = memo[e] = rule(e.func(*args) if any(n is not o for n, o in zip(args, e.args)) else e)
        return hit

    return up(body)


def _size(x: Any, env: Mapping[Basic, Any]) -> int:
    with sp.evaluate(True):
        return int(sp.sympify(x).subs(env))  # safe: dims/ints only


def _inverse(M: sp.Matrix) -> sp.Matrix:
    """``adj(M)/det(M)``, both by Berkowitz (division-free, so exact on symbolic entries)."""
    return M.adjugate(method="berkowitz") / M.det(method="berkowitz")


def _matpow(M: sp.Matrix, k: int) -> sp.Matrix:
    """``Mᵏ`` by repeated products (``M⁻¹`` first for ``k < 0``; ``I`` for ``k = 0``)."""
    if k < 0:
        M, k = _inverse(M), -k
    return reduce(lambda a, b: a * b, [M] * k) if k else sp.eye(M.rows)


def expand_explicit(e: Basic, env: Mapping[Basic, Any], *, evaluate: bool = True) -> Value:
    """Evaluate ``e`` with matrices replaced by explicit matrices from ``env``.

    ``evaluate=False`` builds every scalar operation unevaluated (sympy's ``evaluate(False)``):
    the same value, written literally as the definitions compute it, without sympy's automatic
    simplification (flattening, assumption queries on every product and ``log``/``Max`` argument),
    which is what makes the evaluated form slow on log-determinants and nested inverses.  The
    gradient check uses it; exact proofs (``cancel``) use the default.
    """
    memo: dict[tuple[Basic, tuple[tuple[str, int], ...]], Value] = {}

    def ev(x: Basic, at: Mapping[Axis, int]) -> Value:
        """``x`` at the index values ``at`` of the axes it ranges over (named axes)."""
        key = (x, tuple(sorted((a.name, at[a]) for a in axes_of(x))))
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _expand_at(x, at)
        return hit

    def _expand_at(x: Basic, at: Mapping[Axis, int]) -> Value:
        if isinstance(x, MatrixSymbol) and bool(getattr(x, "axes", None)):
            family = env.get(x)
            if family is None:
                raise UnsupportedNodeError(f"no explicit value for matrix {x}")
            return family[tuple(at[a] for a in x.axes)]
        if isinstance(x, (AxisSum, MatAxisSum)):
            ax = x.axis
            return reduce(lambda a, b: a + b, [ev(x.body, {**at, ax: k}) for k in range(_size(ax.size, env))])
        return _expand(x, env, lambda y: ev(y, at))

    if evaluate:
        return ev(e, {})
    with sp.evaluate(False):
        return ev(e, {})


def _expand(e: Basic, env: Mapping[Basic, Any], ev: Any) -> Value:
    """One node of :func:`expand_explicit`, given ``ev`` for its arguments."""
    if e in env:
        return env[e]
    if isinstance(e, MatrixSymbol):
        raise UnsupportedNodeError(f"no explicit value for matrix {e}")
    if isinstance(e, Dim):
        raise UnsupportedNodeError(f"no explicit size for dimension {e}")
    if isinstance(e, (sp.Symbol, sp.Number, sp.NumberSymbol)):
        return e
    prim = primitive_of(e)  # a node of unfold.symbolic.primitives: its own rule
    if prim is not None:
        return prim.explicit(e, ev)
    if isinstance(e, MatMul):
        return reduce(lambda a, b: a * b, [ev(a) for a in e.args])
    if isinstance(e, MatAdd):
        return reduce(lambda a, b: a + b, [ev(a) for a in e.args])
    if isinstance(e, Transpose):
        return ev(e.arg).T
    if isinstance(e, Inverse):
        return _inverse(ev(e.arg))
    if isinstance(e, MatPow):
        if not e.exp.is_Integer:
            raise UnsupportedNodeError(f"matrix power {e} needs an integer exponent")
        return _matpow(ev(e.base), int(e.exp))
    if isinstance(e, (Identity, OneMatrix, ZeroMatrix)):
        r, c = (_size(x, env) for x in e.shape)
        return sp.eye(r) if isinstance(e, Identity) else (sp.ones(r, c) if isinstance(e, OneMatrix) else sp.zeros(r, c))
    if isinstance(e, HadamardProduct):
        return reduce(lambda a, b: a.multiply_elementwise(b), [ev(a) for a in e.args])
    if isinstance(e, HadamardPower):
        p = ev(e.args[1])
        return ev(e.args[0]).applyfunc(lambda x: x ** p)
    if isinstance(e, ElementwiseApplyFunction):
        lam = e.function
        body = _defined(lam.expr.xreplace({lam.variables[0]: U}))
        body = body.xreplace({s: ev(s) for s in body.free_symbols if s != U})
        return ev(e.expr).applyfunc(lambda x: body.xreplace({U: x}))
    if isinstance(e, Trace):
        return ev(e.arg).trace()
    if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Function)) or type(e) in (sp.Max, sp.Min):
        f = scalar_function_of(e.func)
        if f is not None and f.definition is not None:
            return _defined(f.definition(*[ev(a) for a in e.args]))
        return e.func(*[ev(a) for a in e.args])
    raise UnsupportedNodeError(f"no explicit-size rule for {type(e).__name__} ({e})")
