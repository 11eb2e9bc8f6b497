"""Reverse-mode differentiation over sympy expression trees.

``gradient(E, X)`` returns ∂E/∂X as a matrix expression (a scalar expression for a scalar X) by a
topological reverse sweep: every node hands each child a cotangent of the child's shape through a
vector-Jacobian rule.  A node with no rule raises :class:`UnsupportedNodeError`; nothing is ever
treated as a constant by default (sympy 1.14's ``.diff`` returns a silent 0 in that situation).
sympy hash-conses equal sub-trees, so shared sub-expressions accumulate their adjoints once.

Named axes (:mod:`unfold.symbolic.axes`): a family's body is differentiated once, generically in
its index; where a node ranges over an axis its argument does not, the argument's cotangent is
summed over that axis (the argument is used once per index value).
"""

from __future__ import annotations

from typing import Callable, TypeAlias, Union

import sympy as sp
from sympy import Basic, S
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixExpr,
    MatrixSymbol,
    Trace,
    Transpose,
    ZeroMatrix,
    Identity,
)

from ..errors import UnsupportedNodeError
from .axes import axes_of, axis_sum, sorted_axes
from .nodes import U, ew, lazy_add, lazy_mul
from .primitives.registry import primitive_of
from .tidy import doit

__all__ = ["gradient", "unevaluated_gradient", "vjp", "elementwise_derivative"]

Node: TypeAlias = Basic
Pair = tuple[Basic, Basic]


def _matmul(factors: list[Basic]) -> Basic:
    return factors[0] if len(factors) == 1 else lazy_mul(*factors)


def _vjp_matmul(node: MatMul, G: MatrixExpr) -> list[Pair]:
    scalars = [a for a in node.args if not isinstance(a, MatrixExpr)]
    mats = [a for a in node.args if isinstance(a, MatrixExpr)]
    coeff = sp.Mul(*scalars)
    out: list[Pair] = []
    for i, M in enumerate(mats):
        parts: list[MatrixExpr] = []
        if i > 0:
            parts.append(Transpose(_matmul(mats[:i])))
        parts.append(G)
        if i < len(mats) - 1:
            parts.append(Transpose(_matmul(mats[i + 1:])))
        out.append((M, lazy_mul(coeff, *parts)))
    if scalars:
        inner = Trace(lazy_mul(Transpose(G), *mats))
        for k, s in enumerate(scalars):
            others = sp.Mul(*(scalars[:k] + scalars[k + 1:]))
            out.append((s, inner * others))
    return out


def _vjp_matpow(node: MatPow, G: MatrixExpr) -> list[Pair]:
    A, k = node.base, node.exp
    if not k.is_Integer:
        raise UnsupportedNodeError(f"matrix power {node} needs an integer exponent")
    k = int(k)
    if k < 0:
        B, k = Inverse(A), -k
        inner = lazy_add(*(_pow_term(B, j, G, k - 1 - j) for j in range(k)))
        return [(A, lazy_mul(-1, Transpose(Inverse(A)), inner, Transpose(Inverse(A))))]
    terms = [_pow_term(A, j, G, k - 1 - j) for j in range(k)]
    return [(A, lazy_add(*terms) if len(terms) > 1 else terms[0])]


def _pow_term(A: MatrixExpr, i: int, G: MatrixExpr, j: int) -> MatrixExpr:
    """``(Aⁱ)ᵀ G (Aʲ)ᵀ`` (a zero power is dropped: ``A⁰ = I``)."""
    parts = ([Transpose(MatPow(A, i))] if i else []) + [G] + ([Transpose(MatPow(A, j))] if j else [])
    return _matmul(parts)


def _scalar_partials(node: sp.Expr, G: sp.Expr) -> list[Pair]:
    """Scalar functions (exp, log, Max, ...): ``G·∂f/∂aᵢ`` to each argument ``aᵢ``."""
    return [(a, G * df) for a, df in zip(node.args, _function_partials(node))]


def _function_partials(e: sp.Expr) -> list[sp.Expr]:
    """``∂f/∂aᵢ`` at ``(a₁, …)`` for one function node ``e = f(a₁, …)``: sympy differentiates
    ``f`` of fresh *real* variables (so ``|a|' = sign a`` and ``Max(a, 0)' = step(a)``), never
    the composition (whose arguments it cannot prove real: ``|log u|' `` becomes
    ``log(u/sign u)·sign(u)²·sign(log u)/(u log u)``, 0/0 at ``u = 1``)."""
    dummies = [sp.Dummy(f"a{i}", real=True) for i in range(len(e.args))]
    f = e.func(*dummies)
    back = dict(zip(dummies, e.args))
    out = []
    for z in dummies:
        df = sp.diff(f, z)  # scalar: f is a scalar function of scalar dummies
        if df.has(sp.Derivative, sp.Subs):
            raise UnsupportedNodeError(f"cannot differentiate {e.func} in {e}")
        out.append(df.xreplace(back))
    return out


