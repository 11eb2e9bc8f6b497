"""Torch code for the adjugate (:class:`~unfold.symbolic.primitives.adjugate.Adjugate`): finite at singular
matrices, batched over leading dims, usable under ``torch.func`` (grad, vmap, jvp).

With the SVD ``A = U Σ Vᵀ`` (``σ₁ … σₙ``) and ``c = det(U)·det(V) = ±1`` (``adj(XY) = adj(Y)adj(X)``,
``adj(U) = det(U)Uᵀ`` for orthogonal ``U``, ``adj(Σ) = diag(∏_{j≠i} σⱼ)``)::

    adj(A) = c · V · diag(∏_{j≠i} σⱼ) · Uᵀ

with the products ``∏_{j≠i}`` from exclusive prefix and suffix cumulative products: no division by a
singular value, so the result is exact to rounding at any rank (rank ``n − 1``: the one product that
skips the zero; rank ≤ ``n − 2``: every product has a zero factor).  An SVD costs 8–16× an LU, so on
plain tensors a matrix whose LU pivots are well balanced (``min|uᵢᵢ| > 10⁻³ max|uᵢᵢ|``, far from
singular) takes ``det(A)·A⁻¹`` from its LU factors instead; the choice is made per matrix.

Derivatives (the autograd and forward-mode rules of :func:`adjugate`): perturbing ``A + H`` with
``K = Uᵀ H V``, ``adj(A + H) = c V adj(Σ + K) Uᵀ`` and, to first order,

    d adj(Σ)[K]ᵢᵢ = Σ_{k≠i} Pᵢₖ Kₖₖ,      d adj(Σ)[K]ᵢⱼ = −Pᵢⱼ Kᵢⱼ  (i ≠ j),      Pᵢⱼ = ∏_{k∉{i,j}} σₖ

(``Pᵢᵢ = 0``; ``P`` from prefix/suffix products and a cumulative product over each range ``i < k < j``,
again without division).  So ``JVP(H) = c V (Diag(P diag K) − K∘P) Uᵀ`` and, for a cotangent ``Ḡ`` with
``G' = c Vᵀ Ḡ U``, ``VJP(Ḡ) = U (Diag(P diag G') − G'∘P) Vᵀ``.  Both recompute the SVD from ``A`` with
torch operations, so higher derivatives are autograd's through ``torch.linalg.svd``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..runtime import _concrete


__all__ = ["adjugate", "KERNELS"]

Tensor = torch.Tensor


def _svd(A: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``U, σ, Vᵀ`` and the sign ``c = det(U)·det(V)`` (shape ``(…, 1, 1)``)."""
    U, S, Vh = torch.linalg.svd(A)
    sign = (torch.linalg.det(U) * torch.linalg.det(Vh))[..., None, None]
    return U, S, Vh, sign


def _exclusive(S: Tensor) -> tuple[Tensor, Tensor]:
    """``(∏_{k<i} σₖ, ∏_{k>i} σₖ)`` for every ``i`` (empty products are 1)."""
    one = torch.ones_like(S[..., :1])
    pre = torch.cumprod(torch.cat([one, S[..., :-1]], dim=-1), dim=-1)
    suf = torch.cumprod(torch.cat([one, S.flip(-1)[..., :-1]], dim=-1), dim=-1).flip(-1)
    return pre, suf


def _pair_products(S: Tensor) -> Tensor:
    """``Pᵢⱼ = ∏_{k∉{i,j}} σₖ`` for ``i ≠ j``, ``Pᵢᵢ = 0`` (shape ``(…, n, n)``)."""
    n = S.shape[-1]
    pre, suf = _exclusive(S)
    idx = torch.arange(n, device=S.device)
    shifted = torch.cat([torch.ones_like(S[..., :1]), S[..., :-1]], dim=-1)  # σ_{j−1} at j
    inside = idx[None, :] - 1 > idx[:, None]  # factor σ_{j−1} belongs to the range i < k < j
    between = torch.cumprod(torch.where(inside, shifted[..., None, :], torch.ones_like(shifted[..., None, :])), dim=-1)
    upper = torch.where(idx[None, :] > idx[:, None], pre[..., :, None] * between * suf[..., None, :],
                        torch.zeros_like(between))
    return upper + upper.mT


