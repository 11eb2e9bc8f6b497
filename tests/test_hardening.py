"""Regression tests for defects found by a new user's tasks and a differential fuzzer (issue 13):
each was silently wrong or crashed with a foreign traceback; each is now exact or refused by a
specific unfold error that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unfold as uf
from unfold.errors import ConstantError, StepSizeError
from unfold.steps import GradientStep

d, n = uf.dims("d n")
Y = uf.state("Y", d, n)
F64 = torch.float64


def _ones(*shape):
    return torch.ones(*shape, dtype=F64)


# ---- item 2: non-finite, huge and complex constants and steps -----------------------------------
@pytest.mark.parametrize("step", [float("inf"), float("nan"), -1.0, 0.0])
def test_gradient_step_refuses_a_non_finite_or_non_positive_step(step):
    with pytest.raises(StepSizeError, match="finite positive"):
        GradientStep(uf.Energy(uf.fro2(Y)), wrt="Y", step=step)


def test_infinite_constant_is_refused_when_the_energy_is_built():
    with pytest.raises(ConstantError, match="not finite"):
        uf.Energy(float("inf") * uf.fro2(Y))


@pytest.mark.parametrize("text, match", [
    ("1e308*10*fro2(Y)", "not finite"),
    ("(-8)**(1/3)*fro2(Y)", "complex"),
])
def test_parser_refuses_constants_that_are_not_finite_reals(text, match):
    with pytest.raises(ConstantError, match=match):
        uf.parse(text, "d n", ["Y:d,n"])


def test_integers_beyond_int64_are_computed_in_floating_point():
    # fro2(Y)/10**20 and 10**30·fro2(Y): gradients 2·10⁻²⁰·Y and 2·10³⁰·Y (torch has no int > 2⁶³)
    y = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    small = uf.Energy(uf.fro2(Y) / 10 ** 20).compile().grad("Y", Y=y)
    large = uf.Energy(10 ** 30 * uf.fro2(Y)).compile().grad("Y", Y=y)
    assert torch.allclose(small, 2e-20 * y, rtol=1e-15, atol=0)
    assert torch.allclose(large, 2e30 * y, rtol=1e-15, atol=0)


def test_gradient_step_with_a_huge_step_is_exact():
    y = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    out = GradientStep(uf.Energy(uf.fro2(Y)), wrt="Y", step=1e20)(y)
    assert torch.allclose(out, y - 1e20 * 2 * y, rtol=1e-15, atol=0)


# ---- item 3: per-sample scalars ------------------------------------------------------------------
s = uf.scalar("s")
E_S = uf.Energy(s * uf.fro2(Y))


def test_scalar_given_as_batch_of_1x1_matrices_is_refused_by_name():
    y = torch.randn(4, 2, 3, dtype=F64)
    with pytest.raises(uf.InputError, match=r"scalar 's' has shape \(4, 1, 1\).*\(4,\)"):
        E_S.compile()(Y=y, s=_ones(4, 1, 1))
    assert E_S.compile()(Y=y, s=_ones(4)).shape == (4,)  # the documented form


def test_scalar_batch_that_does_not_broadcast_is_refused_by_name():
    with pytest.raises(uf.InputError, match=r"scalar 's' has batch shape \(3,\).*\(4,\)"):
        E_S.compile()(Y=_ones(4, 2, 3), s=_ones(3))


def test_gradient_of_a_batched_scalar_with_unbatched_matrices():
    # E = Σ_b s_b ‖Y‖²: ∂E/∂s_b = ‖Y‖² for every b (autograd reference)
    y = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    sv = torch.arange(1.0, 5.0, dtype=F64)
    got = E_S.compile().grad("s", Y=y, s=sv)
    want = torch.func.grad(lambda t: (t * (y ** 2).sum()).sum())(sv)
    assert got.shape == (4,) and torch.allclose(got, want, rtol=1e-15, atol=0)


# ---- item 4: declared positivity is checked at call time -----------------------------------------
b = uf.scalar("b", positive=True)
E_B = uf.Energy(uf.sqrt(b ** 2) * uf.fro2(Y))  # sympy simplifies sqrt(b²) to b: true for b > 0 only


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan")])
def test_positive_scalar_given_a_non_positive_number_is_refused(value):
    with pytest.raises(uf.InputError, match="declared positive"):
        E_B.compile()(Y=_ones(2, 3), b=value)


def test_positive_scalar_given_a_tensor_with_a_negative_entry_is_refused():
    with pytest.raises(uf.InputError, match="declared positive.*1 entries"):
        E_B.compile()(Y=_ones(4, 2, 3), b=torch.tensor([1.0, 2.0, -1.0, 3.0], dtype=F64))


def test_positive_scalar_given_positive_values_is_exact():
    y = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(E_B.compile()(Y=y, b=2.0), 2 * (y ** 2).sum(), rtol=1e-15, atol=0)


# ---- items 5 and 6: the Att-SVM solvers ----------------------------------------------------------
def _svm_data():
    from unfold.attsvm.data import random_datasets

    data = random_datasets(4, n=6, T=8, d=10, seed=100)
    return data, [data[i].optimal_tokens()[0] for i in range(4)]


@pytest.mark.parametrize("norm", ["fro", "nuc"])
def test_att_svm_solution_does_not_depend_on_what_was_solved_before(norm):
    # one process solving checks in another order (unfold verify -j 1 vs -j 2) must write the same W
    from unfold.attsvm.svm import solve_att_svm

    data, sel = _svm_data()
    first = solve_att_svm(data[1], sel[1], norm).W
    for i in (0, 2, 3):
        solve_att_svm(data[i], sel[i], norm)
    assert np.array_equal(solve_att_svm(data[1], sel[1], norm).W, first)


def _slsqp_reporting_failure(monkeypatch, scale: float):
    """scipy's SLSQP, made to report a line-search failure at its answer times ``scale``."""
    import scipy.optimize

    real = scipy.optimize.minimize

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        res.x, res.success, res.status = res.x * scale, False, 8
        res.message = "Positive directional derivative for linesearch"
        return res

    monkeypatch.setattr(scipy.optimize, "minimize", failing)


