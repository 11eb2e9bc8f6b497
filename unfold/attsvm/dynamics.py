"""The weight dynamics through ``unfold.steps``: the dataset loss as one Energy in ``W``.

For a dataset of ``n`` sequences the energy of the weight dynamics is the training loss::

    L(W) = Σ_{i=1..n} (1/n) ℓ_i(W),   ℓ_i(W) = log(1 + exp(−y_i vᵀX_iᵀ softmax(X_i W z_i)))

with one named term ``seq<i>`` per sequence (so ``energy_terms`` breaks the loss down by
sequence).  :func:`training_step` is a :class:`~unfold.steps.GradientStep` on ``L`` with the
:class:`~unfold.steps.NormalizedGradient` policy: normalized GD as an ``nn.Module`` whose
descent ``unfold.verify.check_descent`` can measure.  Datasets of a batch are independent
problems (``W`` of shape ``(B, d, d)``, ``X_i`` of shape ``(B, T, d)``).

:func:`unfold.attsvm.train.train` runs the same iteration with the per-sequence energy in a batched
layout (one generated call per iteration, all sequences and datasets at once); the tests check that
both give the same iterates.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from ..errors import InputError
from ..symbolic import Energy, param, scalar
from .data import AttDataset
from .model import attention_loss
from ..steps.policies import NormalizedGradient

__all__ = ["dataset_energy", "dataset_inputs", "training_step", "unrolled_training"]


@lru_cache(maxsize=4)
def dataset_energy(n: int) -> Energy:
    """``L(W) = (1/n) Σ_i ℓ_i(W)`` with parameters ``X1..Xn``, ``z1..zn``, ``v`` and scalars ``y1..yn``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"dataset_energy needs a positive number of sequences, got {n!r}")
    E = attention_loss()
    X, z, y = E.symbol("X"), E.symbol("z"), E.symbol("y")
    terms = {}
    for i in range(1, n + 1):
        sub = {X: param(f"X{i}", *X.shape), z: param(f"z{i}", *z.shape), y: scalar(f"y{i}")}
        terms[f"seq{i}"] = E.terms["logistic"].xreplace(sub) / n
    return Energy(terms=terms)


def dataset_inputs(data: AttDataset) -> dict[str, torch.Tensor]:
    """The inputs of :func:`dataset_energy` (everything but ``W``) from a batch of datasets."""
    B, n, T, d = data.sizes
    out: dict[str, torch.Tensor] = {"v": data.v[:, 0]}
    for i in range(n):
        out[f"X{i + 1}"] = data.X[:, i]
        out[f"z{i + 1}"] = data.z[:, i]
        out[f"y{i + 1}"] = data.y[:, i]
    return out


def training_step(data: AttDataset, eta: float = 0.1) -> Any:
    """Normalized GD on ``L`` as a :class:`~unfold.steps.GradientStep` holding the data as buffers."""
    from ..steps import GradientStep

    return GradientStep(dataset_energy(data.sizes[1]), wrt="W", step=NormalizedGradient(eta), buffers=dataset_inputs(data))


def unrolled_training(data: AttDataset, W0: torch.Tensor, iters: int, eta: float = 0.1) -> tuple[torch.Tensor, Any]:
    """``iters`` normalized GD steps from ``W0`` (shape ``(B, d, d)``) with ``unfold.steps.Unrolled``;
    returns the final ``W`` and the :class:`~unfold.steps.Trajectory` (states and loss per step)."""
    from ..steps import Unrolled

    model = Unrolled(training_step(data, eta), depth=iters, tied=True)
    with torch.no_grad():
        return model(W0, return_trajectory=True)
