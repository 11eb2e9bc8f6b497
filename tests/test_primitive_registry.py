"""The primitive registry (``unfold.symbolic.primitives``): every registered primitive has every
rule, and each rule works on an instance of it.

Scalar functions: the torch lowering equals sympy's own 30-digit value of the function (or of its
definition) at sample points; the derivative the gradient engine uses equals a central finite
difference of that value; public functions are readable by ``uf.parse`` and displayed by name.
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import unfold as uf
from unfold.errors import UnsupportedNodeError
from unfold.parse import PRIMITIVES
from unfold.symbolic.display import elementwise_name
from unfold.symbolic.nodes import U, ew
from unfold.symbolic.primitives import scalar_functions
from unfold.symbolic.vjp import elementwise_derivative

SCALARS = scalar_functions()
ONE_ARG = sorted(n for n, f in SCALARS.items() if f.build is not None)
POINTS = [0.3, 0.9, 1.7, 2.5]  # inside every function's domain, away from kinks and step points


def _defined(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every registered function that has a definition replaced by it."""
    for f in SCALARS.values():
        if f.func is not None and f.definition is not None:
            expr = expr.replace(f.func, f.definition)
    return expr


def _value(expr: sp.Expr, x: float) -> float:
    """30-digit value of ``expr`` (in ``U``) at ``x``."""
    return float(sp.N(_defined(expr).xreplace({U: sp.Float(x, 40)}), 30))


def _lowered(expr: sp.Expr, x: float) -> float:
    """The generated energy ``Σ f(A)`` of a 1×1 state ``A = [[x]]``: the lowering of ``u ↦ expr``."""
    d = uf.dims("d")[0]
    A = uf.state("A", d, d)
    cm = uf.Energy(uf.sum_entries(ew(expr, A))).compile()
    return float(cm(A=torch.tensor([[x]], dtype=torch.float64)))


@pytest.mark.parametrize("name", ONE_ARG)
def test_lowering_matches_sympy(name: str) -> None:
    f = SCALARS[name]
    assert f.build is not None
    for x in POINTS:
        assert _lowered(f.build(U), x) == pytest.approx(_value(f.build(U), x), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("name", ONE_ARG)
def test_derivative_matches_finite_differences(name: str) -> None:
    """The derivative the gradient engine takes (``fdiff`` of the function's class, by the chain rule
    through compositions) against a 30-digit central difference of the function's value."""
    f = SCALARS[name]
    assert f.build is not None
    body = f.build(U)
    if name == "step":  # its derivative is a Dirac delta: the engine refuses rather than returning 0
        with pytest.raises(UnsupportedNodeError, match="Heaviside"):
            elementwise_derivative(body)
        return
    dbody = elementwise_derivative(body)
    assert not dbody.has(sp.Derivative, sp.Subs)
    defined = _defined(body)
    h = sp.Float("1e-12", 60)
    for x in POINTS:
        at = [sp.N(defined.xreplace({U: sp.Float(x, 60) + s * h}), 50) for s in (1, -1)]
        fd = (at[0] - at[1]) / (2 * h)  # central difference: error O(h²) = 1e-24
        assert _value(dbody, x) == pytest.approx(float(fd), rel=1e-12, abs=1e-14), name


def test_every_function_has_its_rules() -> None:
    for name, f in SCALARS.items():
        assert f.func is not None or f.build is not None, name
        if f.func is not None:
            assert callable(f.lower), f"{name}: no torch lowering"
        if f.public:
            assert f.build is not None and PRIMITIVES.get(name) is f.apply, f"{name}: not readable by uf.parse"
            M = sp.MatrixSymbol("A", 2, 3)
            assert elementwise_name(ew(f.build(U), M)) == name, f"{name}: not displayed by name"
        else:
            assert name not in PRIMITIVES


def test_lowerings_of_two_argument_functions() -> None:
    """``max``/``min`` of several entries (they appear in derivatives and sympy-built energies)."""
    for body, ref in ((sp.Max(U, 2 - U, 0), lambda x: max(x, 2 - x, 0)), (sp.Min(U, 2 - U), lambda x: min(x, 2 - x)),
                      (sp.Max(U, 0), lambda x: max(x, 0))):
        for x in (-0.5, 0.4, 1.6):
            assert _lowered(body, x) == pytest.approx(ref(x), rel=1e-15)
