"""Independent reference for the looped-transformer entry, written from the paper with plain torch.

Gatmiry, Saunshi, Reddi, Jegelka, Kumar (arXiv 2410.08292) with the construction of
``shared/reference/papers.md`` §7 (tokens as columns)::

    Z_0 = [[X, x_q], [yᵀ, 0]] ∈ R^{(d+1)×(n+1)},   M = diag(1, …, 1, 0) ∈ R^{(n+1)×(n+1)}
    P   = [[0, 0], [0, 1]],   Q = [[A, 0], [0, 0]]   (A symmetric, d×d)
    Z_{t+1} = Z_t − (1/n) P Z_t M Z_tᵀ Q Z_t

Prediction read-out: ``ŷ_t = −[Z_t]_{d+1, n+1}``.  Nothing here imports unfold's energy code.
"""

from __future__ import annotations

import torch

__all__ = ["looped_construction", "looped_lsa"]


def looped_construction(
    X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor, A: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Z_0, P, Q, M)`` for context ``X`` (…, d, n), targets ``y`` (…, n, 1), query ``xq`` (…, d, 1)."""
    d, n = X.shape[-2], X.shape[-1]
    batch = X.shape[:-2]
    top = torch.cat([X, xq], dim=-1)
    bottom = torch.cat([y.mT, torch.zeros(*batch, 1, 1, dtype=X.dtype)], dim=-1)
    Z0 = torch.cat([top, bottom], dim=-2)
    P = torch.zeros(d + 1, d + 1, dtype=X.dtype)
    P[d, d] = 1.0
    Q = torch.zeros(d + 1, d + 1, dtype=X.dtype)
    Q[:d, :d] = A
    M = torch.eye(n + 1, dtype=X.dtype)
    M[n, n] = 0.0
    return Z0, P, Q, M


def looped_lsa(Z0: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, M: torch.Tensor, loops: int) -> list[torch.Tensor]:
    """``[Z_0, Z_1, …, Z_loops]`` of the weight-shared linear self-attention loop."""
    n = Z0.shape[-1] - 1
    out = [Z0]
    Z = Z0
    for _ in range(loops):
        Z = Z - (P @ Z @ M @ Z.mT @ Q @ Z) / n
        out.append(Z)
    return out

