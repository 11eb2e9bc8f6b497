"""Safe reading of energies typed as text (``unfold derive "EXPR"`` and :func:`parse`).

The text is parsed with Python's :mod:`ast` (which only *parses*; nothing is compiled or run) and
the tree is walked with a strict whitelist:

* names the user declared (dimensions, states, parameters, scalars) and unfold primitives as the
  callee of a call (``lse``, ``softmax``, ``layernorm``, ``fro2``, ``logdet``, ``exp``, ...);
* integer and float literals (finite, at most :data:`MAX_DIGITS` digits);
* ``+ - * / @ **``, unary ``-``/``+``, the attribute ``.T`` and keyword arguments of primitives
  (``axis=``, ``eps=``, ``gain=``).

Everything else (other attributes such as ``.__class__``, subscripts, lambdas, comprehensions,
strings, comparisons, names starting with ``_``, calls of anything but a primitive) is refused with
a :class:`~unfold.errors.ParseError` that points at the offending column.  The text is never given
to ``eval``, ``exec``, ``compile``, ``sympify`` or ``parse_expr``.  Length, nesting depth, node
count and constant size are bounded, so refusal (or success) takes bounded time.

Semantics are those of writing the same expression in Python with ``import unfold as uf``:
``*`` between matrices and ``@`` are matrix products, ``A**k`` of a square matrix is a matrix
power (use ``power(M, p)`` for entrywise powers), a ``1×1`` matrix is a scalar wherever a scalar
is needed (so ``xi.T @ W @ xi + beta`` works).  Shapes are checked eagerly, so sympy never gets a
chance to silently reinterpret ``X*X`` as ``X**2`` or ``Y/Y`` as ``I``.

Spec strings (the CLI's formats): dims ``"d n"``; a matrix ``"Y:d,n"`` (``"xi:d"`` is a column
vector, sizes may be positive integers: ``"v:d,1"``); a scalar ``"beta"`` or ``"beta:positive"``.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from .errors import (
    NotScalarError,
    ParseError,
    ShapeMismatchError,
    UndeclaredSymbolError,
    UnfoldError,
    UnsupportedNodeError,
)
from .symbolic import ops
from .symbolic.axes import Axis, sum_over
from .symbolic.energy import Energy
from .symbolic.primitives.registry import parser_names
from .symbolic.masks import MaskMatrix, causal as _causal, mask as _mask
from .symbolic.symbols import Dim, ParamMatrix, ScalarParam, StateMatrix, dims as _declare_dims
from .symbolic.symbols import param as _param, scalar as _scalar, state as _state

__all__ = [
    "parse",
    "parse_expression",
    "parse_energy_spec",
    "parse_dims",
    "parse_matrix_spec",
    "parse_scalar_spec",
    "parse_axis_spec",
    "Declarations",
    "PRIMITIVES",
    "MAX_LENGTH",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_DIGITS",
    "MAX_EXPONENT",
]

#: Longest accepted text (characters).
MAX_LENGTH = 2000
#: Deepest accepted nesting of the expression tree.
MAX_DEPTH = 40
#: Most AST nodes accepted.
MAX_NODES = 600
#: Most digits in one numeric literal.
MAX_DIGITS = 30
#: Largest |exponent| of a literal power (``x**p``).
MAX_EXPONENT = 64

#: The primitives callable from text: name -> function of :mod:`unfold.symbolic.ops`, and the
#: names each module of :mod:`unfold.symbolic.primitives` registers.
PRIMITIVES: dict[str, Callable[..., Any]] = {
    "fro2": ops.fro2,
    "trace": ops.trace, "inv": ops.inv, "det": ops.det, "T": ops.T,
    "hadamard": ops.hadamard, "hpow": ops.hpow,
    "power": ops.power, "identity": ops.identity,
    "ones": ops.ones, "as_scalar": ops.as_scalar, "sum_over": sum_over,
    **parser_names(),
}
#: Keyword arguments that must be the literal 0 or 1.
_AXIS_KEYWORDS = {"axis"}
#: Arguments that are dimensions (a declared dim name or a positive integer literal).
_DIM_ARGS = {"identity": (0,), "ones": (0, 1)}

_BINOPS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@", ast.Pow: "**",
}

_REFUSED: dict[type, str] = {
    ast.Lambda: "lambda expressions", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "generator expressions",
    ast.Subscript: "subscripts (indexing)", ast.Compare: "comparisons", ast.BoolOp: "and/or",
    ast.IfExp: "conditional expressions", ast.Tuple: "tuples", ast.List: "lists", ast.Dict: "dicts",
    ast.Set: "sets", ast.Starred: "starred arguments", ast.NamedExpr: "assignment expressions",
    ast.JoinedStr: "f-strings", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "slices", ast.FormattedValue: "f-strings",
}


# ---- declarations ----------------------------------------------------------------------------------
@dataclass
class Declarations:
    """The names an expression may use: dims, states, parameters and scalars, by name."""

    dims: dict[str, Dim] = field(default_factory=dict)
    states: dict[str, StateMatrix] = field(default_factory=dict)
    params: dict[str, ParamMatrix] = field(default_factory=dict)
    scalars: dict[str, ScalarParam] = field(default_factory=dict)
    axes: dict[str, Axis] = field(default_factory=dict)
    masks: dict[str, MaskMatrix] = field(default_factory=dict)

    def symbols(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in (self.dims, self.states, self.params, self.scalars):
            out.update(group)
        return out

    def add(self, group: dict[str, Any], name: str, value: Any, spec: str) -> None:
        if name in PRIMITIVES:
            raise ParseError(
                f"{spec!r}: {name!r} is the name of the unfold primitive {name}(); choose another name"
            )
        if name in self.symbols() or name in self.axes or name in self.masks:
            raise ParseError(f"{spec!r}: {name!r} is declared twice; give each symbol one declaration")
        group[name] = value


def parse_dims(text: Union[str, Iterable[Any]]) -> dict[str, Dim]:
    """``"d n"`` (or ``"d,n"``, or an iterable of names / :class:`Dim`) as ``{name: Dim}``."""
    if not isinstance(text, str) and not (hasattr(text, "__iter__") and not isinstance(text, (bytes, dict))):
        raise ParseError(f"dims must be a string such as 'd n' or a list of names, got {text!r}")
    if isinstance(text, str):
        if not text.strip():
            return {}
        try:
            found = _declare_dims(text)
        except UndeclaredSymbolError as exc:
            raise ParseError(f"dims {text!r}: {exc}") from None
    else:
        found = tuple(d if isinstance(d, Dim) else Dim(str(d)) for d in text)
    out: dict[str, Dim] = {}
    for d in found:
        if d.name in out:
            raise ParseError(f"dims {text!r}: dimension {d.name!r} is declared twice")
        if d.name in PRIMITIVES:
            raise ParseError(f"dims {text!r}: {d.name!r} is the name of a primitive; choose another name")
        out[d.name] = d
    return out


def _size(entry: str, dims: Mapping[str, Dim], spec: str) -> Union[Dim, int]:
    entry = entry.strip()
    if entry.isdigit() and len(entry) > 6:
        raise ParseError(f"{spec!r}: size {entry} is too large (at most 999999); use a declared dim for it")
    if entry.isdigit():
        value = int(entry)
        if value <= 0:
            raise ParseError(f"{spec!r}: size {entry} must be a positive integer")
        return value
    if entry in dims:
        return dims[entry]
    hint = difflib.get_close_matches(entry, list(dims), n=1)
    raise UndeclaredSymbolError(
        f"{spec!r}: dimension {entry!r} is not declared"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; declared dims are {sorted(dims)}: add it to the dims (--dims \"{' '.join(list(dims) + [entry])}\")"
    )


def parse_matrix_spec(spec: str, dims: Mapping[str, Dim]) -> tuple[str, Union[Dim, int], Union[Dim, int]]:
    """``"Y:d,n"`` -> ``("Y", d, n)``; ``"xi:d"`` -> ``("xi", d, 1)`` (a column vector)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ParseError(
            f"matrix spec {spec!r} must look like 'NAME:ROWS,COLS' (e.g. 'Y:d,n') or 'NAME:ROWS' "
            "for a column vector"
        )
    name, shape = (p.strip() for p in spec.split(":"))
    parts = [p for p in shape.split(",")]
    if not name or len(parts) not in (1, 2) or any(not p.strip() for p in parts):
        raise ParseError(
            f"matrix spec {spec!r} must look like 'NAME:ROWS,COLS' (e.g. 'Y:d,n') or 'NAME:ROWS'"
        )
    rows = _size(parts[0], dims, spec)
    cols = _size(parts[1], dims, spec) if len(parts) == 2 else 1
    return name, rows, cols


