"""Auditing a user's module against an energy through a parameter mapping.

``audit_module(module, energy, wrt, mapping, x)`` reads the module's tensors named by ``mapping``
(energy input name → attribute path in the module, e.g. ``{"W": "layers.0.weight"}``, or a
callable ``module ↦ tensor`` for a derived quantity such as ``lambda m: m.a.weight.T @ m.b.weight``),
builds the generated :class:`~unfold.steps.GradientStep` on ``energy`` with step ``step`` and
audits ``x ↦ module(x)`` (or ``forward(module, x)``) against it (:func:`~unfold.audit.core.audit_step`).
Every problem is reported at build time, naming the parameter: a mapping entry that is not an
input of the energy, a path the module does not have, a tensor whose shape does not fit the
energy, an output whose shape is not the state's.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import DimMismatchError, InputError, ShapeMismatchError, UndeclaredSymbolError
from ..steps import GradientStep
from ..symbolic import Energy
from .core import AuditReport, Gap, audit_step

__all__ = ["audit_module", "mapped_tensor"]

Tensor = torch.Tensor
Source = Union[str, Callable[[nn.Module], Tensor]]


def mapped_tensor(module: nn.Module, name: str, source: Source) -> Tensor:
    """The tensor ``source`` names in ``module`` (an attribute path or a callable)."""
    t: Any
    if callable(source):
        t = source(module)
    elif isinstance(source, str):
        t = module
        walked = []
        for part in source.split("."):
            walked.append(part)
            if isinstance(t, (nn.ModuleList, nn.Sequential)) and part.isdigit() and int(part) < len(t):
                t = t[int(part)]
            elif hasattr(t, part):
                t = getattr(t, part)
            else:
                have = sorted(n for n, _ in module.named_parameters()) + sorted(n for n, _ in module.named_buffers())
                raise UndeclaredSymbolError(
                    f"audit: the mapping of {name!r} names {source!r}, but {type(module).__name__} has no "
                    f"{'.'.join(walked)!r}; its parameters and buffers are {have}")
    else:
        raise InputError(f"audit: the mapping of {name!r} must be an attribute path or a callable, "
                         f"got {type(source).__name__}")
    if not isinstance(t, Tensor):
        raise InputError(f"audit: the mapping of {name!r} ({source!r}) is a {type(t).__name__}, not a tensor")
    return t.detach()


def audit_module(module: nn.Module, energy: Energy, wrt: str, mapping: Mapping[str, Source], x: Tensor,
                 step: float = 1.0, inputs: Optional[Mapping[str, Any]] = None,
                 forward: Optional[Callable[[nn.Module, Tensor], Tensor]] = None,
                 gaps: Sequence[Gap] = (), name: str = "module", energy_name: str = "E") -> AuditReport:
    """Audit ``x ↦ module(x)`` as one gradient step of size ``step`` on ``energy`` in ``wrt``."""
    if not isinstance(module, nn.Module):
        raise InputError(f"audit_module: expected an nn.Module, got {type(module).__name__}")
    if not isinstance(energy, Energy):
        raise InputError(f"audit_module: expected an unfold Energy, got {type(energy).__name__}")
    names = {str(s) for s in energy.inputs}
    unknown = sorted(k for k in mapping if k not in names)
    if unknown:
        raise UndeclaredSymbolError(
            f"audit_module: the mapping names {unknown}, which are not inputs of the energy; its inputs are "
            f"{sorted(names)}")
    tensors = {k: mapped_tensor(module, k, src) for k, src in mapping.items()}
    for k, t in tensors.items():
        sym = energy.symbol(k)
        shape: Any = getattr(sym, "shape", ())
        if len(shape) == 2 and t.dim() < 2 and not (t.dim() == 0 and shape == (1, 1)):
            raise ShapeMismatchError(
                f"audit_module: {k!r} (from {mapping[k]!r}) has shape {tuple(t.shape)}; the energy's {k} is a "
                f"{shape[0]}×{shape[1]} matrix")
    lay = GradientStep(energy, wrt=wrt, step=step)
    extra = dict(inputs or {})
    try:
        lay.energy(x, **tensors, **extra)
    except (DimMismatchError, ShapeMismatchError) as exc:
        raise ShapeMismatchError(
            f"audit_module: the mapped tensors do not fit the energy ({exc}); mapping: "
            + ", ".join(f"{k} ← {mapping[k]!r} {tuple(t.shape)}" for k, t in tensors.items())) from None
    with torch.no_grad():
        y = forward(module, x) if forward is not None else module(x)
    if not isinstance(y, Tensor) or y.shape != x.shape:
        raise ShapeMismatchError(
            f"audit_module: the module's output has shape {tuple(getattr(y, 'shape', ()))}, the state {wrt!r} "
            f"has shape {tuple(x.shape)}; pass forward= to read the state from the module's output")
    report = AuditReport(name)
    report.layers.append(audit_step(name, lay, x, y, {**tensors, **extra}, gaps, energy_name=energy_name))
    return report
