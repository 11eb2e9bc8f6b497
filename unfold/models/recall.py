"""Associative recall with a generated Hopfield layer: the stored patterns are the key–value pairs.

Sequences ``k₁ v₁ … k_P v_P q`` (:func:`~unfold.models.data.associative_recall`).  Each pair becomes
one stored token ``y_i = e(k_i) + f(v_i)`` (learned key and value embeddings ``e``, ``f``), the query
the state token ``r = e(q)``; a :class:`~unfold.models.HopfieldHeads` layer runs ``k`` CCCP steps of
each head's modern Hopfield energy ``E_h(Ξ) = −(1/β) lse(β Ξ K_hᵀ) + ½‖Ξ‖²`` (stored patterns
``K_h = Y W_K^hᵀ + b_K^h``; ``E_h`` never increases along them) and reads the retrieved pair out; a
linear head scores the ``vocab`` values.  Retrieval is right when the last association puts its
largest weight on the pair whose key is ``q`` (:meth:`HopfieldRecall.retrieves`).
"""

from __future__ import annotations

import torch
from torch import nn

from .hopfield_heads import HopfieldHeads
from .init import init_linears

__all__ = ["HopfieldRecall"]

Tensor = torch.Tensor


class HopfieldRecall(nn.Module):
    """``model(seq)`` → logits over the ``vocab`` values, ``(B, vocab)``; ``seq`` as
    :func:`~unfold.models.associative_recall` draws it (values are ids ``vocab … 2·vocab − 1``)."""

    def __init__(self, vocab: int, width: int = 32, heads: int = 2, update_steps: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.key = nn.Parameter(torch.randn(vocab, width, generator=g))
        self.value = nn.Parameter(torch.randn(vocab, width, generator=g))
        self.hopfield = HopfieldHeads(width, heads, update_steps_max=update_steps, seed=seed)
        self.head = nn.Linear(width, vocab)
        init_linears(self.head, g)

    def tokens(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """``(R, Y)``: the query's state token ``(B, 1, width)`` and the stored pair tokens ``(B, P, width)``."""
        pairs = (seq.shape[1] - 1) // 2
        Y = self.key[seq[:, 0:2 * pairs:2]] + self.value[seq[:, 1:2 * pairs:2] - self.vocab]
        return self.key[seq[:, -1:]], Y

    def forward(self, seq: Tensor) -> Tensor:
        R, Y = self.tokens(seq)
        return self.head(self.hopfield(R, Y)[:, 0])

    @torch.no_grad()
    def energies(self, seq: Tensor) -> Tensor:
        """``Σ_h E_h(Ξ^t)`` along the CCCP steps, ``(k+1, B)``."""
        return self.hopfield.state_energies(*self.tokens(seq))

    @torch.no_grad()
    def retrieves(self, seq: Tensor) -> Tensor:
        """Per sequence and head ``(B, H)``: does the last association weigh the queried pair most?"""
        pairs = (seq.shape[1] - 1) // 2
        target = (seq[:, 0:2 * pairs:2] == seq[:, -1:]).float().argmax(-1)          # index of the queried pair
        weights = self.hopfield.association(*self.tokens(seq))[..., 0, :]             # (B, H, P)
        return weights.argmax(-1) == target[:, None]
