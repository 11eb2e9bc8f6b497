"""Structural checks of an energy expression: shapes, declared symbols, supported nodes.

sympy 1.14 does not check symbolic shapes (``X*X`` with ``X: d×n`` silently becomes ``X**2``),
so every expression is walked once here before it is differentiated or printed.
"""

from __future__ import annotations

import math
import sys

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Trace,
    Transpose,
    ZeroMatrix,
)

from ..errors import ConstantError, ShapeMismatchError, UndeclaredSymbolError, UnsupportedNodeError
from .axes import Axis, AxisSum, MatAxisSum
from .masks import Causal, MaskMatrix
from .nodes import U, MatFn, ScalarMatFn
from .primitives.registry import primitive_of, scalar_function_of, scalar_functions
from .symbols import Dim, ParamMatrix, ScalarParam, StateMatrix
from .tidy import distinct_subtrees

__all__ = ["check_shapes", "check_expression", "check_constant"]

_MATRIX_NODES: tuple[type, ...] = (
    MatMul, MatAdd, Transpose, Inverse, MatPow, HadamardProduct, HadamardPower,
    ElementwiseApplyFunction, Identity, OneMatrix, ZeroMatrix, MatFn, MatAxisSum,
)
_SCALAR_NODES: tuple[type, ...] = (
    sp.Add, sp.Mul, sp.Pow, Trace, ScalarMatFn, sp.Number, sp.NumberSymbol, AxisSum,
)


def _supported_scalar(e: Basic) -> bool:
    """A scalar node every leg supports: a core node, or a registered scalar function
    (:mod:`unfold.symbolic.primitives`)."""
    return isinstance(e, _SCALAR_NODES) or scalar_function_of(type(e)) is not None or primitive_of(e) is not None


def _shape(M: MatrixExpr) -> str:
    return f"{M.rows}×{M.cols}"


def _check_node_shape(e: Basic) -> None:
    if isinstance(e, MatMul):
        mats = [a for a in e.args if isinstance(a, MatrixExpr)]
        for A, B in zip(mats[:-1], mats[1:]):
            if A.cols != B.rows:
                raise ShapeMismatchError(
                    f"product {A} @ {B}: {A} is {_shape(A)} but {B} is {_shape(B)} "
                    f"({A.cols} ≠ {B.rows}); transpose one factor or fix the declared dims"
                )
    elif isinstance(e, (MatAdd, HadamardProduct)):
        first = e.args[0]
        for a in e.args[1:]:
            if a.shape != first.shape:
                op = "sum" if isinstance(e, MatAdd) else "entrywise product"
                raise ShapeMismatchError(
                    f"{op} of {first} ({_shape(first)}) and {a} ({_shape(a)}): shapes differ"
                )
    elif isinstance(e, HadamardPower) and isinstance(e.args[1], MatrixExpr):
        raise ShapeMismatchError(f"entrywise power {e}: the exponent {e.args[1]} must be a scalar")
    elif isinstance(e, (MatFn, ScalarMatFn)) or primitive_of(e) is not None:
        prim = primitive_of(e)
        if prim is None:
            raise UnsupportedNodeError(
                f"{type(e).__name__} is not a registered primitive (unfold.symbolic.primitives): it has no "
                "gradient, torch or explicit-size rule"
            )
        prim.validate(e)
    elif isinstance(e, (Trace, Inverse, MatPow)):
        M = e.args[0]
        if M.rows != M.cols:
            what = type(e).__name__ if not isinstance(e, MatPow) else f"power {e}"
            raise ShapeMismatchError(f"{what} needs a square matrix, {M} is {_shape(M)}")


def check_shapes(expr: Basic) -> None:
    """Raise :class:`ShapeMismatchError` naming the first ill-shaped sub-term of ``expr`` (preorder;
    each distinct sub-term once, so linear in the size of the expression DAG)."""
    for node in distinct_subtrees(expr):
        _check_node_shape(node)


