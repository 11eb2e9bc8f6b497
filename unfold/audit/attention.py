"""Auditing trained ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` stacks against the
modern-Hopfield reading of attention (Ramsauer et al., arXiv 2008.02217).

Mapping, per head ``h`` with head width ``k`` and ``β = 1/√k`` (the attention's own scale), for
the attention input ``Y`` (tokens as columns): queries ``Ξ = W_Q^h Y + b_Q``, stored patterns
``X = W_K^h Y + b_K``.  The claim: the head is one CCCP step (the generated
:class:`~unfold.steps.GradientStep` with step 1) on the Hopfield energy of the queries,

    E(Ξ) = Σ_j −(1/β) lse(β Xᵀξ_j) + ½‖Ξ‖²,      Ξ⁺ = X softmax(β XᵀΞ),

which holds when the values are the stored patterns (``W_V^h = W_K^h``, ``b_V = b_K``); the
head's output (before the output projection) ``V softmax(β XᵀΞ)`` is compared with ``Ξ⁺``.  A
second assumption, needed to read self-attention as the gradient of one energy of the tokens, is
the symmetry of ``W_Q^hᵀ W_K^h``.  Both are measured, per head, as relative gaps.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence, Union

import torch
from torch import nn

from ..energies import builtin_energy
from ..errors import InputError, ShapeMismatchError
from ..steps import GradientStep
from .core import AuditReport, Gap, LayerAudit, audit_step, relative_asymmetry

__all__ = ["audit_attention", "audit_encoder", "hopfield_step"]

Tensor = torch.Tensor
EXACT_GAP = 1e-6


@lru_cache(maxsize=1)
def hopfield_step() -> GradientStep:
    """The generated CCCP step ``Ξ ← X softmax(β XᵀΞ)`` on the built-in ``hopfield_tokens`` energy."""
    return GradientStep(builtin_energy("hopfield_tokens"), wrt="Xi", step=1.0)


def _projections(mha: nn.MultiheadAttention) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    d = mha.embed_dim
    if mha._qkv_same_embed_dim:
        Wq, Wk, Wv = mha.in_proj_weight.split(d, dim=0)
    else:
        Wq, Wk, Wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    if mha.in_proj_bias is not None:
        bq, bk, bv = mha.in_proj_bias.split(d, dim=0)
    else:
        bq = bk = bv = torch.zeros(d, dtype=Wq.dtype, device=Wq.device)
    return Wq, Wk, Wv, bq, bk, bv


def audit_attention(mha: nn.MultiheadAttention, x: Tensor, name: str = "attention") -> LayerAudit:
    """Audit one self-attention module at input ``x`` (its own layout: ``(B, n, d)`` when
    ``batch_first`` else ``(n, B, d)``; a 2-D ``(n, d)`` input is one sequence)."""
    if not isinstance(mha, nn.MultiheadAttention):
        raise InputError(f"audit_attention: expected nn.MultiheadAttention, got {type(mha).__name__}")
    if not isinstance(x, Tensor):
        raise InputError(f"audit_attention: the input must be a tensor, got {type(x).__name__}")
    if x.dim() == 2:
        x = x.unsqueeze(0 if mha.batch_first else 1)
    if x.dim() != 3 or x.shape[-1] != mha.embed_dim:
        raise ShapeMismatchError(
            f"audit_attention({name}): input of shape {tuple(x.shape)} does not fit embed_dim={mha.embed_dim}")
    if not mha.batch_first:
        x = x.transpose(0, 1)
    H, d = mha.num_heads, mha.embed_dim
    k = d // H
    Wq, Wk, Wv, bq, bk, bv = (t.detach() for t in _projections(mha))

    def heads(W: Tensor, b: Tensor) -> Tensor:            # (B, H, k, n): head h's projection, tokens as columns
        return (x @ W.T + b).unflatten(-1, (H, k)).permute(0, 2, 3, 1)

    Q, K, V = heads(Wq, bq), heads(Wk, bk), heads(Wv, bv)
    beta = k ** -0.5
    out = V @ torch.softmax(beta * K.mT @ Q, dim=-2)      # the head outputs before the output projection
    Wq_h, Wk_h, Wv_h = (W.unflatten(0, (H, k)) for W in (Wq, Wk, Wv))
    value_gap = float(((Wv_h - Wk_h).pow(2).sum((-2, -1)).sqrt() / Wk_h.pow(2).sum((-2, -1)).sqrt()).max())
    gaps = [
        Gap("W_V = W_K per head (values are the stored patterns): max_h ‖W_V − W_K‖/‖W_K‖", value_gap, EXACT_GAP),
        Gap("W_QᵀW_K symmetric per head: max_h ‖M − Mᵀ‖/‖M‖", relative_asymmetry(Wq_h.mT @ Wk_h), EXACT_GAP),
    ]
    return audit_step(name, hopfield_step(), Q, out, {"X": K, "beta": beta}, gaps, energy_name="Hopfield")


def audit_encoder(layers: Union[nn.TransformerEncoder, Sequence[nn.Module]], x: Tensor,
                  model: str = "transformer encoder") -> AuditReport:
    """Audit the self-attention of every ``nn.TransformerEncoderLayer`` of a stack at input ``x``
    (the layers' own layout), propagating ``x`` through the layers."""
    mods = list(layers.layers) if isinstance(layers, nn.TransformerEncoder) else list(layers)
    if not mods:
        raise InputError("audit_encoder: no layers")
    report = AuditReport(model)
    with torch.no_grad():
        for i, layer in enumerate(mods):
            if isinstance(layer, nn.MultiheadAttention):
                report.layers.append(audit_attention(layer, x, f"layer {i} attention"))
                x = layer(x, x, x, need_weights=False)[0]
                continue
            if not isinstance(layer, nn.TransformerEncoderLayer):
                raise InputError(f"audit_encoder: layer {i} is {type(layer).__name__}, expected "
                                 "nn.TransformerEncoderLayer or nn.MultiheadAttention")
            a = layer.norm1(x) if layer.norm_first else x
            report.layers.append(audit_attention(layer.self_attn, a, f"layer {i} self_attn"))
            x = layer(x)
    return report


