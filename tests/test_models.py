"""FixedPoint (implicit differentiation) and nn.Module conventions of steps and models."""

from __future__ import annotations

import pytest
import torch

import unfold as uf
from unfold.energies import builtin_energy
from unfold.steps import (
    CertifiedStep, FixedPoint, GradientStep, L1, LearnableStep, ProximalGradientStep, Unrolled,
)

DT = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _hopfield():
    g = _gen(0)
    X = 0.5 * torch.randn(4, 5, generator=g, dtype=DT)
    return GradientStep(builtin_energy("hopfield"), "xi", step=0.5), {"X": X}, {"beta": 0.5}, \
        torch.randn(3, 4, 1, generator=g, dtype=DT)


def _tanh():
    g = _gen(1)
    W = 0.3 * torch.randn(4, 4, generator=g, dtype=DT)
    return GradientStep(builtin_energy("tanh_energy"), "Y", step=0.5), {"W": W}, {}, \
        torch.randn(2, 4, 3, generator=g, dtype=DT)


def _lasso():
    d, k, n = uf.dims("d k n")
    A, x, Z = uf.param("A", d, k), uf.param("x", d, n), uf.state("Z", k, n)
    f = uf.Energy(uf.fro2(x - A * Z) / 2)
    g = _gen(2)
    At = torch.randn(6, 4, generator=g, dtype=DT)
    eta = float(0.9 / torch.linalg.matrix_norm(At, ord=2) ** 2)
    return ProximalGradientStep(f, L1(0.1), "Z", step=eta), {"A": At, "x": torch.randn(6, 2, generator=g, dtype=DT)}, \
        {}, torch.randn(2, 4, 2, generator=g, dtype=DT)


@pytest.mark.parametrize("make", [_hopfield, _tanh, _lasso], ids=["hopfield", "tanh", "lasso"])
def test_implicit_gradient_matches_unrolled_and_finite_differences(make):
    step, params, scalars, x0 = make()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    w = torch.randn(x0.shape, generator=_gen(9), dtype=DT)
    fp = FixedPoint(step, tol=1e-14, max_iter=3000, strict=True)
    z = fp(x0, **params, **scalars)
    assert fp.info.converged
    implicit = torch.autograd.grad((w * z).sum(), list(params.values()))
    assert fp.info.adjoint_residual <= 1e-13
    # plain backprop through 500 unrolled steps
    zu = Unrolled(step, depth=500)(x0, **params, **scalars)
    unrolled = torch.autograd.grad((w * zu).sum(), list(params.values()))
    for a, b in zip(implicit, unrolled):
        assert float((a - b).abs().max()) <= 1e-6 * max(1.0, float(b.abs().max()))
    # central finite differences of L(θ) = ⟨w, x*(θ)⟩ along a random direction of every parameter
    h = 1e-5
    dirs = {k: torch.randn(v.shape, generator=_gen(11), dtype=DT) for k, v in params.items()}
    with torch.no_grad():
        def loss(sign):
            p = {k: v + sign * h * dirs[k] for k, v in params.items()}
            return float((w * fp(x0, **p, **scalars)).sum())
        fd = (loss(1) - loss(-1)) / (2 * h)
    directional = sum(float((g * dirs[k]).sum()) for g, k in zip(implicit, params))
    assert abs(fd - directional) <= 1e-6 * max(1.0, abs(fd))


def _saved_bytes(fn):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_fixed_point_memory_does_not_grow_with_iterations():
    _, params, scalars, x0 = _hopfield()
    step = GradientStep(builtin_energy("hopfield"), "xi", step=0.01)   # slow: never converges exactly
    X = params["X"].clone().requires_grad_()
    saved = []
    for iters in (10, 1000):
        fp = FixedPoint(step, tol=0.0, max_iter=iters)       # tol 0: always runs max_iter steps
        saved.append(_saved_bytes(lambda: fp(x0, X=X, **scalars)))
        assert fp.info.iterations == iters
    unrolled = [_saved_bytes(lambda: Unrolled(step, depth=d)(x0, X=X, **scalars)) for d in (10, 100)]
    assert saved[0] == saved[1] > 0
    assert unrolled[1] > 5 * unrolled[0]


# ---- nn.Module conventions ----------------------------------------------------------------------
def test_parameters_state_dict_and_dtype():
    E = builtin_energy("hopfield")
    g = _gen(3)
    X = torch.randn(4, 5, generator=g, dtype=DT)
    q = torch.randn(3, 4, 1, generator=g, dtype=DT)
    a = GradientStep(E, "xi", step=LearnableStep(0.3), params={"X": X}, buffers={"beta": 1.5})
    names = dict(a.named_parameters())
    assert set(names) == {"X", "policy.eta"} and names["X"].requires_grad
    assert set(dict(a.named_buffers())) == {"beta"}
    b = GradientStep(E, "xi", step=LearnableStep(0.1), params={"X": torch.zeros(4, 5, dtype=DT)}, buffers={"beta": 0.7})
    assert not torch.allclose(a(q), b(q))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(q), b(q))
    ref = q - 0.3 * (q - X @ torch.softmax(1.5 * X.T @ q, dim=-2))
    assert torch.allclose(a(q), ref, atol=1e-14)
    # training moves the learnable step and the weights
    loss = (a(q) ** 2).sum()
    loss.backward()
    assert a.policy.eta.grad is not None and a.X.grad is not None
    # float32
    a32 = a.to(torch.float32)
    assert a32.X.dtype == torch.float32 and a32.beta.dtype == torch.float32
    out32 = a32(q.float())
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), ref, atol=1e-5)


def test_vmap_over_a_batch():
    step, params, scalars, x0 = _tanh()
    model = Unrolled(step, depth=3)
    batched = model(x0, **params)
    mapped = torch.func.vmap(lambda y: model(y, **params))(x0)
    assert torch.allclose(mapped, batched, atol=1e-14, rtol=0)
    # vmap over the weights too (one W per batch element), against a loop
    Ws = params["W"] + 0.05 * torch.randn(2, 4, 4, generator=_gen(4), dtype=DT)
    mapped_w = torch.func.vmap(lambda y, W: model(y, W=W))(x0, Ws)
    looped = torch.stack([model(x0[i], W=Ws[i]) for i in range(2)])
    assert torch.allclose(mapped_w, looped, atol=1e-14, rtol=0)
    # certified step sizes are computed per element under vmap as well
    cert = GradientStep(builtin_energy("tanh_energy"), "Y", step=CertifiedStep(iters=8))
    v = torch.func.vmap(lambda y: cert(y, **params))(x0)
    assert torch.allclose(v, cert(x0, **params), atol=1e-12)


def test_torch_compile_of_an_unrolled_model():
    E = builtin_energy("hopfield")
    g = _gen(5)
    X = torch.randn(4, 5, generator=g, dtype=DT, requires_grad=True)
    q = torch.randn(3, 4, 1, generator=g, dtype=DT)
    model = Unrolled(GradientStep(E, "xi", step=0.5, params={"X": X}, buffers={"beta": 1.0}), depth=2)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(q)
    eager = model(q)
    assert torch.allclose(out, eager, atol=1e-14, rtol=0)
    (gc,) = torch.autograd.grad(out.sum(), model.step.X)
    (ge,) = torch.autograd.grad(eager.sum(), model.step.X)
    assert torch.allclose(gc, ge, atol=1e-13)