def parse_scalar_spec(spec: str) -> tuple[str, bool]:
    """``"beta"`` -> ``("beta", False)``; ``"beta:positive"`` -> ``("beta", True)`` (``:pos`` too)."""
    if not isinstance(spec, str):
        raise ParseError(f"scalar spec {spec!r} must be a string such as 'beta' or 'beta:positive'")
    name, _, kind = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ("", "positive", "pos", "real"):
        raise ParseError(
            f"scalar spec {spec!r}: unknown kind {kind!r}; write 'NAME' (real) or 'NAME:positive'"
        )
    return name.strip(), kind in ("positive", "pos")


def parse_axis_spec(spec: str, dims: Mapping[str, Dim]) -> Axis:
    """``"h:H"`` (or ``"h:12"``) -> the axis ``h`` of size ``H``."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ParseError(f"axis spec {spec!r} must look like 'NAME:SIZE' (e.g. 'h:H' or 'h:12')")
    name, size = (p.strip() for p in spec.split(":"))
    try:
        return Axis(name, _size(size, dims, spec))
    except ParseError:
        raise
    except UnfoldError as exc:
        raise ParseError(f"axis spec {spec!r}: {exc}") from None


def _split_over(shape: str, decl: Declarations, spec: str) -> tuple[str, tuple[Axis, ...]]:
    """``"p,d@h,l"`` -> ``("p,d", (h, l))``: the axes a matrix ranges over follow ``@``."""
    if "@" not in shape:
        return shape, ()
    dims_part, _, over = shape.partition("@")
    axes = []
    for a in over.split(","):
        a = a.strip()
        if a not in decl.axes:
            raise UndeclaredSymbolError(
                f"{spec!r}: axis {a!r} is not declared; declared axes are {sorted(decl.axes)} (--axis NAME:SIZE)"
            )
        axes.append(decl.axes[a])
    return dims_part, tuple(axes)


def _declare(
    dims: Union[str, Iterable[Any]],
    states: Union[Mapping[str, Any], Sequence[str], None],
    params: Union[Mapping[str, Any], Sequence[str], None],
    scalars: Union[Mapping[str, Any], Sequence[str], None],
    axes: Union[Sequence[str], None] = None,
    masks: Union[Mapping[str, Any], Sequence[str], None] = None,
) -> Declarations:
    decl = Declarations()
    for name, d in parse_dims(dims).items():
        decl.add(decl.dims, name, d, f"dims {dims!r}")
    if isinstance(axes, str):
        raise ParseError("axes must be a list of specs such as ['h:H']")
    for a in axes or ():
        ax = parse_axis_spec(a, decl.dims)
        if ax.name in PRIMITIVES:
            raise ParseError(f"{a!r}: {ax.name!r} is the name of a primitive; choose another name")
        if ax.name in decl.symbols() or ax.name in decl.axes:
            raise ParseError(f"{a!r}: {ax.name!r} is declared twice; give each symbol one declaration")
        decl.axes[ax.name] = ax

    def matrices(group: Any, make: Callable[..., Any], store: dict[str, Any], what: str) -> None:
        if group is None:
            return
        items: list[tuple[str, Any]]
        if isinstance(group, str):
            raise ParseError(f"{what} must be a list of specs such as ['Y:d,n'] or a dict {{'Y': 'd,n'}}")
        overs: dict[str, tuple[Axis, ...]] = {}
        if isinstance(group, Mapping):
            items = []
            for k, v in group.items():
                if isinstance(v, str):
                    v, overs[k] = _split_over(v, decl, f"{k}:{v}")
                items.append((k, v))
        else:
            items = []
            for s in group:
                if not isinstance(s, str):
                    raise ParseError(f"{what}: {s!r} is not a spec such as 'Y:d,n'")
                head, over = _split_over(s, decl, s)
                name, r, c = parse_matrix_spec(head, decl.dims)
                overs[name] = over
                items.append((name, (r, c)))
        for name, shape in items:
            spec = f"{name}:{shape}"
            if isinstance(shape, str):
                _, r, c = parse_matrix_spec(f"{name}:{shape}", decl.dims)
            elif isinstance(shape, tuple) and len(shape) in (1, 2):
                entries = [x.name if isinstance(x, Dim) else x for x in shape]
                r, c = (
                    _size(str(x), decl.dims, spec) if isinstance(x, str) or isinstance(x, int) else x
                    for x in (entries + [1])[:2]
                )
            else:
                raise ParseError(f"{what} {name!r}: shape {shape!r} must be 'ROWS,COLS' or a (rows, cols) tuple")
            try:
                sym = make(name, r, c, over=overs.get(name) or None)
            except UnfoldError as exc:
                raise ParseError(f"{what} {spec!r}: {exc}") from None
            decl.add(store, name, sym, spec)

    matrices(states, _state, decl.states, "states")
    matrices(params, _param, decl.params, "params")
    matrices(masks, _mask, decl.masks, "masks")
    if scalars is not None:
        if isinstance(scalars, str):
            raise ParseError("scalars must be a list such as ['beta'] or ['beta:positive']")
        specs = (
            [f"{k}:{'positive' if v in (True, 'positive', 'pos') else 'real'}" for k, v in scalars.items()]
            if isinstance(scalars, Mapping) else list(scalars)
        )
        for s in specs:
            name, positive = parse_scalar_spec(s)
            try:
                sym = _scalar(name, positive=positive)
            except UnfoldError as exc:
                raise ParseError(f"scalar {s!r}: {exc}") from None
            decl.add(decl.scalars, name, sym, s)
    return decl


# ---- the whitelisted walk --------------------------------------------------------------------------
def _caret(text: str, node: Optional[ast.AST]) -> str:
    col = getattr(node, "col_offset", None)
    if col is None:
        return ""
    line = text if "\n" not in text else text.splitlines()[max(0, getattr(node, "lineno", 1) - 1)]
    if len(line) > 120:  # keep the message short: a window around the column
        start = max(0, col - 60)
        line, col = ("…" if start else "") + line[start:start + 120], col - start + (1 if start else 0)
    return f"\n  {line}\n  {' ' * col}^"


def _fail(cls: type, message: str, text: str, node: Optional[ast.AST]) -> UnfoldError:
    col = getattr(node, "col_offset", None)
    where = f" (column {col + 1})" if col is not None else ""
    exc = cls(f"{message}{where}{_caret(text, node)}")
    exc.position = None if col is None else col  # type: ignore[attr-defined]
    exc.text = text  # type: ignore[attr-defined]
    return exc


def _shape(M: MatrixExpr) -> str:
    return f"{M.rows}×{M.cols}"


def _is_mat(x: Any) -> bool:
    return isinstance(x, MatrixExpr)


class _Reader:
    """Evaluates a whitelisted AST into unfold sympy expressions."""

    def __init__(self, text: str, decl: Declarations) -> None:
        self.text = text
        self.decl = decl
        self.names = decl.symbols()
        self.used: set[str] = set()

    def fail(self, cls: type, message: str, node: Optional[ast.AST]) -> UnfoldError:
        return _fail(cls, message, self.text, node)

    # -- leaves
    def number(self, node: ast.Constant) -> sp.Expr:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(ParseError, f"only numbers are allowed as constants, not {v!r}", node)
        if isinstance(v, int):
            if len(str(abs(v))) > MAX_DIGITS:
                raise self.fail(ParseError, f"integer literal has more than {MAX_DIGITS} digits", node)
            return sp.Integer(v)
        if not math.isfinite(v):
            raise self.fail(ParseError, f"the constant {v!r} is not finite", node)
        return sp.Float(v)

    def name(self, node: ast.Name) -> Any:
        n = node.id
        if n.startswith("_"):
            raise self.fail(ParseError, f"names starting with '_' are not allowed ({n!r})", node)
        if n in self.names:
            self.used.add(n)
            return self.names[n]
        if n in PRIMITIVES:
            raise self.fail(ParseError, f"{n} is a function: call it, e.g. {n}(Y)", node)
        hint = difflib.get_close_matches(n, list(self.names), n=1)
        msg = f"symbol {n!r} is not declared"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        msg += (
            "; declare it as a state (--state 'NAME:ROWS,COLS'), parameter (--param) or scalar "
            f"(--scalar NAME). Declared: {sorted(self.names) or 'nothing'}"
        )
        raise self.fail(UndeclaredSymbolError, msg, node)

    # -- dispatch
    def ev(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        what = _REFUSED.get(type(node), f"the Python construct {type(node).__name__}")
        raise self.fail(
            ParseError,
            f"{what} are not allowed in an energy expression; use declared names, numbers, "
            "+ - * / @ **, .T and unfold primitives",
            node,
        )

    def unary(self, node: ast.UnaryOp) -> Any:
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.fail(ParseError, f"the operator {type(node.op).__name__} is not allowed; use + - * / @ **", node)
        v = self.ev(node.operand)
        return -v if isinstance(node.op, ast.USub) else v

    def attribute(self, node: ast.Attribute) -> Any:
        if node.attr != "T":
            raise self.fail(
                ParseError, f"attribute .{node.attr} is not allowed; the only attribute is .T (transpose)", node
            )
        v = self.ev(node.value)
        if not _is_mat(v):
            raise self.fail(ShapeMismatchError, f".T of the scalar {v}: only matrices can be transposed", node)
        return ops.T(v)

    # -- arithmetic
    def scalar_of(self, v: Any, node: ast.AST, what: str) -> sp.Expr:
        """``v`` as a scalar; a 1×1 matrix becomes its single entry, other matrices are refused."""
        if _is_mat(v):
            if v.shape == (1, 1):
                return ops.as_scalar(v)
            raise self.fail(ShapeMismatchError, f"{what}: {v} is a {_shape(v)} matrix, not a scalar", node)
        return v

    def binop(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(ParseError, f"the operator {type(node.op).__name__} is not allowed; use + - * / @ **", node)
        a, b = self.ev(node.left), self.ev(node.right)
        try:
            if op in "+-":
                return self.add(a, b, op, node)
            if op in ("*", "@"):
                return self.mul(a, b, op, node)
            if op == "/":
                return self.div(a, b, node)
            return self.pow(a, b, node)
        except UnfoldError:
            raise
        except (TypeError, ValueError, ArithmeticError, NotImplementedError) as exc:  # sympy refusals
            raise self.fail(ParseError, f"cannot form {a} {op} {b}: {exc}", node) from None

    def add(self, a: Any, b: Any, op: str, node: ast.BinOp) -> Any:
        if _is_mat(a) and _is_mat(b):
            if a.shape != b.shape:
                raise self.fail(
                    ShapeMismatchError,
                    f"sum {a} {op} {b}: {a} is {_shape(a)} but {b} is {_shape(b)}; both terms of a sum "
                    "need the same shape",
                    node,
                )
        elif _is_mat(a) or _is_mat(b):
            m = a if _is_mat(a) else b
            if m.shape != (1, 1):
                raise self.fail(
                    ShapeMismatchError,
                    f"sum of the {_shape(m)} matrix {m} and a scalar: reduce the matrix to a scalar "
                    f"(sum_entries, fro2, trace, lse) or write the constant as c*ones({m.rows}, {m.cols})",
                    node,
                )
            a, b = (ops.as_scalar(a) if _is_mat(a) else a), (ops.as_scalar(b) if _is_mat(b) else b)
        return a + b if op == "+" else a - b

    def mul(self, a: Any, b: Any, op: str, node: ast.BinOp) -> Any:
        if _is_mat(a) and _is_mat(b):
            if a.cols != b.rows:
                raise self.fail(
                    ShapeMismatchError,
                    f"product {a} {op} {b}: {a} is {_shape(a)} but {b} is {_shape(b)} "
                    f"({a.cols} ≠ {b.rows}); transpose a factor (.T), fix the declared shapes, "
                    "or use hadamard(A, B) for an entrywise product",
                    node,
                )
            return a @ b
        if op == "@":
            s = a if not _is_mat(a) else b
            raise self.fail(ShapeMismatchError, f"@ needs two matrices but {s} is a scalar; use * to scale", node)
        return a * b

    def div(self, a: Any, b: Any, node: ast.BinOp) -> Any:
        if _is_mat(b):
            if b.shape != (1, 1):
                raise self.fail(
                    ShapeMismatchError,
                    f"division by the {_shape(b)} matrix {b}: multiply by inv({b}) for a matrix "
                    "inverse, or divide by a scalar",
                    node,
                )
            b = ops.as_scalar(b)
        if b == 0:
            raise self.fail(ParseError, "division by zero", node)
        return a / b

    def pow(self, a: Any, b: Any, node: ast.BinOp) -> Any:
        b = self.scalar_of(b, node.right, "exponent")
        if b.is_number:
            if b.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or abs(float(b)) > MAX_EXPONENT:
                raise self.fail(ParseError, f"the exponent {b} is out of range (|p| ≤ {MAX_EXPONENT})", node.right)
        if _is_mat(a):
            if a.shape == (1, 1):
                a = ops.as_scalar(a)
            else:
                if a.rows != a.cols or not b.is_Integer:
                    raise self.fail(
                        ShapeMismatchError,
                        f"{a}**{b}: ** of a matrix is a matrix power and needs a square matrix and an "
                        f"integer exponent ({a} is {_shape(a)}); use power({a}, p) for an entrywise power",
                        node,
                    )
                if b == 0:
                    return ops.identity(a.rows)
                return a ** b
        if a.is_number and b.is_number:
            try:
                size = abs(float(a)) ** float(b) if a != 0 else 0.0
            except (OverflowError, ZeroDivisionError):
                size = math.inf
            if not math.isfinite(size) or size > 1e300:
                raise self.fail(ParseError, f"the constant {a}**{b} is out of range", node)
        if a == 0 and b.is_number and b.is_negative:
            raise self.fail(ParseError, "division by zero (0 to a negative power)", node)
        return a ** b

    # -- calls
    def call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            what = f"calling .{node.func.attr}(...) is not allowed; " if isinstance(node.func, ast.Attribute) else ""
            raise self.fail(
                ParseError, f"{what}only unfold primitives can be called, e.g. exp(Y) or lse(X.T @ xi)", node.func
            )
        fname = node.func.id
        if fname.startswith("_"):
            raise self.fail(ParseError, f"names starting with '_' are not allowed ({fname!r})", node.func)
        fn = PRIMITIVES.get(fname)
        if fn is None:
            hint = difflib.get_close_matches(fname, list(PRIMITIVES), n=1)
            raise self.fail(
                UnsupportedNodeError,
                f"unsupported function {fname!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; the supported primitives are {', '.join(sorted(PRIMITIVES))}",
                node.func,
            )
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(ParseError, "**kwargs are not allowed", kw.value)
        args = [self.arg(fname, i, a) for i, a in enumerate(node.args)]
        kwargs = {kw.arg: self.keyword(fname, kw) for kw in node.keywords if kw.arg is not None}  # None refused above
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise self.fail(ParseError, f"{fname}{inspect.signature(fn)}: {exc}", node) from None
        try:
            return fn(*args, **kwargs)
        except UnfoldError as exc:
            raise self.fail(type(exc), str(exc), node) from None
        except (TypeError, ValueError, ArithmeticError, NotImplementedError, AttributeError) as exc:
            raise self.fail(ParseError, f"{fname}(...) could not be formed: {exc}", node) from None

    def arg(self, fname: str, i: int, node: ast.AST) -> Any:
        if isinstance(node, ast.Starred):
            raise self.fail(ParseError, "*args are not allowed", node)
        if i in _DIM_ARGS.get(fname, ()):
            if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
                if not 0 < node.value <= 10**6:
                    raise self.fail(ParseError, f"{fname}(): size {node.value} must be a positive integer", node)
                return node.value
            return self.declared(node, self.decl.dims, ShapeMismatchError,
                                 f"{fname}() takes dimensions (declared dim names or positive integers); "
                                 f"declared dims are {sorted(self.decl.dims)}")
        if fname == "sum_over" and i == 0:
            return self.declared(node, self.decl.axes, UndeclaredSymbolError,
                                 "sum_over() takes a declared axis first; declared axes are "
                                 f"{sorted(self.decl.axes) or 'none'} (--axis NAME:SIZE)")
        v = self.ev(node)
        if fname in ("hpow", "power", "soft_threshold") and i == 1:
            return self.scalar_of(v, node, f"{fname}() second argument")
        return v

    def declared(self, node: ast.AST, table: Mapping[str, Any], cls: type, message: str) -> Any:
        """The declaration a bare name in ``table`` refers to (marked used), else ``cls(message)``."""
        if isinstance(node, ast.Name) and node.id in table:
            self.used.add(node.id)
            return table[node.id]
        raise self.fail(cls, message, node)

    def keyword(self, fname: str, kw: ast.keyword) -> Any:
        if kw.arg == "mask":
            return self.declared(kw.value, {"causal": _causal, **self.decl.masks}, UndeclaredSymbolError,
                                 f"{fname}(): mask= takes causal or a declared mask (--mask NAME:ROWS,COLS); "
                                 f"declared masks are {sorted(self.decl.masks) or 'none'}")
        if kw.arg in _AXIS_KEYWORDS:
            node = kw.value
            if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool) \
                    and node.value in (0, 1):
                return node.value
            raise self.fail(ParseError, f"{fname}(): axis must be the literal 0 (per column) or 1 (per row)", node)
        v = self.ev(kw.value)
        return self.scalar_of(v, kw.value, f"{fname}(): {kw.arg}")


def _check_tree(text: str, tree: ast.AST) -> None:
    """Bound depth and node count without recursion (before anything is evaluated)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _fail(ParseError, f"expression has more than {MAX_NODES} parts; split it into named terms", text, None)
        if depth > MAX_DEPTH:
            raise _fail(ParseError, f"expression is nested more than {MAX_DEPTH} levels deep", text, node)
        for c in ast.iter_child_nodes(node):
            # a flat chain a + b − c + … parses left-nested; its links are one level, not one each
            chain = (isinstance(node, ast.BinOp) and c is node.left and isinstance(c, ast.BinOp)
                     and isinstance(c.op, (ast.Add, ast.Sub)) and isinstance(node.op, (ast.Add, ast.Sub)))
            stack.append((c, depth if chain else depth + 1))


