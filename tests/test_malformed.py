"""Malformed-input corpus: every case gets a specific unfold error whose message names the offending
term / symbol / tensor / dimension (and, where there is one, the fix) — never an internal exception,
never a silent wrong number.

One parametrized case per malformed input; each asserts the exception type AND a pattern of the
message that names the problem.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import sympy as sp
import torch
from sympy.matrices.expressions import MatrixSymbol

import unfold as uf
from unfold.codegen.runtime import finite_checks
from unfold.errors import (
    AssumptionError, CheckFailedError, DimMismatchError, InputError, NotScalarError, ShapeMismatchError, StepSizeError, UndeclaredSymbolError, UnfoldError, UnsupportedNodeError,
)
from unfold.parse import parse_energy_spec

f64 = torch.float64
d, n = uf.dims("d n")
Y, x = uf.state("Y", d, n), uf.state("x", d, 1)
X, W, A = uf.param("X", d, n), uf.param("W", d, d), uf.param("A", n, n)
beta, c = uf.scalar("beta", positive=True), uf.scalar("c")
v3 = uf.state("v", 3, 1)


def _hopfield_like() -> Any:
    """E = −lse(β XᵀY)/β + ½‖Y‖² + tr(YᵀWY), compiled."""
    return uf.Energy(-uf.lse(beta * X.T * Y) / beta + uf.fro2(Y) / 2 + uf.trace(Y.T * W * Y)).compile()


def _t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=f64, generator=torch.Generator().manual_seed(sum(shape)))


GOOD = dict(Y=_t(2, 4, 3), X=_t(4, 3), W=_t(4, 4), beta=1.0)


def _call(**change: Any) -> Any:
    kw = dict(GOOD)
    for k, val in change.items():
        if val is None:
            kw.pop(k)
        else:
            kw[k] = val
    return _hopfield_like()(**kw)


def _nan_under_checks() -> Any:
    with finite_checks():
        return _call(Y=torch.full((2, 4, 3), math.nan, dtype=f64))


def _inf_scalar_under_checks() -> Any:
    with finite_checks():
        return _call(beta=math.inf)


def _inf_param_under_checks() -> Any:
    bad = _t(4, 3).clone()
    bad[1, 2] = math.inf
    with finite_checks():
        return _call(X=bad)


def _nan_into_a_step() -> Any:
    from unfold.steps import GradientStep

    E = uf.Energy(uf.fro2(Y - W * Y) / 2)
    step = GradientStep(E, wrt="Y", step=0.1)
    with finite_checks():
        return step(torch.full((2, 4, 3), math.nan, dtype=f64), W=_t(4, 4))


def _step_above_bound() -> Any:
    """E = ½ L‖Y‖² has L-Lipschitz gradient; η = 2.5/L > 2/L makes the energy grow."""
    from unfold.steps import GradientStep, Unrolled
    from unfold.verify import assert_descent

    E = uf.Energy(4 * uf.fro2(Y))  # L = 8
    model = Unrolled(GradientStep(E, wrt="Y", step=2.5 / 8), depth=3)
    return assert_descent(model, _t(2, 4, 3))


def _nonsymmetric_concave_part() -> Any:
    """CCCP needs the 'concave' part −½ xᵀWx concave: false when the symmetric part of W is indefinite."""
    from unfold.steps import CCCPStep

    w = torch.tensor([[1.0, 3.0, 0.0], [-1.0, -2.0, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
    vex = uf.Energy(uf.fro2(x) / 2)
    cave = uf.Energy(-uf.as_scalar(x.T * W * x) / 2)
    step = CCCPStep(vex, cave, wrt="x", check=False)
    res = step.check_splitting(_t(2, 3, 1), W=-w)  # concave part +½ xᵀwx is not concave
    if not res.passed:
        step._raise(res)
    return res


def _symmetry_predicate() -> Any:
    from unfold.catalogue._measure import symmetric

    r = symmetric("A", torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=f64))
    if not r.holds:
        raise AssumptionError(f"assumption failed: {r.name}: {r.detail}")
    return r


# (id, thunk, exception type, pattern the message must contain)
CASES: list[tuple[str, Callable[[], Any], type, str]] = [
    # ---- non-scalar energies
    ("energy-is-matrix", lambda: uf.Energy(Y), NotScalarError, r"'E' is a d×n matrix \(Y\).*sum_entries"),
    ("term-is-matrix", lambda: uf.Energy(terms={"attn": W * Y}), NotScalarError, r"'attn' is a d×n matrix"),
    ("energy-from-string", lambda: uf.Energy("fro2(Y)"), NotScalarError, r"got str.*uf\.parse"),
    ("energy-from-list", lambda: uf.Energy([Y]), NotScalarError, r"got list"),
    ("energy-empty", lambda: uf.Energy(), NotScalarError, r"needs an expression or terms"),
    ("energy-plus-matrix", lambda: uf.Energy(uf.fro2(Y)) + Y, NotScalarError, r"d×n matrix \(Y\)"),
    ("energy-times-matrix", lambda: uf.Energy(uf.fro2(Y)) * W, NotScalarError, r"'scale' is a d×d matrix \(W\)"),
    ("parsed-matrix", lambda: parse_energy_spec("W @ Y", "d n", ["Y:d,n"], ["W:d,d"]), NotScalarError,
     r"W\*Y is a d×n matrix, not a scalar"),
    # ---- shape mismatches in products and sums
    ("product-inner-dims", lambda: uf.fro2(X * Y), ShapeMismatchError, r"product X @ Y: X is d×n but Y is d×n \(n ≠ d\)"),
    ("product-self-nonsquare", lambda: uf.fro2(Y * Y), ShapeMismatchError, r"Y\*\*2 needs a square matrix, Y is d×n"),
    ("sum-shapes", lambda: uf.fro2(Y + W), ShapeMismatchError, r"sum of W \(d×d\) and Y \(d×n\)"),
    ("hadamard-shapes", lambda: uf.hadamard(Y, W), ShapeMismatchError, r"hadamard\(\): Y is d×n but W is d×d"),
    ("trace-nonsquare", lambda: uf.trace(Y), ShapeMismatchError, r"trace\(\) needs a square matrix, Y is d×n"),
    ("inv-nonsquare", lambda: uf.inv(Y), ShapeMismatchError, r"inv\(\) needs a square matrix, Y"),
    ("det-nonsquare", lambda: uf.det(X), ShapeMismatchError, r"det\(\) needs a square matrix, X"),
    ("lse-of-scalar", lambda: uf.lse(beta), ShapeMismatchError, r"lse\(\) takes a matrix expression, got beta"),
    ("lse-bad-axis", lambda: uf.lse(Y, axis=2), ShapeMismatchError, r"axis must be 0 \(per column\) or 1 \(per row\), got 2"),
    ("hpow-matrix-exponent", lambda: uf.hpow(Y, W), ShapeMismatchError, r"exponent must be a scalar.*W"),
    ("as-scalar-of-matrix", lambda: uf.as_scalar(Y), ShapeMismatchError, r"Y is d×n, not a scalar"),
    ("parsed-product", lambda: parse_energy_spec("fro2(Y @ W)", "d n", ["Y:d,n"], ["W:d,d"]), ShapeMismatchError,
     r"product Y @ W.*\(column 6\)"),
    # ---- undeclared or misspelled symbols
    ("raw-matrix-symbol", lambda: uf.Energy(uf.fro2(MatrixSymbol("Z", d, n))), UndeclaredSymbolError,
     r"matrix 'Z' was not declared.*uf\.state"),
    ("raw-scalar-symbol", lambda: uf.Energy(sp.Symbol("gamma") * uf.fro2(Y)), UndeclaredSymbolError,
     r"symbol 'gamma' was not declared.*uf\.scalar\('gamma'\)"),
    ("undeclared-dim", lambda: uf.param("Q", sp.Symbol("m"), n), ShapeMismatchError, r"Q: a dimension must be declared.*got m"),
    ("grad-misspelled", lambda: uf.Energy(uf.fro2(Y)).grad("Yy"), UndeclaredSymbolError, r"no variable 'Yy'; it has \['Y'\]"),
    ("grad-absent-variable", lambda: uf.Energy(uf.fro2(Y)).grad(W), UndeclaredSymbolError, r"W does not occur in this energy"),
    ("parsed-misspelling", lambda: parse_energy_spec("fro2(Y) / betta", "d n", ["Y:d,n"], [], ["beta"]),
     UndeclaredSymbolError, r"'betta' is not declared \(did you mean 'beta'\?\)"),
    ("reserved-name", lambda: uf.state("torch", d, n), UndeclaredSymbolError, r"'torch' is reserved"),
    ("bad-dim-name", lambda: uf.dims("2d"), UndeclaredSymbolError, r"invalid dimension name '2d'"),
    # ---- unsupported functions
    ("scalar-sinh", lambda: uf.Energy(sp.sinh(uf.fro2(Y))), UnsupportedNodeError, r"unsupported function sinh"),
    ("scalar-gamma", lambda: uf.Energy(sp.gamma(uf.fro2(Y))), UnsupportedNodeError, r"unsupported function gamma"),
    ("elementwise-atan", lambda: uf.Energy(uf.sum_entries(Y.applyfunc(sp.atan))), UnsupportedNodeError, r"unsupported function atan"),
    ("adjoint", lambda: uf.Energy(uf.fro2(sp.adjoint(Y))), UnsupportedNodeError, r"unsupported matrix operation Adjoint"),
    ("kronecker", lambda: uf.Energy(uf.fro2(sp.kronecker_product(W, W))), UnsupportedNodeError,
     r"unsupported matrix operation KroneckerProduct"),
    ("fractional-matrix-power", lambda: uf.Energy(uf.trace(sp.MatPow(W, sp.Rational(1, 2)))), UnsupportedNodeError,
     r"W\*\*\(1/2\) needs an integer exponent"),
    ("parsed-unknown-function", lambda: parse_energy_spec("sum_entries(swish(Y))", "d n", ["Y:d,n"], []),
     UnsupportedNodeError, r"unsupported function 'swish'"),
    # ---- runtime tensors: shapes, dtypes, devices, disagreeing dims
    ("tensor-rank-1", lambda: _call(Y=_t(4)), InputError, r"input 'Y' must have shape \(\.\.\., rows, cols\).*x\[\.\.\., None\]"),
    ("dims-disagree", lambda: _call(X=_t(5, 3)), DimMismatchError, r"dimension 'd' disagrees: 'Y' has d=4.*'X' has d=5"),
    ("square-param-wrong", lambda: _call(W=_t(4, 3)), DimMismatchError, r"dimension 'd' disagrees.*'W' has d=3"),
    ("fixed-size-wrong", lambda: uf.Energy(uf.fro2(v3)).compile()(_t(4, 1)), DimMismatchError,
     r"input 'v' must have size 3 on axis -2"),
    ("dtypes-differ", lambda: _call(Y=_t(2, 4, 3).float()), InputError, r"'Y' \(torch.float32\) and 'W' \(torch.float64\)"),
    ("devices-differ", lambda: _call(X=_t(4, 3).to("meta")), InputError, r"'X' \(meta\) are on different devices"),
    ("integer-dtype", lambda: _call(Y=torch.ones(2, 4, 3, dtype=torch.long)), InputError, r"input 'Y' has dtype torch.int64.*\.double\(\)"),
    ("numpy-input", lambda: _call(Y=_t(2, 4, 3).numpy()), InputError, r"input 'Y' must be a torch.Tensor, got ndarray"),
    ("scalar-as-string", lambda: _call(beta="1"), InputError, r"scalar 'beta' must be a number or a tensor, got str"),
    ("missing-input", lambda: _call(W=None), InputError, r"missing input\(s\) \['W'\]"),
    ("unknown-input", lambda: _call(gamma=2.0), InputError, r"unknown input 'gamma'"),
    ("batch-not-broadcastable", lambda: _call(X=_t(3, 4, 3)), DimMismatchError, r"batch shapes.*'Y' \(2,\), 'X' \(3,\)"),
    ("singular-matrix", lambda: uf.Energy(uf.fro2(uf.inv(W) * Y)).compile()(Y=_t(2, 4, 3), W=torch.zeros(4, 4, dtype=f64)),
     InputError, r"singular.*non-singular"),
    # ---- NaN / Inf inputs (opt-in checks) and the gradient check's domain
    ("nan-state", _nan_under_checks, InputError, r"input 'Y' holds 24 non-finite entries \(NaN\)"),
    ("inf-scalar", _inf_scalar_under_checks, InputError, r"scalar 'beta' is inf"),
    ("inf-param", _inf_param_under_checks, InputError, r"input 'X' holds 1 non-finite entry \(±Inf\)"),
    ("nan-into-step", _nan_into_a_step, InputError, r"input 'Y' holds .* non-finite"),
    ("check-gradient-nan", lambda: uf.check_gradient(uf.Energy(uf.fro2(Y)), inputs={"Y": torch.full((1, 2, 2), math.nan, dtype=f64)}),
     InputError, r"not finite at the check point; pass inputs= inside its domain"),
    # ---- step sizes
    ("negative-step", lambda: __import__("unfold.steps", fromlist=["FixedStep"]).FixedStep(-1.0), StepSizeError,
     r"step size must be a finite positive number, got -1.0"),
    ("certified-safety", lambda: __import__("unfold.steps", fromlist=["CertifiedStep"]).CertifiedStep(safety=2.5),
     StepSizeError, r"safety must lie in \(0, 2\).*got 2.5"),
    ("step-not-a-number", lambda: __import__("unfold.steps", fromlist=["GradientStep"]).GradientStep(
        uf.Energy(uf.fro2(Y)), wrt="Y", step="big"), StepSizeError, r"step must be a positive number or a policy.*'big'"),
    ("step-above-bound", _step_above_bound, CheckFailedError, r"descent FAILS for Unrolled: first at layer 0.*increase"),
    # ---- symmetry / convexity assumptions
    ("nonsymmetric-weights", _symmetry_predicate, AssumptionError, r"A symmetric: max\|A − Aᵀ\| = 2"),
    ("concave-part-not-concave", _nonsymmetric_concave_part, AssumptionError, r"'concave' part .* is not concave in x"),
    # ---- layer norm eps and logdet domain
    ("layernorm-eps-zero", lambda: uf.layernorm(Y, 0), ShapeMismatchError, r"eps must be positive \(got 0\).*eps=1e-5"),
    ("layernorm-eps-unknown-sign", lambda: uf.layernorm(Y, c), ShapeMismatchError, r"eps must be positive \(got c\)"),
    ("layernorm-gain-matrix", lambda: uf.layernorm(Y, 1e-5, gain=W), ShapeMismatchError, r"gain must be a scalar"),
    ("logdet-not-pd", lambda: uf.Energy(uf.logdet(W) + uf.fro2(Y)).compile()(
        Y=_t(2, 4, 3), W=torch.diag(torch.tensor([1.0, 1.0, 1.0, -2.0], dtype=f64))),
     InputError, r"logdet needs a matrix with positive determinant.*det ≤ 0 for 1 matrix"),
    ("coding-rate-not-pd", lambda: uf.Energy(uf.logdet(uf.identity(d) + c * Y * Y.T)).compile()(
        Y=torch.eye(4, 3, dtype=f64)[None, :, :1].expand(1, 4, 3).contiguous() * torch.tensor([1.0, 0, 0], dtype=f64),
        c=-5.0), InputError, r"logdet needs a matrix with positive determinant"),
]


@pytest.mark.parametrize("thunk, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gets_a_specific_error(thunk: Callable[[], Any], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern) as info:
        thunk()
    assert isinstance(info.value, UnfoldError)
    assert "Traceback" not in str(info.value)


def test_corpus_size() -> None:
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_nan_without_checks_is_nan_not_a_number() -> None:
    """Off by default (hot path): NaN in gives NaN out — never a finite wrong number."""
    out = _call(Y=torch.full((2, 4, 3), math.nan, dtype=f64))
    assert torch.isnan(out).all()


def test_finite_checks_allow_finite_inputs_and_restore() -> None:
    with finite_checks():
        value = _call()
    assert torch.isfinite(value).all()
    assert torch.isnan(_call(Y=torch.full((2, 4, 3), math.nan, dtype=f64))).all()  # switched off again


def test_finite_checks_do_not_break_vmap() -> None:
    cm = uf.Energy(uf.fro2(Y)).compile()
    with finite_checks():
        out = torch.func.vmap(cm.energy_fn.fn)(torch.ones(5, 4, 3, dtype=f64))
    torch.testing.assert_close(out, torch.full((5,), 12.0, dtype=f64))
