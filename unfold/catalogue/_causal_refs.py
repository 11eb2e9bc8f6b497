"""Independent references for the causal-attention entry, plain torch (tokens are rows).

* GPT-style causal attention with tied weights, per head ``h``: queries ``X W_Q,hᵀ``, keys and values
  ``X W_K,hᵀ`` (``W_V = W_K``), output projection ``W_O,h = W_Q,hᵀ``, scale ``β``:
  ``Σ_h SDPA(XW_Qᵀ, XW_Kᵀ, XW_Kᵀ, is_causal=True, scale=β) W_Q`` and the same through
  ``nn.MultiheadAttention`` (which scales by ``1/√d``, so ``β = 1/√d`` there);
* the masked log-sum-exp energy ``E(X) = −(1/β) Σ_h Σ_i log Σ_{j≤i} exp(β x_iᵀ W_Qᵀ W_K x_j)`` in plain torch
  (its gradient by autograd is the reference for the full step);
* NRGPT's head (Dehmamy et al., arXiv 2512.16762; code ``bhoov/nrgpt`` ``EnergyHead_H``), as described
  in the reference notes: one full matrix ``H``, no temperature, output ``−Σ_j a_ij H x_j`` with
  ``a_i· = softmax_j(x_iᵀ H x_j)`` over the visible keys (strict ``j < i``: the first row is 0; or
  inclusive ``j ≤ i``).  Nothing here imports unfold's energy code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["causal_attention", "causal_mha", "masked_lse_energy", "nrgpt_head", "per_token_partial_gradients",
           "self_key_term", "strict_energy_gradient"]

Tensor = torch.Tensor


def causal_attention(X: Tensor, WQ: list[Tensor], WK: list[Tensor], beta: float) -> Tensor:
    """``Σ_h SDPA(XW_Q,hᵀ, XW_K,hᵀ, XW_K,hᵀ, is_causal=True, scale=β) W_Q,h``."""
    out = torch.zeros_like(X)
    for q, k in zip(WQ, WK):
        K = X @ k.mT
        out = out + F.scaled_dot_product_attention(X @ q.mT, K, K, is_causal=True, scale=beta) @ q
    return out


def causal_mha(X: Tensor, WQ: list[Tensor], WK: list[Tensor]) -> Tensor:
    """The same layer as ``nn.MultiheadAttention`` (``in_proj = [W_Q; W_K; W_K]``, ``out_proj = [W_Q,1ᵀ …]``,
    no biases, causal ``attn_mask``); its scale is ``1/√d``."""
    H, (d, D) = len(WQ), WQ[0].shape
    if H * d != D:
        raise ValueError(f"nn.MultiheadAttention needs heads × head width = width ({H}×{d} ≠ {D})")
    mha = nn.MultiheadAttention(D, H, bias=False, batch_first=True, dtype=X.dtype)
    with torch.no_grad():
        Wq, Wk = torch.cat(WQ, dim=0), torch.cat(WK, dim=0)
        mha.in_proj_weight.copy_(torch.cat([Wq, Wk, Wk], dim=0))
        mha.out_proj.weight.copy_(Wq.mT)
    T = X.shape[-2]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)          # True = not allowed
    with torch.no_grad():
        out, _ = mha(X, X, X, attn_mask=mask, need_weights=False)
    return out


def masked_lse_energy(X: Tensor, WQ: list[Tensor], WK: list[Tensor], beta: float) -> Tensor:
    """``−(1/β) Σ_h Σ_i log Σ_{j≤i} exp(β x_iᵀW_Qᵀ W_K x_j)``, shape (…)."""
    T = X.shape[-2]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    total = torch.zeros(X.shape[:-2], dtype=X.dtype)
    for q, k in zip(WQ, WK):
        S = beta * (X @ q.mT) @ (X @ k.mT).mT
        total = total - torch.logsumexp(S.masked_fill(~allowed, float("-inf")), dim=-1).sum(-1) / beta
    return total


def nrgpt_head(X: Tensor, H: Tensor, strict: bool) -> Tensor:
    """NRGPT's head output ``−Σ_j a_ij H x_j`` (strict mask ``j < i`` with the first row set to 0, or ``j ≤ i``)."""
    T = X.shape[-2]
    allowed = torch.ones(T, T, dtype=torch.bool).tril(-1 if strict else 0)
    S = (X @ H @ X.mT).masked_fill(~allowed, float("-inf"))     # S_ij = x_iᵀ H x_j
    a = torch.softmax(S, dim=-1)
    a = torch.nan_to_num(a, nan=0.0)                                  # a fully masked row: weights 0
    return -(a @ X @ H.mT)


def _nrgpt_token_energy(xi: Tensor, X: Tensor, H: Tensor, i: int, strict: bool) -> Tensor:
    """``E_i = −log Σ_{j visible} exp(x_iᵀ H x_j)`` with ``x_i`` given separately (the key ``x_i`` too, inclusive)."""
    keys = X[..., : i if strict else i + 1, :]
    if not strict:
        keys = torch.cat([keys[..., :i, :], xi[..., None, :]], dim=-2)
    return -torch.logsumexp((keys @ H.mT @ xi[..., :, None])[..., 0], dim=-1)


def per_token_partial_gradients(X: Tensor, H: Tensor, strict: bool) -> Tensor:
    """``∂E_i/∂x_i`` with every other token frozen (autograd, token by token; row 1 is 0 under the strict mask)."""
    rows = [torch.zeros_like(X[..., 0, :])] if strict else []
    for i in range(1 if strict else 0, X.shape[-2]):
        xi = X[..., i, :].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_nrgpt_token_energy(xi, X.detach(), H, i, strict).sum(), xi)
        rows.append(g)
    return torch.stack(rows, dim=-2)


def self_key_term(X: Tensor, H: Tensor) -> Tensor:
    """``a_ii Hᵀx_i`` under the inclusive mask: the part of ``∂E_i/∂x_i`` that comes from ``x_i`` as its own key."""
    T = X.shape[-2]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    a = torch.softmax((X @ H @ X.mT).masked_fill(~allowed, float("-inf")), dim=-1)
    return torch.diagonal(a, dim1=-2, dim2=-1)[..., None] * (X @ H)


def strict_energy_gradient(X: Tensor, H: Tensor) -> Tensor:
    """``∇_X Σ_{i≥2} E_i`` of the whole strict-mask energy (autograd)."""
    Xv = X.detach().requires_grad_(True)
    T = X.shape[-2]
    allowed = torch.ones(T, T, dtype=torch.bool).tril(-1)
    S = (Xv @ H @ Xv.mT).masked_fill(~allowed, float("-inf"))[..., 1:, :]
    (g,) = torch.autograd.grad(-torch.logsumexp(S, dim=-1).sum(), Xv)
    return g
