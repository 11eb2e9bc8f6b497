"""GELU, exact (erf) form, elementwise: ``gelu(u) = u Φ(u) = (u/2)(1 + erf(u/√2))``.

Derivative ``Φ(u) + u φ(u) = (1 + erf(u/√2))/2 + u exp(−u²/2)/√(2π)``; torch:
``F.gelu`` (its default is this exact form, not the tanh approximation); leg 2 of the gradient
check differentiates the definition ``(u/2)(1 + erf(u/√2))``, not the derivative above.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .registry import ScalarFunction
from ._common import DefinedFunction, scalar_function, torch_unary

__all__ = ["Gelu", "gelu"]


class Gelu(DefinedFunction):
    """The sympy node ``gelu(u)``."""

    display_name = "gelu"

    @staticmethod
    def definition(x: Any) -> Any:
        return x * (1 + sp.erf(x / sp.sqrt(2))) / 2

    def fdiff(self, argindex: int = 1) -> Any:
        x = self.args[0]
        return (1 + sp.erf(x / sp.sqrt(2))) / 2 + x * sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)


gelu = scalar_function(ScalarFunction("gelu", Gelu, Gelu, torch_unary("torch.nn.functional.gelu"),
                                      definition=Gelu.definition))
