"""Torch kernel of the layer-norm primitive's inverse standard deviation
(:class:`~unfold.symbolic.primitives.layernorm.LNInvStd`, and :class:`LayerNorm`'s lowering)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["invstd", "KERNELS"]


def invstd(x: torch.Tensor, eps: Any) -> torch.Tensor:
    """``1/sqrt(var + eps)`` of each column (biased variance), shape ``(..., 1, cols)``."""
    return torch.rsqrt(x.var(dim=-2, correction=0, keepdim=True) + eps)


#: the names generated code calls (declared by the LayerNorm and LNInvStd records)
KERNELS = {"_invstd": invstd}