def _check_symbol(node: Basic, in_lambda: bool) -> None:
    if isinstance(node, MatrixSymbol):
        if not isinstance(node, (StateMatrix, ParamMatrix, MaskMatrix)):
            raise UndeclaredSymbolError(
                f"matrix {node.name!r} was not declared: create it with uf.state(...) or uf.param(...)"
            )
    elif isinstance(node, sp.Symbol):
        if node == U and in_lambda:
            return
        if not isinstance(node, (ScalarParam, Dim)):
            raise UndeclaredSymbolError(
                f"symbol {node.name!r} was not declared: create it with uf.scalar({node.name!r}) "
                f"(or uf.dims for a dimension)"
            )


def check_constant(c: Basic, where: str = "") -> None:
    """Raise :class:`ConstantError` unless the constant ``c`` (an expression without symbols) is a
    real number that is finite in float64 (``oo``, ``nan``, ``(-8)**(1/3)`` and ``10**400`` are
    refused: generated code would compute with ``inf``, a NaN, or the real part only)."""
    at = f" in {where}" if where else ""
    if c.is_extended_real is not True:
        kind = "not a number" if c is sp.nan else "not real (complex)" if c.is_extended_real is False else "of unknown sign"
        raise ConstantError(f"the constant {c}{at} is {kind}; an energy's constants must be finite real numbers")
    try:
        v = float(c)
    except (TypeError, ValueError, OverflowError):
        v = math.inf
    if not math.isfinite(v):
        raise ConstantError(
            f"the constant {c}{at} is not finite in float64 (|c| > {sys.float_info.max:.3g}); rescale the energy"
        )


def _walk(e: Basic, in_lambda: bool, seen: set[tuple[Basic, bool]]) -> None:
    """Check ``e`` and its sub-expressions, each distinct ``(sub-expression, in_lambda)`` once
    (``seen``): linear in the size of the DAG, where a derived gradient's tree can be exponential."""
    if (e, in_lambda) in seen:
        return
    seen.add((e, in_lambda))
    if isinstance(e, (MatrixSymbol, sp.Symbol)):
        _check_symbol(e, in_lambda)
        return
    if isinstance(e, sp.Lambda):
        _walk(e.expr, True, seen)
        return
    if isinstance(e, (sp.Tuple, sp.core.containers.Tuple, Axis, Causal)) or type(e).__name__ == "Str":
        return
    if isinstance(e, MatrixExpr):
        if not isinstance(e, _MATRIX_NODES):
            raise UnsupportedNodeError(f"unsupported matrix operation {type(e).__name__} in {e}")
        if isinstance(e, MatPow) and not (e.exp.is_Integer):
            raise UnsupportedNodeError(f"matrix power {e} needs an integer exponent")
    elif not _supported_scalar(e):
        name = getattr(e, "func", type(e))
        known = ", ".join(sorted(scalar_functions()))
        raise UnsupportedNodeError(
            f"unsupported function {getattr(name, '__name__', name)} in {e}; supported: "
            f"{known}, powers and unfold's primitives"
        )
    elif e.is_number:  # type: ignore[attr-defined]  # a constant sub-expression: checked whole, not entered
        check_constant(e)
        return
    _check_node_shape(e)
    for a in e.args:  # type: ignore[attr-defined]
        _walk(a, in_lambda, seen)


def check_names(expr: Basic) -> None:
    """Raise :class:`ShapeMismatchError` when two different symbols (or axes) share a name, e.g. a
    parameter declared twice with different shapes or axes."""
    seen: dict[str, Basic] = {}
    for node in distinct_subtrees(expr):
        if isinstance(node, (MatrixSymbol, sp.Symbol, Axis)) and not isinstance(node, sp.Dummy) and node != U:
            name = node.name
            other = seen.setdefault(name, node)
            if other != node:
                def desc(x: Basic) -> str:
                    if isinstance(x, Axis):
                        return f"an axis of size {x.size}"
                    if isinstance(x, MatrixSymbol):
                        over = getattr(x, "axes", ())
                        return f"a {_shape(x)} matrix" + (f" over {[a.name for a in over]}" if over else "")
                    return "a scalar"
                raise ShapeMismatchError(
                    f"the name {name!r} is used for two different things in one expression: "
                    f"{desc(other)} and {desc(node)}; declare each name once"
                )


def check_expression(expr: Basic) -> None:
    """Check shapes, that every symbol is declared, that every node is supported, and that no name
    denotes two different symbols."""
    _walk(expr, False, set())
    check_names(expr)
