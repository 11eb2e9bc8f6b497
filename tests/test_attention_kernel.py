"""``runtime.attention`` picks its kernel at run time (fused SDPA lifted to 4 dims on the CPU, the
explicit softmax where the fused kernel refuses the inputs or under transforms); every kernel equals
``softmax(c Q Kᵀ + mask) V`` written out in plain torch, in float64, with and without masks, and
their gradients agree with autograd of that formula."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from unfold.codegen import runtime

DT = torch.float64


def _reference(c: float, Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, mask: object) -> torch.Tensor:
    """The formula from the definition: row-softmax of the scaled, masked scores times the values."""
    s = c * (Q @ K.transpose(-1, -2))
    if isinstance(mask, str):
        n, m = s.shape[-2], s.shape[-1]
        keep = torch.arange(m)[None, :] <= torch.arange(n)[:, None]
        s = torch.where(keep, s, torch.tensor(float("-inf"), dtype=s.dtype))
    elif isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
        s = torch.where(mask, s, torch.tensor(float("-inf"), dtype=s.dtype))
    elif mask is not None:
        s = s + mask
    return torch.exp(s - s.amax(-1, keepdim=True)) / torch.exp(s - s.amax(-1, keepdim=True)).sum(-1, keepdim=True) @ V


def _qkv(batch: tuple[int, ...], n: int = 6, m: int = 7, d: int = 4, dv: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, n, d, generator=g, dtype=DT), torch.randn(*batch, m, d, generator=g, dtype=DT),
            torch.randn(*batch, m, dv, generator=g, dtype=DT))


def _mask(kind: str, batch: tuple[int, ...], n: int = 6, m: int = 7) -> object:
    g = torch.Generator().manual_seed(1)
    if kind == "none":
        return None
    if kind == "causal":
        return "causal"
    if kind == "bool":
        keep = torch.rand(n, m, generator=g) > 0.3
        keep[:, 0] = True  # every query keeps a key
        return keep
    if kind == "additive":
        return torch.randn(n, m, generator=g, dtype=DT)
    if kind == "per_sequence":  # a full additive mask per sequence, broadcast over the inner batch dims
        return torch.randn(*batch[:1], *([1] * (len(batch) - 1)), n, m, generator=g, dtype=DT)
    # key padding: one row of keys per sequence, broadcast over heads and queries
    pad = torch.zeros(*batch[:1], *([1] * (len(batch) - 1)), 1, m, dtype=DT)
    pad[..., -2:] = float("-inf")
    return pad


BATCHES = [(), (3,), (2, 3), (2, 2, 3)]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"rank{len(b) + 2}")
@pytest.mark.parametrize("kind", ["none", "causal", "bool", "additive", "key_padding", "per_sequence"])
def test_fused_cpu_kernel_equals_the_formula(batch: tuple[int, ...], kind: str) -> None:
    Q, K, V = _qkv(batch)
    mask = _mask(kind, batch)
    if kind == "causal":
        Q, K, V = _qkv(batch, m=6)
    assert runtime.attention_kernel(Q, K, V, mask) == "fused_cpu"
    # the fused (flash) CPU kernel, and no other, runs: SDPA restricted to it raises on inputs it refuses
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = runtime.attention(0.7, [K, Q.mT], V, mask)
    ref = _reference(0.7, Q, K, V, mask)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)


def test_a_three_dim_call_of_sdpa_does_not_reach_the_fused_cpu_kernel() -> None:
    """Why the inputs are lifted: torch's CPU flash kernel refuses 3-dim inputs (SDPA then falls back
    to its math path), and accepts the same data as ``(N, 1, tokens, dim)``."""
    Q, K, V = _qkv((3,))
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), pytest.raises(RuntimeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch says why it refuses, as a warning
        torch.nn.functional.scaled_dot_product_attention(Q, K, V)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        torch.nn.functional.scaled_dot_product_attention(Q[:, None], K[:, None], V[:, None])


@pytest.mark.parametrize("case", ["value_dim", "mask_requires_grad"])
def test_explicit_kernel_where_the_fused_one_refuses_the_inputs(case: str) -> None:
    Q, K, V = _qkv((3,), dv=5 if case == "value_dim" else 4)
    mask: object = None
    if case == "mask_requires_grad":
        mask = torch.randn(6, 7, dtype=DT, requires_grad=True)
    assert runtime.attention_kernel(Q, K, V, mask) == "explicit"
    out = runtime.attention(0.7, [K, Q.mT], V, mask)
    ref = _reference(0.7, Q, K, V, mask)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    if case == "mask_requires_grad":
        assert isinstance(mask, torch.Tensor)
        g, = torch.autograd.grad(out.square().sum(), mask)
        g_ref, = torch.autograd.grad(ref.square().sum(), mask)
        assert torch.allclose(g, g_ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("batch", [(3,), (2, 3)], ids=["rank3", "rank4"])
@pytest.mark.parametrize("kind", ["none", "causal", "additive"])
def test_fused_kernel_gradients_equal_the_formula(batch: tuple[int, ...], kind: str) -> None:
    Q, K, V = _qkv(batch, m=6)
    mask = _mask(kind, batch, m=6)
    leaves = [t.clone().requires_grad_() for t in (Q, K, V)]
    assert runtime.attention_kernel(*leaves, mask) == "fused_cpu"
    out = runtime.attention(0.7, [leaves[1], leaves[0].mT], leaves[2], mask)
    ref = _reference(0.7, *leaves, mask)
    for a, b in zip(torch.autograd.grad(out.square().sum(), leaves), torch.autograd.grad(ref.square().sum(), leaves)):
        assert torch.allclose(a, b, atol=1e-11, rtol=0)


@pytest.mark.parametrize("kind", ["none", "causal", "bool"])
def test_under_torch_func_the_explicit_kernel_matches_the_formula(kind: str) -> None:
    """Under ``vmap`` and ``grad`` the inputs are transform wrappers: the explicit kernel runs, and its
    values and gradients equal the formula's."""
    Q, K, V = _qkv((3,), m=6)
    mask = _mask(kind, (3,), m=6)
    seen: list[str] = []

    def att(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        seen.append(runtime.attention_kernel(q, k, V[0], mask))
        return runtime.attention(0.7, [k, q.mT], V[0], mask)

    out = torch.func.vmap(att)(Q, K)
    assert seen[-1] == "explicit"
    assert torch.allclose(out, _reference(0.7, Q, K, V[0], mask), atol=1e-12, rtol=0)
    g = torch.func.grad(lambda q: att(q, K[0]).square().sum())(Q[0])
    assert seen[-1] == "explicit"
    g_ref = torch.func.grad(lambda q: _reference(0.7, q, K[0], V[0], mask).square().sum())(Q[0])
    assert torch.allclose(g, g_ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("force_explicit", [False, True])
def test_a_query_with_every_key_excluded_gets_the_zero_row(force_explicit: bool) -> None:
    """SDPA's convention (an empty softmax contributes nothing) on both kernels, never NaN."""
    Q, K, V = _qkv((3,), dv=5 if force_explicit else 4)
    keep = torch.ones(6, 7, dtype=torch.bool)
    keep[2] = False
    assert runtime.attention_kernel(Q, K, V, keep) == ("explicit" if force_explicit else "fused_cpu")
    out = runtime.attention(0.7, [K, Q.mT], V, keep)
    assert torch.equal(out[:, 2], torch.zeros_like(out[:, 2]))
    rows = [0, 1, 3, 4, 5]
    assert torch.allclose(out[:, rows], _reference(0.7, Q, K, V, keep)[:, rows], atol=1e-12, rtol=0)