def test_slsqp_line_search_failure_at_an_optimal_point_is_accepted(monkeypatch):
    from unfold.attsvm.svm import solve_att_svm, solve_att_svm_slsqp

    data, sel = _svm_data()
    _slsqp_reporting_failure(monkeypatch, 1.0)
    Ws = solve_att_svm_slsqp(data[0], sel[0])
    Wc = solve_att_svm(data[0], sel[0], "fro").W  # the conic solver, independently
    assert np.linalg.norm(Ws - Wc) / np.linalg.norm(Wc) < 1e-6


@pytest.mark.parametrize("scale", [1.01, 0.99])  # not optimal (too long) / infeasible (too short)
def test_slsqp_failure_away_from_the_optimum_is_still_refused(monkeypatch, scale):
    from unfold.attsvm.svm import solve_att_svm_slsqp

    data, sel = _svm_data()
    _slsqp_reporting_failure(monkeypatch, scale)
    with pytest.raises(uf.AssumptionError, match="SLSQP did not solve.*KKT residual"):
        solve_att_svm_slsqp(data[0], sel[0])


# ---- items 7 and 8: blind spots of check_gradient ------------------------------------------------
def _corrupt_gradient(monkeypatch, energy, corrupt):
    cm = energy.compile()
    real = type(cm).grad_fn.__get__(cm)
    monkeypatch.setattr(cm, "grad_fn", lambda v: (lambda *a: corrupt(real(v)(*a), a)))
    return cm


def test_check_gradient_is_scale_free_a_tiny_sign_flipped_gradient_fails(monkeypatch):
    E = uf.Energy(1e-12 * uf.fro2(Y))
    assert uf.check_gradient(E).passed  # the true gradient passes
    _corrupt_gradient(monkeypatch, E, lambda g, a: -g)
    res = uf.check_gradient(E, raise_on_failure=False)
    assert not res.passed and res.max_error > 1.0, res


def test_check_gradient_sees_an_error_that_appears_only_at_larger_sizes(monkeypatch):
    W = uf.param("W", d, d)
    E = uf.Energy(uf.fro2(Y - W @ Y) / 2)
    assert uf.check_gradient(E).passed
    # wrong only when a dimension exceeds 4 (leg 2 runs at sizes ≤ 3, the first leg-1 point at ≤ 4)
    _corrupt_gradient(monkeypatch, E, lambda g, a: g * (1.5 if max(a[0].shape[-2:]) > 4 else 1.0))
    res = uf.check_gradient(E, raise_on_failure=False)
    assert not res.passed and "larger sizes" in " ".join(v.worst for v in res.variables), res


def test_check_gradient_passes_an_energy_whose_gradient_vanishes_identically():
    # ‖LN(Y)‖² is constant in Y: both gradients are rounding noise, far below |E| / |Y|
    assert uf.check_gradient(uf.Energy(uf.fro2(uf.layernorm(Y, 1e-5)))).passed


# ---- items 9 to 14: clear errors instead of crashes ----------------------------------------------
def test_cccp_step_with_registered_params_and_buffers():
    from unfold.steps import CCCPStep

    X, xi, beta = uf.param("X", d, n), uf.state("xi", d, 1), uf.scalar("beta", positive=True)
    vex, cave = uf.Energy(uf.fro2(xi) / 2), uf.Energy(-uf.lse(beta * X.T * xi) / beta)
    g = torch.Generator().manual_seed(5)
    Xt, q = torch.randn(5, 7, generator=g, dtype=F64), torch.randn(3, 5, 1, generator=g, dtype=F64)
    step = CCCPStep(vex, cave, "xi", params={"X": Xt}, buffers={"beta": 2.0})
    want = Xt @ torch.softmax(2.0 * Xt.T @ q, dim=-2)  # one CCCP step on the Hopfield energy
    assert torch.allclose(step(q), want, rtol=0, atol=1e-14)


