"""The named interfaces the checks rely on (instead of probing attributes with ``hasattr``).

* :class:`DescentStep` — a layer that is one descent step on an energy of its state: calling it
  maps ``x`` to ``x⁺``; ``energy(x, **inputs)`` is the energy it descends (per batch element) and
  ``energy_terms`` its named terms.  Every :class:`unfold.steps.EnergyStep` is one, and so are
  the schedules and wrappers of ``unfold.steps`` (``Alternating``, ``FixedPoint``, ``InputAsData``).
* :class:`DescentModule` — a descent step that is also a ``torch.nn.Module`` (has parameters): what
  the schedules and wrappers of ``unfold.steps`` hold.
* :class:`StateStep` — a descent step on one named state matrix (``wrt_name``).
* :class:`ProximalStep` — a descent step ``x⁺ = prox_{ηg}(x − η∇f(x))`` that also exposes its
  smooth part ``f`` and the gradient mapping ``(x − prox_{ηg}(x − η∇f(x)))/η``.
* :class:`StepStack` — a model of ``depth`` descent steps (``layer(k)`` is the ``k``-th), such as
  :class:`unfold.steps.Unrolled`.
* :class:`WrapsStep` — a model driven by one descent step (``.step``), such as
  :class:`unfold.steps.FixedPoint`.

``isinstance`` works on all of them (runtime-checkable protocols check that the members exist).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import torch

__all__ = ["DescentStep", "DescentModule", "StateStep", "ProximalStep", "StepStack", "WrapsStep"]


@runtime_checkable
class DescentStep(Protocol):
    """``x ↦ x⁺`` with ``energy(x⁺) ≤ energy(x)`` under the step's condition (module docstring)."""

    def __call__(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor: ...
    def energy(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor: ...
    def energy_terms(self, x: torch.Tensor, /, **inputs: Any) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class DescentModule(DescentStep, Protocol):
    """A :class:`DescentStep` that is an ``nn.Module``: its parameters are the layer's weights."""

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


@runtime_checkable
class StateStep(DescentStep, Protocol):
    """A descent step whose state is the input called ``wrt_name``."""

    wrt_name: str


@runtime_checkable
class ProximalStep(StateStep, Protocol):
    """A proximal-gradient step on ``f + g``: ``smooth_energy`` is ``f``; ``gradient_mapping(x, η)``
    vanishes exactly at the stationary points of ``f + g``."""

    def smooth_energy(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor: ...
    def gradient_mapping(self, x: torch.Tensor, eta: float, /, **inputs: Any) -> torch.Tensor: ...


@runtime_checkable
class StepStack(Protocol):
    """``depth`` descent steps applied in turn; ``layer(k)`` is step ``k``."""

    depth: int

    def layer(self, k: int) -> Any: ...


@runtime_checkable
class WrapsStep(Protocol):
    """A model driven by one descent step (e.g. iterated to a fixed point)."""

    step: Any
