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
from sympy.matrices.expressions import MatrixExpr

import unfold as uf
from unfold.errors import UnsupportedNodeError
from unfold.parse import PRIMITIVES
from unfold.symbolic.display import elementwise_name
from unfold.symbolic.nodes import U, ew
from unfold.symbolic.primitives import primitives, scalar_functions
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


# ---- node types ----------------------------------------------------------------------------------
NODES = primitives()


def _subclasses(base: type) -> set[type]:
    out: set[type] = set()
    for c in base.__subclasses__():
        out |= {c} | _subclasses(c)
    return out


def test_every_node_type_is_registered() -> None:
    """Every public ``MatFn``/``ScalarMatFn`` subclass (private bases start with ``_``) has a record;
    an unregistered one is refused when an energy is built."""
    import unfold.symbolic.nodes as nodes

    found = {c for c in _subclasses(nodes.MatFn) | _subclasses(nodes.ScalarMatFn) if not c.__name__.startswith("_")}
    missing = sorted(c.__name__ for c in found if c not in NODES)
    assert not missing, f"node types without a record in unfold.symbolic.primitives: {missing}"

    class Stray(nodes.MatFn):  # a node defined outside the registry
        pass

    d = uf.dims("d")[0]
    X = uf.state("X", d, d)
    with pytest.raises(UnsupportedNodeError, match="Stray is not a registered primitive"):
        uf.Energy(uf.sum_entries(Stray(X)))


@pytest.mark.parametrize("node", sorted(NODES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_rule_works_on_an_instance(node: type) -> None:
    """On the record's own example: validation accepts it, both displays name its argument, the
    parser names call the user functions, and the two-leg gradient check (generated torch energy
    and gradient against ``torch.func.grad`` and against the explicit-size expansion, 30 digits)
    passes for ``E = Σ C ∘ node(X)`` — which exercises the VJP, the torch lowering and the
    explicit rule.  A node whose VJP is a declared refusal is checked through ``C`` alone."""
    from unfold.symbolic.display import to_latex, to_str
    from unfold.symbolic.vjp import vjp

    p = NODES[node]
    d = uf.dims("d")[0]
    X = uf.state("X", d, d)
    e = p.example(X)
    assert type(e) is node
    is_matrix = isinstance(e, MatrixExpr)
    C = uf.state("C", *(e.shape if is_matrix else (d, d)))
    p.validate(e)
    assert "X" in to_str(e) and "X" in to_latex(e)
    for name, fn in p.parser.items():
        assert PRIMITIVES[name] is fn
    E = uf.Energy(uf.sum_entries(uf.hadamard(C, e)) if is_matrix else e * uf.sum_entries(C))
    try:
        pairs = vjp(e, sp.OneMatrix(*e.shape) if is_matrix else sp.S.One)
    except UnsupportedNodeError:
        pairs = None
    if pairs is not None:
        for child, ct in pairs:
            assert getattr(child, "shape", None) == getattr(ct, "shape", None), (child, ct)
    result = uf.check_gradient(E, wrt=None if pairs is not None else [C])
    assert result.passed


@pytest.mark.parametrize("node", sorted((c for c, p in NODES.items() if p.transpose is not None),
                                        key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_transpose_rules_are_transposes(node: type) -> None:
    """A declared transpose rule rewrites ``nodeᵀ`` into a node whose explicit value is the
    transpose of the node's (3×3, exact)."""
    from unfold.symbolic.explicit import expand_explicit, explicit_env
    from unfold.symbolic.tidy import transpose

    p = NODES[node]
    d = uf.dims("d")[0]
    X = uf.state("X", d, d)
    e = p.example(X)
    t = transpose(e)
    assert t == p.transpose(e) and not isinstance(t, sp.Transpose)
    env = explicit_env([X], {d: 3})
    diff = expand_explicit(t, env) - expand_explicit(e, env).T
    assert all(sp.expand(x) == 0 for x in diff)