def test_energy_term_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(uf.UndeclaredSymbolError, match="invalid energy term name 'DAM relu\\^3'"):
        uf.Energy(uf.fro2(Y), name="DAM relu^3")


def test_passing_a_cancelled_state_says_the_energy_does_not_depend_on_it():
    S = uf.state("S", d, d)
    E = uf.Energy(uf.fro2(Y) + uf.trace(uf.inv(S) @ S))  # inv(S)·S = I: S cancels
    with pytest.raises(uf.InputError, match="unknown input 'S': the energy does not depend on it"):
        E.compile()(Y=_ones(2, 3), S=torch.eye(2, dtype=F64))


def test_soft_threshold_refuses_a_matrix_threshold():
    with pytest.raises(uf.ShapeMismatchError, match="threshold must be a scalar.*d×n"):
        uf.soft_threshold(Y, uf.param("W", d, n))


@pytest.mark.parametrize("batch", [(0,), (-1,), 3, (2.0,)])
def test_check_gradient_refuses_a_bad_batch(batch):
    with pytest.raises(uf.InputError, match="batch must be a tuple of positive ints"):
        uf.check_gradient(uf.Energy(uf.fro2(Y)), batch=batch)


def test_parse_refuses_dims_that_are_not_text_or_names():
    with pytest.raises(uf.ParseError, match="dims must be a string"):
        uf.parse("fro2(Y)", dims=123, states=["Y:d,n"])


def test_layernorm_with_a_scalar_parameter_eps_is_differentiated():
    # ∂/∂e Σ W∘LN(Y; e) against autograd and the explicit-size reference (both legs)
    W, e = uf.param("W", d, n), uf.scalar("e", positive=True)
    assert uf.check_gradient(uf.Energy(uf.sum_entries(uf.hadamard(W, uf.layernorm(Y, e))))).passed


@pytest.mark.parametrize("argv, words", [
    (["-j", "0"], "at least 1, got 0"),
    (["-j", "-3"], "at least 1, got -3"),
    (["--report", ""], "report directory is empty"),
    (["--report", "/proc/unfold_x"], "cannot write the report to '/proc/unfold_x'"),
    (["--seed", str(2 ** 70)], r"seed must lie in \[0, 2\*\*31\)"),
])
def test_verify_refuses_bad_options_before_running_any_check(argv, words, capsys):
    from unfold import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "hopfield", "--quick", *argv])
    assert exc.value.code == 2
    assert pytest.importorskip("re").search(words, capsys.readouterr().err)


def test_two_scalars_with_one_name_and_different_assumptions_are_told_apart():
    # was: "... two different things in one expression: a scalar and a scalar"
    with pytest.raises(uf.ShapeMismatchError, match="'beta'") as exc:
        uf.Energy(uf.scalar("beta") * uf.fro2(Y) + uf.scalar("beta", positive=True) * uf.fro2(Y))
    assert str(exc.value).count("a scalar") == 2 and str(exc.value).count("declared positive") == 1


@pytest.mark.parametrize("step", ["inf", "nan", "0", "-1", "abc"])
def test_derive_refuses_a_step_that_is_not_finite_and_positive(step, capsys):
    # was: `--step inf` printed the update rule `Y ← Y` (η = oo); now an argparse error, exit 2
    from unfold import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["derive", "fro2(Y)", "--dims", "d n", "--state", "Y:d,n", "--step", step])
    assert exc.value.code == 2 and "step size" in capsys.readouterr().err


def test_verify_report_under_a_file_is_refused(tmp_path, capsys):
    from unfold import cli

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit):
        cli.main(["verify", "hopfield", "--quick", "--report", str(f / "out")])
    assert "cannot write the report" in capsys.readouterr().err


def test_relu_cubed_is_a_smooth_gradient_step_equal_to_autograd():
    # Σ relu(WY)³ is C²: GradientStep accepts it; its step equals y − η ∇E with ∇E by autograd
    W = uf.param("W", d, d)
    E = uf.Energy(uf.fro2(Y) / 2 - uf.sum_entries(uf.hpow(uf.relu(W @ Y), 3)) / 3)
    g = torch.Generator().manual_seed(6)
    y, w = torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(3, 3, generator=g, dtype=F64)
    step = GradientStep(E, wrt="Y", step=0.1)
    ref = torch.func.grad(lambda t: (t ** 2).sum() / 2 - (torch.relu(w @ t) ** 3).sum() / 3)
    want = torch.stack([y[b] - 0.1 * ref(y[b]) for b in range(2)])
    assert torch.allclose(step(y, W=w), want, rtol=0, atol=1e-13)


