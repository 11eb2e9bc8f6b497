"""Named axes: indices (heads, layers, subspaces) over which parameters and expressions range.

``h = uf.axis("h", H)`` declares an index of size ``H`` (a declared dim or a positive int);
``uf.param("WQ", p, d, over=h)`` is then a *family* of ``p × d`` matrices ``WQ⁽ʰ⁾``, one per
value of ``h``, stored at run time as one ``(..., H, p, d)`` tensor (the axes lead the two matrix
dims, in the order given to ``over=``).  Every expression ranges over the union of the axes of the
symbols it contains, minus those bound by a sum; ``uf.sum_over(h, e)`` is ``Σ_h e⁽ʰ⁾``.

The gradient engine differentiates the body of a family once, generically in ``h`` (so its cost
does not grow with ``H``): a cotangent flowing from a node that ranges over ``h`` into an argument
that does not is summed over ``h`` (:class:`AxisSum`), which is the chain rule for the ``H`` uses of
that argument.  An ``AxisSum`` whose body does not range over its axis is ``size · body`` (the
engine creates these; ``uf.sum_over`` refuses them, as the user most likely forgot a ``over=``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Union

import sympy as sp
from sympy import Basic
from sympy.core.symbol import Str
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol

from ..errors import ShapeMismatchError, UnsupportedNodeError

__all__ = ["Axis", "axis", "AxisSum", "MatAxisSum", "sum_over", "axes_of", "sorted_axes", "axes_tuple"]


class Axis(Basic):
    """A named index of a given size (``Axis("h", H)``); equal when name and size are equal."""

    def __new__(cls, name: Any, size: Any) -> "Axis":
        from .symbols import _as_dim, _check_name

        name = name.name if isinstance(name, Str) else _check_name(name, "axis")
        return Basic.__new__(cls, Str(name), _as_dim(size, name))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def size(self) -> sp.Expr:
        return self.args[1]

    def _sympystr(self, printer: Any) -> str:
        return self.name

    def _latex(self, printer: Any) -> str:
        return self.name

    def __getnewargs_ex__(self) -> tuple[tuple[str, Any], dict[str, Any]]:
        return (self.name, self.size), {}


def axis(name: str, size: Any) -> Axis:
    """Declare a named axis: ``h = uf.axis("h", H)`` (``H`` a declared dim or a positive int)."""
    return Axis(name, size)


def axes_tuple(over: Union[None, Axis, Iterable[Any]], owner: str) -> tuple[Axis, ...]:
    """``over=`` as a tuple of distinct axes (a single axis, a sequence of them, or None)."""
    if over is None:
        return ()
    items = (over,) if isinstance(over, Axis) else tuple(over) if isinstance(over, (tuple, list)) else (over,)
    for a in items:
        if not isinstance(a, Axis):
            raise ShapeMismatchError(f"{owner}: over= takes axes declared with uf.axis(...), got {a!r}")
    names = [a.name for a in items]
    if len(set(names)) != len(names):
        raise ShapeMismatchError(f"{owner}: over= names an axis twice ({names})")
    return items


def sorted_axes(axes: Iterable[Axis]) -> tuple[Axis, ...]:
    """Axes in the canonical order of generated code (by name)."""
    return tuple(sorted(set(axes), key=lambda a: a.name))


@lru_cache(maxsize=65536)
def axes_of(e: Basic) -> frozenset[Axis]:
    """The axes ``e`` ranges over: those of its symbols, minus the ones bound by a sum."""
    if isinstance(e, MatrixSymbol):
        return frozenset(getattr(e, "axes", ()))
    if isinstance(e, (AxisSum, MatAxisSum)):
        return axes_of(e.body) - {e.axis}
    if not e.args or e.is_Atom or isinstance(e, (sp.Lambda, Axis)):
        return frozenset()
    out: frozenset[Axis] = frozenset()
    for a in e.args:
        out = out | axes_of(a)
    return out


class _AxisSumMixin:
    args: tuple[Basic, ...]

    @property
    def body(self) -> Basic:
        return self.args[0]

    @property
    def axis(self) -> Axis:
        return self.args[1]  # type: ignore[return-value]

    def _vjp(self, G: Basic) -> list[tuple[Basic, Basic]]:
        """``∂/∂body Σ_h body⁽ʰ⁾ = 1`` for every ``h``: the body's cotangent is ``G`` (which does
        not range over ``h``)."""
        return [(self.body, G)]

    def _sympystr(self, printer: Any) -> str:
        return f"Σ_{self.axis.name}({printer._print(self.body)})"

    def _latex(self, printer: Any) -> str:
        return r"\sum_{" + self.axis.name + r"}\left(" + printer._print(self.body) + r"\right)"

    def _eval_derivative(self, s: Any) -> Any:  # pragma: no cover - guarded path
        raise UnsupportedNodeError("sum_over: use unfold's gradient engine (Energy.grad), not sympy .diff")


class AxisSum(_AxisSumMixin, sp.Expr):
    """``Σ_h body⁽ʰ⁾`` of a scalar body."""

    is_commutative = True
    is_real = True

    def __new__(cls, body: Any, ax: Axis) -> "AxisSum":
        return sp.Expr.__new__(cls, body, ax)

    def doit(self, **hints: Any) -> Any:
        """``Σ_h c·b = c·Σ_h b`` for a numeric coefficient ``c``."""
        body = self.body.doit(**hints) if hints.get("deep", True) else self.body
        c, rest = body.as_coeff_Mul()
        if c != 1 and c.is_Number:
            return c * AxisSum(rest, self.axis)
        return AxisSum(body, self.axis) if body is not self.body else self


class MatAxisSum(_AxisSumMixin, MatrixExpr):
    """``Σ_h body⁽ʰ⁾`` of a matrix body (same shape as the body)."""

    def __new__(cls, body: Any, ax: Axis) -> "MatAxisSum":
        return Basic.__new__(cls, body, ax)

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.body.shape

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> Any:
        raise UnsupportedNodeError("sum_over has no symbolic entries; use uf.expand_explicit")

    def doit(self, **hints: Any) -> Any:
        """``Σ_h c·M = c·Σ_h M`` for the numeric factor ``c`` of the body's coefficient."""
        from sympy.matrices.expressions import MatMul

        body = self.body.doit(**hints) if hints.get("deep", True) else self.body
        if isinstance(body, MatMul):
            c, mats = body.as_coeff_matrices()
            num, rest = c.as_coeff_Mul()  # Σ_h (2γ)·M = 2·Σ_h γ·M
            if num != 1 and num.is_Number:
                inner = MatMul(rest, *mats).doit(deep=False) if rest != 1 or len(mats) > 1 else mats[0]
                return MatMul(num, MatAxisSum(inner, self.axis)).doit(deep=False)
        return MatAxisSum(body, self.axis) if body is not self.body else self

    def _eval_transpose(self) -> "MatAxisSum":
        from .tidy import transpose

        return MatAxisSum(transpose(self.body), self.axis)


