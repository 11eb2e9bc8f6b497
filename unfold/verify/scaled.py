"""The one error measure of every comparison in unfold: the scaled error

    err(a, b) = max|a − b| / max(1, max|b|)          (b is the reference)

an absolute error for references of size ≤ 1 and a relative one above, so a tolerance means the
same for small and large outputs.  Shapes must agree exactly (no silent broadcasting); anything
not finite gives ``inf``; empty tensors give 0.
"""

from __future__ import annotations

import torch

from ..errors import ShapeMismatchError

__all__ = ["scaled_error", "scaled_error_at", "relative_error_at"]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """``(max|a − b|, flat index of it)``; ``(0, 0)`` when empty, ``(inf, 0)`` when not finite."""
    if a.shape != b.shape:
        raise ShapeMismatchError(f"compared tensors differ in shape: {tuple(a.shape)} vs reference {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0, 0
    diff = (a - b).abs()
    if not bool(torch.isfinite(diff).all()):
        return float("inf"), 0
    return float(diff.max()), int(diff.reshape(-1).argmax())


def scaled_error_at(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """``(err(a, b), flat index of the worst entry)`` (module docstring)."""
    worst, k = _max_diff(a, b)
    if worst == 0 or worst == float("inf"):
        return worst, k
    return worst / max(1.0, float(b.abs().max())), k


def scaled_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a − b| / max(1, max|b|)`` (module docstring)."""
    return scaled_error_at(a, b)[0]


def relative_error_at(a: torch.Tensor, b: torch.Tensor, floor: float) -> tuple[float, int]:
    """``(max|a − b| / max(max|b|, floor), flat index of the worst entry)``: the scale-free form
    used by the gradient check, where ``floor`` is a scale of the same units as ``b`` (for a
    gradient, the energy's size over the variable's), so that multiplying the energy by any
    constant leaves the error unchanged (``err(a, b)``'s absolute floor of 1 lets a gradient of
    size 1e-12 be wrong in sign)."""
    worst, k = _max_diff(a, b)
    if worst == 0 or worst == float("inf"):
        return worst, k
    denom = max(float(b.abs().max()), floor)
    return (worst / denom if denom > 0 else float("inf")), k