def test_relu_power_gradient_has_no_step_and_equals_autograd_at_kinks():
    # relu(M)^∘2 ∘ step(M) = relu(M)^∘2 everywhere (both vanish where M ≤ 0): no step left in the
    # matrix-level gradient; its value equals autograd's, also where W·Y has exact zeros
    W = uf.param("W", d, d)
    grad = uf.Energy(uf.sum_entries(uf.hpow(uf.relu(W @ Y), 3)) / 3).grad("Y")
    assert "step" not in uf.to_str(grad) and "relu(W*Y)^∘2" in uf.to_str(grad)
    w = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, -1.0]], dtype=F64)
    y = torch.tensor([[1.0, 0.0, -1.0, 2.0], [1.0, 0.0, 1.0, -1.0], [0.5, 0.0, 3.0, 1.0]], dtype=F64)
    got = uf.Energy(uf.sum_entries(uf.hpow(uf.relu(W @ Y), 3)) / 3).compile().grad("Y", Y=y, W=w)
    ref = torch.func.grad(lambda t: (torch.relu(w @ t) ** 3).sum() / 3)(y)
    assert (w @ y == 0).any() and torch.allclose(got, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("scale", [1, -3])
def test_squared_relu_gradient_has_no_step_and_equals_autograd_at_kinks(scale):
    # k = 1: the cotangent of c‖relu(M)‖² is 2c·relu(M) (no entrywise power), and relu∘step = relu;
    # the gradient 2c·Wᵀrelu(WY) is continuous, so a gradient step accepts it
    W = uf.param("W", d, d)
    E = uf.Energy(scale * uf.fro2(uf.relu(W @ Y)) + uf.fro2(Y))
    shown = uf.to_str(E.grad("Y"))
    assert "step" not in shown and "relu(W*Y)" in shown
    w = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, -1.0]], dtype=F64)
    y = torch.tensor([[1.0, 0.0, -1.0, 2.0], [1.0, 0.0, 1.0, -1.0], [0.5, 0.0, 3.0, 1.0]], dtype=F64)
    got = E.compile().grad("Y", Y=y, W=w)
    ref = torch.func.grad(lambda t: scale * (torch.relu(w @ t) ** 2).sum() + (t ** 2).sum())(y)
    assert (w @ y == 0).any() and torch.allclose(got, ref, rtol=0, atol=1e-13)
    step = GradientStep(E, wrt="Y", step=0.01)
    assert torch.allclose(step(y, W=w), y - 0.01 * ref, rtol=0, atol=1e-13)


def test_relu_alone_is_still_refused_as_non_smooth():
    W = uf.param("W", d, d)
    with pytest.raises(uf.AssumptionError, match="not continuously differentiable"):
        GradientStep(uf.Energy(uf.fro2(Y) / 2 + uf.sum_entries(uf.relu(W @ Y))), wrt="Y", step=0.1)


# ---- also: FixedPoint's default tolerance follows the dtype; non-convergence warns ---------------
def _contraction():
    X = uf.param("X", d, n)
    return GradientStep(uf.Energy(uf.fro2(Y - X) / 2), wrt="Y", step=0.5)  # Y ← (Y + X)/2 → X


def test_fixed_point_default_tolerance_is_met_in_float32():
    from unfold.steps import FixedPoint

    fp = FixedPoint(_contraction())
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(7))
    out = fp(torch.zeros_like(x), X=x)
    assert fp.info.converged and fp.info.iterations < 100, fp.info
    # the fixed point is X; with contraction ½ the distance to it is at most the last change
    bound = 2 * fp.tol_for(torch.float32) * (1 + float(x.abs().max()))
    assert float((out - x).abs().max()) <= bound


def test_fixed_point_that_does_not_converge_warns():
    from unfold.steps import FixedPoint

    fp = FixedPoint(_contraction(), max_iter=3)
    x = torch.randn(2, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(8))
    with pytest.warns(RuntimeWarning, match="no convergence in 3 iterations"):
        fp(torch.zeros_like(x), X=x)
    assert not fp.info.converged


# ---- item 15: parser messages --------------------------------------------------------------------
def test_parser_reads_a_flat_sum_of_more_than_40_terms():
    E = uf.parse(" + ".join(["fro2(Y)"] * 60), "d n", ["Y:d,n"])
    y = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(E.compile()(Y=y), 60 * (y ** 2).sum(), rtol=1e-15, atol=0)


def test_parser_names_a_size_that_is_too_large():
    with pytest.raises(uf.ParseError, match="size 10000000 is too large"):
        uf.parse("fro2(Y)", "d n", ["Y:10000000,n"])
