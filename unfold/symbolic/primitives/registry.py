"""The registry of primitives: one record per node type, holding every rule about it.

A *primitive* is a node type of the energy language that unfold itself defines (a
:class:`~unfold.symbolic.nodes.MatFn` or :class:`~unfold.symbolic.nodes.ScalarMatFn` subclass) or
an elementwise scalar function (``exp``, ``gelu``, …).  Each lives in one module of
:mod:`unfold.symbolic.primitives`, which defines the node (or sympy function) and registers a
record with all of its rules:

* the vector-Jacobian rule (reverse mode, :mod:`unfold.symbolic.vjp`);
* the explicit-size expansion from the textbook definition (leg 2 of the gradient check,
  :mod:`unfold.symbolic.explicit`);
* the torch lowering, a rule of the printer's signature ``(printer, node) -> (code, precedence)``
  (:mod:`unfold.codegen.printer` calls it; it only builds text, so this layer needs no torch);
* the validation of a node's arguments (:mod:`unfold.symbolic.validate`);
* the display, plain text and LaTeX (:mod:`unfold.symbolic.display`);
* a transpose rule where one exists (:func:`unfold.symbolic.tidy.transpose`);
* the names under which ``uf.parse`` reads it (:data:`unfold.parse.PRIMITIVES`);
* the names of the torch kernels its lowering calls (``_adjugate``, …), resolved by code
  generation from :mod:`unfold.codegen.kernels` (names only here: this layer imports no torch).

The modules of this package are found by listing it (:func:`load`): adding a primitive is adding
one module.  Lookups load them first, so no consumer can see a partial registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from sympy import Basic

__all__ = [
    "ATOM", "POW", "MUL", "ADD", "Code", "Lowering", "Primitive", "ScalarFunction", "register",
    "register_scalar", "primitive_of", "scalar_function_of", "primitives", "scalar_functions",
    "parser_names", "load",
]

#: Precedences of printed torch code (higher binds tighter): an atom needs no parentheses.
ATOM, POW, MUL, ADD = 4, 3, 2, 1
#: Printed code and its precedence.
Code = tuple[str, int]
#: A torch lowering: ``(printer, node) -> Code``, the signature of the printer's ``_RULES``.
Lowering = Callable[[Any, Basic], Code]
#: Cotangent pairs ``[(child, cotangent of child), ...]``.
Pairs = list[tuple[Basic, Basic]]


@dataclass(frozen=True)
class Primitive:
    """Every rule of one node type (a ``MatFn``/``ScalarMatFn`` subclass).

    ``vjp(node, G)``: the children paired with their cotangents (each of the child's shape);
    ``explicit(node, ev)``: the node's value at explicit sizes from its definition, given ``ev``
    (the explicit value of any sub-expression); ``lower(printer, node)``: torch code;
    ``validate(node)``: raise a :class:`~unfold.errors.ShapeMismatchError` (or other unfold
    error) for bad arguments; ``text(printer, node)`` / ``latex(printer, node)``: display, given
    the sympy printer (``printer._print`` prints a sub-expression); ``transpose(node)``: ``nodeᵀ``
    rewritten, or None where no rewrite applies (None for the field: no rule);
    ``transposed_text(printer, node)`` / ``transposed_latex(printer, node)``: the display of
    ``nodeᵀ`` where it reads as a form of its own (the transpose of a column-wise softmax of ``Mᵀ``
    is the row-wise softmax of ``M``), None to display it as ``(node)ᵀ``; ``parser``: names
    ``uf.parse`` reads mapped to the user functions they call; ``example(X)``: an instance built on
    a square matrix ``X`` (where the function is defined at a generic ``X``), on which the registry's
    test exercises every rule; ``kernels``: the names of the torch kernels ``lower`` prints calls
    of (each defined in a module of :mod:`unfold.codegen.kernels`, which puts exactly the declared
    ones into generated code's namespace).
    """

    node: type
    vjp: Callable[[Any, Any], Pairs]
    explicit: Callable[[Any, Callable[[Basic], Any]], Any]
    lower: Lowering
    validate: Callable[[Any], None]
    text: Callable[[Any, Any], str]
    latex: Callable[[Any, Any], str]
    example: Callable[[Any], Basic]
    transpose: Optional[Callable[[Any], Optional[Basic]]] = None
    transposed_text: Optional[Callable[[Any, Any], str]] = None
    transposed_latex: Optional[Callable[[Any, Any], str]] = None
    parser: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    kernels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScalarFunction:
    """Every rule of one elementwise scalar function ``u ↦ build(u)`` (``build`` None for a
    function of several arguments, such as ``max``, which is not applied entrywise by name).

    ``func``: the sympy function class the function introduces (``sp.exp``; None for a
    composition of other registered functions, such as ``sigmoid = 1/(1 + exp(−u))``), whose
    nodes ``lower`` prints; the derivative is the class's own ``fdiff`` (sympy's for sympy's
    functions), taken by the gradient engine on fresh real variables.  ``definition``: the
    textbook definition in other functions (``softplus(u) = log(1 + exp(u))``) used by the
    explicit-size expansion, so leg 2 of the gradient check differentiates the definition and not
    ``fdiff``; None where ``func`` is sympy's own (mpmath evaluates it).  ``public``: whether the
    energy language exposes it (``uf.<name>`` and ``uf.parse``, displayed by that name: text
    ``name(X)``, LaTeX ``\\operatorname{name}``); ``apply``: the user function (set on registration);
    ``kernels``: the torch kernels ``lower`` calls, as for :class:`Primitive`.
    """

    name: str
    build: Optional[Callable[[Any], Any]]
    func: Optional[type] = None
    lower: Optional[Lowering] = None
    definition: Optional[Callable[..., Any]] = None
    public: bool = True
    apply: Optional[Callable[..., Any]] = None
    kernels: tuple[str, ...] = ()


_PRIMITIVES: dict[type, Primitive] = {}
_SCALARS: dict[str, ScalarFunction] = {}
_BY_FUNC: dict[type, ScalarFunction] = {}
_loaded = False


def register(p: Primitive) -> Primitive:
    """Add ``p`` (once per node type)."""
    if p.node in _PRIMITIVES:
        raise ValueError(f"primitive {p.node.__name__} registered twice")
    _PRIMITIVES[p.node] = p
    return p


def register_scalar(f: ScalarFunction) -> ScalarFunction:
    """Add the scalar function ``f`` (once per name and per sympy class)."""
    if f.name in _SCALARS or (f.func is not None and f.func in _BY_FUNC):
        raise ValueError(f"scalar function {f.name} registered twice")
    _SCALARS[f.name] = f
    if f.func is not None:
        _BY_FUNC[f.func] = f
    return f


def load() -> None:
    """Import every module of :mod:`unfold.symbolic.primitives` (each registers its records)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(__package__ or "unfold.symbolic.primitives")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def primitive_of(node: Any) -> Optional[Primitive]:
    """The record of ``node``'s type (None for a node no module registers)."""
    if not _loaded:
        load()
    return _PRIMITIVES.get(type(node))


def scalar_function_of(func: Any) -> Optional[ScalarFunction]:
    """The scalar function whose sympy class is ``func`` (None if none)."""
    if not _loaded:
        load()
    return _BY_FUNC.get(func)


def primitives() -> dict[type, Primitive]:
    """Every registered node type and its record."""
    load()
    return dict(_PRIMITIVES)


def scalar_functions() -> dict[str, ScalarFunction]:
    """Every registered scalar function by name."""
    load()
    return dict(_SCALARS)


def parser_names() -> dict[str, Callable[..., Any]]:
    """The names ``uf.parse`` reads for registered primitives, mapped to their user functions."""
    load()
    out: dict[str, Callable[..., Any]] = {}
    for p in _PRIMITIVES.values():
        out.update(p.parser)
    for f in _SCALARS.values():
        if f.public and f.apply is not None:
            out[f.name] = f.apply
    return out
