"""The fast paths of derive and check compute what the plain sympy calls compute.

* leg 2 of the gradient check differentiates the explicit expansion by the chain rule over its
  DAG (local partials from ``sp.diff``): compared here with plain ``sp.diff`` of the whole scalar
  expression evaluated by sympy's own ``evalf``, at 30 digits;
* the unevaluated explicit expansion has the value of the evaluated one;
* the cached ``doit``/``transpose``/``expand`` equal sympy's ``doit``/``Transpose(·).doit(deep=False)``/
  ``expand`` on every derived gradient of every built-in energy;
* leg 2 still catches a bug that corrupts the generated energy and gradient alike (leg 1 cannot);
* the size guard refuses an over-budget reference with a clear error and certifies nothing.

No timings are asserted (the benchmark measures them: ``unfold bench``).
"""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp
import torch
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol, Transpose
from sympy.matrices.utilities import dotprodsimp

import unfold as uf
from unfold.energies import BUILTIN_ENERGIES
from unfold.symbolic import ops
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.symbols import dims, param, scalar, state
from unfold.symbolic.tidy import doit, expand, tidy, transpose
from unfold.symbolic.vjp import unevaluated_gradient
from unfold.sampling import explicit_sizes
from unfold.verify import certificates
from unfold.verify.gradient import _value_and_gradient, check_gradient

d, n = dims("d n")
X = param("X", d, n)
W = param("W", d, d)
xi = state("xi", d, 1)
Y = state("Y", d, n)
beta = scalar("beta", positive=True)
t = scalar("t", positive=True)


def _nested_inverse(depth: int) -> uf.Energy:
    M = W
    for _ in range(depth):
        M = ops.inv(M + 2 * ops.identity(d)) * W
    return uf.Energy(ops.logdet(M.T * M + ops.identity(d)) + ops.fro2(M * Y))


ENERGIES = {
    "hopfield": lambda: uf.Energy(-ops.lse(beta * X.T * xi) / beta + ops.fro2(xi) / 2),
    "layernorm": lambda: uf.Energy(ops.fro2(ops.layernorm(Y, sp.Rational(1, 100)) - X)),
    "relu_abs_tanh": lambda: uf.Energy(ops.sum_entries(ops.relu(W * Y - X)) + ops.l1(Y)
                                       + ops.sum_entries(ops.tanh(beta * Y))),
    "soft_threshold": lambda: uf.Energy(ops.fro2(ops.soft_threshold(Y, t) - X)),
    "softmax_rows": lambda: uf.Energy(ops.fro2(ops.softmax(Y.T * W * Y, axis=1))),
    "inverse_logdet": lambda: uf.Energy(ops.trace(ops.inv(W) * Y * Y.T) + ops.logdet(W)),
    "matrix_power": lambda: uf.Energy(ops.trace(ops.power(W, 3)) + ops.trace(ops.power(W, -2))),
}


def _explicit(E: uf.Energy, evaluate: bool) -> tuple[sp.Expr, dict[sp.Basic, mpmath.mpf], list[sp.Symbol]]:
    """The explicit-size scalar energy, a random point (entries away from kinks) and the leaves."""
    rng = random.Random(0)
    env = explicit_env(E.inputs, explicit_sizes(E.dims))
    point: dict[sp.Basic, mpmath.mpf] = {}
    leaves: list[sp.Symbol] = []
    for s in E.inputs:
        if isinstance(s, MatrixSymbol):
            M = env[s]
            for i in range(M.rows):
                for j in range(M.cols):
                    v = (2.0 if i == j and M.rows == M.cols else 0.0) + rng.choice([-1, 1]) * rng.uniform(0.2, 0.6)
                    point[M[i, j]] = mpmath.mpf(v)
                    leaves.append(M[i, j])
        else:
            z = sp.Symbol(f"{s}_", real=True)
            env[s] = z
            point[z] = mpmath.mpf(rng.uniform(0.5, 1.5))
            leaves.append(z)
    with dotprodsimp(False):
        Ex = expand_explicit(E.expr, env, evaluate=evaluate)
    return (Ex[0, 0] if isinstance(Ex, sp.MatrixBase) else Ex), point, leaves


def _sympy_value(e: sp.Expr, point: dict[sp.Basic, mpmath.mpf]) -> mpmath.mpf:
    return mpmath.mpf(sp.N(e.xreplace({k: sp.Float(v, 40) for k, v in point.items()}), 35))


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_chain_rule_over_the_dag_equals_plain_sp_diff(name: str) -> None:
    E = ENERGIES[name]()
    Ex, point, leaves = _explicit(E, evaluate=True)
    with mpmath.workdps(30):
        fast = _value_and_gradient(Ex, point, leaves)
        assert abs(fast[0] - _sympy_value(Ex, point)) <= mpmath.mpf("1e-25") * max(1, abs(fast[0]))
        for leaf, g in list(zip(leaves, fast[1:]))[::3]:  # every third entry: sp.diff per entry is slow
            ref = _sympy_value(sp.diff(Ex, leaf), point)  # scalar
            assert abs(g - ref) <= mpmath.mpf("1e-25") * max(1, abs(ref)), (name, leaf, g, ref)


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_unevaluated_expansion_has_the_value_of_the_evaluated_one(name: str) -> None:
    E = ENERGIES[name]()
    a, point, leaves = _explicit(E, evaluate=True)
    b, _, _ = _explicit(E, evaluate=False)
    with mpmath.workdps(30):
        va, vb = _value_and_gradient(a, point, leaves), _value_and_gradient(b, point, leaves)
    for x, y in zip(va, vb):
        assert abs(x - y) <= mpmath.mpf("1e-25") * max(1, abs(x))


