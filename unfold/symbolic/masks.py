"""Attention masks for ``lse`` and ``softmax``: a built-in causal mask and declared mask inputs.

Orientation: a mask applies entry by entry to the matrix ``M`` given to ``lse``/``softmax`` as the
user writes it (``mask[i, j]`` concerns ``M[i, j]``), whatever ``axis`` is.  A declared mask
(``uf.mask("pad", rows, cols)``) is ``rows × cols`` like ``M``, or ``rows × 1`` / ``1 × cols`` to
broadcast (a key-padding mask is a vector over the keys: ``n × 1`` when tokens are columns,
``axis=0``; ``1 × n`` when tokens are rows, ``axis=1``).  At run time it is either boolean
(``True`` = take part, as ``F.scaled_dot_product_attention``'s boolean ``attn_mask``) or additive
(a float tensor added to ``M``, ``-inf`` where excluded; accepted by ``finite_checks``).

``uf.causal`` needs no input: the key (the index ``lse``/``softmax`` reduces over: the row for
``axis=0``, the column for ``axis=1``) may not come after the query, ``key ≤ query`` — with tokens
as rows (``axis=1``, scores ``S[query, key]``) it is SDPA's ``is_causal`` (lower triangular, top
left aligned).

A masked ``lse`` is ``log Σ_{allowed i} exp(M_ij + b_ij)``; its gradient is the masked softmax
(exactly 0 on excluded entries).  A query with no allowed key has ``lse = −inf``: not an energy.
"""

from __future__ import annotations

from typing import Any

from sympy import Basic
from sympy.matrices.expressions import MatrixExpr, Transpose

from ..errors import ShapeMismatchError
from .symbols import DimLike, _DeclaredMatrix, _as_dim, _check_name

__all__ = ["MaskMatrix", "Causal", "causal", "mask", "check_mask", "transpose_mask"]


class MaskMatrix(_DeclaredMatrix):
    """A declared attention mask (boolean or additive); an input, never differentiated."""

    role = "mask"


class Causal(Basic):
    """The built-in causal mask: key index ≤ query index (no input tensor)."""

    def __new__(cls) -> "Causal":
        return Basic.__new__(cls)

    def _sympystr(self, printer: Any) -> str:
        return "causal"

    def _latex(self, printer: Any) -> str:
        return r"\mathrm{causal}"


#: The built-in causal mask (``uf.causal``).
causal = Causal()


def mask(name: str, rows: DimLike, cols: DimLike = 1, *, over: Any = None) -> MaskMatrix:
    """Declare a mask input of shape ``rows × cols`` (or a broadcast vector), boolean or additive
    at run time; ``over=`` as for parameters (e.g. one mask per head)."""
    from .axes import axes_tuple

    name = _check_name(name, "mask")
    return MaskMatrix(name, _as_dim(rows, name), _as_dim(cols, name), axes_tuple(over, name))


def check_mask(m: Any, M: MatrixExpr, who: str) -> Basic:
    """Validate ``m`` as a mask of ``M`` and return it (``None`` passes through as ``None``)."""
    if m is None or isinstance(m, Causal):
        return m
    if isinstance(m, str) and m == "causal":
        return causal
    if not (isinstance(m, MaskMatrix) or (isinstance(m, Transpose) and isinstance(m.arg, MaskMatrix))):
        raise ShapeMismatchError(
            f"{who}(): mask must be uf.causal or a mask declared with uf.mask(...), got {m!r}"
        )
    r, c = m.shape
    if r not in (M.rows, 1) or c not in (M.cols, 1):
        raise ShapeMismatchError(
            f"{who}(): mask {m} is {r}×{c} but the scores {M} are {M.rows}×{M.cols}; a mask is "
            f"{M.rows}×{M.cols}, {M.rows}×1 or 1×{M.cols} (it applies to the scores as written)"
        )
    return m


def transpose_mask(m: Basic) -> Basic:
    """The mask of ``Mᵀ`` given the mask of ``M`` (causal is orientation-free: key ≤ query)."""
    if m is None or isinstance(m, Causal):
        return m
    return m.arg if isinstance(m, Transpose) else Transpose(m)


def is_mask(x: Any) -> bool:
    return isinstance(x, (MaskMatrix, Causal)) or (isinstance(x, Transpose) and isinstance(x.arg, MaskMatrix))
