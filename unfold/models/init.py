"""Seeded initialisation: a model built with the same seed has the same weights in every process
(no draw from torch's global generator), which DDP replicas and reproducible runs rely on."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["init_linears"]


@torch.no_grad()
def init_linears(module: nn.Module, generator: torch.Generator) -> None:
    """Every ``nn.Linear`` in ``module``: weight ``~ U(±1/√fan_in)`` drawn from ``generator``, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = m.in_features ** -0.5
            m.weight.copy_((2 * torch.rand(m.weight.shape, generator=generator) - 1) * bound)
            if m.bias is not None:
                m.bias.zero_()