def elementwise_derivative(body: sp.Expr, u: sp.Symbol = U) -> sp.Expr:
    """``d body/du`` by the chain rule, node by node (sum, product and power rules; each function
    through :func:`_function_partials`).  Finite wherever ``body`` is differentiable and its
    pieces are: ``d|log u|/du = sign(log u)/u`` (0 at ``u = 1``), ``d|√(1+u²)|/du`` needs no
    ``atan2``."""
    memo: dict[sp.Expr, sp.Expr] = {}

    def d(e: sp.Expr) -> sp.Expr:
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e == u:
            r: sp.Expr = S.One
        elif not e.has(u):
            r = S.Zero
        elif isinstance(e, sp.Add):
            r = sp.Add(*[d(a) for a in e.args])
        elif isinstance(e, sp.Mul):
            r = sp.Add(*[d(a) * sp.Mul(*(e.args[:i] + e.args[i + 1:])) for i, a in enumerate(e.args)])
        elif isinstance(e, sp.Pow):
            b, p = e.args
            r = p * b ** (p - 1) * d(b)
            if p.has(u):
                r += e * sp.log(b) * d(p)
        elif isinstance(e, sp.Function) or type(e) in (sp.Max, sp.Min):
            r = sp.Add(*[df * d(a) for df, a in zip(_function_partials(e), e.args) if a.has(u)])
        else:  # any other node: sympy's own derivative of this sub-expression
            r = sp.diff(e, u)  # scalar: e is a scalar expression in the real variable u
            if r.has(sp.Derivative, sp.Subs):
                raise UnsupportedNodeError(f"cannot differentiate {e} with respect to {u}")
        memo[e] = r
        return r

    return _drop_redundant_steps(d(body))


def _drop_redundant_steps(e: sp.Expr) -> sp.Expr:
    """``step(a)·max(a, 0)ᵏ → max(a, 0)ᵏ`` (``k > 0``; equal everywhere, also at ``a = 0`` where
    both vanish): the derivative of ``relu(a)ᵏ⁺¹`` then reads ``(k+1)·relu(a)ᵏ``, visibly continuous
    (no step function left to make it look non-smooth)."""
    def relu_power_of(f: sp.Expr) -> sp.Expr | None:
        base = f.base if isinstance(f, sp.Pow) and f.exp.is_positive else f
        if isinstance(base, sp.Max) and len(base.args) == 2 and S.Zero in base.args:
            return [a for a in base.args if a != 0][0]
        return None

    def redundant(m: sp.Expr) -> bool:
        if not isinstance(m, sp.Mul):
            return False
        relus = {relu_power_of(f) for f in m.args} - {None}
        return any(isinstance(f, sp.Heaviside) and f.args[0] in relus for f in m.args)

    def drop(m: sp.Mul) -> sp.Expr:
        relus = {relu_power_of(f) for f in m.args} - {None}
        return sp.Mul(*[f for f in m.args if not (isinstance(f, sp.Heaviside) and f.args[0] in relus)])

    return e.replace(redundant, drop)


def _has_relu_power_factor(G: Basic, relu: ElementwiseApplyFunction) -> bool:
    """Whether ``G = c·relu(M)^∘k`` (``k > 0``, ``c`` scalar; ``k = 1`` is ``relu(M)`` itself, e.g. the
    cotangent ``2·relu(M)`` of ``‖relu(M)‖²``), possibly ∘ other factors, times identities, or
    transposed (``relu(M)ᵀ = relu(Mᵀ)``): then ``G ∘ step(M) = G`` (both vanish where ``M ≤ 0``), the
    matrix form of :func:`_drop_redundant_steps`."""
    if isinstance(G, MatMul):
        mats = [a for a in _matmul_factors(G) if not isinstance(a, Identity)]
        return len(mats) == 1 and _has_relu_power_factor(mats[0], relu)
    if isinstance(G, HadamardProduct):
        return any(_has_relu_power_factor(a, relu) for a in G.args)
    if isinstance(G, Transpose) and isinstance(G.arg, (ElementwiseApplyFunction, HadamardPower, HadamardProduct, MatMul)):
        return _has_relu_power_factor(doit(G), relu)  # the transpose moved inside (cached, one level)
    if G == relu:
        return True
    return isinstance(G, HadamardPower) and G.args[0] == relu and bool(G.args[1].is_positive)


def _matmul_factors(G: MatMul) -> list[Basic]:
    """The matrix factors of a product, nested products flattened (``1·(1·I)·X`` → ``[I, X]``)."""
    out: list[Basic] = []
    for a in G.args:
        if isinstance(a, MatMul):
            out.extend(_matmul_factors(a))
        elif isinstance(a, MatrixExpr):
            out.append(a)
    return out


def _vjp_elementwise(node: ElementwiseApplyFunction, G: MatrixExpr) -> list[Pair]:
    lam, M = node.function, node.expr
    var = lam.variables[0]
    body = lam.expr.subs(var, U) if var != U else lam.expr
    if body == sp.Max(U, 0) and _has_relu_power_factor(G, node):  # relu(M)^∘k ∘ step(M) = relu(M)^∘k
        return [(M, G)]
    return [(M, HadamardProduct(G, ew(elementwise_derivative(body), M)))]


