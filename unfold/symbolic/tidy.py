"""Light rewriting of derived expressions into readable canonical form.

Rewrites (each an identity): ``1 ∘ M → M``, ``(c·1) ∘ M → c·M``, ``M^∘1 → M``, elementwise
constant functions ``f(M) = c → c·1``; then sympy's ``doit`` canonicalisation.  ``simplify`` is a
no-op on matrix expressions in sympy 1.14 and is never called.
"""

from __future__ import annotations

import sympy as sp
from sympy import Basic
from sympy.core.sorting import default_sort_key
from sympy.matrices.expressions import hadamard as _hadamard
from sympy.matrices.expressions import matadd as _matadd
from sympy.matrices.expressions import matmul as _matmul
from sympy.strategies import condition, do_one, exhaust, flatten, glom, rm_id, sort, typed, unpack
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixExpr,
    OneMatrix,
    Trace,
    Transpose,
    ZeroMatrix,
)

__all__ = ["tidy", "canonical", "doit", "transpose", "expand", "tree_size", "distinct_subtrees"]


def _ones_coeff(a: Basic) -> sp.Expr | None:
    """``c`` if ``a`` is ``c·OneMatrix`` (or ``OneMatrix``), else None."""
    if isinstance(a, OneMatrix):
        return sp.S.One
    if isinstance(a, MatMul):
        mats = [x for x in a.args if isinstance(x, MatrixExpr)]
        if len(mats) == 1 and isinstance(mats[0], OneMatrix):
            return sp.Mul(*[x for x in a.args if not isinstance(x, MatrixExpr)])
    return None


def _rewrite(e: Basic) -> Basic:
    if isinstance(e, HadamardProduct):
        coeff = sp.S.One
        rest = []
        for a in e.args:
            c = _ones_coeff(a)
            if c is None:
                rest.append(a)
            else:
                coeff = coeff * c
        if len(rest) == len(e.args):
            return e
        if not rest:
            return coeff * OneMatrix(*e.shape)
        core = rest[0] if len(rest) == 1 else HadamardProduct(*rest)
        return core if coeff == 1 else coeff * core
    if isinstance(e, HadamardPower) and e.args[1] == 1:
        return e.args[0]
    if isinstance(e, ElementwiseApplyFunction):
        lam = e.function
        if not lam.expr.has(lam.variables[0]):
            return lam.expr * OneMatrix(*e.shape)
    return e


#: Results of the shallow ``doit`` and of the rewrite, per distinct node, shared by every call:
#: sympy expressions are immutable and both maps are pure functions of the node, and derived
#: gradients of one energy (and the update rules and steps built on them) share most sub-trees.
_DOIT_CACHE: dict[Basic, Basic] = {}
_REWRITE_CACHE: dict[Basic, Basic] = {}
_TRANSPOSE_CACHE: dict[Basic, Basic] = {}
_CACHE_LIMIT = 50_000  # entries per cache; cleared (not evicted) when full


#: One representative per distinct expression made by the rewrites below (hash-consing), and the
#: ids of the representatives.  sympy compares two equal expressions by walking them until it meets
#: identical sub-trees, so two equal copies built apart (a canonicalisation rule rebuilds nodes)
#: are compared in time proportional to their size *as trees* -- exponential in the nesting depth
#: of a derived cotangent, which uses its parent's cotangent twice.  Interned expressions share
#: every equal sub-tree, so each comparison stops at the first level.
_INTERN: dict[Basic, Basic] = {}
_INTERNED: dict[int, tuple[Basic, Basic]] = {}  # id(expr) -> (expr, its representative); holds expr


def intern(e: Basic) -> Basic:
    """The representative of ``e`` (``e`` itself the first time an equal expression is seen),
    with every sub-tree interned; only nodes not interned before are visited."""
    hit = _INTERNED.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    if len(_INTERNED) >= 4 * _CACHE_LIMIT:
        _INTERN.clear()
        _INTERNED.clear()
    out = e
    if e.args and not e.is_Atom and not isinstance(e, sp.Lambda):
        args = [intern(a) if isinstance(a, Basic) else a for a in e.args]
        if any(n is not o for n, o in zip(args, e.args)):
            out = e.func(*args)
    rep = _INTERN.setdefault(out, out)
    for x in (e, out, rep):
        _INTERNED[id(x)] = (x, rep)
    return rep


