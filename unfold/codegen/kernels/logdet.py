"""Torch kernel of ``logdet`` (:class:`~unfold.symbolic.primitives.reductions.LogDet`)."""

from __future__ import annotations

import torch

from ...errors import InputError
from ..runtime import _concrete

__all__ = ["logdet_pd", "KERNELS"]


def logdet_pd(x: torch.Tensor) -> torch.Tensor:
    """``log det x`` for a matrix with positive determinant (e.g. positive definite), ``(..., 1, 1)``.

    Evaluated with ``slogdet`` (LU), whose gradient ``x⁻ᵀ`` is valid for any such ``x``, symmetric
    or not.  Raises :class:`InputError` when ``det x ≤ 0`` (checked on concrete tensors); under
    transforms the value is NaN there instead, and so is its gradient (a factor NaN, not a
    ``where`` branch, whose gradient would be a silent 0).
    """
    sign, logabs = torch.linalg.slogdet(x)
    if _concrete(sign) and bool((sign <= 0).any()):
        raise InputError(
            "logdet needs a matrix with positive determinant (e.g. positive definite), but "
            f"det ≤ 0 for {int((sign <= 0).sum())} matrix(es); check that the argument is I + (PSD "
            "term) or add a multiple of the identity"
        )
    out = logabs * torch.where(sign > 0, 1.0, float("nan")).to(logabs.dtype)
    return out[..., None, None]


#: the names generated code calls (declared by the LogDet record)
KERNELS = {"_logdet_pd": logdet_pd}