def test_relu_kink_with_vanishing_factor_is_zero() -> None:
    """d/dy [y·relu(y)] at y = 0: the product rule gives relu(0) + 0·H(0) = 0."""
    y = sp.Symbol("y", real=True)
    e = y * sp.Max(y, 0)
    with mpmath.workdps(30):
        value, grad = _value_and_gradient(e, {y: mpmath.mpf(0)}, [y])
    assert value == 0 and grad == 0


@pytest.mark.parametrize("name", sorted(BUILTIN_ENERGIES))
def test_cached_doit_transpose_and_expand_equal_sympy(name: str) -> None:
    E = BUILTIN_ENERGIES[name]()
    for v in E.variables:
        raw = unevaluated_gradient(E.expr, v)
        assert doit(raw) == raw.doit()
        for x in (tidy(doit(raw)), E.grad(v)):
            assert expand(x) == x.expand()
        for x in sp.preorder_traversal(E.grad(v)):
            if isinstance(x, MatrixExpr):
                assert transpose(x) == Transpose(x).doit(deep=False)


def test_leg2_catches_a_bug_that_corrupts_energy_and_gradient_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """A printer bug that scales both the energy and its gradient passes leg 1 (autograd of the
    corrupted energy is the corrupted gradient) and must fail leg 2."""
    E = ENERGIES["hopfield"]()
    cm = E.compile()
    for v in E.variables:
        cm.grad_fn(v)

    def scaled(f):
        return type(f)(f.name, f.inputs, f.outputs, f.source, lambda *a: 1.001 * f.fn(*a))

    monkeypatch.setattr(cm, "energy_fn", scaled(cm.energy_fn))
    for v in list(cm._grad_fns):
        monkeypatch.setitem(cm._grad_fns, v, scaled(cm._grad_fns[v]))
    certificates.clear()
    res = check_gradient(E, raise_on_failure=False)
    assert not res.passed
    for v in res.variables:
        assert v.leg1_error <= 1e-10            # leg 1 is blind to it
        assert v.leg2_energy_error > 1e-6       # leg 2 is not
    assert not any(certificates.is_certified(E, v) for v in E.variables)


def test_over_budget_reference_is_refused_and_nothing_is_certified() -> None:
    E = _nested_inverse(2)
    certificates.clear()
    with pytest.raises(uf.CheckFailedError, match=r"distinct scalar operations, over the budget of 50.*not certified"):
        check_gradient(E, explicit_budget=50)
    assert not any(certificates.is_certified(E, v) for v in E.variables)


def test_nested_inverses_are_checked_within_the_default_budget() -> None:
    """Nested inverse/log-determinant energies (the fuzzer's former explicit-leg timeouts) are
    checked on both legs."""
    E = _nested_inverse(3)
    res = check_gradient(E)
    assert res.passed and {v.name for v in res.variables} == {"W", "Y"}
    assert all(v.leg2_grad_error <= 1e-10 for v in res.variables)
    g = certificates.checked_grad_fn(E, "W")(*E.compile().args(**{
        "W": 2 * torch.eye(3, dtype=torch.float64), "Y": torch.ones(3, 2, dtype=torch.float64)}))
    assert torch.isfinite(g).all()


def test_autograd_only_check_says_so_and_certifies_nothing() -> None:
    E = ENERGIES["hopfield"]()
    certificates.clear()
    res = check_gradient(E, explicit=False)
    assert res.passed and all(not v.leg2_run for v in res.variables)
    assert "explicit-size leg not run" in str(res)
    assert not any(certificates.is_certified(E, v) for v in E.variables)
    full = check_gradient(E)
    assert all(v.leg2_run for v in full.variables)
    assert all(certificates.is_certified(E, v) for v in E.variables)


def test_an_equal_energy_is_checked_once(monkeypatch) -> None:
    """Certificates are keyed by (expression, variable): a second, separately built but equal energy
    reuses the first one's certificate; a different energy does not."""
    from unfold.verify import gradient as gradient_mod

    calls = []
    real = gradient_mod.check_gradient
    monkeypatch.setattr(gradient_mod, "check_gradient", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    certificates.clear()
    a, b, other = BUILTIN_ENERGIES["hopfield"](), BUILTIN_ENERGIES["hopfield"](), BUILTIN_ENERGIES["quadratic_residual"]()
    assert a is not b and a.expr == b.expr
    certificates.checked_grad_fn(a, "xi")
    certificates.checked_grad_fn(b, "xi")
    assert calls == [a]
    certificates.checked_grad_fn(other, "Y")
    assert calls == [a, other]
