"""``FixedPoint``: iterate a step ``T`` to its fixed point ``x* = T(x*; θ)`` and differentiate
implicitly.

Forward: ``x_{k+1} = T(x_k)`` without autograd until ``max|x_{k+1} − x_k| ≤ tol·(1 + max|x_k|)``
(or ``max_iter``, with a ``RuntimeWarning``; ``tol`` defaults to ``max(1e-10, 64 ε)`` of the dtype).  Backward (implicit function theorem): for a loss gradient ``g = ∂L/∂x*``,

    u = g + J_xᵀ u      (J_x = ∂T/∂x at x*),       ∂L/∂θ = uᵀ ∂T/∂θ,

where ``J_xᵀ u`` is a vector-Jacobian product (``torch.func.vjp`` of the step at ``x*``) and the
adjoint system is solved by the fixed-point iteration ``u ← g + J_xᵀ u`` (it converges whenever the
forward iteration converges linearly, since both contract with the spectral radius of ``J_x``).
Only one application of ``T`` is kept for autograd, so memory does not grow with the number of
iterations.  With ``trace=True`` the forward iteration also records, in ``.info``, the relative
change at every iteration (``residuals``) and the step's energy at every iterate (``energies``,
shape ``(iterations + 1, ...)``), so a DEQ's descent can be plotted from the model itself.  The fixed point does not depend on ``x0``, so no gradient flows to ``x0``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from ..errors import CheckFailedError, InputError
from ..verify.protocols import DescentModule
from .unrolled import as_step

__all__ = ["FixedPoint", "FixedPointInfo"]

Tensor = torch.Tensor


@dataclass
class FixedPointInfo:
    """Forward: iterations and final relative step; backward: adjoint iterations and residual."""

    iterations: int = 0
    residual: float = float("nan")
    converged: bool = False
    adjoint_iterations: int = 0
    adjoint_residual: float = float("nan")
    residuals: list[float] = field(default_factory=list)
    energies: Optional[Tensor] = None


def _rel_change(new: Tensor, old: Tensor) -> float:
    return float((new - old).abs().max() / (1 + old.abs().max()))


class FixedPoint(nn.Module):
    """Fixed point of ``step`` with implicit differentiation (see the module docstring).

    ``strict=True`` raises :class:`~unfold.errors.CheckFailedError` when the forward or adjoint
    iteration does not converge within its budget; otherwise ``.info`` reports it.  ``trace=True``
    records the residual and energy of every forward iterate in ``.info``.
    """

    step: DescentModule  # the iterated step T

    def __init__(self, step: nn.Module, tol: Optional[float] = None, max_iter: int = 1000,
                 adjoint_tol: Optional[float] = None, adjoint_max_iter: Optional[int] = None,
                 strict: bool = False, trace: bool = False) -> None:
        super().__init__()
        self.step = as_step(step)
        if (tol is not None and not tol >= 0) or max_iter < 1:
            raise InputError(f"FixedPoint: need tol ≥ 0 and max_iter ≥ 1, got tol={tol}, max_iter={max_iter}")
        self.tol: Optional[float] = None if tol is None else float(tol)
        self.max_iter = int(max_iter)
        self._adjoint_tol = None if adjoint_tol is None else float(adjoint_tol)
        self.adjoint_max_iter = int(adjoint_max_iter if adjoint_max_iter is not None else max_iter)
        self.strict = bool(strict)
        self.trace = bool(trace)
        self.info = FixedPointInfo()

    def tol_for(self, dtype: torch.dtype) -> float:
        """The stopping tolerance at ``dtype``: the given ``tol``, else ``max(1e-10, 64 ε)`` (1e-10
        in float64; about 7.6e-6 in float32, where 1e-10 is below rounding and never met)."""
        return self.tol if self.tol is not None else max(1e-10, 64 * torch.finfo(dtype).eps)

    def adjoint_tol_for(self, dtype: torch.dtype) -> float:
        return self._adjoint_tol if self._adjoint_tol is not None else max(self.tol_for(dtype), 1e-14)

    @property
    def adjoint_tol(self) -> float:
        """The adjoint tolerance in float64 (``adjoint_tol_for`` gives it at any dtype)."""
        return self.adjoint_tol_for(torch.float64)

    def energy(self, x: Tensor, /, **inputs: Any) -> Tensor:
        return self.step.energy(x, **inputs)

    def energy_terms(self, x: Tensor, /, **inputs: Any) -> dict[str, Tensor]:
        return self.step.energy_terms(x, **inputs)

    def solve(self, x0: Tensor, /, **inputs: Any) -> Tensor:
        """The forward iteration only (no autograd)."""
        info = FixedPointInfo()
        tol = self.tol_for(x0.dtype)
        with torch.no_grad():
            x = x0.detach()
            energies = [self.step.energy(x, **inputs)] if self.trace else []
            for k in range(1, self.max_iter + 1):
                x_new = self.step(x, **inputs)
                info.iterations, info.residual = k, _rel_change(x_new, x)
                x = x_new
                if self.trace:
                    info.residuals.append(info.residual)
                    energies.append(self.step.energy(x, **inputs))
                if info.residual <= tol:
                    info.converged = True
                    break
            if self.trace:
                info.energies = torch.stack(energies)
        self.info = info
        if not info.converged:
            msg = (f"FixedPoint: no convergence in {self.max_iter} iterations (relative change "
                   f"{info.residual:.3g} > tol {tol:g}); reduce the step size or raise max_iter")
            if self.strict:
                raise CheckFailedError(msg)
            warnings.warn(msg + "; returning the last iterate", RuntimeWarning, stacklevel=2)
        return x

    def _needs_grad(self, inputs: dict[str, Any]) -> bool:
        if not torch.is_grad_enabled():
            return False
        if any(p.requires_grad for p in self.step.parameters()):
            return True
        return any(isinstance(v, Tensor) and v.requires_grad for v in inputs.values())

    def forward(self, x0: Tensor, /, **inputs: Any) -> Tensor:
        x_star = self.solve(x0, **inputs)
        if not self._needs_grad(inputs):
            return x_star
        z = x_star.detach()
        out = self.step(z, **inputs)                       # one step: the graph to θ (and inputs)
        frozen = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in inputs.items()}

        def adjoint(g: Optional[Tensor]) -> Optional[Tensor]:
            if g is None:                                  # an undefined gradient stays undefined
                return None

            def T(x: Tensor) -> Tensor:
                return self.step(x, **frozen)

            with torch.enable_grad():
                vjp_fn = torch.func.vjp(T, z)[1]
            u = g
            info = self.info
            scale = float(g.abs().max()) + 1e-300
            for k in range(1, self.adjoint_max_iter + 1):
                u_new = g + vjp_fn(u)[0]
                info.adjoint_iterations = k
                info.adjoint_residual = float((u_new - u).abs().max()) / scale
                u = u_new
                if info.adjoint_residual <= self.adjoint_tol_for(z.dtype):
                    break
            else:
                if self.strict:
                    raise CheckFailedError(
                        f"FixedPoint: the adjoint iteration did not converge in {self.adjoint_max_iter} "
                        f"iterations (residual {info.adjoint_residual:.3g})"
                    )
            return u.detach()

        if out.requires_grad:
            out.register_hook(adjoint)
        return out

    def extra_repr(self) -> str:
        return f"tol={'auto' if self.tol is None else format(self.tol, 'g')}, max_iter={self.max_iter}"
