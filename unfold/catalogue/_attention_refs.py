"""Independent reference implementations for the attention entries of the catalogue.

Everything here is written directly from the papers with plain torch ops or standard modules
(``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``, ``torch.func``), never from unfold's
generated code: these are the "other side" of every equivalence the Hopfield, Energy-Transformer
and Yang–Huang–Wipf entries check.  Conventions follow the papers: Hopfield patterns are columns
(``X ∈ R^{d×N}``), Energy-Transformer and Yang–Huang–Wipf tokens are rows (``Y ∈ R^{n×d}``).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..verify.scaled import scaled_error as rel_err  # the one scaled error (unfold.verify.scaled)

__all__ = [
    "max_abs", "rel_err",
    "hopfield_update", "hopfield_energy", "hopfield_separation", "theorem5_bound", "hopfield_heads_layer",
    "sdpa_attention", "mha_attention", "mass_count",
    "energy_layernorm", "et_energy", "et_grad_closed_form", "layernorm_jacobians",
    "yhw_pair_energy", "yhw_attention_step", "yhw_plain_attention_step", "yhw_ffn_energy",
    "yhw_ffn_step", "yhw_heads_energy", "yhw_heads_mm_step", "yhw_heads_attention",
]


# ---- small numerics ----------------------------------------------------------------------------
def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a − b|`` as a float."""
    return float((a - b).abs().max())


# ---- Ramsauer et al. (2008.02217): modern Hopfield ----------------------------------------------
def hopfield_update(X: torch.Tensor, Xi: torch.Tensor, beta: float) -> torch.Tensor:
    """``ξ_new = X softmax(β Xᵀ ξ)`` (their eq. 3), softmax over the N stored patterns, per query column."""
    return X @ torch.softmax(beta * X.mT @ Xi, dim=-2)


def hopfield_energy(X: torch.Tensor, Xi: torch.Tensor, beta: float) -> torch.Tensor:
    """``E(ξ) = −lse(β, Xᵀξ) + ½ξᵀξ + β⁻¹ log N + ½M²`` per query column, ``M = maxᵢ‖xᵢ‖``.

    Returns shape ``(..., S)`` (one energy per query column)."""
    N = X.shape[-1]
    M2 = (X * X).sum(-2).max(-1).values
    lse = torch.logsumexp(beta * X.mT @ Xi, dim=-2) / beta
    return -lse + 0.5 * (Xi * Xi).sum(-2) + math.log(N) / beta + 0.5 * M2[..., None]