def _remember(cache: dict[Basic, Basic], e: Basic, out: Basic) -> Basic:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    out = intern(out)
    cache[e] = out
    return out


def doit(expr: Basic) -> Basic:
    """sympy's deep ``expr.doit()``, computed bottom-up once per distinct sub-tree.

    sympy's ``doit`` re-canonicalises every sub-tree each time an enclosing node is done, and
    derived gradients share large sub-trees (the cotangents), so the plain call is quadratic or
    worse in the tree size.  Here each node is rebuilt from its already-done arguments and done
    shallowly (``deep=False``), which is what the deep call does after recursing.  Two nodes are
    done by hand because their shallow ``doit`` differs or recurses without a memo: ``Trace``
    (its shallow ``doit`` skips ``_eval_trace``) and ``Transpose`` (:func:`transpose`).  Results
    are cached per node (:data:`_DOIT_CACHE`).
    """
    hit = _DOIT_CACHE.get(expr)
    if hit is not None:
        return hit
    e = expr
    if not e.args or e.is_Atom or isinstance(e, sp.Lambda):
        return _remember(_DOIT_CACHE, e, e.doit())
    args = [doit(a) if isinstance(a, Basic) else a for a in e.args]
    e2 = e.func(*args) if any(n is not o for n, o in zip(args, e.args)) else e
    if isinstance(e2, Trace):
        r = e2.arg._eval_trace() if isinstance(e2.arg, MatrixExpr) else None
        out = r if r is not None else Trace(e2.arg)
    elif isinstance(e2, Transpose):
        out = transpose(e2.arg)
    elif type(e2) is MatAdd:
        out = _canonical_matadd(MatAdd(*e2.args))
    elif type(e2) is MatMul:
        out = _canonical_matmul(MatMul(*e2.args))
    elif type(e2) is HadamardProduct and not any(isinstance(a, sp.MatrixBase) for a in e2.args):
        # its own doit re-does every argument in full (it ignores deep=False)
        out = _hadamard.canonicalize(e2)
    else:
        out = e2.doit(deep=False)
    return _remember(_DOIT_CACHE, e, out)


def _combine(cnt: Basic, mat: Basic) -> Basic:
    """sympy's ``matadd.combine`` (``cnt * mat``, i.e. ``MatMul(cnt, mat).doit()``) with the
    cached :func:`doit`."""
    return mat if cnt == 1 else doit(MatMul(cnt, mat))


#: sympy 1.14's ``MatAdd`` canonicalisation (``MatAdd.doit(deep=False)``) with its rules, except
#: that collecting like terms multiplies by the coefficient through the cached ``doit``: sympy's
#: ``cnt * mat`` re-does ``mat`` in full on every pass of the exhaustive rule loop.
_canonical_matadd = exhaust(condition(lambda x: isinstance(x, MatAdd), do_one(
    rm_id(lambda x: x == 0 or isinstance(x, ZeroMatrix)),
    unpack,
    flatten,
    glom(_matadd.matrix_of, _matadd.factor_of, _combine),
    _matadd.merge_explicit,
    sort(default_sort_key),
)))


def _distribute_monom(mul: MatMul) -> Basic:
    """sympy's ``matmul.distribute_monom`` (``2(A + B) → 2A + 2B``) with the cached :func:`doit`
    for each new term (sympy's re-does each term in full)."""
    args = mul.args
    if len(args) == 2:
        if args[0].is_MatAdd and args[1].is_Rational:
            return MatAdd(*[doit(MatMul(m, args[1])) for m in args[0].args])
        if args[1].is_MatAdd and args[0].is_Rational:
            return MatAdd(*[doit(MatMul(args[0], m)) for m in args[1].args])
    return mul


