"""Independent references for the test-time-regression entry, written from the papers in plain torch.

Paper orientation: the recurrent state is ``S ∈ R^{d_v×d_k}`` and the read-out is inclusive,
``o_t = S_t q_t`` (the state after writing token ``t``).  Sequences are rows: ``K, Q`` are
``(…, T, d_k)``, ``V`` is ``(…, T, d_v)``, per-token scalars ``(…, T)``.  Nothing here imports
unfold's energy code.

* linear attention with decay (RetNet/Mamba2 style, Wang–Shi–Fox arXiv 2501.12352 §2):
  ``S_t = α_t S_{t−1} + v_t k_tᵀ``; parallel form ``O = (QKᵀ ⊙ G ⊙ M_incl) V``, ``G_ts = Π_{r=s+1..t} α_r``,
  and the chunkwise-parallel form (RetNet/GLA/Mamba2's chunked algorithm) that carries the state across chunks;
* DeltaNet (Yang et al., arXiv 2406.06484): ``S_t = S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ``, and its
  chunkwise WY form (the paper's parallel algorithm);
* gated DeltaNet (Yang, Kautz, Hatamizadeh, arXiv 2412.06464): ``S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) +
  β_t v_t k_tᵀ`` and its gated chunk form;
* Longhorn (Liu et al., arXiv 2407.14207): the closed-form implicit step
  ``S_t = S_{t−1}(I − ε_t k_t k_tᵀ) + ε_t v_t k_tᵀ``, ``ε_t = β_t/(1 + β_t‖k_t‖²)``, and the released
  kernel's diagonal form ``S_t[i,j] = (1 − ε_t k_{t,j}²) S_{t−1}[i,j] + ε_t v_{t,i} k_{t,j}``;
* softmax attention read as Nadaraya–Watson regression: ``o_t = Σ_i κ(q_t,k_i) v_i / Σ_i κ(q_t,k_i)``,
  ``κ(q,k) = exp(β qᵀk)`` (``F.scaled_dot_product_attention``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "decayed_linear_attention", "decayed_linear_attention_parallel", "decayed_linear_attention_chunkwise", "delta_rule", "delta_rule_chunkwise",
    "gated_delta_rule", "gated_delta_rule_chunkwise", "longhorn_closed_form", "longhorn_diagonal_kernel",
    "nadaraya_watson", "mesa_recursive",
]

Tensor = torch.Tensor


def _outer(v: Tensor, k: Tensor) -> Tensor:
    return v[..., :, None] * k[..., None, :]


def _zeros_state(K: Tensor, V: Tensor) -> Tensor:
    return torch.zeros(*K.shape[:-2], V.shape[-1], K.shape[-1], dtype=K.dtype)


def decayed_linear_attention(Q: Tensor, K: Tensor, V: Tensor, alpha: Tensor,
                             S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``S_t = α_t S_{t−1} + v_t k_tᵀ``, ``o_t = S_t q_t``: (outputs ``(…, T, d_v)``, final state)."""
    S = _zeros_state(K, V) if S0 is None else S0
    out = []
    for t in range(K.shape[-2]):
        S = alpha[..., t, None, None] * S + _outer(V[..., t, :], K[..., t, :])
        out.append((S @ Q[..., t, :, None])[..., 0])
    return torch.stack(out, dim=-2), S


def decayed_linear_attention_parallel(Q: Tensor, K: Tensor, V: Tensor, alpha: Tensor) -> Tensor:
    """``O = (QKᵀ ⊙ G ⊙ M_incl) V`` with ``G_ts = exp(c_t − c_s)``, ``c_t = Σ_{r≤t} log α_r`` (``S_0 = 0``)."""
    c = torch.cumsum(torch.log(alpha), dim=-1)
    T = K.shape[-2]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    G = torch.exp((c[..., :, None] - c[..., None, :]).masked_fill(~mask, float("-inf")))
    return ((Q @ K.mT) * G) @ V


