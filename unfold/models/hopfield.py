"""A Hopfield deep-equilibrium classifier: the hidden state is the minimiser of a modern Hopfield
energy with input injection, found by a generated fixed-point iteration.

Energy of the hidden state ``ξ ∈ R^{d×1}`` for the embedded input ``u = W_in x + b`` (data) and
learned stored patterns ``X ∈ R^{d×m}``::

    E(ξ; u) = ½‖ξ‖² − uᵀξ − (1/β) lse(β Xᵀξ)

The layer is the generated :class:`~unfold.steps.GradientStep` with step 1,

    ξ⁺ = ξ − ∇E(ξ) = u + X softmax(β Xᵀξ),

which is also the CCCP step for the split ``convex = ½‖ξ‖² − uᵀξ``, ``concave = −lse/β``, so
``E(ξ⁺) ≤ E(ξ)`` at every iteration (Ramsauer et al.; Yuille & Rangarajan), whatever ``X`` and
``β``.  :class:`~unfold.steps.FixedPoint` iterates it to ``ξ*`` and differentiates implicitly; a
linear head reads the class from ``ξ*``.  ``model.fixed_point.trace = True`` records the energy
and residual of every iterate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .. import symbolic as s
from ..steps import FixedPoint, GradientStep
from ..symbolic import Energy
from .init import init_linears

__all__ = ["HopfieldClassifier", "hopfield_injection_energy"]


@lru_cache(maxsize=None)
def hopfield_injection_energy() -> Energy:
    """``½‖ξ‖² − uᵀξ − lse(β Xᵀξ)/β`` (state ``xi`` d×1, data ``inj`` = u, d×1, patterns ``X`` d×m)."""
    d, m = s.dims("d m")
    xi, u, X = s.state("xi", d, 1), s.param("inj", d, 1), s.param("X", d, m)
    beta = s.scalar("beta", positive=True)
    return Energy(terms={
        "quadratic": s.fro2(xi) / 2,
        "injection": -s.trace(u.T * xi),
        "lse": -s.lse(beta * X.T * xi) / beta,
    })


class HopfieldClassifier(nn.Module):
    """``x ↦ head(ξ*(x))`` with ``ξ* = argmin E(·; W_in x)`` (see the module docstring).

    ``inputs``: flattened input width (64 for 8×8 digits); ``width`` d; ``patterns`` m; ``beta``.
    """

    def __init__(self, inputs: int = 64, width: int = 64, patterns: int = 64, classes: int = 10,
                 beta: float = 1.0, tol: float = 1e-5, max_iter: int = 60, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Linear(inputs, width)
        X = torch.randn(width, patterns, generator=g) / width
        self.step = GradientStep(hopfield_injection_energy(), wrt="xi", step=1.0,
                                 params={"X": X}, buffers={"beta": float(beta)})
        self.fixed_point = FixedPoint(self.step, tol=tol, max_iter=max_iter)
        self.head = nn.Linear(width, classes)
        init_linears(self, g)

    def injection(self, images: torch.Tensor) -> torch.Tensor:
        """``u = W_in x + b`` as a column, ``(B, d, 1)``."""
        return self.embed(images.flatten(1))[..., None]

    def hidden(self, images: torch.Tensor) -> torch.Tensor:
        """The equilibrium ``ξ*`` (B, d, 1), started at ``ξ₀ = u``."""
        u = self.injection(images)
        return self.fixed_point(u, inj=u)

    def energy(self, xi: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``E(ξ; u(images))``, shape ``(B,)``."""
        return self.step.energy(xi, inj=self.injection(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(images)[..., 0])

    def extra(self) -> dict[str, Any]:
        return {"iterations": self.fixed_point.info.iterations, "residual": self.fixed_point.info.residual}
