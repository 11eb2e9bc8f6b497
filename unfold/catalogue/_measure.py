"""Small measuring helpers shared by the catalogue entries of this package (errors, predicates)."""

from __future__ import annotations

import torch

from ..verify.scaled import scaled_error
from .base import AssumptionResult

__all__ = ["scaled_error", "symmetric", "positive_definite", "spd_matrix", "unit_columns"]


def symmetric(name: str, M: torch.Tensor, tol: float = 1e-12) -> AssumptionResult:
    """Predicate ``‖M − Mᵀ‖_max ≤ tol·max(1, ‖M‖_max)``."""
    asym = float((M - M.mT).abs().max())
    scale = max(1.0, float(M.abs().max()))
    return AssumptionResult(f"{name} symmetric", asym <= tol * scale, f"max|{name} − {name}ᵀ| = {asym:.1e}")


def positive_definite(name: str, M: torch.Tensor) -> AssumptionResult:
    """Predicate ``λ_min((M + Mᵀ)/2) > 0``."""
    lam = float(torch.linalg.eigvalsh((M + M.mT) / 2).min())
    return AssumptionResult(f"{name} positive definite", lam > 0, f"λ_min = {lam:.3g}")


def spd_matrix(d: int, gen: torch.Generator, dtype: torch.dtype, cond: float = 4.0) -> torch.Tensor:
    """A random symmetric positive-definite ``d×d`` matrix with eigenvalues spread in ``[1, cond]``."""
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    lam = torch.linspace(1.0, cond, d, dtype=torch.float64)
    return ((Q * lam) @ Q.T).to(dtype)


def unit_columns(Z: torch.Tensor) -> torch.Tensor:
    """``Z`` with every column scaled to unit Euclidean norm."""
    return Z / Z.norm(dim=-2, keepdim=True)