def decayed_linear_attention_chunkwise(Q: Tensor, K: Tensor, V: Tensor, alpha: Tensor, chunk: int,
                                       S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """The chunkwise-parallel form of decayed linear attention, chunk by chunk (the last may be shorter).

    Inside a chunk with rows ``K, V, Q``, log-decays ``g = log α``, ``c_r = Σ_{s≤r} g_s`` (inclusive,
    within the chunk), ``e = exp(c)``, ``Γ_rs = exp(c_r − c_s)`` and incoming state ``S0``::

        O   = Diag(e) Q S0ᵀ + (QKᵀ ⊙ Γ ⊙ M_incl) V          (rows o_r = S_r q_r)
        S_C = e_C S0 + Vᵀ Diag(e_C / e) K

    (unrolling ``S_r = e_r S0 + Σ_{s≤r} (e_r/e_s) v_s k_sᵀ``): the inter-chunk part is one matrix
    product with the carried state, the intra-chunk part the masked parallel form.
    """
    S = _zeros_state(K, V) if S0 is None else S0
    outs = []
    for s in range(0, K.shape[-2], chunk):
        q, k, v = Q[..., s:s + chunk, :], K[..., s:s + chunk, :], V[..., s:s + chunk, :]
        c = torch.cumsum(torch.log(alpha[..., s:s + chunk]), dim=-1)
        C = k.shape[-2]
        incl = torch.ones(C, C, dtype=torch.bool).tril()
        Gam = torch.exp((c[..., :, None] - c[..., None, :]).masked_fill(~incl, float("-inf")))
        e = torch.exp(c)
        outs.append(e[..., :, None] * (q @ S.mT) + ((q @ k.mT) * Gam) @ v)
        S = e[..., -1, None, None] * S + v.mT @ (torch.exp(c[..., -1:] - c)[..., :, None] * k)
    return torch.cat(outs, dim=-2), S


def delta_rule(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor, S0: Optional[Tensor] = None,
               alpha: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ`` (``α ≡ 1``: DeltaNet), ``o_t = S_t q_t``."""
    S = _zeros_state(K, V) if S0 is None else S0
    d_k = K.shape[-1]
    eye = torch.eye(d_k, dtype=K.dtype)
    out = []
    for t in range(K.shape[-2]):
        k, v, b = K[..., t, :], V[..., t, :], beta[..., t, None, None]
        a = 1.0 if alpha is None else alpha[..., t, None, None]
        S = a * S @ (eye - b * _outer(k, k)) + b * _outer(v, k)
        out.append((S @ Q[..., t, :, None])[..., 0])
    return torch.stack(out, dim=-2), S


def gated_delta_rule(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor, alpha: Tensor,
                     S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Gated DeltaNet: :func:`delta_rule` with the decay ``α_t``."""
    return delta_rule(Q, K, V, beta, S0, alpha=alpha)


def _chunk(Q: Tensor, K: Tensor, V: Tensor, b: Tensor, S0: Tensor, g: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """One chunk of the (gated) WY form; ``g`` is the log-decay (None: ungated)."""
    C = K.shape[-2]
    KK = K @ K.mT
    if g is None:
        Gam = torch.ones(C, C, dtype=K.dtype)
        e = torch.ones(*K.shape[:-1], dtype=K.dtype)
    else:
        c = torch.cumsum(g, dim=-1)
        Gam = torch.exp(c[..., :, None] - c[..., None, :])
        e = torch.exp(c)
    A = torch.tril(b[..., :, None] * (KK * Gam), diagonal=-1)
    eye = torch.eye(C, dtype=K.dtype)
    Tm = torch.linalg.solve_triangular(eye + A, torch.diag_embed(b), upper=False, unitriangular=True)
    W = Tm @ (e[..., :, None] * K)
    U = Tm @ V
    Ut = U - W @ S0.mT
    incl = torch.ones(C, C, dtype=torch.bool).tril()
    O = e[..., :, None] * (Q @ S0.mT) + ((Q @ K.mT) * Gam * incl) @ Ut
    eC = e[..., -1:]
    S_end = eC[..., None] * S0 + Ut.mT @ ((eC / e)[..., :, None] * K)
    return O, S_end


def delta_rule_chunkwise(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor, chunk: int,
                         S0: Optional[Tensor] = None, alpha: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """The chunkwise-parallel (WY) form of DeltaNet, chunk by chunk (the last chunk may be shorter).

    Inside a chunk with rows ``K, V, Q``, steps ``b`` and incoming state ``S0``::

        A = strictly-lower(Diag(b) KKᵀ),  T = (I + A)⁻¹ Diag(b),  W = T K,  U = T V,  Ũ = U − W S0ᵀ
        O = Q S0ᵀ + (QKᵀ ⊙ M_incl) Ũ,     S_C = S0 + Ũᵀ K

    (gated, with ``Γ_rs = exp(c_r − c_s)``, ``e = exp(c)``: ``A = strictly-lower(Diag(b)(KKᵀ ⊙ Γ))``,
    ``W = T Diag(e) K``, ``O = Diag(e) Q S0ᵀ + (QKᵀ ⊙ Γ ⊙ M_incl) Ũ``, ``S_C = e_C S0 + Ũᵀ Diag(e_C/e) K``).
    """
    S = _zeros_state(K, V) if S0 is None else S0
    g = None if alpha is None else torch.log(alpha)
    outs = []
    for s in range(0, K.shape[-2], chunk):
        sl = slice(s, s + chunk)
        O, S = _chunk(Q[..., sl, :], K[..., sl, :], V[..., sl, :], beta[..., sl], S,
                      None if g is None else g[..., sl])
        outs.append(O)
    return torch.cat(outs, dim=-2), S


def gated_delta_rule_chunkwise(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor, alpha: Tensor, chunk: int,
                               S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Gated DeltaNet's chunk form (see :func:`delta_rule_chunkwise`)."""
    return delta_rule_chunkwise(Q, K, V, beta, chunk, S0, alpha=alpha)


def longhorn_closed_form(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor,
                         S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Longhorn's implicit step in closed form: DeltaNet with ``β_t`` replaced by ``ε_t = β_t/(1 + β_t‖k_t‖²)``."""
    eps = beta / (1 + beta * (K * K).sum(-1))
    return delta_rule(Q, K, V, eps, S0)


def longhorn_diagonal_kernel(Q: Tensor, K: Tensor, V: Tensor, beta: Tensor,
                             S0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """The released kernel's update, which keeps only the diagonal of ``k kᵀ``::

        S_t[i,j] = (1 − ε_{t,i} k_{t,j}²) S_{t−1}[i,j] + ε_{t,i} v_{t,i} k_{t,j},    ε_{t,i} = β_{t,i}/(1 + β_{t,i}‖k_t‖²)

    ``beta`` is one step per token ``(…, T)`` or, as in the released kernel (``dt`` per channel), one per
    token and value channel ``(…, T, d_v)``.  (``D ⊙ x`` skip term left out: it is outside the state update.)
    """
    S = _zeros_state(K, V) if S0 is None else S0
    per_channel = beta.dim() == K.dim()
    sq = (K * K).sum(-1)
    eps = beta / (1 + beta * (sq[..., None] if per_channel else sq))
    out = []
    for t in range(K.shape[-2]):
        k, v = K[..., t, :], V[..., t, :]
        e = eps[..., t, :, None] if per_channel else eps[..., t, None, None]
        S = (1 - e * (k * k)[..., None, :]) * S + e * _outer(v, k)
        out.append((S @ Q[..., t, :, None])[..., 0])
    return torch.stack(out, dim=-2), S


def nadaraya_watson(Q: Tensor, K: Tensor, V: Tensor, beta: float, causal: bool = False) -> Tensor:
    """Softmax attention ``SDPA(Q, K, V, scale=β)``: the kernel-weighted mean ``Σκv/Σκ`` of the values."""
    return F.scaled_dot_product_attention(Q, K, V, scale=beta, is_causal=causal)


def mesa_recursive(Q: Tensor, K: Tensor, V: Tensor, lam: float) -> Tensor:
    """The mesa layer (von Oswald et al., arXiv 2309.05858) by its recursion: ``P_0 = I/λ``,
    ``P_t = P_{t−1} − P_{t−1}k_tk_tᵀP_{t−1}/(1 + k_tᵀP_{t−1}k_t)`` (Sherman–Morrison for ``(Σ kkᵀ + λI)⁻¹``),
    ``H_t = H_{t−1} + v_tk_tᵀ``, ``o_t = H_t P_t q_t``."""
    d_k = K.shape[-1]
    P = torch.eye(d_k, dtype=K.dtype).expand(*K.shape[:-2], d_k, d_k) / lam
    Hm = _zeros_state(K, V)
    out = []
    for t in range(K.shape[-2]):
        k, v = K[..., t, :, None], V[..., t, :, None]
        Pk = P @ k
        P = P - Pk @ Pk.mT / (1 + k.mT @ Pk)
        Hm = Hm + v @ k.mT
        out.append((Hm @ P @ Q[..., t, :, None])[..., 0])
    return torch.stack(out, dim=-2)
