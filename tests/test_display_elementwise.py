"""Unnamed elementwise functions display as the matrix expression they equal entry by entry.

The reference is the explicit-size expansion (:mod:`unfold.symbolic.explicit`): the displayed
matrix expression and the original ``u ↦ body`` applied entrywise are expanded independently on a
2×3 matrix of entry symbols and compared at random points.  LaTeX is checked by matplotlib's
mathtext parser.
"""

from __future__ import annotations

import random

import pytest
import sympy as sp
from matplotlib.mathtext import MathTextParser

import unfold as uf
from unfold.symbolic.display import matrix_form
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.nodes import U, ew

t = sp.Symbol("t", positive=True)
BODIES = {  # in the table: powers, shifts, registered functions of sub-expressions
    "reciprocal": 1 / U,
    "sqrt derivative": 1 / (2 * sp.sqrt(U)),
    "reciprocal derivative": -1 / U**2,
    "shifted reciprocal": 1 / (U + t),
    "tanh derivative": 1 - sp.tanh(U) ** 2,
    "shifted relu": sp.Max(0, U - t),
    "sigmoid derivative part": 1 / (sp.exp(U) + 2 + sp.exp(-U)),
    "product": U * sp.exp(-U / 2),
    "symbolic power": (U + 1) ** t,
}


def _close_at_random_points(A: sp.Matrix, B: sp.Matrix) -> bool:
    rng = random.Random(0)
    syms = sorted(A.free_symbols | B.free_symbols, key=str)
    for _ in range(3):
        point = {s: sp.Float(rng.uniform(0.5, 2.0)) for s in syms}
        for a, b in zip(A.subs(point), B.subs(point)):
            a, b = complex(sp.N(a, 30)), complex(sp.N(b, 30))
            if abs(a - b) > 1e-12 * max(1.0, abs(a)):
                return False
    return True


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_the_matrix_form_equals_the_map_entrywise(body) -> None:
    M = uf.state("M", 2, 3)
    e = ew(body, M)
    shown = matrix_form(e)
    assert shown is not None
    env = explicit_env([M], {})
    assert _close_at_random_points(expand_explicit(shown, env), expand_explicit(e, env))
    text, tex = uf.to_str(e), uf.to_latex(e)
    assert "u ->" not in text and r"\mapsto" not in tex
    MathTextParser("path").parse("$" + tex + "$")  # raises ValueError on malformed LaTeX


@pytest.mark.parametrize("body", [2**U, U**U, sp.atan(U)], ids=["u in an exponent", "u^u", "unregistered"])
def test_a_body_outside_the_table_keeps_the_map(body) -> None:
    e = ew(body, uf.state("M", 2, 3))
    assert matrix_form(e) is None
    assert "u ->" in uf.to_str(e) and r"\mapsto" in uf.to_latex(e)


def test_a_named_function_keeps_its_name() -> None:
    M = uf.state("M", 2, 3)
    assert matrix_form(uf.relu(M)) is None and uf.to_str(uf.relu(M)) == "relu(M)"


def test_derived_gradients_show_no_anonymous_maps() -> None:
    """The layer-norm Lagrangian's gradient (derivative of √u) and a log-determinant-free coding
    term (derivative of log u) display in matrix notation."""
    d, n = uf.dims("d n")
    X = uf.state("X", d, n)
    eps = uf.scalar("eps", positive=True)
    for E in (uf.Energy(uf.sum_entries(uf.sqrt(uf.hadamard(X, X) + eps * uf.ones(d, n)))),
              uf.Energy(uf.sum_entries(uf.log(uf.hadamard(X, X) + uf.ones(d, n))))):
        g = E.grad(X)
        assert "u ->" not in uf.to_str(g) and r"\mapsto" not in uf.to_latex(g)
        assert "^∘" in uf.to_str(g)
        MathTextParser("path").parse("$" + uf.to_latex(g) + "$")