def hopfield_heads_layer(R: torch.Tensor, Y: torch.Tensor, V: torch.Tensor, w: dict, beta: Sequence[float],
                         k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The multi-head projected Hopfield layer from the paper's update ``ξ⁺ = X softmax(β Xᵀξ)`` under its
    eq. 10 mapping, head by head (tokens as rows; ``w`` holds ``WQ, WK, WV: (H, p, E)``, ``WO: (H, E, p)``,
    ``bq, bk, bv: (H, 1, p)``, ``bo: (1, E)``): per head the stored patterns are the projected keys
    ``X = (Y W_Kᵀ + 1b_Kᵀ)ᵀ``, the state starts at the projected queries and takes ``k`` updates with
    ``β_h``; the weights ``softmax(β_h Xᵀξ)`` of a last retrieval weight the projected values; heads are
    concatenated and mapped by ``W_O``.  Returns ``(output, energies)``, ``energies`` of shape
    ``(k + 1, …, H, n)``: ``E(ξ)`` of :func:`hopfield_energy` for every state column before each update."""
    H = w["WQ"].shape[0]
    heads, energies = [], []
    for h in range(H):
        X = (Y @ w["WK"][h].mT + w["bk"][h]).mT                  # (…, p, m): stored patterns as columns
        Xi = (R @ w["WQ"][h].mT + w["bq"][h]).mT                 # (…, p, n): one state column per query
        E = []
        for _ in range(k):
            E.append(hopfield_energy(X, Xi, beta[h]))
            Xi = hopfield_update(X, Xi, beta[h])
        E.append(hopfield_energy(X, Xi, beta[h]))
        energies.append(torch.stack(E))
        P = torch.softmax(beta[h] * X.mT @ Xi, dim=-2)            # (…, m, n): the last retrieval's weights
        heads.append(P.mT @ (V @ w["WV"][h].mT + w["bv"][h]))    # (…, n, p)
    out = torch.cat(heads, dim=-1) @ torch.cat([w["WO"][h] for h in range(H)], dim=-1).mT + w["bo"]
    return out, torch.stack(energies, dim=-2)


def hopfield_separation(X: torch.Tensor) -> torch.Tensor:
    """``Δᵢ = xᵢᵀxᵢ − max_{j≠i} xᵢᵀxⱼ`` for every stored pattern (their Definition 1)."""
    G = X.mT @ X
    N = G.shape[-1]
    off = G.masked_fill(torch.eye(N, dtype=torch.bool, device=G.device), float("-inf"))
    return torch.diagonal(G, dim1=-2, dim2=-1) - off.max(-1).values


def theorem5_bound(beta: float, N: int, M: float, delta_i: float, radius: float) -> float:
    """Theorem 5: ``‖f(ξ) − xᵢ‖ ≤ 2(N−1) exp(−β(Δᵢ − 2 r M)) M``,
    ``r = max{‖ξ − xᵢ‖, ‖xᵢ* − xᵢ‖}``."""
    return 2.0 * (N - 1) * math.exp(-beta * (delta_i - 2.0 * radius * M)) * M


def sdpa_attention(R: torch.Tensor, Y: torch.Tensor, WQ: torch.Tensor, WK: torch.Tensor,
                   WV: torch.Tensor) -> torch.Tensor:
    """``softmax(β Q Kᵀ) V`` with ``Q = R W_Q``, ``K = Y W_K``, ``V = Y W_K W_V`` (their eq. 10) by
    ``F.scaled_dot_product_attention`` (whose default scale is ``1/√d_k``)."""
    Q, K = R @ WQ, Y @ WK
    return F.scaled_dot_product_attention(Q, K, K @ WV)


def mha_attention(R: torch.Tensor, Y: torch.Tensor, WQ: torch.Tensor, WK: torch.Tensor,
                  WV: torch.Tensor) -> torch.Tensor:
    """The same map through an ``nn.MultiheadAttention`` configured to match: one head, no bias,
    ``embed_dim = d_k = d_r = d_v``, ``kdim = vdim = d_y``, query projection ``W_Q``, key projection
    ``W_K``, value projection ``W_K`` (so the values are the stored patterns ``Xᵀ = Y W_K``) and
    output projection ``W_V``.  ``nn.Linear`` stores ``Wᵀ``.  Inputs are batch-first."""
    d_k = WQ.shape[1]
    if not (WQ.shape[0] == d_k and WV.shape == (d_k, d_k)):
        raise ValueError("mha_attention needs d_r = d_k = d_v (nn.MultiheadAttention's embed_dim)")
    mha = nn.MultiheadAttention(d_k, 1, bias=False, kdim=Y.shape[-1], vdim=Y.shape[-1],
                                batch_first=True, dtype=R.dtype)
    with torch.no_grad():
        if mha.in_proj_weight is not None:         # kdim = vdim = embed_dim: one packed projection
            mha.in_proj_weight.copy_(torch.cat([WQ.T, WK.T, WK.T]))
        else:
            mha.q_proj_weight.copy_(WQ.T)
            mha.k_proj_weight.copy_(WK.T)
            mha.v_proj_weight.copy_(WK.T)
        mha.out_proj.weight.copy_(WV.T)
        out, _ = mha(R, Y, Y, need_weights=False)
    return out


def mass_count(P: torch.Tensor, mass: float = 0.9) -> torch.Tensor:
    """The paper's head statistic ``k``: the least number of softmax entries (of each column of
    ``P``) whose sum reaches ``mass``."""
    s = torch.sort(P, dim=-2, descending=True).values.cumsum(-2)
    return (s < mass).sum(-2) + 1


# ---- Hoover et al. (2302.07253): Energy Transformer (tokens as rows) ----------------------------
def energy_layernorm(x: torch.Tensor, gamma: torch.Tensor | float, delta: torch.Tensor,
                     eps: float) -> torch.Tensor:
    """``g = γ (x − mean x)/sqrt(var x + eps) + δ`` per token (row), biased variance; ``γ`` scalar
    (the energy layer norm) or a per-feature vector (standard LayerNorm's gain)."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + eps) + delta


def _scores(g: torch.Tensor, WQ: torch.Tensor, WK: torch.Tensor, beta: float, mask_self: bool):
    Q, K = g @ WQ.mT, g @ WK.mT                     # (N, Y): rows Q_C = W_Q g_C, K_B = W_K g_B
    A = beta * Q @ K.mT                              # A[C, B] = β K_Bᵀ Q_C
    if mask_self:
        N = A.shape[-1]
        A = A.masked_fill(torch.eye(N, dtype=torch.bool, device=A.device), float("-inf"))
    return Q, K, A


def et_energy(g: torch.Tensor, WQ: Sequence[torch.Tensor], WK: Sequence[torch.Tensor], Xi: torch.Tensor,
              beta: float, mask_self: bool = False) -> torch.Tensor:
    """``E = −(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC) − ½ Σ_A Σ_μ relu(g_Aᵀ Ξ)_μ²``; the inner sum
    runs over all B (the official code) or B ≠ C (``mask_self``)."""
    E = -0.5 * (torch.relu(g @ Xi) ** 2).sum((-2, -1))
    for wq, wk in zip(WQ, WK):
        _, _, A = _scores(g, wq, wk, beta, mask_self)
        E = E - torch.logsumexp(A, dim=-1).sum(-1) / beta
    return E


def et_grad_closed_form(g: torch.Tensor, WQ: Sequence[torch.Tensor], WK: Sequence[torch.Tensor],
                        Xi: torch.Tensor, beta: float, mask_self: bool = False,
                        key_role: bool = True) -> torch.Tensor:
    """``∂E/∂g_A`` from the paper's two-term formula (``flax_core.manual_grad``)::

        −∂E_ATT/∂g_A = Σ_h W_Qᵀ Σ_B softmax_B(β K_Bᵀ Q_A) K_B            (query role)
                     + Σ_h W_Kᵀ Σ_C softmax_B(β K_Bᵀ Q_C)[B=A] Q_C       (key role)
        −∂E_HN/∂g_A  = Ξ ReLU(Ξᵀ g_A)

    ``key_role=False`` drops the second term (what a standard attention layer would compute)."""
    out = -torch.relu(g @ Xi) @ Xi.mT
    for wq, wk in zip(WQ, WK):
        Q, K, A = _scores(g, wq, wk, beta, mask_self)
        P = torch.softmax(A, dim=-1)                 # P[C, B]: softmax over keys B for query C
        out = out - P @ K @ wq
        if key_role:
            out = out - P.mT @ Q @ wk
    return out


def layernorm_jacobians(x: torch.Tensor, ln) -> torch.Tensor:
    """Per-token Jacobians ``∂g_A/∂x_A`` (shape ``(N, D, D)``) of a row-wise map ``ln`` by
    ``torch.func.jacrev`` (tokens are processed independently, so one token at a time)."""
    rows = [torch.func.jacrev(lambda v: ln(v[None, :])[0])(x[a]) for a in range(x.shape[0])]
    return torch.stack(rows)


# ---- Yang, Huang, Wipf (2205.13891): tokens as rows ---------------------------------------------
def yhw_pair_energy(Y: torch.Tensor, Ws: torch.Tensor) -> torch.Tensor:
    """``Σ_{i<j} ρ(½‖W_s(yᵢ − yⱼ)‖²)``, ``ρ(z) = −exp(−z)``, by an explicit loop over pairs."""
    n = Y.shape[-2]
    V = Y @ Ws.mT                                    # rows (W_s yᵢ)ᵀ
    E = torch.zeros(Y.shape[:-2], dtype=Y.dtype, device=Y.device)
    for i in range(n):
        for j in range(i + 1, n):
            z = 0.5 * ((V[..., i, :] - V[..., j, :]) ** 2).sum(-1)
            E = E - torch.exp(-z)
    return E


def yhw_attention_step(Y: torch.Tensor, G: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1−α)Y + α softmax(Y G Yᵀ − ½ 1 diag(Y G Yᵀ)ᵀ) Y``: softmax attention with key-query
    matrix ``G``, value ``I``, residual ``1−α`` and the per-key bias ``−½‖W_s yⱼ‖²``."""
    S = Y @ G @ Y.mT
    bias = -0.5 * torch.diagonal(S, dim1=-2, dim2=-1)[..., None, :]
    return (1 - alpha) * Y + alpha * torch.softmax(S + bias, dim=-1) @ Y


def yhw_plain_attention_step(Y: torch.Tensor, Ws: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1−α)Y + α softmax(Y G Yᵀ) Y`` with ``G = W_sᵀW_s``, by ``F.scaled_dot_product_attention``
    (queries = keys = ``Y W_sᵀ``, values ``Y``, scale 1): the official forward pass (no key bias)."""
    Q = Y @ Ws.mT
    return (1 - alpha) * Y + alpha * F.scaled_dot_product_attention(Q, Q, Y, scale=1.0)


def yhw_heads_energy(Y: torch.Tensor, Ws: torch.Tensor) -> torch.Tensor:
    """``Σ_h Σ_{i<j} ρ(½‖W_s^h(yᵢ − yⱼ)‖²)`` for head weights ``Ws`` ``(H, p, d)``, by the pair loop."""
    return sum((yhw_pair_energy(Y, Ws[h]) for h in range(Ws.shape[0])), torch.zeros((), dtype=Y.dtype))


def _head_blocks(Ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``W_s`` (``d×d``, the heads' rows stacked) and its inverse."""
    H, p, d = Ws.shape
    W = Ws.reshape(d, d)
    return W, torch.linalg.inv(W)


def yhw_heads_mm_step(Y: torch.Tensor, Ws: torch.Tensor, alpha: float, shared: bool = False) -> torch.Tensor:
    """The multi-head MM step as a preconditioned gradient step in ``Y``:
    ``Y⁺ = Y − α Σ_h D_h⁻¹ ∇E₁(Y) W_s⁻¹ E_h W_s⁻ᵀ``, ``∇E₁`` by ``torch.func.grad`` of the pair energy (at
    the anchor it is ``∇_Y Q(Y|Y)``), ``D_h = diag(Σ_j γ^h_ij)``, ``γ^h_ij = exp(−½‖W_s^h(yᵢ − yⱼ)‖²)``,
    ``E_h`` the coordinate projector of head ``h``.  ``shared=True``: the single-head preconditioner
    ``(Σ_h D_h)⁻¹ ∇E₁ G⁻¹`` (``G = W_sᵀW_s``) for all heads instead (a wrong step, for controls)."""
    H, p, d = Ws.shape
    grad = torch.func.grad(lambda y: yhw_heads_energy(y, Ws).sum())(Y)
    W, Wi = _head_blocks(Ws)
    degs = []
    for h in range(H):
        V = Y @ Ws[h].mT
        gam = torch.exp(-0.5 * ((V[..., :, None, :] - V[..., None, :, :]) ** 2).sum(-1))
        degs.append(gam.sum(-1, keepdim=True))           # (…, n, 1): the diagonal of D_h
    if shared:
        return Y - alpha * (grad / sum(degs)) @ Wi @ Wi.mT
    upd = torch.zeros_like(Y)
    for h in range(H):
        Eh = torch.zeros(d, d, dtype=Y.dtype, device=Y.device)
        Eh[h * p:(h + 1) * p, h * p:(h + 1) * p] = torch.eye(p, dtype=Y.dtype, device=Y.device)
        upd = upd + (grad / degs[h]) @ Wi @ Eh @ Wi.mT
    return Y - alpha * upd


def yhw_heads_attention(Y: torch.Tensor, Ws: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1−α)Y + α Σ_h SDPA(Z_h, Z_h, Z_h; bias −½‖z_{h,j}‖²) U_h``, ``Z_h = Y W_s^hᵀ``, ``U_h`` the rows of
    head ``h`` of ``W_s⁻ᵀ``: multi-head attention with ``W_Q^h = W_K^h = W_V^h = W_s^h``, per-key bias and
    output projection ``W_s⁻¹`` (``F.scaled_dot_product_attention``, scale 1)."""
    H, p, d = Ws.shape
    _, Wi = _head_blocks(Ws)
    out = (1 - alpha) * Y
    for h in range(H):
        Z = Y @ Ws[h].mT
        bias = -0.5 * (Z * Z).sum(-1)[..., None, :].expand(*Z.shape[:-1], Z.shape[-2])
        out = out + alpha * F.scaled_dot_product_attention(Z, Z, Z, attn_mask=bias, scale=1.0) @ Wi[:, h * p:(h + 1) * p].mT
    return out


def yhw_ffn_energy(Y: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``½ tr(Y W Yᵀ) + ½‖Y − 1bᵀ‖² + ι_{≥0}(Y)`` (``b`` a column, ``inf`` when ``Y`` has a negative entry)."""
    E = 0.5 * torch.einsum("...id,de,...ie->...", Y, W, Y) + 0.5 * ((Y - b.mT) ** 2).sum((-2, -1))
    infeasible = (Y < 0).flatten(-2).any(-1)
    return torch.where(infeasible, torch.full_like(E, float("inf")), E)


def yhw_ffn_step(Y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, alpha: float,
                 bias_scale: Optional[float] = None) -> torch.Tensor:
    """``ReLU(Y((1−α)I − αW) + α 1bᵀ)``: the FFN as one proximal-gradient step (``bias_scale``
    overrides the ``α`` in front of ``1bᵀ``; the official code uses ``1``)."""
    d = W.shape[-1]
    I = torch.eye(d, dtype=Y.dtype, device=Y.device)
    c = alpha if bias_scale is None else bias_scale
    return torch.relu(Y @ ((1 - alpha) * I - alpha * W) + c * b.mT)
