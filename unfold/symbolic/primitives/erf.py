"""``erf(u) = (2/√π) ∫₀ᵘ exp(−t²) dt``, elementwise.

Derivative ``(2/√π) exp(−u²)`` (sympy's ``erf``); torch: ``torch.erf``; leg 2 of the gradient
check evaluates sympy's ``erf`` in mpmath.
"""

from __future__ import annotations

import sympy as sp

from .registry import ScalarFunction
from ._common import scalar_function, torch_unary

__all__ = ["erf"]

erf = scalar_function(ScalarFunction("erf", sp.erf, sp.erf, torch_unary("torch.erf")))
