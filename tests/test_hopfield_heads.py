"""``unfold.models.HopfieldHeads`` (hflayers' multi-head projected Hopfield layer): update_steps_max
semantics against the paper's update written here in plain torch, gradients, and bad input."""

import math

import pytest
import torch

import unfold as uf
from unfold.models import HopfieldHeads

DT = torch.float64


def _layer(k, beta, seed=0):
    mod = HopfieldHeads(6, 2, head_dim=3, update_steps_max=k, beta=beta, seed=seed).to(DT)
    with torch.no_grad():
        for p in mod.parameters():
            p.normal_(0, 0.4, generator=torch.Generator().manual_seed(seed + p.numel()))
    return mod


def _by_hand(mod, R, Y, k):
    """Per head: k updates ξ ← softmax(β ξKᵀ)K of the projected query, then softmax(β ξKᵀ) V W_Oᵀ."""
    out = mod.bo.expand(*R.shape[:-1], mod.embed_dim)
    for h in range(mod.num_heads):
        b = float(mod.beta[h])
        xi, K = R @ mod.WQ[h].T + mod.bq[h], Y @ mod.WK[h].T + mod.bk[h]
        for _ in range(k):
            xi = torch.softmax(b * xi @ K.mT, -1) @ K
        out = out + torch.softmax(b * xi @ K.mT, -1) @ (Y @ mod.WV[h].T + mod.bv[h]) @ mod.WO[h].T
    return out


@pytest.mark.parametrize("k", [0, 2])
def test_steps_and_per_head_beta(k):
    g = torch.Generator().manual_seed(1)
    R, Y = torch.randn(3, 4, 6, generator=g, dtype=DT), torch.randn(3, 5, 6, generator=g, dtype=DT)
    mod = _layer(k, [0.7, 3.0])
    got = mod(R, Y)
    assert (got - _by_hand(mod, R, Y, k)).abs().max() < 1e-13
    # k + 1 retrievals: the layer with k steps differs from the one with k + 1
    assert (got - _by_hand(mod, R, Y, k + 1)).abs().max() > 1e-3


def test_one_head_no_steps_is_scaled_dot_product_attention():
    """k = 0, β = 1/√p, no biases: one head is SDPA of the projections followed by W_O."""
    g = torch.Generator().manual_seed(2)
    mod = HopfieldHeads(4, 1, update_steps_max=0, bias=False).to(DT)
    R, Y = torch.randn(2, 3, 4, generator=g, dtype=DT), torch.randn(2, 5, 4, generator=g, dtype=DT)
    q, k, v = R @ mod.WQ[0].T, Y @ mod.WK[0].T, Y @ mod.WV[0].T
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v) @ mod.WO[0].T
    assert mod.beta[0] == pytest.approx(1 / math.sqrt(4))
    assert (mod(R, Y) - want).abs().max() < 1e-13


def test_gradients_reach_every_parameter():
    g = torch.Generator().manual_seed(3)
    mod = _layer(2, [1.0, 2.0])
    R, Y = torch.randn(2, 4, 6, generator=g, dtype=DT), torch.randn(2, 5, 6, generator=g, dtype=DT)
    mod(R, Y).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())


def test_bad_input():
    with pytest.raises(uf.InputError, match="update_steps_max"):
        HopfieldHeads(6, 2, update_steps_max=-1)
    with pytest.raises(uf.InputError, match="update_steps_max"):
        HopfieldHeads(6, 2, update_steps_max=None)
    with pytest.raises(uf.InputError, match="beta"):
        HopfieldHeads(6, 2, beta=[1.0, -1.0])
    with pytest.raises(uf.InputError, match="beta"):
        HopfieldHeads(6, 2, beta=[1.0, 1.0, 1.0])
    mod = HopfieldHeads(6, 2)
    with pytest.raises(uf.ShapeMismatchError, match="embed_dim 6"):
        mod(torch.randn(2, 3, 6), torch.randn(2, 4, 5))
