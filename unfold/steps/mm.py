"""``MMStep``: majorisation-minimisation with a symbolic majoriser.

The user writes ``Q(x | a)``, an energy over the state ``x`` and a parameter matrix ``a`` (the
anchor, standing for the current point) with

    Q(y | a) ≥ E(y) for all y,   Q(a | a) = E(a).

One step sets ``a ← x`` and then ``x⁺ = argmin_y Q(y | a)`` (closed form ``x⁺ = −r(a)/c`` when
``∇_y Q = c·y + r(a)`` with ``c > 0``, a scalar-Hessian quadratic), or ``x⁺ = inner(x)`` with
``inner`` a step on ``Q`` (e.g. a preconditioned :class:`GradientStep`) that decreases ``Q(· | a)``.
Either way ``E(x⁺) ≤ Q(x⁺ | x) ≤ Q(x | x) = E(x)``.  :meth:`MMStep.check_majorizer` verifies both
properties numerically and that the step decreases ``Q``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import torch
from sympy import Basic
from torch import nn

from ..errors import AssumptionError, InputError, ShapeMismatchError, UndeclaredSymbolError
from ..symbolic.energy import Energy
from ..symbolic.symbols import ParamMatrix
from .base import EnergyStep, call_generated, compile_update, resolve_state
from ..symbolic.tidy import canonical
from .quadratic import random_points, scalar_quadratic
from ..verify.protocols import DescentStep

__all__ = ["MMStep", "MajorizerCheck"]

Tensor = torch.Tensor


@dataclass
class MajorizerCheck:
    """``gap = min (Q(y|x) − E(y))`` over sampled ``y``; ``touch = |Q(x|x) − E(x)|``;
    ``decrease = Q(x⁺|x) − Q(x|x)`` (must be ≤ tol)."""

    gap: float
    touch: float
    decrease: float
    tol: float

    @property
    def passed(self) -> bool:
        return self.gap >= -self.tol and self.touch <= self.tol and self.decrease <= self.tol

    def __str__(self) -> str:
        return (f"majoriser check: min Q(y|x) − E(y) = {self.gap:.3g}, |Q(x|x) − E(x)| = {self.touch:.3g}, "
                f"Q(x⁺|x) − Q(x|x) = {self.decrease:.3g} (tol {self.tol:.1g})")


class MMStep(EnergyStep):
    """``x⁺ = argmin_y Q(y | x)`` (closed form) or ``inner`` applied to ``Q(· | x)``."""

    def __init__(
        self,
        energy: Energy,
        majorizer: Energy,
        wrt: Union[str, Basic],
        anchor: Union[str, Basic],
        inner: Optional[nn.Module] = None,
        params: Optional[Mapping[str, Any]] = None,
        buffers: Optional[Mapping[str, Any]] = None,
        check: bool = True,
    ) -> None:
        super().__init__(energy, wrt, params, buffers)
        v = self.wrt
        resolve_state(majorizer, self.wrt_name, "MMStep (majorizer)")
        if not isinstance(majorizer, Energy):
            raise InputError(f"MMStep: the majorizer must be an Energy, got {type(majorizer).__name__}")
        try:
            a = majorizer._resolve(anchor)
        except UndeclaredSymbolError:
            raise UndeclaredSymbolError(
                f"MMStep: the anchor {anchor!r} does not occur in the majorizer; declare it with "
                "uf.param(name, rows, cols) and write Q(x | anchor)"
            ) from None
        if not isinstance(a, ParamMatrix) or a.shape != v.shape:
            raise ShapeMismatchError(
                f"MMStep: the anchor {a} must be a parameter matrix of the state's shape {v.shape}"
            )
        self.majorizer, self.anchor, self.anchor_name = majorizer, a, str(a)
        self._qc = majorizer.compile()
        self.inner = inner
        self._rule: Optional[Basic] = None
        self._update = None
        if inner is None:
            quad = scalar_quadratic(majorizer, v)
            if quad is None:
                raise AssumptionError(
                    f"MMStep: the majorizer is not of the form c/2‖{v}‖² + (terms linear in {v}), so it "
                    "has no closed-form minimiser; pass inner=<a step on the majorizer>"
                )
            c, r = quad
            if c.is_number and not c > 0:
                raise AssumptionError(f"MMStep: the majorizer has curvature {c} ≤ 0 in {v}; it has no minimiser")
            self._rule = canonical((-r / c).xreplace({a: v}))
            self._update = compile_update("mm_step", energy.inputs + tuple(
                s for s in majorizer.inputs if s not in energy.inputs and s != a and s != v), self._rule)
            self._update_names = frozenset(str(s) for s in self._update.inputs)
        elif not isinstance(inner, DescentStep):
            raise InputError("MMStep: inner must be a descent step on the majorizer (with .energy)")
        if check:
            self._check_random()

    def _check_random(self) -> None:
        both = self.source_energy + self.majorizer
        for inputs in random_points(both, 2):
            x = inputs.pop(self.wrt_name)
            inputs.pop(self.anchor_name, None)
            res = self.check_majorizer(x, **inputs)
            if not res.passed:
                raise AssumptionError(
                    f"MMStep: the majorizer {self.majorizer} is not a valid majoriser of {self.source_energy} "
                    f"at a random point: {res}. It must satisfy Q(y|a) ≥ E(y) and Q(a|a) = E(a)"
                )

    def accepted_inputs(self) -> set[str]:
        return super().accepted_inputs() | (set(self.input_names(self.majorizer)) - {self.anchor_name})

    def majorizer_value(self, y: Tensor, anchor: Tensor, /, **inputs: Any) -> Tensor:
        """``Q(y | anchor)``."""
        vals = self.inputs_for(self.majorizer, y, inputs)
        vals[self.anchor_name] = anchor
        return self._qc.energy_fn(*self._qc.args(**vals))

    def forward(self, x: Tensor, /, **inputs: Any) -> Tensor:
        self._check_state(x)
        if self._update is not None:
            vals = self.inputs_for(self.source_energy, x, inputs)
            vals.update({k: w for k, w in inputs.items() if k in self._update_names})
            return call_generated(self._update, vals, x)
        inner: Any = self.inner  # set whenever there is no closed-form update (__init__)
        extra = {k: w for k, w in inputs.items() if k in inner.accepted_inputs()} \
            if hasattr(inner, "accepted_inputs") else dict(inputs)
        return inner(x, **{self.anchor_name: x, **extra})

    def check_majorizer(self, x: Tensor, /, n_samples: int = 16, radius: float = 1.0, tol: float = 1e-9,
                        **inputs: Any) -> MajorizerCheck:
        """Sample ``y = x + radius·s·u`` (``u`` Gaussian, ``s`` in (0, 1]) and check the MM conditions."""
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            e_x = self.energy(x, **inputs)
            q_x = self.majorizer_value(x, x, **inputs)
            scale = torch.clamp(e_x.abs(), min=1.0)
            touch = float(((q_x - e_x).abs() / scale).max())
            gap = float("inf")
            for k in range(n_samples):
                s = (k + 1) / n_samples
                y = x + radius * s * torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
                diff = (self.majorizer_value(y, x, **inputs) - self.energy(y, **inputs)) / scale
                gap = min(gap, float(diff.min()))
            x_new = self(x, **inputs)
            dec = float(((self.majorizer_value(x_new, x, **inputs) - q_x) / scale).max())
        return MajorizerCheck(gap, touch, dec, tol)

    def update_rule(self) -> Basic:
        """The closed-form minimiser of ``Q(· | x)`` with the anchor replaced by ``x``."""
        if self._rule is None:
            raise AssumptionError("MMStep: this step uses an inner solver; it has no closed-form update rule")
        return self._rule

    def torch_source(self) -> str:
        return self._update.source if self._update is not None else ""
