"""``Energy``: a scalar energy made of named terms, with derived gradients and update rules.

``E1 + E2`` keeps the terms apart, so every energy can be evaluated term by term.  Gradients come
from unfold's own reverse-mode engine (:mod:`unfold.symbolic.vjp`), never from sympy's matrix
``.diff``.
"""

from __future__ import annotations

import keyword
from typing import Any, Iterable, Mapping, Optional, Union

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol, Trace

from ..errors import NotScalarError, UndeclaredSymbolError, UnsupportedNodeError
from .axes import Axis, axes_of, sorted_axes
from .display import to_latex, to_str
from .nodes import lazy_add, lazy_mul
from .masks import MaskMatrix
from .symbols import Dim, ParamMatrix, ScalarParam, StateMatrix
from .tidy import canonical
from .validate import check_expression
from .vjp import gradient

__all__ = ["Energy", "as_energy_expr"]

Variable = Union[MatrixSymbol, sp.Symbol]


def as_energy_expr(expr: Any, name: str = "E") -> sp.Expr:
    """Validate ``expr`` as a scalar energy term (a 1×1 matrix becomes its trace)."""
    if isinstance(expr, Energy):
        return expr.expr
    if isinstance(expr, bool) or isinstance(expr, str) or not isinstance(expr, (Basic, int, float)):
        raise NotScalarError(
            f"energy term {name!r} must be a sympy expression built from unfold primitives, got "
            f"{type(expr).__name__}" + (" (to read text use uf.parse)" if isinstance(expr, str) else "")
        )
    e = sp.sympify(expr)  # safe: a number or an existing sympy object, never text
    if isinstance(e, MatrixExpr):
        if e.shape != (1, 1):
            raise NotScalarError(
                f"energy term {name!r} is a {e.rows}×{e.cols} matrix ({e}), not a scalar; reduce it "
                "with uf.sum_entries, uf.trace, uf.fro2 or uf.lse"
            )
        e = Trace(e)
    if not isinstance(e, sp.Expr) or isinstance(e, sp.MatrixBase):
        raise NotScalarError(f"energy term {name!r} is not a scalar expression: {e!r}")
    check_expression(e)
    free = axes_of(e)
    if free:
        names = sorted(a.name for a in free)
        raise NotScalarError(
            f"energy term {name!r} ranges over the axis/axes {names} (one value per index); sum it "
            f"with uf.sum_over({names[0]}, ...) to make one scalar energy"
        )
    return e


