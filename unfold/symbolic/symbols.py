"""Declared symbols of the energy language: dimensions, state and parameter matrices, scalars.

Every symbol an energy may contain is declared through this module, so that the toolkit knows
its role (what a layer updates versus what it holds fixed) and can refuse undeclared names.
"""

from __future__ import annotations

import re
from typing import Any, Union

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import MatrixSymbol

from ..errors import UndeclaredSymbolError, ShapeMismatchError

__all__ = [
    "Dim",
    "StateMatrix",
    "ParamMatrix",
    "ScalarParam",
    "dims",
    "dim",
    "state",
    "param",
    "scalar",
    "DimLike",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED = {"torch", "math", "_dt", "_dev", "lambda", "def", "return", "import", "u"}


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UndeclaredSymbolError(
            f"invalid {what} name {name!r}: use a letter followed by letters, digits or '_'"
        )
    if name in _RESERVED or name.startswith("_"):
        raise UndeclaredSymbolError(f"{what} name {name!r} is reserved; choose another name")
    return name


class Dim(sp.Symbol):
    """A symbolic dimension (a positive integer bound from tensor shapes at run time)."""

    def __new__(cls, name: str, **_assumptions: bool) -> "Dim":
        return super().__new__(cls, _check_name(name, "dimension"), integer=True, positive=True)

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, bool]]:
        return (self.name,), {}


DimLike = Union[Dim, int, sp.Integer]


def _as_dim(x: object, owner: str) -> sp.Expr:
    if isinstance(x, bool):
        raise ShapeMismatchError(f"{owner}: a dimension must be a Dim or a positive int, got {x!r}")
    if isinstance(x, int):
        if x <= 0:
            raise ShapeMismatchError(f"{owner}: dimension {x} must be positive")
        return sp.Integer(x)
    if isinstance(x, sp.Integer) and x > 0:
        return x
    if isinstance(x, Dim):
        return x
    raise ShapeMismatchError(
        f"{owner}: a dimension must be declared with uf.dims(...) or be a positive int, got {x!r}"
    )


class _DeclaredMatrix(MatrixSymbol):
    """A declared matrix, optionally a family over named axes (``over=``): then ``args`` carries
    a fourth entry, the tuple of axes, which is part of its identity."""

    def __new__(cls, name: Any, n: Any, m: Any, axes: Any = ()) -> "_DeclaredMatrix":
        obj = MatrixSymbol.__new__(cls, name, n, m)
        if axes:
            obj = Basic.__new__(cls, *obj.args, sp.Tuple(*axes))
        return obj

    @property
    def axes(self) -> tuple[Any, ...]:
        """The axes this matrix ranges over, in the order of its tensor's leading dims."""
        return tuple(self.args[3]) if len(self.args) > 3 else ()

    def _latex(self, printer: Any) -> str:
        base = printer._print(MatrixSymbol(self.name, *self.shape))
        return base if not self.axes else base + "^{(" + ",".join(a.name for a in self.axes) + ")}"


class StateMatrix(_DeclaredMatrix):
    """A matrix a layer updates (the optimisation variable of a descent step)."""

    role = "state"


class ParamMatrix(_DeclaredMatrix):
    """A matrix held fixed by a descent step (weights, stored patterns, dictionaries)."""

    role = "param"


class ScalarParam(sp.Symbol):
    """A real scalar parameter (β, α, λ, η, ...)."""

    role = "scalar"


def dims(names: str) -> tuple[Dim, ...]:
    """Declare dimensions: ``d, n = uf.dims("d n")``."""
    if not isinstance(names, str):
        raise UndeclaredSymbolError(f"uf.dims takes a string of names such as 'd n', got {names!r}")
    parts = names.replace(",", " ").split()
    if not parts:
        raise UndeclaredSymbolError("uf.dims needs at least one name, e.g. uf.dims('d n')")
    return tuple(Dim(p) for p in parts)


def dim(name: str) -> Dim:
    """Declare a single dimension."""
    return Dim(name)


def state(name: str, rows: DimLike, cols: DimLike = 1, *, over: Any = None) -> StateMatrix:
    """Declare a state matrix of shape ``rows × cols`` (a column vector when ``cols`` is 1);
    ``over=h`` (or a tuple of axes) makes it a family, one ``(..., H, rows, cols)`` tensor."""
    from .axes import axes_tuple

    name = _check_name(name, "state")
    return StateMatrix(name, _as_dim(rows, name), _as_dim(cols, name), axes_tuple(over, name))


def param(name: str, rows: DimLike, cols: DimLike = 1, *, over: Any = None) -> ParamMatrix:
    """Declare a parameter matrix of shape ``rows × cols``; ``over=h`` (or a tuple of axes) makes
    it a family over the axis, one ``(H, rows, cols)`` tensor at run time (axes in ``over`` order)."""
    from .axes import axes_tuple

    name = _check_name(name, "parameter")
    return ParamMatrix(name, _as_dim(rows, name), _as_dim(cols, name), axes_tuple(over, name))


def scalar(name: str, positive: bool = False) -> ScalarParam:
    """Declare a real scalar parameter; ``positive=True`` lets sympy simplify with it."""
    name = _check_name(name, "scalar")
    if positive:
        return ScalarParam(name, positive=True)
    return ScalarParam(name, real=True)
