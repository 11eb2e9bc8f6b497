"""Readable display of unfold expressions: plain text (``xi - X*Softmax(beta*X.T*xi)``) and LaTeX.

Elementwise lambdas are shown by name (``relu(W*Y)``), or as ``u ↦ body`` when the function has no
registered name; a primitive may display its transpose as a form of its own (the row-wise softmax
``Softmax_rows(M)``, not ``Softmax_cols(M.T).T``); sums list positive terms first; entrywise products
use ``∘``; a number that came from
a Python float prints as the shortest decimal that round-trips to its float64 value (``0.1``, not
``0.10000000000000001``), which is the constant the generated code uses.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from sympy.matrices.expressions import MatMul, MatrixExpr, Trace, Transpose

from .nodes import U
from .primitives.registry import primitive_of, scalar_functions
from .tidy import distinct_subtrees, tree_size

__all__ = ["to_str", "to_latex", "elementwise_name", "with_shared"]

@lru_cache(maxsize=1)
def _named() -> dict[Basic, str]:
    """``build(u) -> name`` of every registered scalar function (:mod:`unfold.symbolic.primitives`)."""
    return {f.build(U): name for name, f in scalar_functions().items() if f.build is not None}


def elementwise_name(e: ElementwiseApplyFunction) -> str | None:
    """The name of a registered elementwise function (``relu``, ``exp``, ...), else None."""
    lam = e.function
    body = lam.expr.subs(lam.variables[0], U)
    return _named().get(body)


_DOUBLE_BITS = 64  # a Float of at most this precision came from a Python float (≤ 19 digits)


def _double_text(x: Any) -> str | None:
    """``repr(float(x))`` — the shortest decimal that round-trips to the float64 value the generated
    code uses — for a finite Float of at most :data:`_DOUBLE_BITS` bits; None for any other Float
    (a high-precision constant keeps sympy's own digits)."""
    if x._prec > _DOUBLE_BITS or not math.isfinite(float(x)):
        return None
    return repr(float(x))


def _ordered_terms(args: tuple[Basic, ...]) -> list[Basic]:
    pos = [a for a in args if not a.could_extract_minus_sign()]
    neg = [a for a in args if a.could_extract_minus_sign()]
    return pos + neg


def _join_terms(printer: Any, expr: Basic) -> str:
    """A sum printed with its positive terms first: ``xi - X*Softmax(...)``."""
    out = ""
    for t in _ordered_terms(expr.args):
        if t.could_extract_minus_sign():
            s = printer._print(-t)
            out = f"-{s}" if not out else f"{out} - {s}"
        else:
            s = printer._print(t)
            out = s if not out else f"{out} + {s}"
    return out


def _fro_arg(expr: Basic) -> Basic | None:
    """``A`` when ``expr`` is ``Trace(A.T*A)`` (a squared Frobenius norm), else None."""
    if isinstance(expr, Trace) and isinstance(expr.arg, MatMul) and len(expr.arg.args) == 2:
        a, b = expr.arg.args
        if (isinstance(a, Transpose) and a.arg == b) or a == Transpose(b).doit():
            return b
    return None


def _nested(printer: Any, rule: Any, expr: Basic) -> str:
    """``rule(printer, expr)`` one printing level deeper, as sympy's own dispatch does (numbers
    inside a node print short)."""
    printer._print_level += 1
    try:
        return rule(printer, expr)
    finally:
        printer._print_level -= 1


def _transposed_rule(expr: Any, latex: bool) -> Any:
    """The display rule of ``expr = nodeᵀ`` given by ``node``'s primitive (a row-wise softmax
    shown as such, not as the transpose of a column-wise one), else None."""
    prim = primitive_of(expr.arg)
    if prim is None:
        return None
    return prim.transposed_latex if latex else prim.transposed_text


class UnfoldStrPrinter(StrPrinter):
    def _print__DeclaredMatrix(self, expr: Any) -> str:
        axes = getattr(expr, "axes", ())
        return expr.name if not axes else f"{expr.name}[{','.join(a.name for a in axes)}]"

    def _print_Trace(self, expr: Any) -> str:
        A = _fro_arg(expr)
        return f"‖{self._print(A)}‖²" if A is not None else f"Trace({self._print(expr.arg)})"

    def _print(self, expr: Any, **kwargs: Any) -> str:
        prim = primitive_of(expr)  # a node of unfold.symbolic.primitives: its own display
        return _nested(self, prim.text, expr) if prim is not None else super()._print(expr, **kwargs)

    def _print_Transpose(self, expr: Any) -> str:
        rule = _transposed_rule(expr, latex=False)
        return _nested(self, rule, expr.arg) if rule is not None else super()._print_Transpose(expr)

    def _print_MatAdd(self, expr: Any) -> str:
        return _join_terms(self, expr)

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:
        name = elementwise_name(expr)
        if name is None:
            return f"(u -> {self._print(expr.function.expr.subs(expr.function.variables[0], U))})({self._print(expr.expr)})"
        return f"{name}({self._print(expr.expr)})"

    def _print_HadamardProduct(self, expr: Any) -> str:
        return "∘".join(self.parenthesize(a, 50) for a in expr.args)

    def _print_Float(self, expr: Any) -> str:
        short = _double_text(expr)
        return short if short is not None else super()._print_Float(expr)

    def _print_HadamardPower(self, expr: Any) -> str:
        return f"{self.parenthesize(expr.args[0], 60)}^∘{self._print(expr.args[1])}"


class UnfoldLatexPrinter(LatexPrinter):
    def _print_Trace(self, expr: Any) -> str:
        A = _fro_arg(expr)
        if A is not None:
            return r"\left\|" + self._print(A) + r"\right\|_F^2"
        return r"\operatorname{tr}\left(" + self._print(expr.arg) + r"\right)"

    def _print(self, expr: Any, **kwargs: Any) -> str:
        prim = primitive_of(expr)  # a node of unfold.symbolic.primitives: its own display
        return _nested(self, prim.latex, expr) if prim is not None else super()._print(expr, **kwargs)

    def _print_Transpose(self, expr: Any) -> str:
        rule = _transposed_rule(expr, latex=True)
        return _nested(self, rule, expr.arg) if rule is not None else super()._print_Transpose(expr)

    def _print_MatAdd(self, expr: Any) -> str:
        return _join_terms(self, expr)

    def _print_ElementwiseApplyFunction(self, expr: Any) -> str:
        name = elementwise_name(expr)
        arg = r"\left(" + self._print(expr.expr) + r"\right)"
        if name is None:
            lam = expr.function
            body = self._print(lam.expr.subs(lam.variables[0], U))
            return r"\left(u \mapsto " + body + r"\right)" + arg
        return r"\operatorname{" + name + "}" + arg

    def _print_Float(self, expr: Any) -> str:
        short = _double_text(expr)
        if short is None:
            return super()._print_Float(expr)
        mantissa, _, exponent = short.partition("e")
        return mantissa if not exponent else mantissa + r" \cdot 10^{" + str(int(exponent)) + "}"

    def _print_HadamardProduct(self, expr: Any) -> str:
        return r" \circ ".join(self.parenthesize(a, 50) for a in expr.args)


def to_str(expr: Basic) -> str:
    """Plain-text form."""
    return UnfoldStrPrinter().doprint(expr)


def to_latex(expr: Basic) -> str:
    """LaTeX form."""
    return UnfoldLatexPrinter().doprint(expr)


def with_shared(expr: Basic, limit: int = 400) -> tuple[Basic, list[tuple[Basic, Basic]]]:
    """``expr`` with every sub-tree it uses more than once named (``t_1``, ``t_2``, …), and the
    definitions, innermost first — when written out as a tree ``expr`` has more than ``limit``
    nodes; else ``(expr, [])``.

    A derived gradient is a DAG: the cotangent of a nested softmax or layer norm uses its parent's
    twice, so its tree (and any plain printing of it) doubles with each level, while the named
    form stays linear in the nesting depth.
    """
    if tree_size(expr) <= limit:
        return expr, []
    nodes = distinct_subtrees(expr)
    parents: dict[Basic, int] = {}
    for e in nodes:
        if not isinstance(e, sp.Lambda):
            for a in e.args:
                parents[a] = parents.get(a, 0) + 1
    taken = {str(s) for s in nodes if isinstance(s, (sp.Symbol, sp.MatrixSymbol))}
    prefix = "t"
    while any(n.startswith(prefix + "_") for n in taken):
        prefix += "t"
    names: dict[Basic, Basic] = {}
    for e in reversed(nodes):  # children before parents
        if parents.get(e, 0) > 1 and e.args and not isinstance(e, sp.Lambda) and tree_size(e) > 3:
            name = f"{prefix}_{len(names) + 1}"
            names[e] = sp.MatrixSymbol(name, *e.shape) if isinstance(e, MatrixExpr) else sp.Symbol(name)
    memo: dict[Basic, Basic] = {}

    def named(e: Basic, top: bool = False) -> Basic:
        if not top and e in names:
            return names[e]
        if not e.args or isinstance(e, sp.Lambda):
            return e
        hit = memo.get(e)
        if hit is None:
            args = [named(a) for a in e.args]
            hit = memo[e] = e.func(*args) if any(n is not o for n, o in zip(args, e.args)) else e
        return hit

    return named(expr), [(n, named(e, top=True)) for e, n in names.items()]
