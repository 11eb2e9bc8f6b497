"""``Alternating``: a block-coordinate schedule applying several steps in turn.

With steps ``s_1, ..., s_m``: ``x ← s_m(...s_2(s_1(x)))``.  When all steps update the same state,
the state is a tensor; when they update different variables (block-coordinate descent over
``(energy, variable)`` pairs) the state is a dict ``{variable name: tensor}`` and each step receives
the other variables as inputs.  The schedule's energy is the sum of its steps' distinct energies
(each energy counted once: steps on one energy share it; steps on different terms of a separable
sum add up to the whole), or the ``energy=`` given.  If every step descends the schedule's energy
in its own variable, the schedule descends it too.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, cast

import torch
from torch import nn

from ..errors import InputError
from ..symbolic.energy import Energy
from ..verify.protocols import DescentStep, StateStep
from ..symbolic.energy import unique_name

__all__ = ["Alternating"]

Tensor = torch.Tensor


def _key(step: nn.Module) -> tuple[int, int]:
    return id(getattr(step, "source_energy", step)), id(getattr(step, "prox", None))


class Alternating(nn.Module):
    """Apply ``steps`` in turn (see the module docstring)."""

    def __init__(self, steps: Sequence[nn.Module], energy: Optional[Energy] = None) -> None:
        super().__init__()
        steps = list(steps)
        if not steps or not all(isinstance(s, nn.Module) and isinstance(s, DescentStep) for s in steps):
            raise InputError("Alternating needs a non-empty list of descent steps (modules with .energy)")
        self.steps = nn.ModuleList(steps)
        names = [getattr(s, "wrt_name", None) for s in steps]
        self.variables = list(dict.fromkeys(names))
        self.multi = len(self.variables) > 1
        if self.multi and None in self.variables:
            raise InputError("Alternating over several variables needs steps with a named state (wrt)")
        self._energy = energy
        self._compiled = energy.compile() if energy is not None else None

    def _split(self, x: Any) -> dict[str, Tensor]:
        if not isinstance(x, dict) or set(x) != set(self.variables):
            raise InputError(
                f"Alternating over {self.variables}: the state must be a dict with exactly these keys"
            )
        return dict(x)

    @staticmethod
    def _for(step: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        if hasattr(step, "accepted_inputs"):
            ok = step.accepted_inputs()
            return {k: v for k, v in inputs.items() if k in ok and k != getattr(step, "wrt_name", None)}
        return inputs

    def forward(self, x: Any, /, **inputs: Any) -> Any:
        if not self.multi:
            for s in self.steps:
                x = s(x, **self._for(s, inputs))
            return x
        state = self._split(x)
        for s in self.steps:
            v = cast(StateStep, s).wrt_name
            others = {k: t for k, t in state.items() if k != v}
            state[v] = s(state[v], **self._for(s, {**inputs, **others}))
        return state

    def _each(self, x: Any, inputs: dict[str, Any], what: str) -> list[Any]:
        out, seen = [], set()
        for s in self.steps:
            k = _key(s)
            if k in seen:
                continue
            seen.add(k)
            if self.multi:
                state = self._split(x)
                v = cast(StateStep, s).wrt_name
                args = self._for(s, {**inputs, **{n: t for n, t in state.items() if n != v}})
                out.append(getattr(s, what)(state[v], **args))
            else:
                out.append(getattr(s, what)(x, **self._for(s, inputs)))
        return out

    def energy(self, x: Any, /, **inputs: Any) -> Tensor:
        """The schedule's energy (see the module docstring)."""
        if self._compiled is not None:
            vals: dict[Any, Any] = dict(self._split(x)) if self.multi else {self.variables[0]: x}
            vals.update({k: v for k, v in inputs.items() if k in self._compiled.names})
            return self._compiled(**vals)
        parts = self._each(x, inputs, "energy")
        return sum(parts[1:], parts[0])

    def energy_terms(self, x: Any, /, **inputs: Any) -> dict[str, Tensor]:
        if self._compiled is not None:
            vals: dict[Any, Any] = dict(self._split(x)) if self.multi else {self.variables[0]: x}
            vals.update({k: v for k, v in inputs.items() if k in self._compiled.names})
            return self._compiled.breakdown(**vals)
        out: dict[str, Tensor] = {}
        for terms in self._each(x, inputs, "energy_terms"):
            for k, t in terms.items():
                out[unique_name(k, out)] = t
        return out

    def accepted_inputs(self) -> set[str]:
        out: set[str] = set()
        for s in self.steps:
            out |= cast(Any, s).accepted_inputs() if hasattr(s, "accepted_inputs") else set()
        return out - set(self.variables)
