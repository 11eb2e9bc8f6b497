"""Formulas stated in docstrings, evaluated in plain torch (float64) against the code they describe.

Each test quotes the docstring's formula and computes it directly; a docstring that drifts from the
code fails here (tolerance 1e-12 scaled: these are exact claims)."""

from __future__ import annotations

import torch

from unfold.catalogue import RunConfig
from unfold.catalogue.base import EPS64
from unfold.catalogue.icl_gd import gd_step
from unfold.catalogue.lista import ista_step
from unfold.catalogue.looped import gd_model
from unfold.catalogue.yang_huang_wipf import attention_step, ffn_step

TOL = 1e-12
g = torch.Generator().manual_seed(7)


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= TOL * max(1.0, float(b.abs().max()))


def test_icl_gd_step() -> None:
    """icl_gd: ``W₁ = W₀ − η ∇L(W₀) = W₀ − (η/N)(W₀X − Y)Xᵀ``."""
    W0, X, Y, eta = _randn(3, 2, 4), _randn(3, 4, 6), _randn(3, 2, 6), 0.7
    want = W0 - eta / 6 * (W0 @ X - Y) @ X.mT
    assert _close(gd_step(eta)(W0, X=X, Y=Y), want)


def test_looped_preconditioned_step() -> None:
    """looped: ``w ← w − A ∇L(w) = w − (1/n) A X (Xᵀw − y)``."""
    w, X, y, A = _randn(2, 3, 1), _randn(2, 3, 5), _randn(2, 5, 1), _randn(3, 3)
    want = w - A @ X @ (X.mT @ w - y) / 5
    assert _close(gd_model(A, 1)(w, X=X, y=y), want)


def test_ista_step() -> None:
    """lista.ista_step: ``z ← prox_{ηλ‖·‖₁}(z − η∇½‖x − Az‖²)``, ``η = 1/L``; prox = soft threshold."""
    z, A, x, L, lam = _randn(2, 4, 1), _randn(3, 4), _randn(2, 3, 1), 5.0, 0.3
    v = z - A.T @ (A @ z - x) / L
    want = torch.sign(v) * torch.clamp(v.abs() - lam / L, min=0)
    assert _close(ista_step(L, lam)(z, A=A, x=x), want)


def test_yhw_ffn_step() -> None:
    """yang_huang_wipf.ffn_step: ``Y ← ReLU(Y − α(½Y(W + Wᵀ) + Y − 1bᵀ))``."""
    Y, W, b, alpha = _randn(2, 5, 3), _randn(3, 3), _randn(3, 1), 0.6
    want = torch.relu(Y - alpha * (Y @ (W + W.T) / 2 + Y - torch.ones(5, 1, dtype=torch.float64) @ b.T))
    assert _close(ffn_step(alpha)(Y, W=W, b=b), want)


def test_yhw_attention_step() -> None:
    """yang_huang_wipf.attention_step: runs as ``(1 − α)Y + α D⁻¹ΓY``, ``Γᵢⱼ = exp(−½‖W_s(yᵢ − y_j)‖²)``,
    ``D = diag(Γ1)``."""
    Y, Ws, alpha = _randn(2, 4, 3), torch.eye(3, dtype=torch.float64) + 0.2 * _randn(3, 3), 0.5
    V = Y @ Ws.T
    Gam = torch.exp(-0.5 * torch.cdist(V, V) ** 2)
    want = (1 - alpha) * Y + alpha * (Gam / Gam.sum(-1, keepdim=True)) @ Y
    assert float((attention_step(alpha)(Y, Ws=Ws) - want).abs().max()) <= 1e-10  # cdist rounds at ~1e-15·‖V‖²


def test_run_config_tolerance_rule() -> None:
    """RunConfig.tol: ``tol64`` at float64; ``min(k·ε(dtype), cap)``, ``k = tol64/ε₆₄``, otherwise."""
    assert RunConfig().tol(1e-12) == 1e-12
    c32 = RunConfig(dtype=torch.float32)
    eps32 = torch.finfo(torch.float32).eps
    assert c32.tol(1e-12) == min(1e-12 / EPS64 * eps32, 1e-3)
    assert c32.tol(1e-6) == 1e-3  # k·ε is above the cap
