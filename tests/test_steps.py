"""GradientStep, step-size policies, Unrolled and the descent check."""

from __future__ import annotations

import pytest
import torch

import unfold as uf
from unfold.energies import builtin_energy
from unfold.errors import (
    AssumptionError, CheckFailedError, DimMismatchError, InputError, StepSizeError,
    UndeclaredSymbolError,
)
from unfold.steps import ArmijoStep, CertifiedStep, GradientStep, LearnableStep, Unrolled
from unfold.verify.descent import assert_descent, check_descent
from unfold.sampling import random_inputs

DT = torch.float64


def _point(E, seed=1, batch=(2,)):
    inp = random_inputs(E, {d: 3 + i for i, d in enumerate(E.dims)}, batch=batch, seed=seed)
    return inp.pop(str(E.states[0])), inp


# ---- Hopfield: generated step == the paper's update written in plain torch ----------------------
def test_hopfield_step_is_softmax_retrieval(monkeypatch):
    E = builtin_energy("hopfield")
    step = GradientStep(E, "xi", step=1.0)
    d, n = E.dims
    X, xi, beta = E.symbol("X"), E.symbol("xi"), E.symbol("beta")
    assert step.update_rule() == X * uf.softmax(beta * X.T * xi)
    # the column-wise softmax times X is fused: one scaled_dot_product_attention call, no n × m scores
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    g = torch.Generator().manual_seed(0)
    Xt = torch.randn(6, 5, generator=g, dtype=DT)
    q = torch.randn(4, 6, 1, generator=g, dtype=DT)
    ref = Xt @ torch.softmax(1.7 * (Xt.T @ q), dim=-2)     # Ramsauer et al., eq. (3)
    out = step(q, X=Xt, beta=1.7)
    assert len(calls) == 1
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=0, atol=1e-14)


def test_symbolic_step_and_preconditioner():
    d, n = uf.dims("d n")
    Y, W = uf.state("Y", d, n), uf.param("W", d, d)
    E = uf.Energy(uf.fro2(Y - W * Y) / 2)
    s = GradientStep(E, "Y", step=LearnableStep(0.1))
    assert any(str(a) == "eta" for a in s.update_rule().free_symbols)
    Q = torch.diag(torch.tensor([0.5, 1.0, 2.0], dtype=DT))
    sp_ = GradientStep(E, "Y", step=0.3, right=Q)
    Wt = 0.3 * torch.randn(4, 4, dtype=DT)
    y = torch.randn(2, 4, 3, dtype=DT)
    grad = (torch.eye(4, dtype=DT) - Wt).T @ ((torch.eye(4, dtype=DT) - Wt) @ y)   # written by hand
    assert torch.allclose(sp_(y, W=Wt), y - 0.3 * grad @ Q, atol=1e-14, rtol=0)
    assert torch.allclose(GradientStep(E, "Y", step=0.3)(y, W=Wt), y - 0.3 * grad, atol=1e-14, rtol=0)


# ---- descent on many energies, convex and not, with certified and Armijo steps -------------------
ENERGIES = [  # (name, convex in the state?)
    ("hopfield", False), ("hopfield_tokens", False), ("coding_rate", False),
    ("quadratic_residual", True), ("relu_hopfield", False), ("tanh_energy", False),
    ("trace_inverse", False), ("least_squares_icl", True), ("yhw_ffn", True),
    ("logdet_minus_trace", False), ("log_trace", False), ("et_attention", False),
]


@pytest.mark.parametrize("name", [n for n, _ in ENERGIES])
def test_descent_certified_and_armijo(name):
    E = builtin_energy(name)
    x0, inp = _point(E)
    for policy in (CertifiedStep(iters=10), ArmijoStep()):
        model = Unrolled(GradientStep(E, E.states[0], step=policy), depth=4)
        res = assert_descent(model, x0, **inp)
        assert res.energies.shape == (5, 2)
        # the energy really went down (a step that returned its input would pass vacuously)
        assert bool((res.energies[-1] < res.energies[0] - 1e-6).all()), res.energies


def test_too_large_fixed_step_is_caught():
    E = builtin_energy("quadratic_residual")
    x0, inp = _point(E)
    H_norm = torch.linalg.matrix_norm(torch.eye(3, dtype=DT) - inp["W"], ord=2) ** 2  # L of ∇E
    bad = Unrolled(GradientStep(E, "Y", step=float(2.5 / H_norm)), depth=5)
    res = check_descent(bad, x0, **inp)
    assert not res.passed
    # the first increase, found independently from plain-torch energies of the iterates
    A = torch.eye(3, dtype=DT) - inp["W"]
    y, energies = x0, []
    for _ in range(6):
        energies.append(0.5 * ((A @ y) ** 2).sum(dim=(-2, -1)))
        y = y - float(2.5 / H_norm) * A.T @ (A @ y)
    ups = [k for k in range(5) if bool((energies[k + 1] > energies[k]).any())]
    f = res.first_violation
    assert f is not None and f.layer == ups[0] and f.increase > 0
    assert abs(f.after - f.before - f.increase) < 1e-12
    with pytest.raises(CheckFailedError, match=f"layer {ups[0]}"):
        assert_descent(bad, x0, **inp)
    good = Unrolled(GradientStep(E, "Y", step=float(1.9 / H_norm)), depth=5)
    assert check_descent(good, x0, **inp).passed


