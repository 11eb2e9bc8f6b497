"""Torch code for the entmax primitives (:mod:`unfold.symbolic.primitives.entmax`, which holds their
lowerings): the column-wise maps the generated code calls.

* :func:`entmax_cols` — α-entmax of every column (``dim=-2``): the threshold τ by sorting for
  α = 2 (sparsemax), by bisection otherwise (``BISECTION_STEPS`` halvings of a bracket of width
  ≤ 1, then renormalisation); backward by implicit differentiation,
  ``Jᵀv = g∘v − g (gᵀv)/(1ᵀg)``, ``g = p^{2−α}`` on the support (a :class:`torch.autograd.Function`
  usable under ``torch.func``);
* :func:`entmax_weights` — that ``g``;
* :func:`entmax_conj_cols` — ``Ω*_α = ⟨p, θ⟩ + H_α(p)`` per column (1×cols), differentiated by
  autograd through ``p`` (its gradient is ``p``: the envelope theorem, since ``θ + ∇H_α(p)`` is
  constant on the support and ``J1 = 0``).
"""

from __future__ import annotations

from typing import Any

import torch


__all__ = ["entmax_cols", "entmax_weights", "entmax_conj_cols", "KERNELS", "BISECTION_STEPS"]

Tensor = torch.Tensor
BISECTION_STEPS = 64  # bracket width ≤ 1 → τ to 2⁻⁶⁴ (below float64 resolution of τ's scale)


def _sparsemax(x: Tensor) -> Tensor:
    z = x - x.amax(dim=-2, keepdim=True)
    srt = torch.sort(z, dim=-2, descending=True).values
    cs = torch.cumsum(srt, dim=-2) - 1
    k = torch.arange(1, z.shape[-2] + 1, dtype=z.dtype, device=z.device)[:, None]
    size = (srt * k > cs).sum(dim=-2, keepdim=True)
    tau = torch.gather(cs, -2, size - 1) / size.to(z.dtype)
    return torch.clamp(z - tau, min=0)


def _entmax_bisect(x: Tensor, alpha: float) -> Tensor:
    z = (alpha - 1) * x
    top = z.amax(dim=-2, keepdim=True)
    lo, hi = top - 1, top - z.shape[-2] ** (1 - alpha)
    power = 1 / (alpha - 1)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        over = torch.clamp(z - mid, min=0).pow(power).sum(dim=-2, keepdim=True) >= 1
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    p = torch.clamp(z - lo, min=0).pow(power)
    return p / p.sum(dim=-2, keepdim=True)


def _forward(x: Tensor, alpha: float) -> Tensor:
    return _sparsemax(x) if alpha == 2 else _entmax_bisect(x, alpha)


def _weights(p: Tensor, alpha: float) -> Tensor:
    if alpha == 2:
        return (p > 0).to(p.dtype)
    return torch.where(p > 0, p.clamp(min=torch.finfo(p.dtype).tiny).pow(2 - alpha), torch.zeros_like(p))


class _EntmaxFn(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        return _forward(x, alpha)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = inputs[1]
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (p,) = ctx.saved_tensors
        g = _weights(p, ctx.alpha)
        gv = g * grad
        return gv - g * gv.sum(dim=-2, keepdim=True) / g.sum(dim=-2, keepdim=True), None

    @staticmethod
    def jvp(ctx: Any, dx: Tensor, _: Any) -> Tensor:
        (p,) = ctx.saved_tensors
        g = _weights(p, ctx.alpha)
        gv = g * dx
        return gv - g * gv.sum(dim=-2, keepdim=True) / g.sum(dim=-2, keepdim=True)


def entmax_cols(x: Tensor, alpha: float) -> Tensor:
    """α-entmax of every column of ``x`` (``dim=-2``)."""
    return _EntmaxFn.apply(x, float(alpha))


def entmax_weights(x: Tensor, alpha: float) -> Tensor:
    """``g = p^{2−α}`` on the support of ``p = entmax(x)``, 0 off it (not differentiable)."""
    return _weights(_forward(x.detach(), float(alpha)), float(alpha))


def entmax_conj_cols(x: Tensor, alpha: float) -> Tensor:
    """``Ω*_α`` of every column, shape ``(…, 1, cols)``."""
    a = float(alpha)
    p = entmax_cols(x, a)
    H = (p - p.pow(a)).sum(dim=-2, keepdim=True) / (a * (a - 1))
    return (p * x).sum(dim=-2, keepdim=True) + H


#: names the generated code calls
#: the names generated code calls (declared by the entmax primitives' records)
KERNELS = {"_entmax_cols": entmax_cols, "_entmax_weights": entmax_weights, "_entmax_conj_cols": entmax_conj_cols}
