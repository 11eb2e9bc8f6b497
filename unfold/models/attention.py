"""``MultiheadAttention``: a drop-in for ``nn.MultiheadAttention`` generated from a Hopfield CCCP step.

Parameter layout (loads an ``nn.MultiheadAttention`` state dict): ``in_proj_weight`` ``(3E, E)`` and
``in_proj_bias`` ``(3E,)`` stacking the query, key and value maps, ``out_proj`` an ``nn.Linear(E, E)``.
Head ``h`` owns rows ``h·p … (h+1)·p`` of each map (``p = E/H``) and columns ``h·p … (h+1)·p`` of
``out_proj.weight``.

What the layer is, exactly (tokens as rows; ``R`` the queries, ``Y`` the keys, ``V`` the values):

* **per head, for any weights**: a linear in-map ``Ξ_h = (R W_Q^hᵀ + 1 b_Q^hᵀ) W_K^h`` (one state row
  per query, in token space), one CCCP step on the modern Hopfield energy
  ``E_h(Ξ) = −(1/β) Σ_q lse_k(β ⟨ξ_q, y_k⟩; mask) + ½‖Ξ‖²`` whose stored patterns are the raw key
  tokens, ``Ξ⁺ = softmax_rows(β Ξ Yᵀ; mask) Y`` (``β = 1/√p``; so ``β Ξ Yᵀ`` are the head's scores,
  the key bias ``b_K`` only shifts each query's scores by a constant and cancels in the softmax),
  and a linear read-out ``(Ξ⁺ W_V^hᵀ + 1 b_V^hᵀ) W_O^hᵀ``; the layer adds the heads and ``1 b_Oᵀ``.
  The CCCP update is derived by :class:`~unfold.CCCPStep` from the energy (one family over the head
  axis), the in-map substituted symbolically and the code generated from the result, so chains are
  ordered by size: the ``E × E`` products ``W_K^hᵀ W_Q^h`` and ``W_O^h W_V^h`` are never formed.
  When the value tokens differ from the key tokens (``value is not key``), ``Y`` after the softmax is
  replaced by ``V``: the output still equals ``nn.MultiheadAttention``, but the retrieval is then not
  the CCCP step of ``E_h`` (:meth:`MultiheadAttention.cccp_holds` evaluates it).
* **the whole layer ``R ↦ output`` as a descent step on an energy of ``R``** is a different claim: its
  Jacobian must be symmetric, which needs the read-out tied to the score map,
  ``W_O^h W_V^h ∝ W_K^hᵀ W_Q^h`` (``E × E``, per head) among other things.
  :meth:`MultiheadAttention.tied_readout_gap` measures the distance; nothing assumes it.

Masks follow ``nn.MultiheadAttention``: ``attn_mask`` ``(L, S)`` or ``(N·H, L, S)``, boolean (``True``
= *not* allowed, PyTorch's convention for this module) or additive; ``key_padding_mask`` ``(N, S)``
(``True`` = padding); ``is_causal`` without a mask uses the built-in causal mask (no ``L × S`` input).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional

import torch
from torch import nn

from ..codegen.generate import GeneratedFunction, Output, generate
from ..errors import InputError, ShapeMismatchError
from ..steps.cccp import CCCPStep
from ..symbolic.axes import axis, sum_over
from ..symbolic.energy import Energy
from ..symbolic.masks import causal, mask as declare_mask
from ..symbolic.ops import fro2, lse, ones
from ..symbolic.symbols import dims, param, scalar, state

__all__ = ["MultiheadAttention", "MSSA", "mha_layer_function", "mssa"]

Tensor = torch.Tensor


@lru_cache(maxsize=None)
def mha_layer_function(masked: str, bias: bool) -> GeneratedFunction:
    """The generated multi-head layer for a mask kind (``"none"``, ``"causal"``, ``"input"``).

    Inputs ``(R, Y, V, WQ, WK, WV, WO, M?, bq?, bv?, bo?, beta)``; shapes ``R: (…, n, E)``,
    ``Y, V: (…, m, E)``, ``WQ, WK, WV: (H, p, E)``, ``WO: (H, E, p)``, ``M: (…, H, n, m)`` (boolean
    True = allowed, or additive), ``bq, bv: (H, 1, p)``, ``bo: (1, E)``."""
    n, m, E, p, H = dims("n m E p H")
    h = axis("h", H)
    R, Y, V = param("R", n, E), param("Y", m, E), param("V", m, E)
    WQ, WK, WV = (param(k, p, E, over=h) for k in ("WQ", "WK", "WV"))
    WO = param("WO", E, p, over=h)
    Xi = state("Xi", n, E, over=h)
    beta = scalar("beta", positive=True)
    mk = {"none": None, "causal": causal, "input": declare_mask("M", n, m, over=h)}[masked]
    convex = Energy(sum_over(h, fro2(Xi) / 2), name="memory")
    concave = Energy(-sum_over(h, lse(beta * Xi * Y.T, axis=1, mask=mk)) / beta, name="retrieval")
    rule = CCCPStep(convex, concave, wrt=Xi).update_rule()  # softmax_rows(β Ξ Yᵀ) Y, checked
    rule = _values_for_keys(rule, Y, V)
    q = R * WQ.T
    extra: list[Any] = []
    if bias:
        bq, bv, bo = param("bq", 1, p, over=h), param("bv", 1, p, over=h), param("bo", 1, E)
        q = q + ones(n, 1) * bq
        extra = [bq, bv, bo]
    head = rule.xreplace({Xi: q * WK}) * WV.T
    if bias:
        head = head + ones(n, 1) * extra[1]
    out = sum_over(h, head * WO.T)
    if bias:
        out = out + ones(n, 1) * extra[2]
    inputs = [R, Y, V, WQ, WK, WV, WO] + ([mk] if masked == "input" else []) + extra + [beta]
    return generate(f"mha_{masked}", inputs, [Output("matrix", out)])


def _values_for_keys(rule: Any, Y: Any, V: Any) -> Any:
    """``A Y → A V``: the retrieval's trailing stored patterns replaced by the value tokens."""
    from sympy.matrices.expressions import MatMul

    if not (isinstance(rule, MatMul) and rule.args[-1] == Y):
        raise ShapeMismatchError(f"unexpected form of the Hopfield CCCP update: {rule}")
    return MatMul(*rule.args[:-1], V)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s layout and forward (no dropout, ``kdim = vdim = embed_dim``),
    computed by code generated from a per-head Hopfield CCCP step (see the module docstring)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ShapeMismatchError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if dropout != 0.0:
            raise InputError("MultiheadAttention: dropout is not supported (the layer is a deterministic step)")
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        self.head_dim = embed_dim // num_heads
        kw = {"device": device, "dtype": dtype}
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **kw))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **kw)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **kw)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    # ---- parameters per head ---------------------------------------------------------------------
    def head_weights(self) -> dict[str, Tensor]:
        """``WQ, WK, WV: (H, p, E)``, ``WO: (H, E, p)`` and the biases, as views of the parameters."""
        E, H, p = self.embed_dim, self.num_heads, self.head_dim
        Wq, Wk, Wv = self.in_proj_weight.view(3, H, p, E).unbind(0)
        out = {"WQ": Wq, "WK": Wk, "WV": Wv, "WO": self.out_proj.weight.view(E, H, p).permute(1, 0, 2)}
        if self.in_proj_bias is not None:
            bq, _bk, bv = self.in_proj_bias.view(3, H, 1, p).unbind(0)
            out.update(bq=bq, bv=bv, bo=self.out_proj.bias.view(1, E))
        return out

    # ---- forward ---------------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = False, attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Tensor, None]:
        """``(attn_output, None)``: the attention weights are not returned (``need_weights`` is
        accepted for signature compatibility)."""
        if not (isinstance(query, Tensor) and isinstance(key, Tensor) and isinstance(value, Tensor)):
            raise InputError("MultiheadAttention: query, key and value must be tensors")
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise InputError(
                f"MultiheadAttention: query/key/value must all be 2-d (unbatched) or 3-d, got "
                f"{query.dim()}, {key.dim()}, {value.dim()}"
            )
        batched = query.dim() == 3
        if batched and not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        R = query if batched else query[None]
        Y = key if batched else key[None]
        V = value if batched else value[None]
        mask = self._mask(R, Y, key_padding_mask if batched or key_padding_mask is None else key_padding_mask[None],
                          attn_mask, is_causal)
        kind = "none" if mask is None else ("causal" if isinstance(mask, str) else "input")
        fn = mha_layer_function(kind, self.in_proj_bias is not None)
        w = self.head_weights()
        args: dict[str, Any] = dict(R=R, Y=Y, V=V, WQ=w["WQ"], WK=w["WK"], WV=w["WV"], WO=w["WO"],
                                    beta=1.0 / math.sqrt(self.head_dim))
        if kind == "input":
            args["M"] = mask
        if self.in_proj_bias is not None:
            args.update(bq=w["bq"], bv=w["bv"], bo=w["bo"])
        out = fn(*(args[name] for name in fn.input_names))
        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, None

    def _mask(self, R: Tensor, Y: Tensor, key_padding_mask: Optional[Tensor], attn_mask: Optional[Tensor],
              is_causal: bool) -> Any:
        """One mask ``(N|1, H, L, S)`` (boolean True = allowed, or additive), ``"causal"`` or None."""
        N, L, S, H = R.shape[0], R.shape[-2], Y.shape[-2], self.num_heads
        if attn_mask is None and key_padding_mask is None:
            return "causal" if is_causal else None
        add = torch.zeros((), dtype=R.dtype, device=R.device)
        if attn_mask is not None:
            if attn_mask.dim() == 2:
                if tuple(attn_mask.shape) != (L, S):
                    raise ShapeMismatchError(f"attn_mask has shape {tuple(attn_mask.shape)}, expected ({L}, {S})")
                am = attn_mask[None, None]
            elif attn_mask.dim() == 3 and tuple(attn_mask.shape) == (N * H, L, S):
                am = attn_mask.view(N, H, L, S)
            else:
                raise ShapeMismatchError(
                    f"attn_mask has shape {tuple(attn_mask.shape)}, expected ({L}, {S}) or ({N * H}, {L}, {S})"
                )
            add = add + _additive(am, R.dtype, "attn_mask")
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise ShapeMismatchError(f"key_padding_mask has shape {tuple(key_padding_mask.shape)}, expected ({N}, {S})")
            add = add + _additive(key_padding_mask[:, None, None, :], R.dtype, "key_padding_mask")
        return add.expand(add.shape[0] if add.dim() == 4 else 1, H, L, S)

    # ---- claims, evaluated -------------------------------------------------------------------------
    @staticmethod
    def cccp_holds(key: Tensor, value: Tensor) -> bool:
        """True when each head's retrieval is the CCCP step of its Hopfield energy (value tokens equal
        the key tokens, the stored patterns)."""
        return key is value or (key.shape == value.shape and bool(torch.equal(key, value)))

    @torch.no_grad()
    def tied_readout_gap(self) -> Tensor:
        """Per head, ``min_c ‖W_O W_V − c W_Kᵀ W_Q‖_F / ‖W_O W_V‖_F``: 0 when the read-out is tied to
        the score map (a necessary condition for the whole layer to be a gradient step on an energy of
        its input); the ``E × E`` products are formed here, for the check only."""
        w = self.head_weights()
        A = w["WO"] @ w["WV"]
        B = w["WK"].mT @ w["WQ"]
        c = (A * B).sum((-2, -1)) / (B * B).sum((-2, -1)).clamp_min(torch.finfo(B.dtype).tiny)
        return (A - c[:, None, None] * B).flatten(1).norm(dim=1) / A.flatten(1).norm(dim=1)


