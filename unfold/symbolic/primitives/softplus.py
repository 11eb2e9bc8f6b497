"""Softplus (β = 1), elementwise: ``softplus(u) = log(1 + exp u)``.

Derivative ``σ(u) = 1/(1 + exp(−u))`` (0 or 1 in float64 at large ``|u|``, never NaN); torch:
``logaddexp(u, 0) = max(u, 0) + log1p(exp(−|u|))``, exact to rounding at every ``u`` (``F.softplus``
switches to ``u`` above its threshold 20, off by up to ``2·10⁻⁹``; ``log(1 + exp u)`` overflows
above 709); leg 2 of the gradient check differentiates the definition ``log(1 + exp u)`` in
30-digit arithmetic, where nothing overflows.  ``softplus(u)/β`` of ``βu`` is the β-form.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .registry import ATOM, Code, ScalarFunction
from ._common import DefinedFunction, scalar_function

__all__ = ["Softplus", "softplus"]


class Softplus(DefinedFunction):
    """The sympy node ``softplus(u)``."""

    display_name = "softplus"

    @staticmethod
    def definition(x: Any) -> Any:
        return sp.log(1 + sp.exp(x))

    def fdiff(self, argindex: int = 1) -> Any:
        return 1 / (1 + sp.exp(-self.args[0]))


def _lower(printer: Any, e: Any) -> Code:
    """``logaddexp(a, 0)``: stable at every ``a`` (no overflow of ``exp a``)."""
    return f"torch.logaddexp({printer._tensor(e.args[0])}, torch.zeros((), {printer.like_inputs()}))", ATOM


softplus = scalar_function(ScalarFunction("softplus", Softplus, Softplus, _lower, definition=Softplus.definition))