assert _matmul.rules[0] is _matmul.distribute_monom  # the rule replaced below (sympy 1.14)
#: sympy 1.14's ``MatMul`` canonicalisation (``MatMul.doit(deep=False)``) with its rules, except
#: :func:`_distribute_monom`.
_canonical_matmul = exhaust(typed({MatMul: do_one(_distribute_monom, *_matmul.rules[1:])}))


def transpose(e: Basic) -> Basic:
    """sympy's ``transpose(e)`` (``Transpose(e).doit(deep=False)``) of a done expression, with
    the deep ``doit`` calls sympy's transpose rules make on their results replaced by the cached
    :func:`doit`, and cached per node.  The rules are sympy's: ``(c A B)ᵀ = c Bᵀ Aᵀ``,
    ``(A + B)ᵀ = Aᵀ + Bᵀ``, ``(A ∘ B)ᵀ = Aᵀ ∘ Bᵀ``, ``f(A)ᵀ = f(Aᵀ)`` entrywise, ``(A⁻¹)ᵀ = (Aᵀ)⁻¹``,
    ``(Aᵏ)ᵀ = (Aᵀ)ᵏ``, ``(Aᵀ)ᵀ = A``; a primitive's own rule where it declares one
    (:mod:`unfold.symbolic.primitives`); any other node is left to sympy."""
    hit = _TRANSPOSE_CACHE.get(e)
    if hit is not None:
        return hit
    if isinstance(e, MatMul):
        coeff, mats = e.as_coeff_matrices()
        out = doit(MatMul(coeff, *[transpose(a) for a in mats[::-1]]))
    elif isinstance(e, MatAdd):
        out = doit(MatAdd(*[transpose(a) for a in e.args]))
    elif isinstance(e, HadamardProduct):
        out = HadamardProduct(*[transpose(a) for a in e.args])
    elif isinstance(e, HadamardPower):
        out = HadamardPower(transpose(e.base), e.exp)
    elif isinstance(e, ElementwiseApplyFunction):
        out = e.func(e.function, doit(Transpose(e.expr)))
    elif isinstance(e, Inverse):
        out = Inverse(transpose(e.arg))
    elif isinstance(e, MatPow):
        out = MatPow(transpose(e.base), e.exp)
    elif isinstance(e, Transpose):
        out = e.arg
    else:
        from .primitives.registry import primitive_of  # the registry's modules build on this one

        prim = primitive_of(e)
        rule = prim.transpose if prim is not None else None
        rewritten = rule(e) if rule is not None else None
        out = rewritten if rewritten is not None else Transpose(e).doit(deep=False)
    return _remember(_TRANSPOSE_CACHE, e, out)


def _rewritten(e: Basic) -> Basic:
    """:func:`_rewrite` applied bottom-up (each distinct node once, cached)."""
    if not e.args or isinstance(e, sp.Lambda) or e.is_Atom:
        return e
    hit = _REWRITE_CACHE.get(e)
    if hit is not None:
        return hit
    new_args = [_rewritten(a) for a in e.args]
    out = e.func(*new_args) if any(n is not o for n, o in zip(new_args, e.args)) else e
    return _remember(_REWRITE_CACHE, e, _rewrite(out))


def tidy(expr: Basic) -> Basic:
    """Bottom-up rewrite with the identities above, then ``doit`` (until nothing changes, at most
    three rounds)."""
    out = _rewritten(expr)
    for _ in range(3):
        nxt = _rewritten(doit(out))
        if nxt == out:
            break
        out = nxt
    return out


#: The hints of sympy's default ``expr.expand()``, in the order it applies them (``mul`` after
#: ``multinomial``), and the hints it repeats until nothing changes.
_EXPAND_FLAGS = {h: True for h in ("power_base", "power_exp", "mul", "log", "multinomial", "basic")}
_EXPAND_ORDER = tuple(sorted(_EXPAND_FLAGS, key=lambda h: "mulz" if h == "mul" else h))
_EXPAND_REPEAT = ("multinomial", "mul", "log")
_EXPAND_CACHE: dict[tuple[str, Basic], tuple[Basic, bool]] = {}


