"""Directional convergence: does a trajectory ``W(k)`` turn towards a target direction ``W*``?

The measured quantity is the correlation coefficient (cosine of the angle in Frobenius geometry)::

    corr_k = ⟨W(k), W*⟩ / (‖W(k)‖_F ‖W*‖_F)

over the iterations ``k``; directional convergence ``W(k)/‖W(k)‖ → W*/‖W*‖`` is ``corr_k → 1``.  An
asymptotic claim cannot be verified at a finite ``k``: the check reports the whole curve and passes
when the final correlation exceeds ``threshold`` for every batch element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

from ..errors import CheckFailedError, InputError, ShapeMismatchError

__all__ = ["DirectionalConvergenceResult", "check_directional_convergence", "assert_directional_convergence", "correlation"]


def correlation(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``⟨A, B⟩ / (‖A‖_F ‖B‖_F)`` over the last two axes (broadcast over the leading ones)."""
    num = (A * B).sum(dim=(-2, -1))
    den = torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B)
    return num / den


def _stack(trajectory: Any) -> torch.Tensor:
    if hasattr(trajectory, "states"):  # an unfold.steps Trajectory
        trajectory = trajectory.states
    if isinstance(trajectory, torch.Tensor):
        t = trajectory
    elif isinstance(trajectory, Sequence) and len(trajectory) and all(isinstance(s, torch.Tensor) for s in trajectory):
        t = torch.stack(list(trajectory))
    else:
        raise InputError(
            "trajectory must be a tensor (iterations, ..., rows, cols), a non-empty list of tensors, or "
            f"an object with .states; got {type(trajectory).__name__}"
        )
    if t.dim() < 3:
        raise ShapeMismatchError(f"trajectory must have shape (iterations, ..., rows, cols), got {tuple(t.shape)}")
    return t


@dataclass
class DirectionalConvergenceResult:
    """``correlations`` has shape ``(iterations, ...)``; ``final`` and ``first_above`` the batch shape.

    ``first_above[b]`` is the first recorded index from which the correlation stays above the
    threshold until the end (``-1`` if it ends below).
    """

    correlations: torch.Tensor
    final: torch.Tensor
    first_above: torch.Tensor
    threshold: float
    iterations: Optional[torch.Tensor] = None

    @property
    def passed(self) -> bool:
        return bool((self.final > self.threshold).all())

    @property
    def detail(self) -> str:
        f = self.final.reshape(-1)
        it = self.iterations
        firsts = self.first_above.reshape(-1)
        if it is not None:
            firsts = torch.where(firsts >= 0, it[firsts.clamp(min=0)], firsts)
        return (
            f"corr(W(k), W*) at the last iterate: min {float(f.min()):.6f}, mean {float(f.mean()):.6f}, "
            f"max {float(f.max()):.6f} over {f.numel()} run(s) (threshold {self.threshold}); stays above "
            f"the threshold from iteration {[int(x) for x in firsts]}"
        )

    def __str__(self) -> str:
        return f"directional convergence {'PASS' if self.passed else 'FAIL'}: {self.detail}"


def check_directional_convergence(
    trajectory: Union[torch.Tensor, Sequence[torch.Tensor], Any],
    target: torch.Tensor,
    threshold: float = 0.99,
    iterations: Optional[torch.Tensor] = None,
) -> DirectionalConvergenceResult:
    """Correlation of every iterate of ``trajectory`` with ``target`` (see the module docstring).

    ``trajectory``: a tensor ``(K, ..., r, c)``, a list of ``(..., r, c)`` tensors, or an object with
    ``.states`` (an ``unfold.steps`` Trajectory); ``target``: ``(..., r, c)``, broadcast against each
    iterate.  ``iterations`` optionally gives the iteration number of each recorded iterate.
    """
    traj = _stack(trajectory)
    if not isinstance(target, torch.Tensor):
        raise InputError(f"target must be a torch.Tensor, got {type(target).__name__}")
    target = target.to(traj)
    if traj.shape[-2:] != target.shape[-2:]:
        raise ShapeMismatchError(f"iterates are {tuple(traj.shape[-2:])} but the target is {tuple(target.shape[-2:])}")
    if bool((torch.linalg.matrix_norm(target) == 0).any()):
        raise InputError("the target direction is the zero matrix")
    corr = correlation(traj, target)
    above = corr > threshold
    # index from which the correlation stays above the threshold: last index below, plus one
    K = corr.shape[0]
    idx = torch.arange(K).reshape(K, *([1] * (corr.dim() - 1)))
    last_below = torch.where(~above, idx, torch.full_like(idx, -1)).amax(dim=0)
    first = torch.where(last_below + 1 < K, last_below + 1, torch.full_like(last_below, -1))
    return DirectionalConvergenceResult(corr, corr[-1], first, threshold, iterations)


def assert_directional_convergence(*args: Any, **kwargs: Any) -> DirectionalConvergenceResult:
    """:func:`check_directional_convergence`, raising :class:`CheckFailedError` when it fails."""
    r = check_directional_convergence(*args, **kwargs)
    if not r.passed:
        raise CheckFailedError(str(r))
    return r