#: An LU pivot ratio ``min|uᵢᵢ| / max|uᵢᵢ|`` above which ``det(A)·A⁻¹`` from the LU factors is used for
#: the value (an SVD costs 8–16× an LU at n = 4…64); below it, or singular, the SVD formula.
LU_PIVOT_RATIO = 1e-3


def _svd_value(A: Tensor) -> Tensor:
    U, S, Vh, sign = _svd(A)
    pre, suf = _exclusive(S)
    return sign * (Vh.mT * (pre * suf)[..., None, :]) @ U.mT


def _lu_value(LU: Tensor, pivots: Tensor) -> Tensor:
    """``det(A)·A⁻¹`` from the LU factors (``det = ±∏ uᵢᵢ``, the sign from the row swaps)."""
    n = LU.shape[-1]
    swaps = (pivots != torch.arange(1, n + 1, device=LU.device, dtype=pivots.dtype)).sum(-1)
    sign = 1 - 2 * (swaps % 2).to(LU.dtype)
    det = sign * torch.diagonal(LU, dim1=-2, dim2=-1).prod(-1)
    eye = torch.eye(n, dtype=LU.dtype, device=LU.device).expand_as(LU)
    return det[..., None, None] * torch.linalg.lu_solve(LU, pivots, eye)


def _value(A: Tensor) -> Tensor:
    """``adj(A)``: on plain tensors, ``det(A)·A⁻¹`` for each matrix whose LU pivots are well balanced
    and the SVD formula for the others (so each matrix's value does not depend on the rest of the
    batch); under ``torch.func`` transforms and ``torch.compile`` (no data-dependent branch), the SVD
    formula for all."""
    if A.shape[-1] == 0 or not _concrete(A):
        return _svd_value(A)
    LU, pivots, info = torch.linalg.lu_factor_ex(A)
    u = torch.diagonal(LU, dim1=-2, dim2=-1).abs()
    ok = (info == 0) & (u.amin(-1) > LU_PIVOT_RATIO * u.amax(-1))
    if bool(ok.all()):
        return _lu_value(LU, pivots)
    if not bool(ok.any()):
        return _svd_value(A)
    out = torch.empty_like(A)
    out[ok] = _lu_value(LU[ok], pivots[ok])
    out[~ok] = _svd_value(A[~ok])
    return out


def _d_adj_diag(K: Tensor, P: Tensor) -> Tensor:
    """``Diag(P diag K) − K∘P``: the derivative of ``adj`` at ``Σ`` in direction ``K`` (and its own
    adjoint, ``P`` being symmetric)."""
    return torch.diag_embed((P @ torch.diagonal(K, dim1=-2, dim2=-1)[..., None])[..., 0]) - K * P


class _AdjugateFn(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor) -> Tensor:
        return _value(A)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (A,) = ctx.saved_tensors
        U, S, Vh, sign = _svd(A)
        Gp = sign * Vh @ grad @ U
        return U @ _d_adj_diag(Gp, _pair_products(S)) @ Vh

    @staticmethod
    def jvp(ctx: Any, dA: Tensor) -> Tensor:
        (A,) = ctx.saved_tensors
        U, S, Vh, sign = _svd(A)
        K = U.mT @ dA @ Vh.mT
        return sign * Vh.mT @ _d_adj_diag(K, _pair_products(S)) @ U.mT


def adjugate(A: Tensor) -> Tensor:
    """``adj(A)`` of every matrix in the batch ``A`` (``(…, n, n)``), finite at any rank."""
    return _AdjugateFn.apply(A)


#: names the generated code calls
#: the names generated code calls (declared by the Adjugate primitive's record)
KERNELS = {"_adjugate": adjugate}