def _expand_hint(e: Basic, hint: str) -> tuple[Basic, bool]:
    """sympy's ``Expr._expand_hint(e, hint)`` (apply ``e._eval_expand_<hint>`` bottom-up), once
    per distinct node and hint (cached)."""
    key = (hint, e)
    hit = _EXPAND_CACHE.get(key)
    if hit is not None:
        return hit
    changed = False
    if getattr(e, "args", ()) and not e.is_Atom:
        new_args = []
        for a in e.args:
            a, h = _expand_hint(a, hint)
            changed |= h
            new_args.append(a)
        if changed:
            e = e.func(*new_args)
    out = (e, changed)
    method = getattr(e, hint, None)
    if method is not None:
        new = method(**_EXPAND_FLAGS)
        if new != e:
            out = (new, True)
    if len(_EXPAND_CACHE) >= _CACHE_LIMIT:
        _EXPAND_CACHE.clear()
    _EXPAND_CACHE[key] = out
    return out


def expand(expr: Basic) -> Basic:
    """sympy's ``expr.expand()`` with default hints (``Expr.expand``, and the re-canonicalisation
    ``MatAdd.expand``/``MatMul.expand`` add), each hint applied once per distinct node (cached):
    sympy's walk repeats every hint over the whole tree, and expanding a matrix product re-does
    it in full (``n/d`` in ``Mul._eval_expand_mul``)."""
    e = expr
    for hint in _EXPAND_ORDER:
        e, _ = _expand_hint(e, "_eval_expand_" + hint)
    while True:
        was = e
        for hint in _EXPAND_REPEAT:
            e, _ = _expand_hint(e, "_eval_expand_" + hint)
        if e == was:
            break
    if isinstance(expr, (MatAdd, MatMul)):
        e = type(expr)._evaluate(e)
    return e


_EXPAND_LIMIT = 150  # operations; expanding larger expressions costs more than it reads better
_COUNT_LIMIT = 2_000  # tree nodes; above this an expression is never expanded (and not counted)


def distinct_subtrees(expr: Basic) -> list[Basic]:
    """Every distinct sub-tree of ``expr`` (itself included) once, parents before children; a
    walk of the DAG (``sympy.preorder_traversal`` walks the tree, visiting shared sub-trees at
    every occurrence)."""
    seen: set[Basic] = set()
    out: list[Basic] = []
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        out.append(e)
        if isinstance(e, Basic):
            stack.extend(reversed(e.args))
    return out


def tree_size(expr: Basic) -> int:
    """The number of nodes of ``expr`` written out as a tree (shared sub-trees counted at every
    occurrence), computed once per distinct node: linear in the size of the DAG, where sympy's own
    walks (``count_ops``, printing) are linear in the size of the tree, which can be exponential
    in the nesting depth (the cotangent of a nested softmax uses its input's cotangent twice)."""
    memo: dict[Basic, int] = {}

    def size(e: Basic) -> int:
        hit = memo.get(e)
        if hit is None:
            args = e.args if isinstance(e, Basic) and not isinstance(e, sp.Lambda) else ()
            hit = memo[e] = 1 + sum(size(a) for a in args)
        return hit

    return size(expr)


def canonical(expr: Basic) -> Basic:
    """``tidy(expr)`` or its expanded form, whichever has fewer operations (the same matrix).

    Expressions above ``_EXPAND_LIMIT`` operations (or ``_COUNT_LIMIT`` tree nodes) are not
    expanded.
    """
    out = tidy(expr)
    if tree_size(out) > _COUNT_LIMIT:
        return out
    ops = sp.count_ops(out)
    if ops > _EXPAND_LIMIT:
        return out
    expanded = tidy(expand(out))
    return expanded if sp.count_ops(expanded) <= ops else out
