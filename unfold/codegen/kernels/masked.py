"""Torch kernel of masked scores (``lse``/``softmax`` with ``mask=``,
:mod:`unfold.symbolic.primitives.softmax`).  The function itself lives in
:mod:`unfold.codegen.runtime`, whose fused attention (:func:`~unfold.codegen.runtime.attention`)
applies the same mask."""

from __future__ import annotations

from ..runtime import masked

__all__ = ["KERNELS"]

#: the names generated code calls (declared by the LSE and Softmax records)
KERNELS = {"_masked": masked}
