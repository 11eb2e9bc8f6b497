"""Random Att-SVM datasets (Tarzanagh et al. 2308.16898, ``local_converge`` setup).

A dataset is ``(X_i, y_i, z_i)_{i=1..n}`` with ``X_i ∈ R^{T×d}`` (tokens as rows), a query token
``z_i ∈ R^d``, a label ``y_i ∈ {±1}`` and a fixed value head ``v ∈ R^d``; tokens, queries and ``v``
are unit-normalised Gaussians.  The token scores are ``γ_it = y_i vᵀx_it`` and the globally optimal
token of sequence ``i`` is ``α_i = argmax_t γ_it``.

Tensors carry a leading batch axis of datasets so that many datasets train at once:
``X (B, n, T, d)``, ``z (B, n, d, 1)``, ``v (B, 1, d, 1)``, ``y (B, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

__all__ = ["AttDataset", "random_datasets"]


@dataclass(frozen=True)
class AttDataset:
    """A batch of ``B`` Att-SVM datasets of ``n`` sequences of ``T`` tokens in ``R^d``."""

    X: torch.Tensor  # (B, n, T, d)
    z: torch.Tensor  # (B, n, d, 1)
    v: torch.Tensor  # (B, 1, d, 1)
    y: torch.Tensor  # (B, n)

    def __post_init__(self) -> None:
        if self.X.dim() != 4:
            raise InputError(f"X must have shape (B, n, T, d), got {tuple(self.X.shape)}")
        B, n, T, d = self.X.shape
        for name, t, shape in (("z", self.z, (B, n, d, 1)), ("v", self.v, (B, 1, d, 1)), ("y", self.y, (B, n))):
            if tuple(t.shape) != shape:
                raise InputError(f"{name} must have shape {shape} to match X {tuple(self.X.shape)}, got {tuple(t.shape)}")

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """``(B, n, T, d)``."""
        B, n, T, d = self.X.shape
        return int(B), int(n), int(T), int(d)

    def inputs(self) -> dict[str, torch.Tensor]:
        """The energy's parameters and scalars by name (``X, z, v, y``) in the batched layout."""
        return {"X": self.X, "z": self.z, "v": self.v, "y": self.y}

    def scores(self) -> torch.Tensor:
        """Token scores ``γ_it = y_i vᵀ x_it``, shape ``(B, n, T)``."""
        return self.y[..., None] * (self.X @ self.v)[..., 0]

    def optimal_tokens(self) -> torch.Tensor:
        """The globally optimal tokens ``α_i = argmax_t γ_it``, shape ``(B, n)``."""
        return self.scores().argmax(dim=-1)

    def __getitem__(self, b: int | slice) -> "AttDataset":
        s = slice(b, b + 1) if isinstance(b, int) else b
        return AttDataset(self.X[s], self.z[s], self.v[s], self.y[s])


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


def random_datasets(
    B: int, n: int = 6, T: int = 8, d: int = 10, seed: int = 0, dtype: torch.dtype = torch.float64
) -> AttDataset:
    """``B`` independent datasets: ``v``, tokens ``x_it`` and queries ``z_i`` uniform on the unit
    sphere (normalised Gaussians), labels ``y_i`` uniform in ``{±1}``.  Same seed → same data."""
    if min(B, n, T, d) < 1 or T < 2:
        raise InputError(f"need B, n, d ≥ 1 and T ≥ 2, got B={B}, n={n}, T={T}, d={d}")
    g = torch.Generator().manual_seed(seed)
    v = _unit(torch.randn(B, 1, d, generator=g, dtype=torch.float64))
    y = torch.where(torch.randn(B, n, generator=g, dtype=torch.float64) > 0, 1.0, -1.0)
    X = _unit(torch.randn(B, n, T, d, generator=g, dtype=torch.float64))
    z = _unit(torch.randn(B, n, d, generator=g, dtype=torch.float64))
    return AttDataset(X.to(dtype), z[..., None].to(dtype), v[..., None].to(dtype), y.to(dtype))
