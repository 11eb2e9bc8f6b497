"""Helpers the primitive modules share: argument checks and the elementwise user function."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Union

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from ...errors import ShapeMismatchError, UnsupportedNodeError
from ..nodes import U, ew
from .registry import ATOM, Code, Lowering, ScalarFunction, register_scalar

__all__ = ["matrix_arg", "axis_arg", "elementwise", "scalar_function", "torch_unary", "DefinedFunction",
           "basic_text", "operator_latex", "no_constraint", "column_apply"]

Expr = Union[sp.Expr, MatrixExpr]


def matrix_arg(M: Any, who: str) -> MatrixExpr:
    """``M`` if it is a well-shaped matrix expression, else :class:`ShapeMismatchError`."""
    if not isinstance(M, MatrixExpr):
        raise ShapeMismatchError(f"{who}() takes a matrix expression, got {M!r}")
    from ..validate import check_shapes

    check_shapes(M)
    return M


def axis_arg(axis: int, who: str) -> int:
    """``axis`` if it is 0 (per column) or 1 (per row)."""
    if axis not in (0, 1):
        raise ShapeMismatchError(f"{who}(): axis must be 0 (per column) or 1 (per row), got {axis!r}")
    return axis


def elementwise(name: str, f: Callable[[Any], Any]) -> Callable[[Expr], Expr]:
    """The user function applying ``u ↦ f(u)``: entry by entry on a matrix, plainly on a scalar."""
    def apply(x: Expr) -> Expr:
        if isinstance(x, MatrixExpr):
            return ew(f(U), matrix_arg(x, name))
        if isinstance(x, (sp.Expr, int, float)):
            return f(sp.sympify(x))  # safe: numbers or sympy scalars
        raise UnsupportedNodeError(f"{name}() takes a matrix or scalar expression, got {x!r}")

    apply.__name__ = name
    apply.__doc__ = f"Elementwise ``{name}`` on matrices; the ordinary function on scalars."
    return apply


def scalar_function(f: ScalarFunction) -> Callable[[Expr], Expr]:
    """Register ``f`` and return its user function."""
    assert f.build is not None, f"{f.name}: a user function needs u ↦ build(u)"
    return register_scalar(replace(f, apply=elementwise(f.name, f.build))).apply  # type: ignore[return-value]


def torch_unary(fn: str) -> Lowering:
    """The lowering ``f(a) ↦ fn(a)`` for a torch function ``fn`` of one tensor."""
    def lower(printer: Any, e: Any) -> Code:
        return f"{fn}({printer._tensor(e.args[0])})", ATOM

    return lower


class DefinedFunction(sp.Function):
    """A scalar function of one real argument given by a definition in other functions.

    Subclasses set ``display_name``, ``definition`` (a static method ``x ↦ expression``) and
    ``fdiff``; a number argument evaluates to the definition, and the node prints as
    ``display_name(x)`` (LaTeX ``\\operatorname{display_name}``).
    """

    nargs = 1
    display_name = ""

    @staticmethod
    def definition(x: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def eval(cls, x: Any) -> Any:  # safe: sympy's Function.eval hook on built nodes, no text
        return cls.definition(x) if x.is_Number else None

    def _eval_is_extended_real(self) -> Any:
        return self.args[0].is_extended_real

    def _sympystr(self, printer: Any) -> str:
        return f"{self.display_name}({printer._print(self.args[0])})"

    def _latex(self, printer: Any, exp: Any = None) -> str:
        out = r"\operatorname{" + self.display_name + r"}\left(" + printer._print(self.args[0]) + r"\right)"
        return out if exp is None else out + "^{" + printer._print(exp) + "}"


def basic_text(printer: Any, e: Any) -> str:
    """Plain text ``Name(arg, ...)`` (sympy's form of a node it does not know)."""
    return f"{type(e).__name__}({', '.join(printer._print(a) for a in e.args)})"


def operator_latex(name: str) -> Callable[[Any, Any], str]:
    """LaTeX ``\\operatorname{name}(arg)`` of a node's first argument."""
    def latex(printer: Any, e: Any) -> str:
        return r"\operatorname{" + name + r"}\left(" + printer._print(e.args[0]) + r"\right)"

    return latex


def no_constraint(e: Any) -> None:
    """Validation of a node whose constructor already checks everything (shapes, constants)."""


def column_apply(M: sp.Matrix, f: Callable[[sp.Matrix], sp.Matrix]) -> sp.Matrix:
    """``[f(M[:, 0]) f(M[:, 1]) …]``: a column-wise map at explicit size."""
    cols = [f(M[:, j]) for j in range(M.cols)]
    out = cols[0]
    for c in cols[1:]:
        out = out.row_join(c)
    return out
