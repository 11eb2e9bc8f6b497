"""check_stationarity and check_equivalence (check_descent is exercised in test_steps*.py)."""

from __future__ import annotations

import pytest
import torch

import unfold as uf
from unfold.energies import builtin_energy
from unfold.errors import CheckFailedError, InputError
from unfold.steps import FixedPoint, GradientStep, L1, ProximalGradientStep
from unfold.verify import (
    assert_equivalence, assert_stationarity, check_equivalence, check_stationarity,
)
from unfold.verify.stationarity import lanczos_extremes

DT = torch.float64


def test_lanczos_finds_the_extreme_eigenvalues():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(7, 7, generator=g, dtype=DT)
    H = M + M.T
    lo, hi = lanczos_extremes(lambda v: H @ v, 7, DT)
    ev = torch.linalg.eigvalsh(H)
    assert abs(lo - float(ev[0])) < 1e-10 and abs(hi - float(ev[-1])) < 1e-10


def test_stationarity_at_a_fixed_point_of_the_hopfield_step():
    E = builtin_energy("hopfield")
    g = torch.Generator().manual_seed(1)
    X = 0.5 * torch.randn(4, 5, generator=g, dtype=DT)
    q = torch.randn(2, 4, 1, generator=g, dtype=DT)
    fp = FixedPoint(GradientStep(E, "xi", step=0.5), tol=1e-15, max_iter=2000)
    x = fp(q, X=X, beta=0.5)
    res = assert_stationarity(fp, x, X=X, beta=0.5)
    assert res.grad_norm <= 1e-12 and res.min_eigenvalue > 0 and res.distance <= 1e-7
    # Hessian of the Hopfield energy written by hand: I − β X (diag p − p pᵀ) Xᵀ
    ev = []
    for b in range(2):
        p = torch.softmax(0.5 * X.T @ x[b].detach(), dim=0)[:, 0]
        Hm = torch.eye(4, dtype=DT) - 0.5 * X @ (torch.diag(p) - torch.outer(p, p)) @ X.T
        ev.append(torch.linalg.eigvalsh(Hm))
    assert abs(res.min_eigenvalue - min(float(e[0]) for e in ev)) < 1e-10
    assert abs(res.max_eigenvalue - max(float(e[-1]) for e in ev)) < 1e-10
    # a point that is not stationary, and a saddle, are reported as such
    res2 = check_stationarity(E, q, X=X, beta=0.5, minimizer=False)
    assert not res2.passed and res2.grad_norm > 1e-3
    d = uf.dim("d")
    y = uf.state("y", d, 1)
    A = uf.param("A", d, d)
    saddle = uf.Energy(uf.as_scalar(y.T * A * y) / 2)
    Ad = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=DT))
    res3 = check_stationarity(saddle, torch.zeros(3, 1, dtype=DT), A=Ad, minimizer=False)
    assert res3.grad_norm == 0 and abs(res3.min_eigenvalue + 2.0) < 1e-12 and not res3.passed
    with pytest.raises(CheckFailedError, match="NOT"):
        assert_stationarity(saddle, torch.zeros(3, 1, dtype=DT), A=Ad, minimizer=False)


def test_stationarity_of_ista_limit_uses_the_gradient_mapping():
    d, k, n = uf.dims("d k n")
    A, x, Z = uf.param("A", d, k), uf.param("x", d, n), uf.state("Z", k, n)
    f = uf.Energy(uf.fro2(x - A * Z) / 2)
    g = torch.Generator().manual_seed(2)
    At, xt = torch.randn(6, 4, generator=g, dtype=DT), torch.randn(6, 2, generator=g, dtype=DT)
    eta = float(0.9 / torch.linalg.matrix_norm(At, ord=2) ** 2)
    step = ProximalGradientStep(f, L1(0.1), "Z", step=eta)
    z = FixedPoint(step, tol=1e-15, max_iter=5000)(torch.zeros(4, 2, dtype=DT), A=At, x=xt)
    res = assert_stationarity(step, z, eta=eta, A=At, x=xt)
    assert res.kind == "gradient mapping" and res.distance is None
    # independent: the LASSO optimality condition written by hand
    grad = At.T @ (At @ z - xt)
    assert float(torch.where(z != 0, (grad + 0.1 * torch.sign(z)).abs(), torch.clamp(grad.abs() - 0.1, min=0)).max()) < 1e-9


def test_equivalence():
    E = builtin_energy("hopfield")
    step = GradientStep(E, "xi", step=1.0)
    g = torch.Generator().manual_seed(3)
    inputs = {"xi": torch.randn(3, 4, 1, generator=g, dtype=DT), "X": torch.randn(4, 6, generator=g, dtype=DT),
              "beta": 1.3}

    def reference(xi, X, beta):          # Ramsauer et al. retrieval, plain torch
        return X @ torch.softmax(beta * X.T @ xi, dim=-2)

    res = assert_equivalence(step, reference, inputs)
    assert res.max_abs_error <= 1e-14 and res.max_rel_error <= 1e-14
    wrong = check_equivalence(step, lambda xi, X, beta: reference(xi, X, 1.01 * beta), inputs)
    assert not wrong.passed and wrong.max_abs_error > 1e-4
    with pytest.raises(CheckFailedError, match="NOT equivalent"):
        assert_equivalence(step, lambda xi, X, beta: reference(xi, X, beta)[0], inputs)   # shape differs
    with pytest.raises(InputError):
        check_equivalence(step, lambda **kw: "text", inputs)