def test_untied_layers_and_trajectory():
    E = builtin_energy("hopfield")
    x0, inp = _point(E)
    model = Unrolled(GradientStep(E, "xi", step=LearnableStep(0.5)), depth=3, tied=False)
    assert len(list(model.parameters())) == 3
    with torch.no_grad():
        model.layers[1].policy.eta.fill_(0.25)
    x, traj = model(x0, return_trajectory=True, **inp)
    assert len(traj.states) == 4 and traj.energies.shape == (4, 2)
    assert set(traj.terms) == {"lse", "quadratic"}
    assert torch.allclose(traj.terms["lse"] + traj.terms["quadratic"], traj.energies, atol=1e-13)
    # layer 1 used its own step size: recompute it by hand from the state before it
    X, b = inp["X"], inp["beta"]
    x1 = traj.states[1]
    expect = x1 - 0.25 * (x1 - X @ torch.softmax(b * X.T @ x1, dim=-2))
    assert torch.allclose(traj.states[2], expect, atol=1e-14)
    assert check_descent(model, x0, **inp).passed


# ---- bad input -----------------------------------------------------------------------------------
def test_errors():
    E = builtin_energy("hopfield")
    with pytest.raises(AssumptionError, match="l1"):
        GradientStep(builtin_energy("lasso"), "z")
    with pytest.raises(UndeclaredSymbolError):
        GradientStep(E, "X")            # a parameter, not a state
    with pytest.raises(UndeclaredSymbolError):
        GradientStep(E, "nope")
    with pytest.raises(StepSizeError):
        GradientStep(E, "xi", step=-1.0)
    with pytest.raises(StepSizeError):
        CertifiedStep(safety=2.5)
    s = GradientStep(E, "xi")
    X = torch.randn(5, 7, dtype=DT)
    with pytest.raises(DimMismatchError, match="'d'"):
        s(torch.randn(4, 1, dtype=DT), X=X, beta=1.0)
    with pytest.raises(InputError):
        s(torch.randn(5, dtype=DT), X=X, beta=1.0)
    with pytest.raises(InputError, match="missing"):
        s(torch.randn(5, 1, dtype=DT), beta=1.0)
    with pytest.raises(InputError, match="unknown"):
        s(torch.randn(5, 1, dtype=DT), X=X, beta=1.0, gamma=2.0)
    with pytest.raises(InputError):
        Unrolled(s, depth=0)


def test_symbolic_preconditioner():
    # a per-column step 1/(1 + ‖y_j‖²) written as a diagonal matrix expression of the state
    d, n = uf.dims("d n")
    Y, B = uf.state("Y", d, n), uf.param("B", d, n)
    E = uf.Energy(uf.fro2(Y - B) / 2)
    col = uf.ones(1, d) * uf.hadamard(Y, Y)                       # 1×n row of squared column norms
    Dinv = uf.hadamard(uf.identity(n), uf.hpow(uf.ones(n, 1) * (col + uf.ones(1, n)), -1))
    s = GradientStep(E, "Y", step=1.0, right=Dinv)
    g = torch.Generator().manual_seed(0)
    y, b = torch.randn(2, 3, 4, generator=g, dtype=DT), torch.randn(3, 4, generator=g, dtype=DT)
    scale = 1 / (1 + (y ** 2).sum(dim=-2, keepdim=True))
    assert torch.allclose(s(y, B=b), y - (y - b) * scale, atol=1e-14, rtol=0)
    with pytest.raises(UndeclaredSymbolError):
        GradientStep(E, "Y", right=uf.param("C", n, n) * Dinv)


def test_module_apply_reaches_every_step_policy():
    """``nn.Module.apply(fn)`` recurses into the step-size policy (a submodule): no policy may shadow
    ``apply`` (NormalizedGradient's update is ``apply_update``)."""
    from unfold.steps import NormalizedGradient

    E = builtin_energy("hopfield")
    seen = []
    for policy in (NormalizedGradient(0.1), LearnableStep(0.1)):
        Unrolled(GradientStep(E, "xi", step=policy), depth=2).apply(lambda m: seen.append(type(m).__name__))
    assert seen.count("NormalizedGradient") == 1 and seen.count("LearnableStep") == 1
