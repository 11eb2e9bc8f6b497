"""A standard ``nn.TransformerEncoder`` digit classifier: not generated from an energy — it is the
kind of trained network :func:`unfold.audit.audit` measures against the Hopfield reading of
attention."""

from __future__ import annotations

import torch
from torch import nn

from .data import patches
from .init import init_linears

__all__ = ["EncoderClassifier"]


class EncoderClassifier(nn.Module):
    """Patch embedding, ``depth`` post-norm ``nn.TransformerEncoderLayer``s (batch first), mean
    pooling and a linear head."""

    def __init__(self, patch_dim: int = 4, tokens: int = 16, width: int = 32, heads: int = 4,
                 depth: int = 2, classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Linear(patch_dim, width)
        self.position = nn.Parameter(0.02 * torch.randn(tokens, width, generator=g))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)
        init_linears(self, g)       # every Linear, the attention's out_proj included; in_proj below
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None:
                    b = (6 / (m.in_proj_weight.shape[0] + m.in_proj_weight.shape[1])) ** 0.5
                    m.in_proj_weight.copy_((2 * torch.rand(m.in_proj_weight.shape, generator=g) - 1) * b)

    def tokens_of(self, images: torch.Tensor) -> torch.Tensor:
        """Embedded tokens ``(B, n, width)``: the encoder's input."""
        return self.embed(patches(images)) + self.position

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.tokens_of(images)).mean(1))