def _syntax_tree(text: Any) -> ast.Expression:
    if not isinstance(text, str):
        raise ParseError(f"the expression must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ParseError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    for i, ch in enumerate(text):
        if not (32 <= ord(ch) < 127 or ch in "\t\n"):
            raise ParseError(
                f"character {ch!r} at column {i + 1} is not allowed; write the expression in ASCII "
                f"(e.g. '-' for '−', '*' for '·')\n  {text}\n  {' ' * i}^"
            )
    try:
        tree = ast.parse(text.strip(), mode="eval")  # parses only; nothing is compiled or run
    except SyntaxError as exc:
        col = (exc.offset or 1) - 1
        raise ParseError(
            f"syntax error: {exc.msg} (column {col + 1})\n  {text.strip()}\n  {' ' * col}^"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise ParseError(f"the expression is nested too deeply (limit {MAX_DEPTH} levels)") from None
    _check_tree(text.strip(), tree)
    return tree


def parse_expression(
    text: str,
    dims: Union[str, Iterable[Any]] = "",
    states: Union[Mapping[str, Any], Sequence[str], None] = None,
    params: Union[Mapping[str, Any], Sequence[str], None] = None,
    scalars: Union[Mapping[str, Any], Sequence[str], None] = None,
) -> Union[sp.Expr, MatrixExpr]:
    """The expression ``text`` (scalar or matrix) over the declared names; see :func:`parse`."""
    decl = _declare(dims, states, params, scalars)
    return _read(text, decl)[0]


def _read(text: str, decl: Declarations) -> tuple[Any, set[str]]:
    tree = _syntax_tree(text)
    reader = _Reader(text.strip(), decl)
    try:
        value = reader.ev(tree.body)
    except RecursionError:  # pragma: no cover - guarded by MAX_DEPTH
        raise ParseError(f"the expression is nested too deeply (limit {MAX_DEPTH} levels)") from None
    if isinstance(value, sp.Basic) and value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ParseError(f"the expression {value} contains a non-finite constant (e.g. log(0))")
    return value, reader.used


def parse(
    text: str,
    dims: Union[str, Iterable[Any]] = "",
    states: Union[Mapping[str, Any], Sequence[str], None] = None,
    params: Union[Mapping[str, Any], Sequence[str], None] = None,
    scalars: Union[Mapping[str, Any], Sequence[str], None] = None,
    *,
    axes: Union[Sequence[str], None] = None,
    masks: Union[Mapping[str, Any], Sequence[str], None] = None,
    name: str = "E",
) -> Energy:
    """Read an energy from text, safely.

    ``uf.parse("-lse(beta * X.T @ xi) / beta + fro2(xi) / 2", dims="d n",
    states={"xi": "d"}, params={"X": "d,n"}, scalars=["beta:positive"])`` is the modern Hopfield
    energy.  ``states``/``params`` map names to shapes (``"d,n"``, ``"d"`` for a column vector, or a
    ``(rows, cols)`` tuple of dim names / ints) or are lists of specs ``"Y:d,n"``; ``scalars`` is a
    list of ``"beta"`` / ``"beta:positive"``.  At least one declared state must occur.

    Named axes: ``axes=["h:H"]`` declares an axis; a matrix ranges over axes listed after ``@`` in
    its shape (``params={"WQ": "p,d@h"}`` or ``"WQ:p,d@h"``), and ``sum_over(h, ...)`` sums over one.
    Masks: ``lse(S, axis=1, mask=causal)``, or ``masks=["M:n,n"]`` declares a mask input ``mask=M``.

    Raises :class:`ParseError` (with ``.position``, the 0-based column, where known) for anything
    outside the whitelist (see the module docstring), :class:`UndeclaredSymbolError` for unknown
    names (with a did-you-mean hint), :class:`UnsupportedNodeError` for unknown functions,
    :class:`ShapeMismatchError` for ill-shaped sums/products and :class:`NotScalarError` when the
    expression is a matrix that is not 1×1.  Declared names that do not occur give a warning.
    """
    decl = _declare(dims, states, params, scalars, axes, masks)
    if not decl.states:
        raise ParseError("declare at least one state (--state 'NAME:ROWS,COLS'): the variable a layer updates")
    value, used = _read(text, decl)
    if _is_mat(value) and value.shape != (1, 1):
        raise NotScalarError(
            f"the expression {value} is a {_shape(value)} matrix, not a scalar energy; reduce it with "
            "fro2, sum_entries, trace, lse or logdet"
        )
    if not any(s in used for s in decl.states):
        raise ParseError(
            f"the expression does not depend on any declared state ({', '.join(decl.states)}); "
            "an energy must depend on the variable the layer updates"
        )
    unused = [n for n in list(decl.states) + list(decl.params) + list(decl.scalars) if n not in used]
    if unused:
        warnings.warn(f"declared but unused in the expression: {', '.join(unused)}", stacklevel=2)
    return Energy(value, name=name)


def parse_energy_spec(
    expr: str,
    dims: str,
    states: Sequence[str],
    params: Sequence[str] = (),
    scalars: Sequence[str] = (),
    *,
    axes: Sequence[str] = (),
    masks: Sequence[str] = (),
    name: str = "E",
) -> Energy:
    """The CLI's form: ``unfold derive EXPR --dims "d n" --state Y:d,n --param W:d,d --scalar beta``.

    ``dims`` is a space- or comma-separated string; every entry of ``states``/``params`` is a spec
    ``"NAME:ROWS,COLS"`` (``"NAME:ROWS"`` for a column vector; sizes are declared dims or positive
    integers); every entry of ``scalars`` is ``"NAME"`` or ``"NAME:positive"``.  Errors as
    :func:`parse`.
    """
    return parse(expr, dims, list(states or ()), list(params or ()), list(scalars or ()),
                 axes=list(axes or ()), masks=list(masks or ()), name=name)