def vjp(node: Node, G: Basic) -> list[Pair]:
    """The children of ``node`` paired with their cotangents, given the node's cotangent ``G``."""
    prim = primitive_of(node)  # a node of unfold.symbolic.primitives: its own rule
    if prim is not None:
        return prim.vjp(node, G)
    rule: Callable[..., list[Pair]] | None = getattr(node, "_vjp", None)
    if rule is not None:
        return rule(G)
    if isinstance(node, (MatAdd, sp.Add)):
        return [(a, G) for a in node.args]
    if isinstance(node, MatMul):
        return _vjp_matmul(node, G)
    if isinstance(node, Transpose):
        return [(node.arg, Transpose(G))]
    if isinstance(node, Trace):
        return [(node.arg, lazy_mul(G, Identity(node.arg.rows)))]
    if isinstance(node, Inverse):
        Mi = Inverse(node.arg)
        return [(node.arg, lazy_mul(-1, Transpose(Mi), G, Transpose(Mi)))]
    if isinstance(node, MatPow):
        return _vjp_matpow(node, G)
    if isinstance(node, HadamardProduct):
        out = []
        for i, a in enumerate(node.args):
            others = node.args[:i] + node.args[i + 1:]
            out.append((a, HadamardProduct(G, *others)))
        return out
    if isinstance(node, HadamardPower):
        base, p = node.args
        if p.free_symbols & set(base.free_symbols):
            raise UnsupportedNodeError(f"entrywise power {node}: exponent depends on the base")
        return [(base, HadamardProduct(G, lazy_mul(p, HadamardPower(base, p - 1))))]
    if isinstance(node, ElementwiseApplyFunction):
        return _vjp_elementwise(node, G)
    if isinstance(node, sp.Mul):
        return [(a, G * sp.Mul(*(node.args[:i] + node.args[i + 1:]))) for i, a in enumerate(node.args)]
    if isinstance(node, sp.Pow):
        b, e = node.args
        out = [(b, G * e * b ** (e - 1))]
        if e.free_symbols:
            out.append((e, G * sp.log(b) * node))
        return out
    if isinstance(node, sp.Function) or type(node) in (sp.Max, sp.Min):
        return _scalar_partials(node, G)
    raise UnsupportedNodeError(
        f"no differentiation rule for {type(node).__name__} (in {node}); unfold refuses rather "
        "than returning a silent zero"
    )


def _depends(expr: Basic, wrt: Basic) -> dict[Basic, bool]:
    memo: dict[Basic, bool] = {}

    def go(e: Basic) -> bool:
        if e in memo:
            return memo[e]
        if e == wrt:
            r = True
        elif isinstance(e, MatrixSymbol) or isinstance(e, sp.Atom):
            r = False
        else:
            r = False
            for a in e.args:
                r = go(a) or r
        memo[e] = r
        return r

    go(expr)
    return memo


def gradient(E: Basic, wrt: Union[MatrixSymbol, sp.Symbol]) -> Basic:
    """∂E/∂wrt for a scalar expression ``E``: a matrix of ``wrt``'s shape, or a scalar.

    Cotangents are built unevaluated (:func:`~unfold.symbolic.nodes.lazy_mul`) and the result is
    canonicalised once by sympy's ``doit`` (memoised, :func:`unfold.symbolic.tidy.doit`); not
    simplified further, see :func:`tidy`.
    """
    return doit(unevaluated_gradient(E, wrt))


def unevaluated_gradient(E: Basic, wrt: Union[MatrixSymbol, sp.Symbol]) -> Basic:
    """:func:`gradient` before its final ``doit``: the accumulated cotangent as built by the VJP
    rules (an unevaluated sympy tree; the same matrix)."""
    if isinstance(E, MatrixExpr):
        E = Trace(E)
    dep = _depends(E, wrt)
    if not dep.get(E, False):
        return ZeroMatrix(*wrt.shape) if isinstance(wrt, MatrixExpr) else S.Zero
    order: list[Basic] = []
    seen: set[Basic] = set()

    def visit(n: Basic) -> None:
        if n in seen or not dep.get(n, False):
            return
        seen.add(n)
        if n != wrt:
            for c in n.args:
                visit(c)
        order.append(n)

    visit(E)
    adj: dict[Basic, Basic] = {E: S.One}
    for node in reversed(order):
        if node == wrt or node not in adj:
            continue
        G = adj.pop(node)
        pairs = vjp(node, G)
        covered = {c for c, _ in pairs}
        for c in node.args:
            if dep.get(c, False) and c not in covered:
                raise UnsupportedNodeError(
                    f"{type(node).__name__} ({node}) has no derivative rule for its argument {c}, "
                    f"which depends on {wrt}"
                )
        node_axes = axes_of(node)
        for child, ct in pairs:
            if dep.get(child, False):
                for ax in sorted_axes(node_axes - axes_of(child)):
                    ct = axis_sum(ct, ax)  # the child is used once per value of the axis
                adj[child] = lazy_add(adj[child], ct) if child in adj else ct
    return adj.get(wrt, ZeroMatrix(*wrt.shape) if isinstance(wrt, MatrixExpr) else S.Zero)
