"""The prox table and ProximalGradientStep."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import sympy as sp
import torch

import unfold as uf
from unfold.energies import builtin_energy
from unfold.errors import AssumptionError, InputError
from unfold.steps import (
    ArmijoStep, Box, CertifiedStep, L1, NonNegL1, NonNegative, ProximalGradientStep, Sphere, Unrolled,
)
from unfold.steps.base import compile_update
from unfold.symbolic.primitives.soft_threshold import SoftThreshold
from unfold.verify.descent import assert_descent

DT = torch.float64
PROXES = [L1(0.3), NonNegative(), NonNegL1(0.2), Box(-0.4, 0.5), Sphere(0), Sphere(1)]


def _v(seed=0, shape=(3, 5, 4)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


@pytest.mark.parametrize("prox", PROXES, ids=repr)
def test_optimality_condition_and_generated_form(prox):
    v = _v()
    for t in (0.05, 0.7, torch.tensor([0.2, 1.0, 3.0], dtype=DT)):
        res = prox.optimality_residual(v, t)
        assert res.shape == (3,)
        assert float(res.max()) <= 1e-12, res
        p = prox.apply(v, t)
        assert torch.isfinite(p).all() and bool((prox.value(p) < float("inf")).all())
    # the symbolic form compiles to the same map
    r, c = uf.dims("r c")
    V, tau = uf.state("V", r, c), uf.scalar("tau", positive=True)
    fn = compile_update("prox", (V, tau), prox.symbolic(V, tau))
    assert torch.allclose(fn(v, 0.7), prox.apply(v, 0.7), atol=1e-15, rtol=0)


def test_optimality_residual_detects_a_wrong_map():
    v, prox = _v(), L1(0.3)
    hard = torch.where(v.abs() > 0.3, v, torch.zeros_like(v))   # hard threshold: not the l1 prox
    w = v - hard
    assert float(prox._residual(hard, w).max()) > 0.1
    assert float(NonNegative().optimality_residual(v, 1.0).max()) <= 1e-15
    assert float(NonNegative()._residual(v, torch.zeros_like(v)).max()) == float("inf")  # infeasible


@pytest.mark.parametrize("prox", [L1(0.3), NonNegative(), NonNegL1(0.2), Box(-0.4, 0.5)], ids=repr)
def test_prox_matches_cvxpy(prox):
    v, t = _v(1, (4, 3)), 0.6
    P = cp.Variable((4, 3))
    vn = v.numpy()
    g = {L1: lambda: 0.3 * cp.sum(cp.abs(P)), NonNegL1: lambda: 0.2 * cp.sum(P)}.get(type(prox), lambda: 0)()
    cons = {NonNegative: [P >= 0], NonNegL1: [P >= 0], Box: [P >= -0.4, P <= 0.5]}.get(type(prox), [])
    cp.Problem(cp.Minimize(g + cp.sum_squares(P - vn) / (2 * t)), cons).solve(solver=cp.CLARABEL)
    assert np.abs(P.value - prox.apply(v, t).numpy()).max() < 1e-6


def _lasso():
    d, k, n = uf.dims("d k n")
    A, x, Z = uf.param("A", d, k), uf.param("x", d, n), uf.state("Z", k, n)
    return uf.Energy(uf.fro2(x - A * Z) / 2, name="fit"), A, x, Z


def test_ista_step_is_soft_threshold_of_gradient_step():
    f, A, x, Z = _lasso()
    step = ProximalGradientStep(f, L1(0.25), "Z", step=0.125)
    eta = sp.Rational(1, 8)
    assert step.update_rule() == SoftThreshold(Z - eta * f.grad(Z), eta * sp.Float(0.25))
    assert isinstance(step.update_rule(), SoftThreshold)
    g = torch.Generator().manual_seed(3)
    At, xt = torch.randn(6, 4, generator=g, dtype=DT), torch.randn(6, 2, generator=g, dtype=DT)
    z = torch.randn(2, 4, 2, generator=g, dtype=DT)
    v = z - 0.125 * At.T @ (At @ z - xt)                      # ISTA (Daubechies et al.), plain torch
    ref = torch.sign(v) * torch.clamp(v.abs() - 0.125 * 0.25, min=0)
    assert torch.allclose(step(z, A=At, x=xt), ref, atol=1e-14, rtol=0)
    # energy = smooth + l1 term
    e = step.energy(z, A=At, x=xt)
    e_ref = 0.5 * ((xt - At @ z) ** 2).sum(dim=(-2, -1)) + 0.25 * z.abs().sum(dim=(-2, -1))
    assert torch.allclose(e, e_ref, atol=1e-13)
    assert set(step.energy_terms(z, A=At, x=xt)) == {"fit", "l1"}


@pytest.mark.parametrize("prox", [L1(0.3), NonNegative(), NonNegL1(0.2), Box(-0.2, 0.5), Sphere(0)], ids=repr)
def test_proximal_descent(prox):
    f, *_ = _lasso()
    g = torch.Generator().manual_seed(0)
    At, xt = torch.randn(5, 4, generator=g, dtype=DT), torch.randn(5, 3, generator=g, dtype=DT)
    z0 = prox.apply(torch.randn(2, 4, 3, generator=g, dtype=DT), 1.0)
    for pol in (CertifiedStep(iters=10), ArmijoStep()):
        res = assert_descent(Unrolled(ProximalGradientStep(f, prox, "Z", step=pol), depth=5), z0, A=At, x=xt)
        assert bool((res.energies[-1] < res.energies[0] - 1e-3).all())


def test_proximal_errors():
    f, *_ = _lasso()
    with pytest.raises(InputError, match="proximal map"):
        ProximalGradientStep(f, "l1", "Z")
    with pytest.raises(AssumptionError):
        ProximalGradientStep(builtin_energy("lasso"), L1(0.1), "z")   # its "smooth" part has l1
    with pytest.raises(InputError):
        L1(-1.0)
    with pytest.raises(InputError):
        Box(1.0, 0.0)