def axis_sum(body: Basic, ax: Axis) -> Basic:
    """``Σ_ax body`` (scalar or matrix), without the user-level checks of :func:`sum_over`."""
    return MatAxisSum(body, ax) if isinstance(body, MatrixExpr) else AxisSum(body, ax)


def sum_over(ax: Any, expr: Any) -> Basic:
    """``Σ_ax expr``: the sum of ``expr`` over every value of the axis ``ax`` (scalar or matrix).

    Raises :class:`ShapeMismatchError` if ``ax`` is not an axis or ``expr`` does not range over it
    (the sum would just multiply by the size: write ``size * expr`` if that is meant)."""
    if isinstance(ax, (tuple, list)):
        for a in reversed(tuple(ax)):
            expr = sum_over(a, expr)
        return expr
    if not isinstance(ax, Axis):
        raise ShapeMismatchError(f"sum_over: the first argument must be an axis (uf.axis), got {ax!r}")
    if not isinstance(expr, Basic):
        raise ShapeMismatchError(f"sum_over: the summand must be an unfold expression, got {expr!r}")
    if ax not in axes_of(expr):
        have = sorted(a.name for a in axes_of(expr))
        raise ShapeMismatchError(
            f"sum_over({ax.name}, …): the summand {expr} does not range over axis {ax.name!r} (it ranges "
            f"over {have or 'no axis'}); declare a symbol with over={ax.name} or drop the sum"
        )
    return axis_sum(expr, ax)
