"""``CCCPStep``: the concave-convex procedure for ``E = E_vex + E_cave``.

    x⁺ solves ∇E_vex(x⁺) = −∇E_cave(x)

i.e. ``x⁺`` minimises the convex surrogate ``E_vex(y) + ⟨∇E_cave(x), y⟩``, which majorises ``E``
up to a constant (the concave part lies below its tangent), so ``E(x⁺) ≤ E(x)`` without any step
size.  When ``∇E_vex(y) = c·y + r`` (``E_vex = c/2 ‖y‖² + linear``, ``c > 0``) the update is the
closed form ``x⁺ = −(∇E_cave(x) + r)/c``; this is how the Hopfield update ``X softmax(β Xᵀ ξ)``
arises from ``E_vex = ½‖ξ‖²``, ``E_cave = −lse(β Xᵀ ξ)/β``.  Other convex parts are minimised by
an inner loop of Armijo gradient steps on the surrogate.

Convexity of ``E_vex`` and concavity of ``E_cave`` are checked numerically (Rayleigh quotients of
Hessian-vector products at random points and directions) at construction, and at the actual
inputs by :meth:`CCCPStep.check_splitting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import torch
from sympy import Basic

from ..errors import AssumptionError
from ..symbolic.energy import Energy
from .base import EnergyStep, call_generated, compile_update, resolve_state
from ..symbolic.tidy import canonical
from .quadratic import curvature_range, random_points, scalar_quadratic
from .smoothness import require_smooth
from ..verify.certificates import checked_grad_fn

__all__ = ["CCCPStep", "SplittingCheck"]

Tensor = torch.Tensor


@dataclass
class SplittingCheck:
    """Smallest curvature of the convex part and largest of the concave part seen."""

    convex_min_curvature: float
    concave_max_curvature: float
    tol: float

    @property
    def passed(self) -> bool:
        return self.convex_min_curvature >= -self.tol and self.concave_max_curvature <= self.tol


class CCCPStep(EnergyStep):
    """``x⁺ = argmin_y E_vex(y) + ⟨∇E_cave(x), y⟩`` (closed form for a quadratic ``E_vex``)."""

    def __init__(
        self,
        convex: Energy,
        concave: Energy,
        wrt: Union[str, Basic],
        params: Optional[Mapping[str, Any]] = None,
        buffers: Optional[Mapping[str, Any]] = None,
        check: bool = True,
        inner_iters: int = 100,
    ) -> None:
        v = resolve_state(convex, wrt, "CCCPStep (convex part)")
        resolve_state(concave, v, "CCCPStep (concave part)")
        total = Energy(terms={**{f"vex_{k}" if k in concave.terms else k: e for k, e in convex.terms.items()},
                              **concave.terms})
        super().__init__(total, v, params, buffers)
        v = self.wrt
        require_smooth(convex, v, "CCCPStep (convex part)")
        require_smooth(concave, v, "CCCPStep (concave part)")
        self.convex, self.concave = convex, concave
        self._vex_grad = checked_grad_fn(convex, v) if check else convex.compile().grad_fn(v)
        self._cave_grad = checked_grad_fn(concave, v) if check else concave.compile().grad_fn(v)
        self.inner_iters = int(inner_iters)
        quad = scalar_quadratic(convex, v)
        if quad is not None:
            c, r = quad
            if c.is_number and not c > 0:
                raise AssumptionError(
                    f"CCCPStep: the convex part {convex} has curvature {c} ≤ 0 in {v}; it is not convex"
                )
            self._rule = canonical(-(concave.grad(v) + r) / c)
            self._update = compile_update("cccp_step", total.inputs, self._rule)
        else:
            self._rule = None
            self._update = None
        if check:
            for inputs in random_points(total, 2):  # the splitting, at random points (held inputs too)
                res = self._curvatures(inputs.pop(str(v)), inputs, held=False)
                if not res.passed:
                    self._raise(res)

    def _raise(self, res: SplittingCheck) -> None:
        if res.convex_min_curvature < -res.tol:
            raise AssumptionError(
                f"CCCPStep: the 'convex' part {self.convex} is not convex in {self.wrt}: a direction of "
                f"negative curvature {res.convex_min_curvature:.3g} was found (Hessian-vector products)"
            )
        raise AssumptionError(
            f"CCCPStep: the 'concave' part {self.concave} is not concave in {self.wrt}: a direction of "
            f"positive curvature {res.concave_max_curvature:.3g} was found (Hessian-vector products)"
        )

    def _part_grad(self, part: Energy, fn: Any, inputs: Mapping[str, Any], held: bool = True) -> Any:
        """``x ↦ ∇part(x)`` with the module's held inputs and ``inputs`` (``held=False``: with
        ``inputs`` alone, which then give every input of the part)."""
        cm = part.compile()
        names = self.input_names(part)

        def g(x: Tensor) -> Tensor:
            vals = (self.inputs_for(part, x, inputs) if held else
                    {k: t for k, t in {**inputs, self.wrt_name: x}.items() if k in names})
            return fn(*cm.args(**vals))

        return g

    def _curvatures(self, x: Tensor, inputs: Mapping[str, Any], held: bool = True, n_dirs: int = 8,
                    tol: float = 1e-9) -> SplittingCheck:
        lo, _ = curvature_range(self._part_grad(self.convex, self._vex_grad, inputs, held), x, n_dirs)
        _, hi = curvature_range(self._part_grad(self.concave, self._cave_grad, inputs, held), x, n_dirs, seed=1)
        return SplittingCheck(lo, hi, tol)

    def check_splitting(self, x: Tensor, /, n_dirs: int = 8, tol: float = 1e-9, **inputs: Any) -> SplittingCheck:
        """Curvature of both parts at ``x`` along random directions."""
        return self._curvatures(x, inputs, True, n_dirs, tol)

    def forward(self, x: Tensor, /, **inputs: Any) -> Tensor:
        self._check_state(x)
        if self._update is not None:
            return call_generated(self._update, self.inputs_for(self.source_energy, x, inputs), x)
        return self._inner(x, inputs)

    def _inner(self, x: Tensor, inputs: Mapping[str, Any]) -> Tensor:
        """Minimise ``E_vex(y) + ⟨G, y⟩``, ``G = ∇E_cave(x)``, by Armijo gradient descent from ``x``."""
        G = self._part_grad(self.concave, self._cave_grad, inputs)(x)
        gv = self._part_grad(self.convex, self._vex_grad, inputs)
        cm = self.convex.compile()

        def surrogate(y: Tensor) -> Tensor:
            return cm.energy_fn(*cm.args(**self.inputs_for(self.convex, y, inputs))) + (G * y).sum(dim=(-2, -1))

        y, eta = x, torch.ones(x.shape[:-2], dtype=x.dtype, device=x.device)
        for _ in range(self.inner_iters):
            d = gv(y) + G
            s0 = surrogate(y)
            for _ in range(40):
                y_new = y - eta[..., None, None] * d
                ok = surrogate(y_new) <= s0 - 0.5 * eta * (d * d).sum(dim=(-2, -1))
                if bool(ok.all()):
                    break
                eta = torch.where(ok, eta, eta / 2)
            y = torch.where(ok[..., None, None], y_new, y)
            eta = eta * 2
        return y

    def update_rule(self) -> Basic:
        """``x⁺ = −(∇E_cave(x) + r)/c`` when the convex part is ``c/2‖x‖² + linear``."""
        if self._rule is None:
            raise AssumptionError(
                "CCCPStep: the convex part is not of the form c/2‖x‖² + linear, so the update has no "
                "closed form; it is computed by an inner solver"
            )
        return self._rule

    def torch_source(self) -> str:
        return self._update.source if self._update is not None else ""
