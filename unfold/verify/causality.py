"""Causality of a token map, evaluated: does any output token depend on a later input token?

A layer ``f: X ↦ Y`` on a sequence of tokens is causal when ``∂Yᵢ/∂Xⱼ = 0`` for every ``j > i``.
A causal *mask* on the scores does not make a gradient step on a masked self-attention energy
causal: the energy's key-side term sends the gradient of later queries' scores back into earlier
tokens (token ``j`` is a key for every query ``i ≥ j``), so ``∂Yⱼ/∂Xᵢ ≠ 0`` for ``i > j``.  Only the
query-side term (keys held fixed) gives a causal update.  :func:`check_causality` measures it from
the Jacobian (``torch.func.jacrev``) instead of assuming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError

__all__ = ["CausalityResult", "check_causality"]


@dataclass
class CausalityResult:
    """``leak``: the largest ``|∂Yᵢ/∂Xⱼ|`` over ``j > i`` divided by the largest entry of the whole
    Jacobian; ``causal``: ``leak ≤ tol``."""

    leak: float
    scale: float
    tol: float

    @property
    def causal(self) -> bool:
        return self.leak <= self.tol

    def __str__(self) -> str:
        verdict = "causal" if self.causal else "NOT causal"
        return f"{verdict}: later tokens move earlier outputs by up to {self.leak:.2e} (relative; tol {self.tol:.0e})"


def check_causality(fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, *, tokens: str = "rows",
                    tol: float = 1e-12) -> CausalityResult:
    """Evaluate whether ``fn`` (one sequence ``X`` → outputs of the same layout) is causal at ``X``.

    ``tokens``: ``"rows"`` (``X`` is ``n × d``, token ``i`` is row ``i``) or ``"columns"`` (``d × n``).
    Use float64 for a meaningful ``tol``.
    """
    if tokens not in ("rows", "columns"):
        raise InputError(f"tokens must be 'rows' or 'columns', got {tokens!r}")
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        raise InputError("check_causality takes one sequence: a 2-d tensor (tokens × features or features × tokens)")
    J = torch.func.jacrev(fn)(X)  # (out..., in...)
    if J.dim() != 4:
        raise InputError(f"fn must map a matrix to a matrix; its Jacobian has shape {tuple(J.shape)}")
    if tokens == "columns":
        J = J.permute(1, 0, 3, 2)  # (out token, out feature, in token, in feature)
    n = J.shape[0]
    later = torch.ones(n, n, dtype=torch.bool, device=J.device).triu(1)  # in-token j > out-token i
    block = J.abs().amax(dim=(1, 3))  # (out token, in token)
    scale = float(block.max()) or 1.0
    leak = float(block[later].max()) / scale if n > 1 else 0.0
    return CausalityResult(leak, scale, tol)