def _additive(m: Tensor, dtype: torch.dtype, name: str) -> Tensor:
    """nn.MultiheadAttention's mask convention as an additive mask: boolean True = not allowed."""
    if m.dtype == torch.bool:
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
    if not m.is_floating_point():
        raise InputError(f"{name} must be boolean or floating point, got {m.dtype}")
    return m.to(dtype)


# ---- CRATE's multi-head subspace self-attention ---------------------------------------------------
def mssa(Z: Tensor, U: Tensor, eps: float) -> Tensor:
    """CRATE's ``MSSA(Z | U_[K]) = (p/(Nε²)) Σ_k U_k (U_kᵀZ) softmax((U_kᵀZ)ᵀ(U_kᵀZ))`` (tokens as
    columns, ``Z: (..., d, N)``, ``U: (K, d, p)``) by the generated multi-head layer with tied maps:
    per head, the in-map ``U_kᵀ``, one CCCP step on the Hopfield energy whose stored patterns are the
    tokens (values = keys, so the retrieval *is* the CCCP step), and the read-out ``U_k``."""
    if U.dim() != 3 or Z.shape[-2] != U.shape[-2]:
        raise ShapeMismatchError(f"mssa: U must be (K, d, p) with d = {Z.shape[-2]}, got {tuple(U.shape)}")
    fn = mha_layer_function("none", False)
    R, Ut = Z.mT, U.mT
    args = dict(R=R, Y=R, V=R, WQ=Ut, WK=Ut, WV=Ut, WO=U, beta=1.0)
    out = fn(*(args[k] for k in fn.input_names))
    return U.shape[-1] / (Z.shape[-1] * eps ** 2) * out.mT


class MSSA(nn.Module):
    """CRATE's compression block ``Z ↦ (1 − κγ) Z + κγ MSSA(Z | U_[K])``, ``γ = p/(Nε²)`` (paper eq.
    10; an approximation of ``Z − κ∇R^c(Z)``, see the CRATE catalogue entry), with ``U`` a ``(K, d, p)``
    parameter and the attention generated (:func:`mssa`)."""

    def __init__(self, d: int, p: int, heads: int, eps: float = 0.5, kappa: float = 1.0) -> None:
        super().__init__()
        self.U = nn.Parameter(torch.randn(heads, d, p) / math.sqrt(d))
        self.eps, self.kappa = float(eps), float(kappa)

    def forward(self, Z: Tensor) -> Tensor:
        g = self.U.shape[-1] / (Z.shape[-1] * self.eps ** 2)
        return (1 - self.kappa * g) * Z + self.kappa * g * mssa(Z, self.U, self.eps)
