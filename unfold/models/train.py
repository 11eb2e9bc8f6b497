"""Training loops for the models: seeded, deterministic on CPU, with a tqdm progress bar.

``fit(model, loss, batches, epochs, lr)`` runs Adam over the mini-batches that ``batches(epoch)``
yields (a generator seeded per epoch, so the same seed gives the same run) and returns the
per-epoch mean losses and the wall time.  :func:`digit_batches` shuffles a data set per epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import InputError

__all__ = ["TrainLog", "fit", "digit_batches", "accuracy", "seed_all"]

Tensor = torch.Tensor


@dataclass
class TrainLog:
    """Per-epoch mean training loss and the wall time in seconds."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def seed_all(seed: int) -> None:
    """Seed torch's global generator (parameter initialisation, dropout)."""
    torch.manual_seed(seed)


def digit_batches(x: Tensor, y: Tensor, batch_size: int, seed: int) -> Callable[[int], Iterable[tuple[Tensor, Tensor]]]:
    """``epoch ↦`` shuffled ``(x, y)`` mini-batches (permutation drawn from ``seed`` and the epoch)."""
    if len(x) != len(y):
        raise InputError(f"digit_batches: {len(x)} inputs but {len(y)} labels")

    def batches(epoch: int) -> Iterable[tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx], y[idx]

    return batches


def fit(model: nn.Module, loss: Callable[[nn.Module, Any], Tensor],
        batches: Callable[[int], Iterable[Any]], epochs: int, lr: float = 3e-3,
        weight_decay: float = 0.0, progress: bool = True, desc: str = "train",
        clip: float | None = None) -> TrainLog:
    """Adam on ``loss(model, batch)`` for ``epochs`` passes over ``batches(epoch)`` (``clip``: the
    gradient norm is clipped to it before each step)."""
    if epochs < 1:
        raise InputError(f"fit: epochs must be ≥ 1, got {epochs}")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    log = TrainLog()
    t0 = time.perf_counter()
    bar = _bar(epochs, desc, progress)
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in batches(epoch):
            opt.zero_grad()
            value = loss(model, batch)
            value.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total, count = total + float(value.detach()), count + 1
        log.losses.append(total / max(count, 1))
        bar.set_postfix(loss=f"{log.losses[-1]:.4f}")
        bar.update(1)
    bar.close()
    model.eval()  # safe: nn.Module.eval (inference mode), evaluates no text
    log.seconds = time.perf_counter() - t0
    return log


def _bar(total: int, desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="epoch")


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` whose arg-max logit is ``y``."""
    model.eval()  # safe: nn.Module.eval (inference mode), evaluates no text
    right = 0
    for i in range(0, len(x), batch_size):
        right += int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
    return right / len(x)
