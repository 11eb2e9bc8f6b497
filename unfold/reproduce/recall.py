"""Associative recall (a synthetic task) with a generated Hopfield layer.

:class:`~unfold.models.HopfieldRecall` stores the key–value pairs of a sequence as patterns and
retrieves with ``k = 2`` CCCP steps per head (Ramsauer et al., arXiv 2008.02217).  Asserted: test
accuracy (≥ 0.95; quick ≥ 0.5), and that the Hopfield energy ``Σ_h E_h(Ξ^t)`` never increases along the
steps for any test sequence (float64).  Reported: the fraction of (sequence, head) retrievals whose
largest association weight falls on the queried pair (for some head).
"""

from __future__ import annotations

import time
from typing import Iterator

import torch
import torch.nn.functional as F

from ..catalogue.base import Figure
from ..models import HopfieldRecall, associative_recall, fit
from .base import Criterion, ExperimentResult, Profile

__all__ = ["hopfield_recall"]

VOCAB, PAIRS = 16, 8


def hopfield_recall(profile: Profile) -> ExperimentResult:
    t0 = time.perf_counter()
    epochs = 3 if profile.quick else 15
    torch.manual_seed(profile.seed)
    model = HopfieldRecall(VOCAB, width=32, heads=2, update_steps=2, seed=profile.seed)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(20):
            seq, target = associative_recall(128, PAIRS, VOCAB, seed=profile.seed * 10**6 + epoch * 100 + i)
            yield seq, target - VOCAB

    log = fit(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]), batches, epochs=epochs, lr=1e-2,
              progress=profile.progress, desc="Hopfield recall")
    seq, target = associative_recall(2000, PAIRS, VOCAB, seed=10**9 + profile.seed)
    model = model.double()
    with torch.no_grad():
        acc = float((model(seq).argmax(-1) == target - VOCAB).double().mean())
    E = model.energies(seq)
    rise = float(((E[1:] - E[:-1]) / E[:-1].abs().clamp_min(1.0)).max())
    hits = model.retrieves(seq)
    right, any_head = float(hits.double().mean()), float(hits.any(-1).double().mean())
    res = ExperimentResult("hopfield_recall", "Associative recall: key–value pairs stored in a generated Hopfield layer",
                           "Ramsauer et al., arXiv 2008.02217 (CCCP retrieval)")
    res.criteria += [
        Criterion("test accuracy", acc, 0.5 if profile.quick else 0.95, "≥",
                  detail=f"{PAIRS} pairs, {VOCAB} keys and values, 2000 held-out sequences; {epochs} epochs, "
                         f"{log.seconds:.0f} s; width 32, 2 heads, 2 CCCP steps"),
        Criterion("largest relative increase of Σ_h E_h along the CCCP steps", rise, 1e-12, "≤",
                  detail="float64, every test sequence"),
        Criterion("sequences where some head's largest association weight is on the queried pair", any_head, 0.9,
                  "≥", asserted=False, detail=f"per (sequence, head): {right:.3f}"),
    ]
    res.figures.append(Figure("recall_energy", "Hopfield recall: energy along the CCCP steps",
                              [float(t) for t in range(E.shape[0])], {"Σ_h E_h(Ξ^t) (mean over test sequences)":
                                                                       [float(e) for e in E.mean(-1)]},
                              "CCCP step t", "energy"))
    res.seconds = time.perf_counter() - t0
    return res