def _term_name(name: Any) -> str:
    """A term's name, which also names its generated function: a letter (or '_') then letters,
    digits or '_'."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise UndeclaredSymbolError(
            f"invalid energy term name {name!r}: use a letter followed by letters, digits or '_' "
            "(it names the term's generated function)"
        )
    return name


def unique_name(base: str, taken: Iterable[Any]) -> str:
    """``base``, or ``base_2``, ``base_3``, … : the first that clashes with none of ``taken`` (compared by name)."""
    names = {str(t) for t in taken}
    if base not in names:
        return base
    k = 2
    while f"{base}_{k}" in names:
        k += 1
    return f"{base}_{k}"


class Energy:
    """A scalar energy ``E = Σ_terms E_t`` over declared states, parameters and scalars.

    ``Energy(expr, name="E")`` or ``Energy(terms={"attention": e1, "memory": e2})``.
    """

    def __init__(self, expr: Any = None, *, name: str = "E", terms: Optional[Mapping[str, Any]] = None):
        if terms is None:
            if expr is None:
                raise NotScalarError("Energy needs an expression or terms={...}")
            if isinstance(expr, Energy):
                terms = dict(expr.terms)
            else:
                terms = {name: expr}
        elif expr is not None:
            raise NotScalarError("give Energy either an expression or terms=, not both")
        self.terms: dict[str, sp.Expr] = {_term_name(k): as_energy_expr(v, str(k)) for k, v in terms.items()}
        self._grads: dict[tuple[str, Basic], Basic] = {}
        self._compiled: Any = None

    # ---- algebra ---------------------------------------------------------------------------------
    @property
    def expr(self) -> sp.Expr:
        """The whole energy as one scalar expression."""
        return sp.Add(*self.terms.values())

    def term(self, name: str) -> "Energy":
        """One named term as an energy of its own."""
        if name not in self.terms:
            raise KeyError(f"no term {name!r}; terms are {list(self.terms)}")
        return Energy(self.terms[name], name=name)

    def __add__(self, other: Any) -> "Energy":
        terms = dict(self.terms)
        others = other.terms if isinstance(other, Energy) else {"E": as_energy_expr(other)}
        for k, v in others.items():
            terms[unique_name(k, terms)] = v
        return Energy(terms=terms)

    __radd__ = __add__

    def __neg__(self) -> "Energy":
        return Energy(terms={k: -v for k, v in self.terms.items()})

    def __sub__(self, other: Any) -> "Energy":
        return self + (-other if isinstance(other, Energy) else -sp.sympify(other))  # safe: sympy obj

    def __mul__(self, c: Any) -> "Energy":
        c = as_energy_expr(c, "scale")
        return Energy(terms={k: c * v for k, v in self.terms.items()})

    __rmul__ = __mul__

    def __truediv__(self, c: Any) -> "Energy":
        return self * (1 / as_energy_expr(c, "scale"))

    # ---- symbols ---------------------------------------------------------------------------------
    def _symbols(self, cls: type) -> tuple[Any, ...]:
        # cached per class (layers ask for ``inputs`` on every call); recomputed if the terms change
        e = self.expr
        cache = self.__dict__.setdefault("_symbol_cache", {})
        hit = cache.get(cls)
        if hit is not None and hit[0] == e:
            return hit[1]
        found = {s for s in e.atoms(MatrixSymbol, sp.Symbol) if isinstance(s, cls)}
        out = tuple(sorted(found, key=lambda s: str(s)))
        cache[cls] = (e, out)
        return out

    @property
    def states(self) -> tuple[StateMatrix, ...]:
        return self._symbols(StateMatrix)

    @property
    def params(self) -> tuple[ParamMatrix, ...]:
        return self._symbols(ParamMatrix)

    @property
    def scalars(self) -> tuple[ScalarParam, ...]:
        return self._symbols(ScalarParam)

    @property
    def dims(self) -> tuple[Dim, ...]:
        found: set[Dim] = set()
        for m in self.states + self.params + self.masks:
            found |= {d for d in m.shape if isinstance(d, Dim)}
        found |= set(self._symbols(Dim))
        found |= {a.size for a in self.axes if isinstance(a.size, Dim)}
        return tuple(sorted(found, key=str))

    @property
    def axes(self) -> tuple[Axis, ...]:
        """Every axis a state or parameter ranges over, in the canonical (generated-code) order."""
        return sorted_axes(a for m in self.states + self.params + self.masks for a in getattr(m, "axes", ()))

    @property
    def masks(self) -> tuple[MaskMatrix, ...]:
        """Declared mask inputs (never differentiated)."""
        return self._symbols(MaskMatrix)

    @property
    def inputs(self) -> tuple[Basic, ...]:
        """Argument order of every generated function: states, parameters, masks, scalars (by name)."""
        return self.states + self.params + self.masks + self.scalars

    @property
    def variables(self) -> tuple[Basic, ...]:
        """Everything a gradient can be taken with respect to (the inputs but masks)."""
        return self.states + self.params + self.scalars

    def symbol(self, name: str) -> Basic:
        """The declared symbol called ``name``."""
        for s in self.inputs:
            if str(s) == name:
                return s
        raise UndeclaredSymbolError(f"energy has no variable {name!r}; it has {[str(s) for s in self.inputs]}")

    def _resolve(self, wrt: Union[Variable, str]) -> Variable:
        if isinstance(wrt, str):
            return self.symbol(wrt)
        if wrt not in self.inputs:
            raise UndeclaredSymbolError(
                f"{wrt} does not occur in this energy; variables are {[str(s) for s in self.inputs]}"
            )
        return wrt

    # ---- calculus --------------------------------------------------------------------------------
    def grad(self, wrt: Union[Variable, str], term: Optional[str] = None) -> Basic:
        """∂E/∂wrt (of one term if ``term`` is given) as a tidy matrix or scalar expression."""
        v = self._resolve(wrt)
        if isinstance(v, MaskMatrix):
            raise UnsupportedNodeError(f"{v} is a mask (an input that selects scores), not a variable")
        key = (term or "", v)
        if key not in self._grads:
            e = self.expr if term is None else self.term(term).expr
            self._grads[key] = canonical(gradient(e, v))
        return self._grads[key]

    def update_rule(self, wrt: Union[Variable, str], step: Any = 1) -> Basic:
        """The gradient-descent update ``wrt − step·∂E/∂wrt``, canonicalised."""
        v = self._resolve(wrt)
        g = self.grad(v)
        # built lazily and canonicalised once (sympy's ``v - step*g`` re-does ``g`` as a tree)
        return canonical(lazy_add(v, lazy_mul(-sp.sympify(step), g)))  # safe: a number or sympy scalar

    # ---- code ------------------------------------------------------------------------------------
    def compile(self) -> Any:
        """The compiled energy (generated torch functions); cached."""
        if self._compiled is None:
            from ..codegen.compiled import CompiledEnergy

            self._compiled = CompiledEnergy(self)
        return self._compiled

    def torch_source(self) -> str:
        """Source of the generated energy function."""
        return self.compile().energy_fn.source

    # ---- display ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return to_str(self.expr)

    def __repr__(self) -> str:
        return f"Energy({', '.join(f'{k}: {to_str(v)}' for k, v in self.terms.items())})"

    def latex(self) -> str:
        return to_latex(self.expr)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"
