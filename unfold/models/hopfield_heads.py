r"""The multi-head projected Hopfield layer (Ramsauer et al., arXiv 2008.02217, and the ``Hopfield``
module of ``ml-jku/hopfield-layers``) generated from a per-head CCCP step on a head axis.

Tokens are rows: ``R`` the state (query) tokens ``(n, E)``, ``Y`` the stored (key) tokens and ``V`` the
value tokens ``(m, E)``.  Per head ``h`` (head dim ``p``, inverse temperature ``β_h > 0``)::

    Ξ⁰_h = R W_Q^hᵀ + 1 b_Q^hᵀ,   K_h = Y W_K^hᵀ + 1 b_K^hᵀ,   V_h = V W_V^hᵀ + 1 b_V^hᵀ
    Ξ^{t+1}_h = softmax_rows(β_h Ξ^t_h K_hᵀ) K_h                         t = 0 … k−1
    out = Σ_h softmax_rows(β_h Ξ^k_h K_hᵀ) V_h W_O^hᵀ + 1 b_Oᵀ

Each state update is one CCCP step on the head's modern Hopfield energy with the projected keys as
stored patterns, ``E_h(Ξ) = −(1/β_h) Σ_q lse_k(β_h ⟨ξ_q, k_k⟩) + ½‖Ξ‖²`` (concave lse part linearised,
``Ξ⁺ = softmax(β ΞKᵀ)K``), so ``E_h`` does not increase along the ``k`` steps.  ``update_steps_max = k``
is hflayers' count: ``k`` state updates and a ``(k+1)``-th retrieval whose result is read out through
``V_h`` instead of ``K_h`` — ``k + 1`` association (softmax) evaluations; when ``V_h = K_h`` the layer is
``k + 1`` CCCP steps followed by ``W_O``.  hflayers also stops every head early once its association
changes by less than ``update_steps_eps`` (Frobenius norm, largest over the batch); this layer runs
exactly ``k`` steps (the ``update_steps_eps → 0`` limit).

The CCCP step is derived by :class:`~unfold.CCCPStep` from the energy over the head axis (per-head ``β``
enters as ``exp(log β_h)``, a ``1×1`` parameter over the axis, so the concave part is concave for any
value); the read-out is the same rule with the trailing stored patterns replaced by the values, code
generated (``F.scaled_dot_product_attention``), heads a tensor dimension.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional

import sympy as sp
import torch
from torch import nn

from ..codegen.generate import GeneratedFunction, Output, generate
from ..errors import InputError, ShapeMismatchError
from ..steps.cccp import CCCPStep
from ..symbolic.axes import axis, sum_over
from ..symbolic.energy import Energy
from ..symbolic.ops import as_scalar, fro2, lse, ones
from ..symbolic.symbols import dims, param, state
from .attention import _values_for_keys

__all__ = ["HopfieldHeads", "head_cccp_step", "head_readout_function"]

Tensor = torch.Tensor


def _syms() -> tuple[Any, ...]:
    n, m, p, E, H = dims("n m p E H")
    h = axis("h", H)
    return (n, m, p, E, h, state("Xi", n, p, over=h), param("K", m, p, over=h), param("log_beta", 1, 1, over=h))


def _energy_parts() -> tuple[Energy, Energy]:
    n, m, p, E, h, Xi, K, log_beta = _syms()
    beta = sp.exp(as_scalar(log_beta))
    convex = Energy(sum_over(h, fro2(Xi) / 2), name="memory")
    concave = Energy(-sum_over(h, lse(beta * Xi * K.T, axis=1) / beta), name="retrieval")
    return convex, concave


@lru_cache(maxsize=None)
def head_cccp_step() -> CCCPStep:
    """One CCCP step per head, all heads at once: ``Ξ_h⁺ = softmax_rows(β_h Ξ_h K_hᵀ) K_h`` on
    ``Σ_h E_h(Ξ_h)``; inputs ``Xi: (…, H, n, p)``, ``K: (…, H, m, p)``, ``log_beta: (H, 1, 1)``."""
    convex, concave = _energy_parts()
    return CCCPStep(convex, concave, wrt="Xi")


@lru_cache(maxsize=None)
def head_readout_function(bias: bool) -> GeneratedFunction:
    """The last retrieval read out through the values and the output map,
    ``Σ_h softmax_rows(β_h Ξ_h K_hᵀ) V_h W_O^hᵀ (+ 1 b_Oᵀ)``; inputs ``(Xi, K, V, log_beta, WO[, bo])``
    with ``V: (…, H, m, p)``, ``WO: (H, E, p)``, ``bo: (1, E)``."""
    n, m, p, E, h, Xi, K, log_beta = _syms()
    V, WO = param("V", m, p, over=h), param("WO", E, p, over=h)
    rule = _values_for_keys(head_cccp_step().update_rule(), K, V)
    out = sum_over(h, rule * WO.T)
    inputs = [Xi, K, V, log_beta, WO]
    if bias:
        bo = param("bo", 1, E)
        out = out + ones(n, 1) * bo
        inputs.append(bo)
    return generate("hopfield_heads_readout", inputs, [Output("matrix", out)])


class HopfieldHeads(nn.Module):
    """hflayers' multi-head projected Hopfield layer (module docstring): ``H`` heads of dim ``p`` on
    width ``E`` tokens, per-head ``β`` (``beta``: a number for all heads or ``H`` numbers; default
    ``1/√p``), ``update_steps_max = k ≥ 0`` (``k`` CCCP steps, then the value read-out).  Parameters
    ``WQ, WK, WV: (H, p, E)``, ``WO: (H, E, p)`` and biases ``bq, bk, bv: (H, 1, p)``, ``bo: (1, E)``.
    ``forward(R, Y, V=None)``: ``R (…, n, E)``, ``Y, V (…, m, E)`` (``V`` defaults to ``Y``)."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: Optional[int] = None, update_steps_max: int = 0,
                 beta: Any = None, bias: bool = True, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(update_steps_max, int) or update_steps_max < 0:
            raise InputError(f"update_steps_max must be an int ≥ 0 (k CCCP steps), got {update_steps_max!r}; "
                             "None (iterate to convergence) is not supported")
        p = head_dim if head_dim is not None else embed_dim // num_heads
        if p < 1:
            raise ShapeMismatchError(f"head_dim {p} < 1 (embed_dim {embed_dim}, num_heads {num_heads})")
        b = torch.full((num_heads,), 1 / math.sqrt(p)) if beta is None else torch.as_tensor(beta, dtype=torch.float32)
        b = b.expand(num_heads) if b.dim() == 0 else b
        if b.shape != (num_heads,) or not bool((b > 0).all()):
            raise InputError(f"beta must be one positive number or {num_heads} positive numbers (one per head), got {beta!r}")
        self.embed_dim, self.num_heads, self.head_dim, self.update_steps_max = embed_dim, num_heads, p, update_steps_max
        self.register_buffer("beta", b.clone().float())
        g = torch.Generator().manual_seed(seed)
        H, E = num_heads, embed_dim
        self.WQ, self.WK, self.WV = (nn.Parameter(torch.randn(H, p, E, generator=g) / math.sqrt(E)) for _ in range(3))
        self.WO = nn.Parameter(torch.randn(H, E, p, generator=g) / math.sqrt(H * p))
        self.bias = bias
        if bias:
            self.bq, self.bk, self.bv = (nn.Parameter(torch.zeros(H, 1, p)) for _ in range(3))
            self.bo = nn.Parameter(torch.zeros(1, E))

    def _project(self, X: Tensor, W: Tensor, b: Optional[Tensor]) -> Tensor:
        """``X W_hᵀ (+ 1 b_hᵀ)`` for every head: ``(…, t, E) → (…, H, t, p)``."""
        out = torch.einsum("...te,hpe->...htp", X, W)
        return out + b if b is not None else out

    def _states(self, R: Tensor, Y: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """The head states ``Ξ⁰ … Ξ^k`` (each ``(…, H, n, p)``), the projected keys and ``log β``."""
        bq, bk = (self.bq, self.bk) if self.bias else (None, None)
        Xi, K = self._project(R, self.WQ, bq), self._project(Y, self.WK, bk)
        log_beta = self.get_buffer("beta").to(R.dtype).log().view(-1, 1, 1)
        step = head_cccp_step()
        states = [Xi]
        for _ in range(self.update_steps_max):
            states.append(step(states[-1], K=K, log_beta=log_beta))
        return states, K, log_beta

    @torch.no_grad()
    def state_energies(self, R: Tensor, Y: Tensor) -> Tensor:
        """``Σ_h E_h(Ξ^t_h)`` for ``t = 0 … k`` (the CCCP steps never increase it), shape ``(k+1, …)`` (one value per batch entry)."""
        states, K, log_beta = self._states(R, Y)
        step = head_cccp_step()
        return torch.stack([step.energy(Xi, K=K, log_beta=log_beta) for Xi in states])

    @torch.no_grad()
    def association(self, R: Tensor, Y: Tensor) -> Tensor:
        """The last retrieval's weights ``softmax_rows(β_h Ξ^k_h K_hᵀ)``, shape ``(…, H, n, m)``."""
        states, K, log_beta = self._states(R, Y)
        return torch.softmax(log_beta.exp() * states[-1] @ K.mT, dim=-1)

    def forward(self, R: Tensor, Y: Tensor, V: Optional[Tensor] = None) -> Tensor:
        V = Y if V is None else V
        for name, t in (("R", R), ("Y", Y), ("V", V)):
            if t.shape[-1] != self.embed_dim:
                raise ShapeMismatchError(f"HopfieldHeads: {name} has width {t.shape[-1]}, expected embed_dim {self.embed_dim}")
        states, K, log_beta = self._states(R, Y)
        Vh = self._project(V, self.WV, self.bv if self.bias else None)
        args = [states[-1], K, Vh, log_beta, self.WO] + ([self.bo] if self.bias else [])
        return head_readout_function(self.bias)(*args)
