"""Independent references for the ToST entry (Wu et al., arXiv 2412.17810), plain torch.

Paper (column layout, ``Z ∈ R^{d×N}``, memberships ``Π ∈ R^{N×K}`` row-stochastic, ``U_k ∈ R^{d×p}``)::

    R^var(Z, Π | U) = ½ Σ_k (N_k/N) Σ_i f( [U_kᵀ Z Diag(π_k) Zᵀ U_k]_ii / N_k ),   f(x) = log(1 + c x)
    TSSA(Z) = −(τ/N) Σ_k U_k D_k U_kᵀ Z Diag(π_k),   D_k = Diag( f'((U_kᵀZ)^{⊙2} π_k / N_k) )
    Π_jk = softmax_k( ‖U_kᵀ z_j‖² / (2η) )

The released vision layer (``AttentionTSSA``; rows are tokens, ``x ∈ R^{b×n×dim}``, ``K`` heads of
width ``p = dim/K``), as described in the reference notes: ``w = x W_qkvᵀ + b_qkv`` split per head;
``Π`` = softmax over heads of ``temp_k Σ_i ŵ_kji²`` where ``ŵ`` normalises each (head, feature)
column over the tokens; ``m_k = Σ_j Π_jk w_kj^{⊙2} / (Σ_j Π_jk + 1e-8)``;
``out_kj = −Π_jk w_kj / (1 + m_k)``; ``y = to_out(concat_k out_k)`` (a free linear map with bias).
Nothing here imports unfold's energy code.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["rate_var", "tssa_closed_form", "memberships", "released_tssa", "released_memberships"]

Tensor = torch.Tensor


def _moments(Z: Tensor, U: Tensor, Pi: Tensor) -> tuple[Tensor, Tensor]:
    """``(m, N_k)``: ``m_k = (U_kᵀZ)^{⊙2} π_k / N_k`` of shape (…, K, p), and ``N_k`` (…, K).
    ``U`` is (K, d, p), ``Pi`` (…, N, K)."""
    W = torch.einsum("kdp,...dn->...kpn", U, Z)
    Nk = Pi.sum(dim=-2)
    m = torch.einsum("...kpn,...nk->...kp", W * W, Pi) / Nk[..., None]
    return m, Nk


def rate_var(Z: Tensor, U: Tensor, Pi: Tensor, c: float) -> Tensor:
    """``R^var(Z, Π | U)`` with ``f(x) = log(1 + c x)``; shape (…)."""
    m, Nk = _moments(Z, U, Pi)
    N = Z.shape[-1]
    return 0.5 * ((Nk / N) * torch.log1p(c * m).sum(-1)).sum(-1)


def tssa_closed_form(Z: Tensor, U: Tensor, Pi: Tensor, c: float, tau: float) -> Tensor:
    """``TSSA(Z) = −(τ/N) Σ_k U_k D_k U_kᵀ Z Diag(π_k)`` (the paper's update direction, Π fixed)."""
    m, _ = _moments(Z, U, Pi)
    Dk = c / (1 + c * m)                                      # (…, K, p)
    W = torch.einsum("kdp,...dn->...kpn", U, Z)               # U_kᵀ Z
    inner = Dk[..., None] * W * Pi.mT[..., :, None, :]        # D_k U_kᵀ Z Diag(π_k)
    return -(tau / Z.shape[-1]) * torch.einsum("kdp,...kpn->...dn", U, inner)


def memberships(Z: Tensor, U: Tensor, eta: float) -> Tensor:
    """``Π_jk = softmax_k(‖U_kᵀz_j‖²/(2η))``: (…, N, K)."""
    W = torch.einsum("kdp,...dn->...nkp", U, Z)
    return torch.softmax((W * W).sum(-1) / (2 * eta), dim=-1)


def released_memberships(w: Tensor, temp: Tensor) -> Tensor:
    """The released layer's ``Π``: ``w`` is (b, K, n, p); softmax over heads of ``temp_k Σ_i ŵ_kji²``."""
    w_hat = F.normalize(w, dim=-2)
    return torch.softmax(temp[:, None] * (w_hat * w_hat).sum(-1), dim=1)       # (b, K, n)


def released_tssa(x: Tensor, W_qkv: Tensor, b_qkv: Optional[Tensor], temp: Tensor, W_out: Tensor,
                  b_out: Optional[Tensor], heads: int) -> Tensor:
    """The released ``AttentionTSSA`` forward on rows ``x`` (b, n, dim)."""
    b, n, dim = x.shape
    w = x @ W_qkv.mT + (0 if b_qkv is None else b_qkv)
    w = w.reshape(b, n, heads, dim // heads).transpose(1, 2)                     # (b, K, n, p)
    Pi = released_memberships(w, temp)
    m = (Pi[..., None] * w * w).sum(-2, keepdim=True) / (Pi.sum(-1)[..., None, None] + 1e-8)
    out = -Pi[..., None] * w / (1 + m)
    out = out.transpose(1, 2).reshape(b, n, dim)
    return out @ W_out.mT + (0 if b_out is None else b_out)
