"""Audits of unfold's own trained models (:mod:`unfold.models`), layer by layer.

* :class:`~unfold.models.CRATE`: per layer, the compression step on ``R^c`` (input ``LN(Z^ℓ)``)
  and the ISTA step on its LASSO energy (data = its input ``Y``).  Assumption gaps: the ISTA
  step-size bound ``η λ_max(DᵀD) ≤ 1``, the near-orthogonality of ``D`` (``max|DᵀD − I|``), the
  orthonormality of each ``U_k`` (``max|U_kᵀU_k − I|``); the near-orthogonality bounds (0.1) are
  the regime where the paper's reading of ``D`` as an incoherent dictionary is stated.
* :class:`~unfold.models.HopfieldClassifier`: one layer, the step on the injected Hopfield energy
  at a start ``ξ₀ = u`` (CCCP: needs no step-size bound).
"""

from __future__ import annotations

from typing import Any

import torch

from ..models import CRATE, HopfieldClassifier
from ..models.crate import _layer_norm
from .core import AuditReport, Gap, audit_step

__all__ = ["audit_crate", "audit_deq", "NEAR_ORTHOGONAL"]

NEAR_ORTHOGONAL = 0.1


def audit_crate(model: CRATE, x: torch.Tensor) -> AuditReport:
    """Per-layer audit of a CRATE model at images or patch tokens ``x``."""
    report = AuditReport("CRATE")
    stats = model.layer_statistics()
    with torch.no_grad():
        Z = model.tokens_of(x)
        layers: list[Any] = list(model.layers)
        for i, (layer, st) in enumerate(zip(layers, stats)):
            Zn = _layer_norm(Z, layer.ln_compress)
            Zh = layer.compress(Zn)
            report.layers.append(audit_step(f"layer {i} compression", layer.compress, Zn, Zh, energy_name="R^c",
                                            gaps=[Gap("U_k orthonormal: max_k max|U_kᵀU_k − I|",
                                                      st["U_orthonormality_gap"], NEAR_ORTHOGONAL)]))
            Y = _layer_norm(Zh, layer.ln_ista)
            out = layer.ista(Y)
            report.layers.append(audit_step(
                f"layer {i} ISTA", layer.ista.step, Y, out, {"Y": Y}, energy_name="LASSO",
                gaps=[Gap("ISTA step bound η λ_max(DᵀD)", st["eta"] * st["lambda_max_DtD"], 1.0),
                      Gap("D near-orthogonal: max|DᵀD − I|", st["D_orthogonality_gap"], NEAR_ORTHOGONAL)]))
            Z = out
    return report


def audit_deq(model: HopfieldClassifier, x: torch.Tensor) -> AuditReport:
    """One step of the DEQ's generated layer from ``ξ₀ = u(x)``, and the equilibrium's residual."""
    report = AuditReport("Hopfield DEQ")
    with torch.no_grad():
        u = model.injection(x)
        report.layers.append(audit_step("fixed-point step", model.step, u, model.step(u, inj=u), {"inj": u},
                                        energy_name="Hopfield+inj"))
    return report
