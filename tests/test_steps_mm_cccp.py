"""CCCPStep, MMStep and the Alternating schedule."""

from __future__ import annotations

import pytest
import torch

import unfold as uf
from unfold.errors import AssumptionError, InputError, ShapeMismatchError
from unfold.steps import (
    Alternating, CCCPStep, GradientStep, MMStep, NonNegative, ProximalGradientStep, Unrolled,
)
from unfold.verify.descent import assert_descent, check_descent

DT = torch.float64


def _hopfield_parts():
    d, n = uf.dims("d n")
    X, xi, beta = uf.param("X", d, n), uf.state("xi", d, 1), uf.scalar("beta", positive=True)
    vex = uf.Energy(uf.fro2(xi) / 2, name="quadratic")
    cave = uf.Energy(-uf.lse(beta * X.T * xi) / beta, name="lse")
    return d, n, X, xi, beta, vex, cave


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 7, generator=g, dtype=DT), torch.randn(3, 5, 1, generator=g, dtype=DT)


def test_cccp_gives_the_hopfield_update():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    step = CCCPStep(vex, cave, "xi")
    assert step.update_rule() == X * uf.softmax(beta * X.T * xi)
    Xt, q = _data()
    assert torch.allclose(step(q, X=Xt, beta=2.0), Xt @ torch.softmax(2.0 * Xt.T @ q, dim=-2), atol=1e-14, rtol=0)
    res = assert_descent(Unrolled(step, 5), q, X=Xt, beta=2.0)
    assert bool((res.energies[-1] < res.energies[0]).all())
    assert step.check_splitting(q, X=Xt, beta=2.0).passed


def test_cccp_inner_solver_for_a_non_quadratic_convex_part():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    vex2 = uf.Energy(uf.fro2(xi) / 2 + uf.sum_entries(uf.exp(xi)) / 4, name="vex")
    step = CCCPStep(vex2, cave, "xi", inner_iters=200)
    Xt, q = _data()
    x1 = step(q, X=Xt, beta=2.0)
    # optimality of the surrogate: ∇vex(x⁺) = −∇cave(x), both sides written in plain torch
    lhs = x1 + torch.exp(x1) / 4
    rhs = Xt @ torch.softmax(2.0 * Xt.T @ q, dim=-2)
    assert torch.allclose(lhs, rhs, atol=1e-8)
    assert_descent(Unrolled(step, 3), q, X=Xt, beta=2.0)


def test_cccp_rejects_a_non_convex_convex_part():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    with pytest.raises(AssumptionError, match="not convex"):
        CCCPStep(cave, vex, "xi")
    with pytest.raises(AssumptionError, match="not convex"):
        CCCPStep(vex * -1, cave, "xi")


def _majorizer(xi, X, beta, extra=0):
    a = uf.param("a", xi.rows, 1)
    lin = uf.as_scalar((X * uf.softmax(beta * X.T * a)).T * (xi - a))   # tangent of the concave −lse
    return uf.Energy(uf.fro2(xi) / 2 - uf.lse(beta * X.T * a) / beta - lin + extra * uf.fro2(xi - a)), a


def test_mm_closed_form_and_majorizer_check():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    Q, a = _majorizer(xi, X, beta)
    step = MMStep(vex + cave, Q, "xi", "a")
    assert step.update_rule() == X * uf.softmax(beta * X.T * xi)
    Xt, q = _data(1)
    chk = step.check_majorizer(q, X=Xt, beta=2.0)
    assert chk.passed and chk.touch <= 1e-14 and chk.gap >= 0 and chk.decrease < 0
    assert torch.allclose(step(q, X=Xt, beta=2.0), Xt @ torch.softmax(2.0 * Xt.T @ q, dim=-2), atol=1e-14)
    assert_descent(Unrolled(step, 4), q, X=Xt, beta=2.0)


def test_mm_with_inner_step():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    Q, a = _majorizer(xi, X, beta, extra=1)   # a looser (still valid) majoriser, minimised by GD
    step = MMStep(vex + cave, Q, "xi", "a", inner=GradientStep(Q, "xi", step=0.25))
    Xt, q = _data(2)
    assert step.check_majorizer(q, X=Xt, beta=2.0).passed
    assert_descent(Unrolled(step, 4), q, X=Xt, beta=2.0)


