"""Generated code branches on data (domain errors, the fused attention kernel) only on concrete
tensors: under ``torch.func`` transforms it takes the transform-safe path.  Tested through the
behaviour the branch controls, under no transform, ``vmap``, ``grad``, ``jvp`` and ``jacrev``."""

from __future__ import annotations

import pytest
import torch

import unfold as uf
from unfold.codegen import runtime
from unfold.errors import InputError

f64 = torch.float64


def _seen_by_concrete(transform):
    """What ``_concrete`` answers for the tensor a transform hands to the function."""
    seen: list[bool] = []

    def f(x: torch.Tensor) -> torch.Tensor:
        seen.append(runtime._concrete(x))
        return (x * x).sum()

    transform(f)(torch.randn(3, dtype=f64))
    return seen


@pytest.mark.parametrize("name, transform, concrete", [
    ("plain", lambda f: f, True),
    ("vmap", lambda f: torch.func.vmap(f), False),
    ("grad", lambda f: torch.func.grad(f), False),
    ("jvp", lambda f: (lambda x: torch.func.jvp(f, (x,), (torch.ones_like(x),))), False),
    ("jacrev", lambda f: torch.func.jacrev(f), False),
    ("vmap∘grad", lambda f: (lambda x: torch.func.vmap(torch.func.grad(f))(x[None].expand(2, 3))), False),
])
def test_transformed_tensors_are_not_concrete(name, transform, concrete) -> None:
    seen = _seen_by_concrete(transform)
    assert seen and all(s is concrete for s in seen), (name, seen)


def test_a_tensor_created_inside_a_transform_without_inputs_is_concrete() -> None:
    """A constant made inside the function is a plain tensor (nothing to branch on wrongly)."""
    seen: list[bool] = []

    def f(x: torch.Tensor) -> torch.Tensor:
        seen.append(runtime._concrete(torch.ones(2, dtype=f64)))
        return x.sum()

    torch.func.vmap(f)(torch.randn(4, 3, dtype=f64))
    assert seen == [True]


def _logdet_energy():
    n, = uf.dims("n")
    S, Z = uf.param("S", n, n), uf.state("Z", n, 1)
    return uf.Energy(uf.logdet(S) + uf.fro2(Z)).compile()


def test_logdet_domain_error_on_concrete_tensors_nan_under_vmap_and_grad() -> None:
    cm = _logdet_energy()
    z = torch.zeros(3, 1, dtype=f64)
    bad = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=f64))       # det = −1
    with pytest.raises(InputError, match="positive determinant"):
        cm.energy_fn(z, bad)
    out = torch.func.vmap(lambda s: cm.energy_fn.fn(z, s))(torch.stack([2 * torch.eye(3, dtype=f64), bad]))
    assert torch.allclose(out.reshape(2)[0], 3 * torch.log(torch.tensor(2.0, dtype=f64))) and torch.isnan(out.reshape(2)[1])
    g, val = torch.func.grad_and_value(lambda s: cm.energy_fn.fn(z, s).sum())(bad)  # no raise inside grad: NaN, never finite
    assert torch.isnan(val) and torch.isnan(g).all()
    g_ok = torch.func.grad(lambda s: cm.energy_fn.fn(z, s).sum())(2 * torch.eye(3, dtype=f64))
    assert torch.allclose(g_ok, 0.5 * torch.eye(3, dtype=f64))        # ∇ log det S = S⁻ᵀ


def test_attention_under_jvp_is_the_directional_derivative() -> None:
    """Under ``jvp`` the generated attention takes the explicit softmax path; its tangent equals a
    central finite difference of the concrete (fused-kernel) path."""
    g = torch.Generator().manual_seed(0)
    k, q, v, dq = (torch.randn(2, 5, 3, generator=g, dtype=f64) for _ in range(4))

    def att(q: torch.Tensor) -> torch.Tensor:
        return runtime.attention(0.7, [k, q.mT], v, "causal")

    _, tangent = torch.func.jvp(att, (q,), (dq,))
    h = 1e-6
    fd = (att(q + h * dq) - att(q - h * dq)) / (2 * h)
    assert float((tangent - fd).abs().max()) < 1e-8
