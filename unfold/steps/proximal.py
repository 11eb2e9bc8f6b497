"""``ProximalGradientStep``: ``x⁺ = prox_{η g}(x − η ∇f(x))`` for ``F = f + g``.

``f`` is a smooth energy (its gradient is derived, two-leg checked and generated); ``g`` is a
non-smooth term from the prox table (:mod:`unfold.steps.prox`).  The update is one symbolic
expression (e.g. ``SoftThreshold(Z − η∇f, ηλ)`` or ``relu(Z − η∇f − ηλ)``) compiled by the code
generator.  Descent ``F(x⁺) ≤ F(x)`` holds for an ``L``-smooth ``f`` when ``η < 2/L`` and ``g`` is
convex, and when ``η < 1/L`` for a non-convex ``g`` (``Sphere``); the Armijo policy backtracks on
``f(x⁺) ≤ f(x) + ⟨∇f(x), x⁺ − x⟩ + ‖x⁺ − x‖²/(2η)``, which implies ``F(x⁺) ≤ F(x)`` in both cases.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import torch
from sympy import Basic

from ..errors import InputError
from ..symbolic.energy import Energy
from .base import EnergyStep, GeneratedUpdateMixin, compile_update
from ..symbolic.tidy import canonical
from .policies import StepPolicy, StepProblem
from .prox import Prox
from .smoothness import require_smooth

__all__ = ["ProximalGradientStep"]

Tensor = torch.Tensor


class ProximalGradientStep(GeneratedUpdateMixin, EnergyStep):
    """``x⁺ = prox_{η g}(x − η ∇f(x))`` as an ``nn.Module``; ``energy(x) = f(x) + g(x)``."""

    def __init__(
        self,
        smooth: Energy,
        nonsmooth: Prox,
        wrt: Union[str, Basic],
        step: Union[StepPolicy, float] = 1.0,
        params: Optional[Mapping[str, Any]] = None,
        buffers: Optional[Mapping[str, Any]] = None,
        check: bool = True,
    ) -> None:
        super().__init__(smooth, wrt, params, buffers)
        if not isinstance(nonsmooth, Prox):
            raise InputError(
                "ProximalGradientStep: nonsmooth must be a proximal map from the table (L1, "
                f"NonNegative, NonNegL1, Box, Sphere), got {type(nonsmooth).__name__}"
            )
        v = self.wrt
        require_smooth(smooth, v, "ProximalGradientStep (smooth part)")
        self.prox = nonsmooth
        self._prox_names = tuple(str(s) for s in nonsmooth.symbols())
        taken = {str(s) for s in smooth.inputs} | {str(s) for s in nonsmooth.symbols()}
        eta = self._step_size(step, check, taken)
        self._forward_rule = canonical(v - eta * smooth.grad(v))
        self._rule = nonsmooth.symbolic(self._forward_rule, eta)
        inputs = list(smooth.inputs) + [s for s in nonsmooth.symbols() if s not in smooth.inputs]
        if self._eta_symbol is not None:
            inputs.append(self._eta_symbol)
        self._update = compile_update("proximal_gradient_step", inputs, self._rule)
        self.term_name = nonsmooth.name if nonsmooth.name not in smooth.terms else nonsmooth.name + "_g"

    def accepted_inputs(self) -> set[str]:
        return super().accepted_inputs() | set(self._prox_names)

    def _prox_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: inputs[k] for k in self._prox_names if k in inputs}

    # ---- energy ------------------------------------------------------------------------------
    def smooth_energy(self, x: Tensor, /, **inputs: Any) -> Tensor:
        """``f(x)``."""
        return super().energy(x, **inputs)

    def energy(self, x: Tensor, /, **inputs: Any) -> Tensor:
        """``F(x) = f(x) + g(x)`` (``inf`` where ``x`` is outside the domain of ``g``)."""
        return self.smooth_energy(x, **inputs) + self.prox.value(x, **self._prox_inputs(inputs))

    def energy_terms(self, x: Tensor, /, **inputs: Any) -> dict[str, Tensor]:
        terms = super().energy_terms(x, **inputs)
        terms[self.term_name] = self.prox.value(x, **self._prox_inputs(inputs))
        return terms

    # ---- the step ----------------------------------------------------------------------------
    def _update_values(self, x: Tensor, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.inputs_for(self.source_energy, x, inputs), **self._prox_inputs(inputs)}

    def problem(self, **inputs: Any) -> StepProblem:
        """The closures the step-size policy works with, at the given inputs."""
        update, grad = self._update_and_grad(inputs)

        def accept(x: Tensor, x_new: Tensor, eta: Tensor, c: float) -> Tensor:
            f0, f1 = self.smooth_energy(x, **inputs), self.smooth_energy(x_new, **inputs)
            dx = x_new - x
            model = f0 + (grad(x) * dx).sum(dim=(-2, -1)) + (dx * dx).sum(dim=(-2, -1)) / (2 * eta)
            return f1 <= model

        return StepProblem(update=update, grad=grad, accept=accept)

    def gradient_mapping(self, x: Tensor, eta: float, /, **inputs: Any) -> Tensor:
        """``(x − prox_{η g}(x − η∇f(x)))/η``: zero exactly at the stationary points of ``f + g``."""
        v = x - eta * self.problem(**inputs).grad(x)
        return (x - self.prox.apply(v, eta, **self._prox_inputs(inputs))) / eta

    def extra_repr(self) -> str:
        return f"wrt={self.wrt_name}, smooth={self.source_energy!s}, nonsmooth={self.prox!r}"
