"""Readable display of unfold expressions: plain text (``xi - X*Softmax(beta*X.T*xi)``) and LaTeX.

Elementwise functions are shown by name (``relu(W*Y)``); an unnamed one as the matrix expression it
equals entry by entry when its body is built from ``u``, constants and named functions
(``u ↦ 1/(2√u)`` as ``(1/2)*M^∘(-1/2)``, ``u ↦ max(0, u − k)`` as ``relu(M - k*1)``, ``1`` the
all-ones matrix, LaTeX a bold one; :func:`matrix_form`), else as ``u ↦ body``.  A primitive may
display its transpose as a form of its own (the row-wise softmax ``Softmax_rows(M)``, not
``Softmax_cols(M.T).T``).  Sums list positive terms first; entrywise products use ``∘``; a number
that came from a Python float prints as the shortest decimal that round-trips to its float64 value
(``0.1``, not ``0.10000000000000001``), which is the constant the generated code uses — or, when it
is within relative ``DISPLAY_RTOL`` = 1e-15 of a decimal of ≤ 12 significant digits, as that decimal
(the product ``0.1*0.1`` = ``0.010000000000000002`` shows as ``0.01``; display only).
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

from sympy.matrices.expressions import HadamardPower, HadamardProduct, MatAdd, MatMul, MatrixExpr, OneMatrix, Trace, Transpose
from sympy.printing.precedence import PRECEDENCE

from .nodes import U, ew
from .primitives.registry import primitive_of, scalar_functions
from .tidy import distinct_subtrees, tree_size

__all__ = ["to_str", "to_latex", "elementwise_name", "matrix_form", "with_shared"]

@lru_cache(maxsize=1)
def _named() -> dict[Basic, str]:
    """``build(u) -> name`` of every registered scalar function (:mod:`unfold.symbolic.primitives`)."""
    return {f.build(U): name for name, f in scalar_functions().items() if f.build is not None}


def _body(e: ElementwiseApplyFunction) -> sp.Expr:
    """The body of ``e``'s function in the variable :data:`~unfold.symbolic.nodes.U`."""
    lam = e.function
    return lam.expr.subs(lam.variables[0], U)


def elementwise_name(e: ElementwiseApplyFunction) -> str | None:
    """The name of a registered elementwise function (``relu``, ``exp``, ...), else None."""
    return _named().get(_body(e))


# ---- unnamed elementwise functions in matrix notation --------------------------------------------
# A derived gradient applies unnamed scalar maps entrywise (the derivative of ``√u`` in a layer norm,
# of ``log u`` in a coding rate, of ``tanh``).  A body built from ``u``, constants and registered
# functions by sums, products and powers is shown as the matrix expression it equals entry by
# entry, by the table of rules in :func:`_entrywise`; any other body as ``u ↦ body``.
def _entrywise(b: sp.Expr, M: MatrixExpr) -> MatrixExpr | None:
    """The matrix whose ``(i, j)`` entry is ``b`` at ``u = Mᵢⱼ``, built by the table: ``u`` ↦ ``M``;
    a constant ``k`` ↦ ``k·1`` (``1`` all ones); a sum ↦ the sum; a product ↦ the constant factor
    times the entrywise (``∘``) product of the others; ``a^p`` (``p`` constant) ↦ ``a^∘p``; a
    registered function of ``a`` (``exp``, ``relu`` = ``max(0, ·)``, …) ↦ that function applied to
    the matrix of ``a``.  None when a part matches no rule."""
    if b == U:
        return M
    if U not in b.free_symbols:
        return MatMul(*sp.Mul.make_args(b), OneMatrix(*M.shape)) if b != 1 else OneMatrix(*M.shape)
    if b in _named():
        return ew(b, M)
    if isinstance(b, sp.Add):  # the terms in u first, the constant last: M - k·1
        terms = [_entrywise(a, M) for a in sorted(b.args, key=lambda a: U not in a.free_symbols)]
        if any(t is None for t in terms):
            return None
        return MatAdd(*[x for t in terms for x in (t.args if isinstance(t, MatAdd) else (t,))])
    if isinstance(b, sp.Mul):
        coeff, rest = b.as_independent(U, as_Add=False)
        factors = [_entrywise(a, M) for a in sp.Mul.make_args(rest)]
        if any(f is None for f in factors):
            return None
        prod = factors[0] if len(factors) == 1 else HadamardProduct(*factors)
        return prod if coeff == 1 else MatMul(coeff, *(prod.args if isinstance(prod, MatMul) else (prod,)))
    if isinstance(b, sp.Pow) and U not in b.exp.free_symbols:
        base = _entrywise(b.base, M)
        return None if base is None else HadamardPower(base, b.exp)
    for a in b.args:  # b = f(a) for a registered f
        if U in a.free_symbols and a != U and b.xreplace({a: U}) in _named():
            inner = _entrywise(a, M)
            return None if inner is None else ew(b.xreplace({a: U}), inner)
    return None


