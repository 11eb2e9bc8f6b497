"""Independent references for the CRATE entry, written from the papers with plain torch.

Yu et al., White-Box Transformers via Sparse Rate Reduction (arXiv 2306.01129), tokens as columns
``Z ∈ R^{d×N}``, subspace bases ``U_k ∈ R^{d×p}``, ``γ = p/(Nε²)``, ``A_k = (U_kᵀZ)ᵀ(U_kᵀZ)``:

* eq. 9: ``∇_Z R^c = γ Σ_k U_k U_kᵀ Z (I + γ A_k)⁻¹``;
* App. A.2: ``SSA(Z|U_k) = (U_kᵀZ) softmax(A_k)`` (column-wise softmax),
  ``MSSA(Z|U_[K]) = γ [U_1 … U_K] [SSA_1; …; SSA_K]`` and the MSSA block (eq. 10)
  ``(1 − κγ) Z + κγ MSSA(Z)``, the approximation of ``Z − κ∇R^c`` through
  ``∇R^c ≈ γZ − γ MSSA(Z)`` (which uses ``Σ_k U_k U_kᵀ ≈ I``);
* the first-order Neumann approximation ``γ Σ_k U_k U_kᵀ Z (I − γ A_k)``;
* eq. 17: the ISTA block ``ReLU(Z + η Dᵀ(Z − D Z) − η λ)``.

Chan, Yu, You, Qi, Wright, Ma, ReduNet (arXiv 2105.10446; MCR² 2006.08558): with
``α = d/(Nε²)``, ``α_k = d/(tr(Π_k) ε²)``, ``γ_k = tr(Π_k)/N``,
``E = α (I + α ZZᵀ)⁻¹``, ``C_k = α_k (I + α_k Z Π_k Zᵀ)⁻¹``, one layer is
``P_{S}(Z + η (E Z − Σ_k γ_k C_k Z Π_k))`` (columns projected onto the unit sphere).

Nothing here imports unfold's energy code.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "coding_rate", "compression", "grad_coding_rate", "grad_compression", "neumann1_grad",
    "ssa", "mssa", "mssa_grad", "mssa_block", "ista_block", "redunet_layer", "mcr2",
]

Tensor = torch.Tensor


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def coding_rate(Z: Tensor, eps: float) -> Tensor:
    """``R(Z) = ½ logdet(I + d/(Nε²) ZZᵀ)``."""
    d, N = Z.shape[-2:]
    return 0.5 * torch.logdet(_eye(d, Z) + d / (N * eps**2) * Z @ Z.mT)


def compression(Z: Tensor, Us: Sequence[Tensor], eps: float) -> Tensor:
    """``R^c(Z; U_[K]) = Σ_k ½ logdet(I + p/(Nε²) (U_kᵀZ)ᵀ(U_kᵀZ))``."""
    N = Z.shape[-1]
    out = torch.zeros(Z.shape[:-2], dtype=Z.dtype)
    for U in Us:
        W = U.mT @ Z
        out = out + 0.5 * torch.logdet(_eye(N, Z) + U.shape[-1] / (N * eps**2) * W.mT @ W)
    return out


def grad_coding_rate(Z: Tensor, eps: float) -> Tensor:
    """``∇R = α (I + α ZZᵀ)⁻¹ Z``, ``α = d/(Nε²)``."""
    d, N = Z.shape[-2:]
    a = d / (N * eps**2)
    return a * torch.linalg.solve(_eye(d, Z) + a * Z @ Z.mT, Z)


def grad_compression(Z: Tensor, Us: Sequence[Tensor], eps: float) -> Tensor:
    """Paper eq. 9: ``γ Σ_k U_k U_kᵀ Z (I + γ A_k)⁻¹``."""
    N = Z.shape[-1]
    out = torch.zeros_like(Z)
    for U in Us:
        g = U.shape[-1] / (N * eps**2)
        W = U.mT @ Z
        out = out + g * U @ W @ torch.linalg.inv(_eye(N, Z) + g * W.mT @ W)
    return out


def neumann1_grad(Z: Tensor, Us: Sequence[Tensor], eps: float) -> Tensor:
    """First-order Neumann truncation ``γ Σ_k U_k U_kᵀ Z (I − γ A_k)``."""
    N = Z.shape[-1]
    out = torch.zeros_like(Z)
    for U in Us:
        g = U.shape[-1] / (N * eps**2)
        W = U.mT @ Z
        out = out + g * U @ W @ (_eye(N, Z) - g * W.mT @ W)
    return out


def ssa(Z: Tensor, U: Tensor) -> Tensor:
    """``SSA(Z|U) = (UᵀZ) softmax((UᵀZ)ᵀ(UᵀZ))``, softmax over the key index (per column)."""
    W = U.mT @ Z
    return W @ torch.softmax(W.mT @ W, dim=-2)


def mssa(Z: Tensor, Us: Sequence[Tensor], eps: float) -> Tensor:
    """``MSSA(Z|U_[K]) = γ [U_1 … U_K][SSA(Z|U_1); …; SSA(Z|U_K)]``."""
    N = Z.shape[-1]
    return torch.stack([U.shape[-1] / (N * eps**2) * U @ ssa(Z, U) for U in Us]).sum(0)


def mssa_block(Z: Tensor, Us: Sequence[Tensor], eps: float, kappa: float) -> Tensor:
    """Paper eq. 10: ``(1 − κγ) Z + κγ MSSA(Z|U_[K])`` (≈ ``Z − κ∇R^c``), equal ``p`` for all heads."""
    return Z - kappa * mssa_grad(Z, Us, eps)


def mssa_grad(Z: Tensor, Us: Sequence[Tensor], eps: float) -> Tensor:
    """The softmax approximation of the gradient, ``∇R^c ≈ γ Z − γ MSSA(Z|U_[K])``."""
    N = Z.shape[-1]
    g = Us[0].shape[-1] / (N * eps**2)
    return g * Z - g * mssa(Z, Us, eps)


def ista_block(Z: Tensor, D: Tensor, eta: float, lam: float) -> Tensor:
    """Paper eq. 17: ``ReLU(Z + η Dᵀ(Z − D Z) − η λ 1)``."""
    return torch.relu(Z + eta * D.mT @ (Z - D @ Z) - eta * lam)


def mcr2(Z: Tensor, Pis: Sequence[Tensor], eps: float) -> Tensor:
    """``ΔR = R(Z) − Σ_k tr(Π_k)/(2N) logdet(I + d/(tr(Π_k)ε²) Z Π_k Zᵀ)``."""
    d, N = Z.shape[-2:]
    out = coding_rate(Z, eps)
    for Pi in Pis:
        t = torch.diagonal(Pi, dim1=-2, dim2=-1).sum(-1)
        out = out - t / (2 * N) * torch.logdet(_eye(d, Z) + d / (t * eps**2)[..., None, None] * Z @ Pi @ Z.mT)
    return out


def redunet_layer(Z: Tensor, Pis: Sequence[Tensor], eps: float, eta: float) -> Tensor:
    """One ReduNet layer: ``P_S(Z + η(E Z − Σ_k γ_k C_k Z Π_k))`` with unit-norm columns."""
    d, N = Z.shape[-2:]
    a = d / (N * eps**2)
    Emat = a * torch.linalg.inv(_eye(d, Z) + a * Z @ Z.mT)
    step = Emat @ Z
    for Pi in Pis:
        t = torch.diagonal(Pi, dim1=-2, dim2=-1).sum(-1)
        ak = d / (t * eps**2)
        Ck = ak[..., None, None] * torch.linalg.inv(_eye(d, Z) + ak[..., None, None] * Z @ Pi @ Z.mT)
        step = step - (t / N)[..., None, None] * Ck @ Z @ Pi
    V = Z + eta * step
    return V / V.norm(dim=-2, keepdim=True)
