"""Offline data for the trained models: scikit-learn's bundled digits and synthetic tasks.

* :func:`digits` — the 1797 8×8 handwritten digits that ship with scikit-learn (no download),
  pixel values scaled to ``[0, 1]``, split into train/test by a seeded permutation (stratified by
  class); :func:`patches` cuts images into ``patch×patch`` tokens (2×2 → 16 tokens of width 4).
* :func:`icl_regression` — in-context linear regression tasks ``y = wᵀx`` (von Oswald et al.;
  Ahn et al.): ``w ~ N(0, Σ_w)`` (``I`` by default), ``x ~ N(0, Σ)``.
* :func:`associative_recall` — key–value pairs followed by a query key; the target is the value
  stored with that key.

Every sampler takes a ``torch.Generator`` (or a seed) so that a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from ..errors import InputError, ShapeMismatchError

__all__ = ["Digits", "digits", "patches", "unpatch", "icl_regression", "associative_recall"]

Tensor = torch.Tensor


def _gen(seed: Union[int, torch.Generator]) -> torch.Generator:
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))


@dataclass
class Digits:
    """Images ``(N, 8, 8)`` in ``[0, 1]`` and labels ``(N,)``, train and test."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def digits(seed: int = 0, test_fraction: float = 0.25, dtype: torch.dtype = torch.float32) -> Digits:
    """scikit-learn's bundled digits, split per class by a permutation drawn from ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is an install requirement
        raise InputError("unfold.models.digits needs scikit-learn (pip install scikit-learn)") from e
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    raw = load_digits()
    x = torch.tensor(raw.images, dtype=dtype) / 16.0
    y = torch.tensor(raw.target, dtype=torch.long)
    g = _gen(seed)
    train, test = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    tr, te = torch.cat(train).sort().values, torch.cat(test).sort().values
    return Digits(x[tr], y[tr], x[te], y[te])


def patches(images: Tensor, patch: int = 2) -> Tensor:
    """``(…, H, W)`` images → ``(…, (H/patch)(W/patch), patch²)`` tokens, row-major."""
    H, W = images.shape[-2:]
    if H % patch or W % patch:
        raise ShapeMismatchError(f"patches: image size {H}×{W} is not divisible by patch {patch}")
    t = images.unflatten(-2, (H // patch, patch)).unflatten(-1, (W // patch, patch))  # …, h, p, w, p
    t = t.movedim(-3, -2)                                                               # …, h, w, p, p
    return t.flatten(-4, -3).flatten(-2, -1)


def unpatch(tokens: Tensor, size: int = 8, patch: int = 2) -> Tensor:
    """Inverse of :func:`patches` for square images of side ``size``."""
    h = size // patch
    t = tokens.unflatten(-2, (h, h)).unflatten(-1, (patch, patch))                      # …, h, w, p, p
    return t.movedim(-2, -3).flatten(-4, -3).flatten(-2, -1)


def icl_regression(batch: int, n: int, d: int, seed: Union[int, torch.Generator] = 0,
                   cov: Optional[Tensor] = None, noise: float = 0.0,
                   dtype: torch.dtype = torch.float32, task_cov: Optional[Tensor] = None) -> dict[str, Tensor]:
    """Tasks ``y = wᵀx (+ noise)``: ``X (batch, d, n)`` context inputs as columns, ``y (batch, 1, n)``,
    query ``xq (batch, d, 1)``, target ``yq (batch, 1, 1)``, the task ``w (batch, d, 1)``.
    ``x ~ N(0, cov)``, ``w ~ N(0, task_cov)`` (identity when None)."""
    g = _gen(seed)
    w = torch.randn(batch, d, 1, generator=g, dtype=torch.float64)
    x = torch.randn(batch, d, n + 1, generator=g, dtype=torch.float64)
    for name, c in (("cov", cov), ("task_cov", task_cov)):
        if c is not None and c.shape != (d, d):
            raise ShapeMismatchError(f"icl_regression: {name} must be {d}×{d}, got {tuple(c.shape)}")
    if cov is not None:
        x = torch.linalg.cholesky(cov.to(torch.float64)) @ x
    if task_cov is not None:
        w = torch.linalg.cholesky(task_cov.to(torch.float64)) @ w
    y = w.mT @ x + noise * torch.randn(batch, 1, n + 1, generator=g, dtype=torch.float64)
    out = {"X": x[..., :n], "y": y[..., :n], "xq": x[..., n:], "yq": y[..., n:], "w": w}
    return {k: v.to(dtype) for k, v in out.items()}


def associative_recall(batch: int, pairs: int, vocab: int, seed: Union[int, torch.Generator] = 0
                       ) -> tuple[Tensor, Tensor]:
    """Sequences ``k₁ v₁ … k_P v_P q`` of token ids (keys distinct, from ``[0, vocab)``; values from
    ``[vocab, 2·vocab)``), shape ``(batch, 2P + 1)``, and the target: the value stored with ``q``."""
    if pairs > vocab:
        raise InputError(f"associative_recall: {pairs} distinct keys need vocab ≥ {pairs}, got {vocab}")
    g = _gen(seed)
    keys = torch.argsort(torch.rand(batch, vocab, generator=g), dim=1)[:, :pairs]
    values = torch.randint(vocab, 2 * vocab, (batch, pairs), generator=g)
    pick = torch.randint(0, pairs, (batch,), generator=g)
    seq = torch.stack([keys, values], dim=2).flatten(1)
    query = keys.gather(1, pick[:, None])
    return torch.cat([seq, query], dim=1), values.gather(1, pick[:, None]).squeeze(1)
