"""Inputs for generated energy functions: explicit small sizes for the symbolic leg, and random
tensors of the right shapes (used by the gradient check, the steps' curvature estimates and tests)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import sympy as sp
import torch
from sympy.matrices.expressions import MatrixSymbol

from .symbolic.symbols import Dim

__all__ = ["explicit_sizes", "random_inputs"]


def explicit_sizes(dims: Sequence[Dim]) -> dict[Dim, int]:
    """Small sizes: 3 for the first dimension, 2 for the others (every dim ≤ 3; at least two
    distinct sizes whenever there are two dims, so a transposed product is a shape error)."""
    return {d: (3 if i == 0 else 2) for i, d in enumerate(dims)}


def _size(x: Any, sizes: Mapping[Any, int]) -> int:
    """A declared size (an int, or a sympy expression in the dims) at the explicit ``sizes``."""
    return int(x.subs(sizes)) if isinstance(x, sp.Basic) else int(x)


def random_inputs(
    energy: Any,
    sizes: Mapping[Dim, int],
    batch: tuple[int, ...] = (),
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Any]:
    """Random inputs: states batched, parameters unbatched; square matrices near ``2I`` (so
    inverses and log-determinants are defined), others ``N(0, 0.5²)``; scalars in ``[0.5, 1.5]``.
    A matrix over named axes gets its axes' sizes as leading dims (after the batch)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for s in energy.inputs:
        if isinstance(s, MatrixSymbol):
            r, c = (_size(x, sizes) for x in s.shape)
            lead = batch if getattr(s, "role", "") == "state" else ()
            lead = tuple(lead) + tuple(_size(a.size, sizes) for a in getattr(s, "axes", ()))
            if getattr(s, "role", "") == "mask":  # boolean; key 0 and the diagonal always allowed
                keep = torch.rand(*lead, r, c, generator=g) > 0.4
                keep[..., 0, :] = True
                keep[..., :, 0] = True
                if r == c:
                    keep |= torch.eye(r, dtype=torch.bool)
                out[str(s)] = keep
                continue
            t = torch.randn(*lead, r, c, generator=g, dtype=dtype)
            if r == c and r > 1:
                t = 2 * torch.eye(r, dtype=dtype) + 0.3 * t
            else:
                t = 0.5 * t
            out[str(s)] = t
        else:
            out[str(s)] = float(0.5 + torch.rand((), generator=g, dtype=torch.float64))
    return out
