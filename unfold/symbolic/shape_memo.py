"""Memoised shapes of sympy's matrix-expression nodes.

sympy computes ``MatMul(A, …, Z).shape`` as ``(A.rows, Z.cols)``, and ``rows``/``cols`` each
recompute the child's whole ``shape``, with no memo: asking a derived cotangent (a deep tree of
products, sums and Hadamard products) for its shape walks it as a tree, twice per product level,
which is exponential in the nesting depth of the energy.  A node's shape is a pure function of
its (immutable) arguments, so it is stored on the node the first time it is computed; installing
this changes no result, only how often it is recomputed.
"""

from __future__ import annotations

from typing import Any, Callable

from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    Transpose,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

__all__ = ["memoised_shape", "install"]

_SLOT = "_unfold_shape"


def memoised_shape(compute: Callable[[Any], Any]) -> property:
    """A ``shape`` property that calls ``compute(node)`` once per node and keeps the result."""

    def shape(self: Any) -> Any:
        store = self.__dict__
        hit = store.get(_SLOT)
        if hit is None:
            hit = store[_SLOT] = compute(self)
        return hit

    shape.__doc__ = compute.__doc__
    shape._unfold_memo = True  # type: ignore[attr-defined]
    return property(shape)


def install() -> None:
    """Memoise ``shape`` on sympy's composite matrix nodes (idempotent)."""
    for cls in (MatMul, MatAdd, HadamardProduct, HadamardPower, Transpose, Inverse, MatPow,
                ElementwiseApplyFunction):
        current = cls.__dict__["shape"]
        if not getattr(current.fget, "_unfold_memo", False):
            cls.shape = memoised_shape(current.fget)  # type: ignore[method-assign,assignment]
