"""The audit record: does each layer of a trained network descend the energy its claim names?

For one layer with input ``x``, output ``y = layer(x)`` and the generated descent step ``S`` on the
claimed energy ``E`` (with the layer's weights mapped to the energy's parameters):

* ``energy_before = E(x)``, ``energy_after = E(y)`` (means over the batch) and ``decreased``:
  ``E(y) ≤ E(x)`` for every sample (up to ``1e-12·max(1, |E(x)|)``);
* ``step_distance = ‖y − S(x)‖ / ‖S(x) − x‖``: how far the layer's output is from the exact descent
  step, relative to the step's own length (0 when the layer *is* the step);
* ``gaps``: how far the weights are from the claim's assumptions, each a measured number with the
  bound under which the assumption holds (e.g. ``‖W_QᵀW_K − W_KᵀW_Q‖/‖W_QᵀW_K‖ ≤ 1e-6``,
  ``η λ_max(DᵀD) ≤ 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

__all__ = ["Gap", "LayerAudit", "AuditReport", "audit_step", "relative_asymmetry"]

Tensor = torch.Tensor


@dataclass
class Gap:
    """An assumption measured on trained weights: ``value`` against ``bound`` (holds iff ``value ≤ bound``)."""

    name: str
    value: float
    bound: float

    @property
    def holds(self) -> bool:
        return bool(self.value <= self.bound)


@dataclass
class LayerAudit:
    """One layer's audit (see the module docstring)."""

    layer: str
    energy_name: str
    energy_before: float
    energy_after: float
    decreased: bool
    fraction_decreased: float
    step_distance: float
    gaps: list[Gap] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "energy": self.energy_name, "energy_before": self.energy_before,
                "energy_after": self.energy_after, "decreased": self.decreased,
                "fraction_decreased": self.fraction_decreased, "step_distance": self.step_distance,
                "gaps": [{"name": g.name, "value": g.value, "bound": g.bound, "holds": g.holds} for g in self.gaps]}


@dataclass
class AuditReport:
    """Per-layer audits of one model."""

    model: str
    layers: list[LayerAudit] = field(default_factory=list)

    @property
    def all_decreased(self) -> bool:
        return all(a.decreased for a in self.layers)

    def table(self) -> str:
        """A plain-text table: one row per layer, assumption gaps on the lines below."""
        head = f"{'layer':<22} {'energy':<14} {'before':>11} {'after':>11}  {'decreased':<10} {'dist. to step':>13}"
        lines = [f"audit of {self.model}", head, "─" * len(head)]
        for a in self.layers:
            dec = ("yes" if a.decreased else f"no ({a.fraction_decreased:.0%})")
            lines.append(f"{a.layer:<22} {a.energy_name:<14} {a.energy_before:>11.4g} {a.energy_after:>11.4g}  "
                         f"{dec:<10} {a.step_distance:>13.3g}")
            for g in a.gaps:
                lines.append(f"{'':<24}{'✓' if g.holds else '✗'} {g.name}: {g.value:.3g} (holds if ≤ {g.bound:g})")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "layers": [a.as_dict() for a in self.layers]}

    def __str__(self) -> str:
        return self.table()


def _mean(t: Tensor) -> float:
    return float(t.double().mean())


def audit_step(name: str, step: Any, x: Tensor, y: Tensor, inputs: Optional[Mapping[str, Any]] = None,
               gaps: Sequence[Gap] = (), energy_name: str = "E",
               exact: Optional[Callable[[Tensor], Tensor]] = None) -> LayerAudit:
    """Audit a layer mapping ``x ↦ y`` against the generated step ``step`` (an
    :class:`~unfold.steps.EnergyStep` or anything with ``energy`` and ``__call__``) at ``inputs``.
    ``exact`` overrides the exact step (default ``step(x, **inputs)``)."""
    inputs = dict(inputs or {})
    with torch.no_grad():
        e0 = step.energy(x, **inputs)
        e1 = step.energy(y, **inputs)
        s = exact(x) if exact is not None else step(x, **inputs)
        tol = 1e-12 * e0.abs().clamp_min(1.0)
        ok = e1 <= e0 + tol
        dims = tuple(range(-2, 0))
        dist = (y - s).pow(2).sum(dims).sqrt() / (s - x).pow(2).sum(dims).sqrt().clamp_min(1e-300)
    return LayerAudit(name, energy_name, _mean(e0), _mean(e1), bool(ok.all()), _mean(ok.double()),
                      _mean(dist), list(gaps))


def relative_asymmetry(M: Tensor) -> float:
    """``‖M − Mᵀ‖_F / ‖M‖_F`` (largest over leading batch dimensions)."""
    num = (M - M.mT).pow(2).sum((-2, -1)).sqrt()
    den = M.pow(2).sum((-2, -1)).sqrt().clamp_min(1e-300)
    return float((num / den).max())
