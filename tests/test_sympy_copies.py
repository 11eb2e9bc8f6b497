"""``unfold.symbolic.tidy`` re-implements three sympy internals for speed (MatAdd canonicalisation,
transpose of a done expression, default ``expand``).  sympy is pinned by constraints.txt, not by
install_requires; these tests fail when an installed sympy changes what was copied, so a new sympy
cannot silently change unfold's canonical forms."""

from __future__ import annotations

import inspect

import sympy as sp
from sympy.matrices.expressions import matadd
from sympy.strategies import flatten, unpack

import importlib

tidy = importlib.import_module("unfold.symbolic.tidy")  # the module (unfold.symbolic.tidy is also a function)


def test_matadd_rule_list_is_the_copied_one() -> None:
    rules = matadd.rules
    assert len(rules) == 6
    # the rules taken as they are: the same objects
    assert rules[1] is unpack and rules[2] is flatten and rules[4] is matadd.merge_explicit
    assert matadd.matrix_of is not None and matadd.factor_of is not None
    # the canonicalisation as a whole: the copy equals sympy's on sums with zeros, like terms,
    # nested sums and unsorted terms
    n = sp.Symbol("n")
    A, B, C = (sp.MatrixSymbol(x, n, n) for x in "ABC")
    Z = sp.ZeroMatrix(n, n)
    for e in (sp.MatAdd(B, A, A, Z, evaluate=False), sp.MatAdd(sp.MatAdd(C, 2 * A, evaluate=False), -A, B, evaluate=False),
              sp.MatAdd(3 * B, sp.MatMul(2, B), A.T, evaluate=False), sp.MatAdd(A, -A, evaluate=False)):
        assert tidy._canonical_matadd(e) == matadd.canonicalize(e), e


def test_expand_hints_are_sympys_defaults() -> None:
    defaults = {k for k, p in inspect.signature(sp.Expr.expand).parameters.items() if p.default is True}
    assert defaults - {"deep"} == set(tidy._EXPAND_FLAGS)
    # sympy orders the hints by a local key that moves "mul" after "multinomial" ("mul" → "mulz")
    (key,) = [c for c in inspect.unwrap(sp.Expr.expand).__code__.co_consts if inspect.iscode(c) and c.co_name == "_expand_hint_key"]
    assert {"mul", "mulz"} <= set(key.co_consts)
    assert list(tidy._EXPAND_ORDER) == ["basic", "log", "multinomial", "mul", "power_base", "power_exp"]


def test_cached_expand_and_transpose_equal_sympys() -> None:
    n = sp.Symbol("n")
    A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n)
    x, y = sp.symbols("x y")
    for e in ((x + y) ** 3 * sp.log(x * y), sp.exp(x + y) * (x - 2) ** 2):
        assert tidy.expand(e) == e.expand()
    for e in (2 * A * B, (A + B.T) * A, A ** 3):
        assert tidy.transpose(e) == sp.Transpose(e).doit(deep=False).doit()
