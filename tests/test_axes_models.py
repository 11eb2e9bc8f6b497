"""Multi-head catalogue energies written with a head axis, at the official sizes, against the papers'
closed forms in plain torch (per-head loops over separate matrices: an independent formulation)."""

from __future__ import annotations

import math

import pytest
import torch

import unfold as uf
from unfold.catalogue import _attention_refs as ref
from unfold.catalogue import energy_transformer as et

DT = torch.float64


@pytest.mark.parametrize("mask_self", [False, True])
def test_energy_transformer_12_heads_of_64_at_width_768(mask_self: bool) -> None:
    """ET's official configuration as one generated layer: ∂E/∂g equals the paper's two-term
    closed form (summed over 12 separate heads) to float64 precision."""
    N, D, K, M, H = 6, 768, 64, 256, 12
    E = et.energy_heads(H, mask=mask_self)
    g = torch.Generator().manual_seed(0)
    tok = torch.randn(2, N, D, generator=g, dtype=DT)
    WQ = torch.randn(H, K, D, generator=g, dtype=DT) / math.sqrt(D)
    WK = torch.randn(H, K, D, generator=g, dtype=DT) / math.sqrt(D)
    Xi = torch.randn(D, M, generator=g, dtype=DT) / math.sqrt(D)
    beta = 1 / math.sqrt(K)
    inputs = dict(WQ=WQ, WK=WK, Xi=Xi, beta=beta)
    if mask_self:
        inputs["C"] = torch.zeros(N, N, dtype=DT).fill_diagonal_(float("-inf"))
    want = ref.et_grad_closed_form(tok, list(WQ), list(WK), Xi, beta, mask_self=mask_self)
    got = E.compile().grad("g", g=tok, **inputs)
    assert torch.allclose(got, want, atol=1e-12 * float(want.abs().max()), rtol=0)
    energy = ref.et_energy(tok, list(WQ), list(WK), Xi, beta, mask_self=mask_self)
    assert torch.allclose(E.compile()(g=tok, **inputs), energy, atol=1e-12 * float(energy.abs().max()), rtol=0)
    step = uf.GradientStep(E, wrt="g", step=0.1)
    assert torch.allclose(step(tok, **inputs), tok - 0.1 * want, atol=1e-12, rtol=0)


def test_energy_transformer_heads_two_leg_check_any_h() -> None:
    res = uf.check_gradient(et.energy_heads(None, mask=True))
    assert res.passed and all(v.leg2_run for v in res.variables), str(res)


def test_crate_mssa_with_k_heads_is_the_generated_multi_head_layer() -> None:
    """MSSA with K = 4 heads (and the compression block, paper eq. 10) against the hand-written
    reference of the CRATE entry (a loop over separate subspaces)."""
    from unfold.catalogue import _crate_refs as crate
    from unfold.models.attention import MSSA, mssa

    g = torch.Generator().manual_seed(3)
    d, N, p, K, eps, kappa = 8, 6, 2, 4, 0.5, 0.3
    Z = torch.randn(3, d, N, generator=g, dtype=DT)
    U = torch.randn(K, d, p, generator=g, dtype=DT) / math.sqrt(d)
    want = crate.mssa(Z, list(U), eps)
    assert torch.allclose(mssa(Z, U, eps), want, atol=1e-12 * float(want.abs().max()), rtol=0)
    block = MSSA(d, p, K, eps=eps, kappa=kappa).double()
    with torch.no_grad():
        block.U.copy_(U)
    want = crate.mssa_block(Z, list(U), eps, kappa)
    assert torch.allclose(block(Z), want, atol=1e-12, rtol=0)
