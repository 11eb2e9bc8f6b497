"""Independent reference for the in-context-learning entry, written from the paper with plain torch.

von Oswald et al. (arXiv 2212.07677), tokens as columns ``e_j = (x_j, y_j) ∈ R^{N_x+N_y}``, the query
token ``(x_q, 0)`` last.  One linear self-attention layer (no softmax, one head, keys and values
from the ``N`` context tokens only)::

    e_j ← e_j + P Σ_{i=1}^{N} (W_V e_i)(W_K e_i)ᵀ(W_Q e_j)

and the construction ``W_K = W_Q = [[I_x, 0], [0, 0]]``, ``W_V = [[0, 0], [W_0, −I_y]]``,
``P = (η/N) I``.  Nothing here imports unfold's energy code.
"""

from __future__ import annotations

import torch

__all__ = ["tokens", "lsa_layer", "gd_construction"]


def tokens(X: torch.Tensor, Y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """``[e_1 … e_N, e_q]`` with ``e_j = (x_j, y_j)`` and ``e_q = (x_q, 0)``: shape (…, N_x+N_y, N+1)."""
    ctx = torch.cat([X, Y], dim=-2)
    q = torch.cat([xq, torch.zeros(*xq.shape[:-2], Y.shape[-2], 1, dtype=X.dtype)], dim=-2)
    return torch.cat([ctx, q], dim=-1)


def lsa_layer(E: torch.Tensor, WK: torch.Tensor, WQ: torch.Tensor, WV: torch.Tensor, P: torch.Tensor,
              n_context: int) -> torch.Tensor:
    """``e_j + P Σ_{i≤N} (W_V e_i)(W_K e_i)ᵀ(W_Q e_j)`` for every token ``j`` (context and query)."""
    C = E[..., :n_context]
    return E + P @ (WV @ C) @ (WK @ C).mT @ (WQ @ E)


def gd_construction(nx: int, ny: int, W0: torch.Tensor, eta: float, N: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_K, W_Q, W_V, P)`` of the construction (``W0``: (…, N_y, N_x))."""
    dt = W0.dtype
    D = nx + ny
    WK = torch.zeros(D, D, dtype=dt)
    WK[:nx, :nx] = torch.eye(nx, dtype=dt)
    WQ = WK.clone()
    WV = torch.zeros(*W0.shape[:-2], D, D, dtype=dt)
    WV[..., nx:, :nx] = W0
    WV[..., nx:, nx:] = -torch.eye(ny, dtype=dt)
    P = (eta / N) * torch.eye(D, dtype=dt)
    return WK, WQ, WV, P
