"""Generated layers on every available device (cpu always, cuda where present), and their
derivatives against finite differences (``torch.autograd.gradcheck``, float64): a learnable step
size, a learned parameter, and the implicit backward of ``FixedPoint``."""

from __future__ import annotations

import torch

from unfold.catalogue import hopfield
from unfold.energies import BUILTIN_ENERGIES
from unfold.steps import FixedPoint, GradientStep, LearnableStep, Unrolled

DT = torch.float64


def _patterns(device: torch.device, d: int = 5, N: int = 7, S: int = 2):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(d, N, generator=g, dtype=DT).to(device)
    Xi = torch.randn(3, d, S, generator=g, dtype=DT).to(device)
    return X, Xi


def test_cccp_step_on_device_equals_the_formula(device):
    """One Hopfield CCCP step on ``device`` equals ``X softmax(βXᵀΞ)`` computed on the same device."""
    X, Xi = _patterns(device)
    out = hopfield.cccp_step()(Xi, X=X, beta=2.0, M=float(X.norm(dim=0).max()))
    assert out.device.type == device.type
    want = X @ torch.softmax(2.0 * X.mT @ Xi, dim=-2)
    assert float((out - want).abs().max()) <= 1e-12


def test_learnable_step_size_gradcheck(device):
    """∂/∂η and ∂/∂(state) of three unrolled gradient steps with a learnable η, by finite differences."""
    E = BUILTIN_ENERGIES["hopfield"]()
    model = Unrolled(GradientStep(E, "xi", step=LearnableStep(0.3, dtype=DT)), depth=3).to(device)
    X, xi = _patterns(device, S=1)
    eta = model.layer(0).policy.eta

    def f(eta_value: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            eta.copy_(eta_value.detach())
        return model(x0, X=X, beta=1.5)

    x0 = xi.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model(x, X=X, beta=1.5), (x0,))
    # η itself: the generated layer's gradient in η against a central difference
    y = model(xi, X=X, beta=1.5).sum()
    (g_eta,) = torch.autograd.grad(y, eta)
    h = 1e-6
    with torch.no_grad():
        e0 = float(eta)
        up = float(f(torch.tensor(e0 + h, dtype=DT), xi).sum())
        down = float(f(torch.tensor(e0 - h, dtype=DT), xi).sum())
        eta.fill_(e0)
    assert abs(float(g_eta) - (up - down) / (2 * h)) <= 1e-6 * max(1.0, abs(float(g_eta)))


def test_learned_parameter_gradcheck(device):
    """∂/∂X (the stored patterns, a learned parameter) through two unrolled CCCP steps."""
    X, Xi = _patterns(device)
    model = Unrolled(hopfield.cccp_step(), depth=2)
    Xp = X.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda P: model(Xi, X=P, beta=0.8, M=3.0), (Xp,))


def test_fixed_point_implicit_backward_gradcheck(device):
    """The implicit backward of FixedPoint (adjoint fixed point) against finite differences of the
    solved fixed point, in the input patterns and the start."""
    X, Xi = _patterns(device)
    X = 0.5 * X                                   # small β‖X‖²: the CCCP map is a contraction
    fp = FixedPoint(hopfield.cccp_step(), tol=1e-14, max_iter=2000, strict=True)
    Xp = X.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda P: fp(Xi, X=P, beta=0.5, M=3.0), (Xp,), atol=1e-6)
