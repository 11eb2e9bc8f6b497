"""Independent references for the LISTA entry: ISTA written from Gregor & LeCun (2010) with plain
torch, and the LASSO solved by scipy.

ISTA for ``min_z ½‖x − Az‖² + λ‖z‖₁`` with ``L ≥ λ_max(AᵀA)``::

    z^{k+1} = h_θ(B x + S z^k),   B = Aᵀ/L,   S = I − AᵀA/L,   θ = λ/L,
    h_θ(v) = sign(v) max(|v| − θ, 0)

Nothing here imports unfold's energy code.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["soft_threshold", "ista_weights", "ista", "fista", "lasso_scipy", "kkt_residual"]


def soft_threshold(v: torch.Tensor, theta: float) -> torch.Tensor:
    """``h_θ(v) = sign(v) max(|v| − θ, 0)``."""
    return torch.sign(v) * torch.clamp(v.abs() - theta, min=0.0)


def ista_weights(A: torch.Tensor, lam: float, L: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(B, S, θ) = (Aᵀ/L, I − AᵀA/L, λ/L)``."""
    k = A.shape[-1]
    return A.mT / L, torch.eye(k, dtype=A.dtype) - A.mT @ A / L, lam / L


def ista(x: torch.Tensor, A: torch.Tensor, lam: float, L: float, iters: int,
         z0: torch.Tensor | None = None) -> list[torch.Tensor]:
    """``[z^0, …, z^iters]`` of ISTA (``x``: (…, m, 1); ``z^0 = 0`` unless given)."""
    B, S, theta = ista_weights(A, lam, L)
    z = torch.zeros(*x.shape[:-2], A.shape[-1], 1, dtype=x.dtype) if z0 is None else z0
    out = [z]
    Bx = B @ x
    for _ in range(iters):
        z = soft_threshold(Bx + S @ z, theta)
        out.append(z)
    return out


def fista(x: torch.Tensor, A: torch.Tensor, lam: float, L: float, iters: int) -> torch.Tensor:
    """FISTA (Beck & Teboulle 2009) from ``z = 0``: ``z⁺ = h_{λ/L}(y − Aᵀ(Ay − x)/L)``,
    ``t⁺ = (1 + √(1 + 4t²))/2``, ``y⁺ = z⁺ + ((t − 1)/t⁺)(z⁺ − z)``; the training targets of LISTA."""
    z = torch.zeros(*x.shape[:-2], A.shape[-1], 1, dtype=x.dtype)
    y, t = z, 1.0
    for _ in range(iters):
        z_next = soft_threshold(y - A.mT @ (A @ y - x) / L, lam / L)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = z_next + ((t - 1) / t_next) * (z_next - z)
        z, t = z_next, t_next
    return z


def kkt_residual(z: np.ndarray, A: np.ndarray, x: np.ndarray, lam: float) -> float:
    """Distance of ``−Aᵀ(Az − x)`` from ``λ∂‖z‖₁`` (0 exactly at the LASSO solution)."""
    g = A.T @ (A @ z - x)
    on = np.abs(z) > 0
    r_on = np.abs(g[on] + lam * np.sign(z[on]))
    r_off = np.maximum(np.abs(g[~on]) - lam, 0.0)
    return float(max(r_on.max(initial=0.0), r_off.max(initial=0.0)))


def lasso_scipy(A: np.ndarray, x: np.ndarray, lam: float) -> np.ndarray:
    """The LASSO solution from scipy: L-BFGS-B on ``z = u − v``, ``u, v ≥ 0`` (a smooth bound-
    constrained QP), then polished on the support it finds by solving the optimality condition
    ``A_Sᵀ(A_S z_S − x) + λ sign(z_S) = 0`` (exact when the support and signs are right; the KKT
    residual of the result is the test of that)."""
    from scipy.optimize import minimize

    m, k = A.shape
    AtA, Atx = A.T @ A, A.T @ x

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[:k] - w[k:]
        r = A @ z - x
        g = A.T @ r
        return 0.5 * float(r @ r) + lam * float(w.sum()), np.concatenate([g + lam, -g + lam])

    res = minimize(f, np.zeros(2 * k), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * k),
                   options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 10000, "maxcor": 30})
    z = res.x[:k] - res.x[k:]
    S = np.abs(z) > 1e-7
    if S.any():
        zs = np.linalg.solve(AtA[np.ix_(S, S)], Atx[S] - lam * np.sign(z[S]))
        polished = np.zeros(k)
        polished[S] = zs
        if kkt_residual(polished, A, x, lam) <= kkt_residual(z, A, x, lam):
            z = polished
    return z
