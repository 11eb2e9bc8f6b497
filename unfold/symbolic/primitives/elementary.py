"""The elementary elementwise functions: ``exp``, ``log``, ``tanh``, ``sigmoid``, ``relu``, ``abs``,
``sqrt`` (public), and ``sin``, ``cos``, ``sign``, ``step``, ``max``/``min`` (appearing in
derivatives and in energies built from sympy directly).

Each is sympy's own function (its derivative is sympy's, taken on real variables by the gradient
engine; mpmath evaluates it in leg 2 of the gradient check) or a composition of them
(``sigmoid(u) = 1/(1 + exp(−u))``, ``relu(u) = max(u, 0)``, ``sqrt(u) = u^½``), which needs no
rule of its own beyond its name.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .registry import ATOM, Code, ScalarFunction, register_scalar
from ._common import scalar_function, torch_unary

__all__ = ["exp", "log", "tanh", "sigmoid", "relu", "abs_", "sqrt"]


def _step(printer: Any, e: Any) -> Code:
    """``step(a) = [a > 0]`` as a float tensor."""
    return f"({printer.code(e.args[0])} > 0).to({printer.dtype()})", ATOM


def _extremum(printer: Any, e: Any) -> Code:
    """``max(a, 0)`` as ``relu``; other maxima and minima as folded ``maximum``/``minimum``."""
    args = list(e.args)
    if isinstance(e, sp.Max) and len(args) == 2 and 0 in args:
        other = args[0] if args[1] == 0 else args[1]
        return f"torch.relu({printer._tensor(other)})", ATOM
    fn = "torch.maximum" if isinstance(e, sp.Max) else "torch.minimum"
    out = printer._tensor(args[0])
    for a in args[1:]:
        out = f"{fn}({out}, {printer._tensor(a)})"
    return out, ATOM


exp = scalar_function(ScalarFunction("exp", sp.exp, sp.exp, torch_unary("torch.exp")))
log = scalar_function(ScalarFunction("log", sp.log, sp.log, torch_unary("torch.log")))
tanh = scalar_function(ScalarFunction("tanh", sp.tanh, sp.tanh, torch_unary("torch.tanh")))
abs_ = scalar_function(ScalarFunction("abs", sp.Abs, sp.Abs, torch_unary("torch.abs")))
sigmoid = scalar_function(ScalarFunction("sigmoid", lambda v: 1 / (1 + sp.exp(-v))))
relu = scalar_function(ScalarFunction("relu", lambda v: sp.Max(v, 0)))
sqrt = scalar_function(ScalarFunction("sqrt", sp.sqrt))
for _name, _f in (("sin", sp.sin), ("cos", sp.cos), ("sign", sp.sign)):
    register_scalar(ScalarFunction(_name, _f, _f, torch_unary(f"torch.{_name}"), public=False))
register_scalar(ScalarFunction("step", sp.Heaviside, sp.Heaviside, _step, public=False))
register_scalar(ScalarFunction("max", None, sp.Max, _extremum, public=False))
register_scalar(ScalarFunction("min", None, sp.Min, _extremum, public=False))
