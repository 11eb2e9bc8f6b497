"""``Unrolled``: a stack of ``depth`` descent steps (weights tied or untied), with trajectories.

``x_{k+1} = step_k(x_k)`` for ``k = 0..depth−1``; with ``tied=True`` every layer is the same module
(shared parameters), with ``tied=False`` each layer is a deep copy (its own parameters).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence, Union, cast

import torch
from torch import nn

from ..errors import InputError
from ..verify.protocols import DescentModule, DescentStep

__all__ = ["Unrolled", "Trajectory", "as_step"]


@dataclass
class Trajectory:
    """States and energies along an unrolled run.

    ``states[k]`` is the state after ``k`` layers (``states[0] = x0``); ``energies[k]`` is the energy
    descended by the layer that produced ``states[k]`` (layer 0's for ``x0``), shape
    ``(depth+1, ...)``; ``terms[name]`` the same per energy term.
    """

    states: list[Any] = field(default_factory=list)
    energies: torch.Tensor = None  # type: ignore[assignment]
    terms: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.states)


def as_step(step_or_steps: Union[nn.Module, Sequence[nn.Module]]) -> DescentModule:
    """A single step module; a list of steps becomes an :class:`~unfold.steps.Alternating` schedule."""
    if isinstance(step_or_steps, (list, tuple)):
        from .schedule import Alternating

        return cast(DescentModule, Alternating(list(step_or_steps)))
    if not isinstance(step_or_steps, nn.Module) or not isinstance(step_or_steps, DescentStep):
        raise InputError(
            f"expected a descent step (an nn.Module with .energy) or a list of them, got "
            f"{type(step_or_steps).__name__}"
        )
    return cast(DescentModule, step_or_steps)


class Unrolled(nn.Module):
    """``depth`` layers of a descent step; ``model(x0, return_trajectory=True)`` also returns a
    :class:`Trajectory`."""

    step: DescentModule  # the shared layer (tied)

    def __init__(self, step: Union[nn.Module, Sequence[nn.Module]], depth: int = 12, tied: bool = True) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InputError(f"Unrolled: depth must be a positive int, got {depth!r}")
        base = as_step(step)
        self.depth, self.tied = depth, bool(tied)
        if self.tied:
            self.step = base
        else:
            self.layers = nn.ModuleList([cast(nn.Module, copy.deepcopy(base)) for _ in range(depth)])

    def layer(self, k: int) -> DescentModule:
        """The module applied at layer ``k`` (0-based)."""
        return self.step if self.tied else cast(DescentModule, self.layers[k])

    def energy(self, x: Any, /, **inputs: Any) -> torch.Tensor:
        """The energy of the first layer (of every layer when tied)."""
        return self.layer(0).energy(x, **inputs)

    def energy_terms(self, x: Any, /, **inputs: Any) -> dict[str, torch.Tensor]:
        return self.layer(0).energy_terms(x, **inputs)

    def forward(self, x0: Any, /, return_trajectory: bool = False, **inputs: Any) -> Any:
        x = x0
        if not return_trajectory:
            for k in range(self.depth):
                x = self.layer(k)(x, **inputs)
            return x
        states = [x0]
        energies = [self.layer(0).energy(x0, **inputs)]
        terms = {n: [t] for n, t in self.layer(0).energy_terms(x0, **inputs).items()}
        for k in range(self.depth):
            lay = self.layer(k)
            x = lay(x, **inputs)
            states.append(x)
            energies.append(lay.energy(x, **inputs))
            for n, t in lay.energy_terms(x, **inputs).items():
                terms.setdefault(n, []).append(t)
        traj = Trajectory(
            states=states,
            energies=torch.stack(energies),
            terms={n: torch.stack(v) for n, v in terms.items() if len(v) == len(states)},
        )
        return x, traj

    def extra_repr(self) -> str:
        return f"depth={self.depth}, tied={self.tied}"
