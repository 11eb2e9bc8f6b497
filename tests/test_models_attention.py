"""The generated MultiheadAttention against torch's nn.MultiheadAttention (float64, 1e-12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unfold.errors import InputError, ShapeMismatchError
from unfold.models.attention import MultiheadAttention

DT = torch.float64
E, H = 12, 3


def _pair(bias: bool = True, batch_first: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first).to(DT)
    if bias:
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    ours = MultiheadAttention(E, H, bias=bias, batch_first=batch_first).to(DT)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _tokens(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=1e-12, rtol=0))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_equals_nn_multihead_attention(bias: bool, batch_first: bool) -> None:
    ours, ref = _pair(bias, batch_first)
    q, k, v = _tokens(2, 5, E, seed=1), _tokens(2, 7, E, seed=2), _tokens(2, 7, E, seed=3)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    assert _close(ours(q, k, v)[0], ref(q, k, v, need_weights=False)[0])
    assert _close(ours(q, q, q)[0], ref(q, q, q, need_weights=False)[0])  # self-attention


def test_masks_equal_nn_multihead_attention() -> None:
    ours, ref = _pair()
    x = _tokens(2, 6, E)
    pad = torch.tensor([[False, False, False, False, True, True], [False] * 6])
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    add3 = _tokens(2 * H, 6, 6, seed=4).masked_fill(causal, float("-inf"))
    for kw in (dict(key_padding_mask=pad), dict(attn_mask=causal), dict(attn_mask=causal, is_causal=True),
               dict(attn_mask=add3), dict(attn_mask=causal, key_padding_mask=pad),
               dict(attn_mask=torch.zeros(6, 6, dtype=DT).masked_fill(causal, float("-inf")))):
        assert _close(ours(x, x, x, **kw)[0], ref(x, x, x, need_weights=False, **kw)[0]), kw
    # is_causal alone: the built-in causal mask, no L × S input
    assert _close(ours(x, x, x, is_causal=True)[0], ref(x, x, x, need_weights=False, attn_mask=causal)[0])


def test_unbatched_input_and_gradients() -> None:
    ours, ref = _pair(batch_first=False)
    x = _tokens(5, E).requires_grad_()
    a = ours(x, x, x)[0]
    b = ref(x, x, x, need_weights=False)[0]
    assert _close(a, b)
    ga = torch.autograd.grad(a.square().sum(), [x, ours.in_proj_weight])
    gb = torch.autograd.grad(b.square().sum(), [x, ref.in_proj_weight])
    assert all(torch.allclose(u, w, atol=1e-11, rtol=0) for u, w in zip(ga, gb))


def test_claims_are_evaluated_not_assumed() -> None:
    ours, _ = _pair()
    k, v = _tokens(2, 4, E), _tokens(2, 4, E, seed=9)
    assert ours.cccp_holds(k, k) and not ours.cccp_holds(k, v)
    gap = ours.tied_readout_gap()
    assert gap.shape == (H,) and bool((gap > 0.1).all())  # random weights: the layer is not a descent step
    with torch.no_grad():  # tie the read-out: W_O^h = W_K^hᵀ, W_V^h = W_Q^h  ⇒  W_O W_V = W_Kᵀ W_Q
        w = ours.head_weights()
        w["WV"].copy_(w["WQ"])
        w["WO"].copy_(w["WK"].mT)
    assert bool((ours.tied_readout_gap() < 1e-12).all())


def test_bad_input() -> None:
    ours, _ = _pair()
    x = _tokens(2, 6, E)
    with pytest.raises(ShapeMismatchError, match="attn_mask has shape"):
        ours(x, x, x, attn_mask=torch.zeros(5, 6, dtype=torch.bool))
    with pytest.raises(ShapeMismatchError, match="key_padding_mask has shape"):
        ours(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="2-d \\(unbatched\\) or 3-d"):
        ours(x[0, 0], x, x)
    with pytest.raises(ShapeMismatchError, match="not divisible"):
        MultiheadAttention(10, 3)