def test_mm_rejects_a_non_majorizer():
    d, n, X, xi, beta, vex, cave = _hopfield_parts()
    bad, a = _majorizer(xi, X, beta, extra=-1)          # subtracting ‖ξ − a‖² breaks Q ≥ E
    with pytest.raises(AssumptionError, match="not a valid majoriser"):
        MMStep(vex + cave, bad, "xi", "a", inner=GradientStep(bad, "xi", step=0.1, check=False))
    with pytest.raises(AssumptionError, match="closed-form"):
        MMStep(vex + cave, _majorizer(xi, X, beta)[0] + uf.Energy(uf.sum_entries(uf.exp(xi))), "xi", "a")
    b = uf.param("b", d, n)
    with pytest.raises(ShapeMismatchError):
        MMStep(vex + cave, uf.Energy(uf.fro2(xi) + uf.fro2(b)), "xi", "b")


def test_alternating_schedules():
    # same variable, two energies: a gradient step on E1, then a ReLU-prox step on E2 + ι{Y ≥ 0}
    d, n = uf.dims("d n")
    Y, W, B = uf.state("Y", d, n), uf.param("W", d, d), uf.param("B", d, n)
    E1 = uf.Energy(uf.fro2(Y - W * Y) / 2, name="E1")
    E2 = uf.Energy(uf.fro2(Y - B) / 2, name="E2")
    sched = Alternating([GradientStep(E1, "Y", step=0.5), ProximalGradientStep(E2, NonNegative(), "Y", step=0.5)])
    g = torch.Generator().manual_seed(0)
    Wt, Bt = 0.3 * torch.randn(4, 4, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    y0 = torch.rand(2, 4, 3, generator=g, dtype=DT)
    y1 = sched(y0, W=Wt, B=Bt)
    A = torch.eye(4, dtype=DT) - Wt
    mid = y0 - 0.5 * A.T @ (A @ y0)
    assert torch.allclose(y1, torch.relu(mid - 0.5 * (mid - Bt)), atol=1e-14)
    assert set(sched.energy_terms(y0, W=Wt, B=Bt)) == {"E1", "E2", "nonneg"}
    e_ref = 0.5 * ((A @ y1) ** 2).sum(dim=(-2, -1)) + 0.5 * ((y1 - Bt) ** 2).sum(dim=(-2, -1))
    assert torch.allclose(sched.energy(y1, W=Wt, B=Bt), e_ref, atol=1e-13)
    # each step descends only its own term, so the sum need not decrease: the check sees it
    res = check_descent(Unrolled(sched, 4), y0, W=Wt, B=Bt)
    assert not res.passed and res.first_violation.increase > 1e-3
    # two variables (block-coordinate): x and z of ½‖x − Az‖² + ½‖x − b‖² + ½‖z‖²
    k = uf.dim("k")
    x, z, Am, b = uf.state("x", d, 1), uf.state("z", k, 1), uf.param("A", d, k), uf.param("b", d, 1)
    E = uf.Energy(uf.fro2(x - Am * z) / 2 + uf.fro2(x - b) / 2 + uf.fro2(z) / 2)
    bc = Alternating([GradientStep(E, "x", step=0.5), GradientStep(E, "z", step=0.2)])
    At, bt = 0.3 * torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 1, generator=g, dtype=DT)
    s0 = {"x": torch.randn(4, 1, dtype=DT), "z": torch.randn(3, 1, dtype=DT)}
    s1 = bc(s0, A=At, b=bt)
    x1 = s0["x"] - 0.5 * ((s0["x"] - At @ s0["z"]) + (s0["x"] - bt))
    assert torch.allclose(s1["x"], x1, atol=1e-14)
    assert torch.allclose(s1["z"], s0["z"] - 0.2 * (At.T @ (At @ s0["z"] - x1) + s0["z"]), atol=1e-14)
    res = assert_descent(Unrolled(bc, 6), s0, A=At, b=bt)
    assert float(res.energies[-1]) < float(res.energies[0])
    with pytest.raises(InputError):
        bc(s0["x"], A=At, b=bt)
