"""``unfold audit``: does each layer of a trained network descend the energy its claim names?

``audit(model, x)`` measures, per layer, the energy before and after, whether it decreased, the
distance from the layer's output to the exact generated descent step, and how far the trained
weights are from the claim's assumptions (:mod:`unfold.audit.core`).  It accepts

* unfold's trained models: :class:`~unfold.models.CRATE`, :class:`~unfold.models.HopfieldClassifier`;
* ``nn.TransformerEncoder``, a list of ``nn.TransformerEncoderLayer``, or an
  ``nn.MultiheadAttention`` (the Hopfield reading of attention, :mod:`unfold.audit.attention`);
* any module with ``energy=``, ``wrt=`` and a parameter ``mapping=`` (:mod:`unfold.audit.mapping`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import InputError
from ..models import CRATE, HopfieldClassifier
from .attention import audit_attention, audit_encoder, hopfield_step
from .core import AuditReport, Gap, LayerAudit, audit_step, relative_asymmetry
from .mapping import audit_module
from .models import audit_crate, audit_deq

__all__ = [
    "audit", "AuditReport", "Gap", "LayerAudit", "audit_step", "audit_attention", "audit_encoder",
    "audit_module", "audit_crate", "audit_deq", "hopfield_step", "relative_asymmetry",
]


def audit(model: Any, x: torch.Tensor, *, energy: Any = None, wrt: Optional[str] = None,
          mapping: Optional[Mapping[str, Any]] = None, **kw: Any) -> AuditReport:
    """Audit ``model`` at input ``x`` (see the module docstring for what is accepted)."""
    if mapping is not None or energy is not None:
        if mapping is None or energy is None or wrt is None:
            raise InputError("audit: a user module needs energy=, wrt= and mapping= together")
        return audit_module(model, energy, wrt, mapping, x, **kw)
    if isinstance(model, CRATE):
        return audit_crate(model, x)
    if isinstance(model, HopfieldClassifier):
        return audit_deq(model, x)
    if isinstance(model, nn.MultiheadAttention):
        return AuditReport("multi-head attention", [audit_attention(model, x)])
    if isinstance(model, nn.TransformerEncoder) or (
            isinstance(model, (list, tuple, nn.ModuleList)) and model
            and all(isinstance(m, (nn.TransformerEncoderLayer, nn.MultiheadAttention)) for m in model)):
        return audit_encoder(list(model) if not isinstance(model, nn.TransformerEncoder) else model, x)
    raise InputError(
        f"audit: no built-in mapping for {type(model).__name__}; pass energy=, wrt= and mapping= "
        "(energy input name → the module's tensor) to audit it against an energy")