def matrix_form(e: ElementwiseApplyFunction) -> MatrixExpr | None:
    """A matrix expression equal to ``e`` entry by entry when ``e``'s function has no registered
    name and its body is in the table of :func:`_entrywise` (``u ↦ 1/(2√u)`` is
    ``(1/2)·M^∘(−1/2)``, ``u ↦ max(0, u − k)`` is ``relu(M − k·1)``); None otherwise."""
    return None if elementwise_name(e) is not None else _entrywise(_body(e), e.expr)


_DOUBLE_BITS = 64  # a Float of at most this precision came from a Python float (≤ 19 digits)


#: A float64 within this relative distance of a decimal of at most :data:`SHORT_DIGITS` significant
#: digits prints as that decimal: the rounding error of a few float operations on user constants
#: (``0.1*0.1`` is ``0.010000000000000002``, shown ``0.01``) is about 2e-16 per operation.
DISPLAY_RTOL = 1e-15
SHORT_DIGITS = 12


def _double_text(x: Any) -> str | None:
    """The decimal shown for a finite Float of at most :data:`_DOUBLE_BITS` bits (a Python float);
    None for any other Float (a high-precision constant keeps sympy's own digits).

    The shortest decimal of at most :data:`SHORT_DIGITS` significant digits within relative
    :data:`DISPLAY_RTOL` of the float64 value, else ``repr`` (the shortest decimal that round-trips
    exactly).  Display only: the generated code uses the exact float64 value, and the printed
    number is within relative ``DISPLAY_RTOL`` of it (equal to it when the value is a short
    decimal's nearest float64, as every constant a user types with ≤ 12 digits is)."""
    if x._prec > _DOUBLE_BITS or not math.isfinite(float(x)):
        return None
    v = float(x)
    for digits in range(1, SHORT_DIGITS + 1):
        near = float(f"{v:.{digits}g}")
        if abs(near - v) <= DISPLAY_RTOL * abs(v):
            return repr(near)
    return repr(v)


def _ordered_terms(args: tuple[Basic, ...]) -> list[Basic]:
    pos = [a for a in args if not a.could_extract_minus_sign()]
    neg = [a for a in args if a.could_extract_minus_sign()]
    return pos + neg


def _join_terms(printer: Any, expr: Basic) -> str:
    """A sum printed with its positive terms first: ``xi - X*Softmax(...)`` (a subtracted sum in
    parentheses)."""
    out = ""
    for t in _ordered_terms(expr.args):
        if t.could_extract_minus_sign():
            s = printer.parenthesize(-t, PRECEDENCE["Add"])
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
        if name is not None:
            return f"{name}({self._print(expr.expr)})"
        shown = matrix_form(expr)
        if shown is not None:
            return self.parenthesize(shown, PRECEDENCE["Pow"], strict=True)
        return f"(u -> {self._print(_body(expr))})({self._print(expr.expr)})"

    def _print_HadamardProduct(self, expr: Any) -> str:
        return "∘".join(self.parenthesize(a, 50) for a in expr.args)

    def _print_Float(self, expr: Any) -> str:
        short = _double_text(expr)
        return short if short is not None else super()._print_Float(expr)

    def _print_HadamardPower(self, expr: Any) -> str:
        exp = self.parenthesize(expr.args[1], PRECEDENCE["Atom"], strict=True)  # ^∘2, ^∘(-1/2)
        return f"{self.parenthesize(expr.args[0], PRECEDENCE['Pow'])}^∘{exp}"


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
        if name is not None:
            return r"\operatorname{" + name + "}" + arg
        shown = matrix_form(expr)
        if shown is not None:
            return self.parenthesize(shown, PRECEDENCE["Pow"], strict=True)
        return r"\left(u \mapsto " + self._print(_body(expr)) + r"\right)" + arg

    def _print_Float(self, expr: Any) -> str:
        short = _double_text(expr)
        if short is None:
            return super()._print_Float(expr)
        mantissa, _, exponent = short.partition("e")
        return mantissa if not exponent else mantissa + r" \cdot 10^{" + str(int(exponent)) + "}"

    def _print_HadamardProduct(self, expr: Any) -> str:
        return r" \circ ".join(self.parenthesize(a, 50) for a in expr.args)

    def _print_OneMatrix(self, expr: Any) -> str:
        return r"\mathbf{1}"

    def _print_HadamardPower(self, expr: Any) -> str:
        base = self.parenthesize(expr.args[0], PRECEDENCE["Pow"])
        return base + r"^{\circ " + self._print(expr.args[1]) + "}"


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
