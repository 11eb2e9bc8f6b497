"""``InputAsData``: a step whose data input is the layer's own input.

Some layers descend an energy whose *data* is the state the layer receives: CRATE's ISTA block is
one proximal-gradient step on ``½‖Ẑ − DZ‖² + λ‖Z‖₁ + ι_{≥0}(Z)`` with data ``Ẑ`` equal to the
block's input, started at ``Z = Ẑ``.  ``InputAsData(step, data="Zh")`` is that layer:

    x⁺ = step(x; data = x)

so it can be stacked by :class:`~unfold.steps.Unrolled` / :class:`~unfold.steps.Alternating` like
any step.  Its energy is the step's energy with the data bound to the *layer input*: ``energy(x)``
binds the data to ``x`` unless a data tensor is passed by name (``energy(x_out, Zh=x_in)`` is the
energy after the layer, on the data the layer saw); :meth:`energies` returns both ends at once.
Descent ``E(x⁺; x) ≤ E(x; x)`` is the wrapped step's descent condition (e.g. ``η ≤ 1/λ_max(DᵀD)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InputError, UndeclaredSymbolError
from .base import EnergyStep

__all__ = ["InputAsData"]

Tensor = torch.Tensor


class InputAsData(nn.Module):
    """``x ↦ step(x, **{data: x})`` (see the module docstring)."""

    step: EnergyStep  # the wrapped generated step

    def __init__(self, step: EnergyStep, data: str) -> None:
        super().__init__()
        if not hasattr(step, "source_energy") or not hasattr(step, "wrt_name"):
            raise InputError(
                f"InputAsData: expected a descent step built from an energy, got {type(step).__name__}"
            )
        names = set(step.input_names(step.source_energy))
        if data not in names:
            raise UndeclaredSymbolError(
                f"InputAsData: {data!r} is not an input of the step's energy; inputs are {sorted(names)}"
            )
        if data == step.wrt_name:
            raise InputError(f"InputAsData: {data!r} is the state the step updates, not a data input")
        if data in getattr(step, "_held", ()):
            raise InputError(f"InputAsData: {data!r} is registered on the step; it cannot also be the layer input")
        self.step = step
        self.data = data
        self.source_energy = step.source_energy
        self.wrt = step.wrt
        self.wrt_name = step.wrt_name

    def _bound(self, x: Tensor, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, self.data: inputs.get(self.data, x)}

    def forward(self, x: Tensor, /, **inputs: Any) -> Tensor:
        if self.data in inputs:
            raise InputError(f"InputAsData: {self.data!r} is the layer input; do not pass it")
        return self.step(x, **{**inputs, self.data: x})

    def energy(self, x: Tensor, /, **inputs: Any) -> Tensor:
        """The step's energy at ``x``, data = ``inputs[data]`` if given, else ``x``."""
        return self.step.energy(x, **self._bound(x, inputs))

    def energy_terms(self, x: Tensor, /, **inputs: Any) -> dict[str, Tensor]:
        return self.step.energy_terms(x, **self._bound(x, inputs))

    def energies(self, x: Tensor, /, **inputs: Any) -> tuple[Tensor, Tensor, Tensor]:
        """``(x⁺, E(x; x), E(x⁺; x))``: the output and the energy before and after, on the layer's data."""
        out = self(x, **inputs)
        data = {self.data: x}
        return out, self.step.energy(x, **inputs, **data), self.step.energy(out, **inputs, **data)

    def accepted_inputs(self) -> set[str]:
        return set(self.step.accepted_inputs()) - {self.data}

    def input_names(self, energy: Any) -> frozenset[str]:
        return self.step.input_names(energy)

    def update_rule(self) -> Any:
        """The wrapped step's rule with the data symbol replaced by the state."""
        data_sym = self.source_energy.symbol(self.data)
        return self.step.update_rule().xreplace({data_sym: self.wrt})

    def extra_repr(self) -> str:
        return f"data={self.data}"
