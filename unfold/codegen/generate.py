"""Assembling torch functions from unfold expressions.

:func:`generate_source` writes the source of one Python function computing several outputs of
the same inputs (energies, gradients, update rules) with shared temporaries;
:func:`compile_source` turns it into a callable.  The source is kept, registered with
``linecache`` (so tracebacks and ``inspect`` show it) and exposed as ``.torch_source()``.
"""

from __future__ import annotations

import builtins
import dis
import hashlib
import linecache
import math
import types
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence, Union

import sympy as sp
import torch
from sympy import Basic
from sympy.matrices.expressions import MatrixSymbol

from ..errors import InputError, ShapeMismatchError, UnsupportedNodeError
from ..symbolic.axes import Axis, axes_of, sorted_axes
from ..symbolic.symbols import Dim
from ..symbolic.tidy import distinct_subtrees, intern
from . import kernels, runtime
from .fuse import fuse
from .optimize import optimize
from .graph import Graph
from .printer import TorchCodePrinter

__all__ = ["Output", "generate_source", "lower", "compile_source", "GeneratedFunction", "generate"]

Kind = Literal["scalar", "matrix", "grad"]


@dataclass(frozen=True)
class Output:
    """One output of a generated function.

    ``kind``: ``"scalar"`` (an energy, returned with shape ``(...)``), ``"matrix"`` (returned as
    computed, broadcast to the batch), or ``"grad"`` (the gradient with respect to ``wrt``, reduced
    to ``wrt``'s runtime shape so unbatched parameters get batch-summed gradients).  With named
    axes, a matrix output is ``(..., axes, rows, cols)``, its axes in ``wrt``'s declared order when
    ``wrt`` is given, else in canonical (name) order.
    """

    kind: Kind
    expr: Basic
    wrt: Union[MatrixSymbol, sp.Symbol, None] = None


def _dim_entry(d: sp.Expr) -> str:
    return repr(int(d)) if d.is_Integer else repr(str(d))


@dataclass
class _Lowered:
    """The outputs as printed (rewritten, interned), the inputs split by kind, and the printer."""

    outputs: list[Output]
    mats: list[MatrixSymbol]
    scalars: list[Basic]
    axes: tuple[Axis, ...]
    printer: TorchCodePrinter


def _lower(name: str, inputs: Sequence[Basic], outputs: Sequence[Output], rewrite: bool) -> _Lowered:
    if rewrite:
        outputs = [Output(o.kind, optimize(o.expr), o.wrt) for o in outputs]
    mats = [a for a in inputs if isinstance(a, MatrixSymbol)]
    scalars = [a for a in inputs if not isinstance(a, MatrixSymbol)]
    if not mats:
        raise ShapeMismatchError(f"{name}: an energy needs at least one matrix input")
    axes = sorted_axes(a for m in mats for a in getattr(m, "axes", ()))
    _check_output_axes(name, outputs, axes)
    outputs = [Output(o.kind, intern(o.expr), o.wrt) for o in outputs]  # equal sub-trees shared
    fused = fuse([o.expr for o in outputs])  # attention, layer norm: fused nodes, each printed as one call
    outputs = [Output(o.kind, e, o.wrt) for o, e in zip(outputs, fused)]
    printer = TorchCodePrinter([o.expr for o in outputs], axes=axes)
    for i, o in enumerate(outputs):
        printer.assign(f"_r{i}", o.expr)
    return _Lowered(outputs, mats, scalars, tuple(axes), printer)


def lower(name: str, inputs: Sequence[Basic], outputs: Sequence[Output], rewrite: bool = True) -> Graph:
    """The graph of the body of :func:`generate_source`'s function (the outputs are ``_r0``, ``_r1``,
    ...; equal statements already share one temporary): :meth:`Graph.render` drops the dead values,
    adds the releases and gives the body's statements."""
    return _lower(name, inputs, outputs, rewrite).printer.graph


def generate_source(name: str, inputs: Sequence[Basic], outputs: Sequence[Output],
                    rewrite: bool = True) -> str:
    """Source of ``def name(*inputs)`` returning the outputs (a tuple when more than one).

    With ``rewrite`` (the default) every output is first rewritten by :func:`optimize.optimize`
    (exact identities that remove repeated products, cancelled inverses and double scalings); the
    fusions of :func:`.fuse.fuse` (attention, layer norm) are applied in any case.
    The body is the printer's :class:`~.graph.Graph` after its passes (shared sub-expressions,
    dead values, liveness).  The prologue calls ``_bind_dims``, which checks every dim of every
    input, but assigns only the dims (and ``_dt``, ``_dev``) the body's live statements read
    (:meth:`.graph.Graph.leaves_read`).
    """
    low = _lower(name, inputs, outputs, rewrite)
    outputs, mats, scalars, axes, printer = low.outputs, low.mats, low.scalars, low.axes, low.printer

    def entry(m: MatrixSymbol) -> str:
        sizes = [a.size for a in getattr(m, "axes", ())] + [m.rows, m.cols]
        labels = [a.name for a in getattr(m, "axes", ())]
        kind = ", 'mask'" if getattr(m, "role", "") == "mask" else ""
        return f"({m.name!r}, ({', '.join(_dim_entry(d) for d in sizes)},), {tuple(labels)!r}{kind})"

    spec = ", ".join(entry(m) for m in mats)
    dims = sorted({str(d) for m in mats for d in list(m.shape) + [a.size for a in getattr(m, "axes", ())]
                   if not d.is_Integer})
    unbound = sorted({str(d) for o in outputs for d in distinct_subtrees(o.expr) if isinstance(d, Dim)}
                     - set(dims))
    if unbound:
        raise ShapeMismatchError(
            f"{name}: dimension(s) {unbound} occur in the expression but in no input matrix's shape, "
            "so their size cannot be read from the tensors; use them in a declared matrix or replace "
            "them with a scalar parameter"
        )
    k = len(axes)
    body = printer.graph.render()
    read = printer.graph.leaves_read()  # the prologue assigns only what the body reads
    used = [d for d in dims if d in read]
    lines = [f"def {name}({', '.join(str(a) for a in inputs)}):"]
    # the binding call checks every dim of every input (rank, sizes, dtype, device) even when
    # none of them is assigned
    bind = f"_bind_dims(({spec},), ({', '.join(m.name for m in mats)},))"
    lines.append(f"    _dims = {bind}" if used else f"    {bind}")
    data = next((m for m in mats if getattr(m, "role", "") != "mask"), mats[0])
    if scalars or any(o.kind == "scalar" for o in outputs) or read & {"_dt", "_dev"}:
        lines.append(f"    _dt, _dev = {data.name}.dtype, {data.name}.device")
    for d in used:
        lines.append(f"    {d} = _dims[{d!r}]")
    if k:  # every matrix laid out as (..., axes in canonical order, rows, cols); missing axes of size 1
        names = ", ".join(m.name for m in mats)
        lines.append(f"    _in = ({names},)")
        lines.append("    _batch = tuple(_x.shape[:_x.dim() - _m] for _x, _m in zip(_in, "
                     f"{tuple(2 + len(getattr(m, 'axes', ())) for m in mats)!r}))")
        for m in mats:
            own = tuple(axes.index(a) for a in getattr(m, "axes", ()))
            lines.append(f"    {m.name} = _lift_axes({m.name}, {own!r}, {k})")
    for s in scalars:
        lines.append(f"    _{s}_in = {s}")
        batch_shapes = "_batch" if k else f"({''.join(f'{m.name}.shape[:-2], ' for m in mats)})"
        positive = ", positive=True" if s.is_positive else ""
        lines.append(f"    {s} = _as_scalar({s}, _dt, _dev, {str(s)!r}{positive}, batch={batch_shapes})")
        if k:
            lines.append(f"    {s} = _lift_axes({s}, (), {k})")
    lines += [f"    {line}" for line in body]
    results = []
    batch = ", ".join(m.name for m in mats)
    for i, o in enumerate(outputs):
        r = f"_r{i}"
        if k:
            keep = tuple(axes.index(a) for a in _output_axes(o, axes))
            r = f"_lower_axes({r}, {keep!r}, {k})"
        if o.kind == "scalar":
            res = f"_scalar_out({r}, _dt, _dev)[..., 0, 0]"
        elif o.kind == "grad" and isinstance(o.wrt, MatrixSymbol) and k:
            j = mats.index(o.wrt)
            res = f"_reduce_to_axes({r}, _in[{j}], _batch, {2 + len(getattr(o.wrt, 'axes', ()))})"
        elif o.kind == "grad" and isinstance(o.wrt, MatrixSymbol):
            res = f"_reduce_to({r}, {o.wrt.name}, ({batch},))"
        elif o.kind == "grad" and k:
            res = f"_reduce_scalar({r}, _{o.wrt}_in, _batch, shapes=True)"
        elif o.kind == "grad":
            res = f"_reduce_scalar({r}, _{o.wrt}_in, ({batch},))"
        else:
            res = r
        results.append(res)
    lines.append(f"    return {', '.join(results)}")
    return "\n".join(lines) + "\n"


def _output_axes(o: Output, axes: Sequence[Axis]) -> tuple[Axis, ...]:
    """The axes an output keeps, in the order of its tensor: a gradient's (or a matrix output's
    ``wrt``'s) declared order, else the canonical order of the axes the expression ranges over."""
    if o.kind == "scalar":
        return ()
    if isinstance(o.wrt, MatrixSymbol):
        return tuple(getattr(o.wrt, "axes", ()))
    free = axes_of(o.expr)
    return tuple(a for a in axes if a in free)


def _check_output_axes(name: str, outputs: Sequence[Output], axes: Sequence[Axis]) -> None:
    for o in outputs:
        free = axes_of(o.expr)
        extra = free - set(_output_axes(o, axes)) if o.kind != "matrix" or o.wrt is not None else set()
        if extra:
            raise ShapeMismatchError(
                f"{name}: the {o.kind} output ranges over axis/axes {sorted(a.name for a in extra)}, which "
                "it cannot return; sum it with uf.sum_over"
            )


def _scalar_out(r: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(r, dtype=dtype, device=device)
    while t.dim() < 2:
        t = t[None]
    return t


#: the runtime helpers the printer itself prints; primitives' kernels are added from their records
_NAMESPACE: dict[str, Any] = {
    "torch": torch,
    "math": math,
    "_bind_dims": runtime.bind_dims,
    "_lift_axes": runtime.lift_axes,
    "_lower_axes": runtime.lower_axes,
    "_reduce_to_axes": runtime.reduce_to_axes,
    "_as_scalar": runtime.as_scalar,
    "_reduce_to": runtime.reduce_to,
    "_reduce_scalar": runtime.reduce_scalar,
    "_colsum": runtime.colsum,
    "_rhs": runtime.as_rhs,
    "_rowsum": runtime.rowsum,
    "_repeat_rows": runtime.repeat_rows,
    "_mm": runtime.mm,
    "_attention": runtime.attention,
    "_axis_mm": runtime.axis_mm,
    "_smm": runtime.smm,
    "_ln_rows": runtime.ln_rows,
    "_scalar_out": _scalar_out,
}


def _globals_read(code: types.CodeType) -> set[str]:
    """The global names ``code`` (and the functions and comprehensions nested in it) loads."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _globals_read(c)
    return names


def compile_source(name: str, source: str) -> Callable[..., Any]:
    """Turn generated source into a function (the source comes from the printer, never a user)."""
    filename = f"<unfold:{name}:{hashlib.sha1(source.encode()).hexdigest()[:10]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {**_NAMESPACE, **kernels.declared()}  # + the kernels the registered primitives name
    code = compile(source, filename, "exec")
    unbound = _globals_read(code) - namespace.keys() - set(vars(builtins))
    if unbound:  # a name no prologue line binds: fail here, not with a NameError at the first call
        raise UnsupportedNodeError(f"{name}: the generated code reads {sorted(unbound)}, which it never binds")
    exec(code, namespace)  # safe: source printed by TorchCodePrinter from a validated tree
    fn = namespace[name]
    fn.__unfold_source__ = source
    return fn


@dataclass
class GeneratedFunction:
    """A generated torch function with its source and symbolic inputs/outputs."""

    name: str
    inputs: tuple[Basic, ...]
    outputs: tuple[Output, ...]
    source: str
    fn: Callable[..., Any]

    def __post_init__(self) -> None:
        #: the input names in call order (sympy's ``str`` costs tens of microseconds: computed once)
        self.input_names: tuple[str, ...] = tuple(str(a) for a in self.inputs)

    def __call__(self, *args: Any) -> Any:
        try:
            return self.fn(*args)
        except torch.linalg.LinAlgError as exc:  # a singular matrix at these inputs: the user's data
            raise InputError(
                f"{self.name}: {exc} A matrix this expression inverts (inv, solve) or factorises must be "
                "non-singular at these inputs; add a multiple of the identity or check the inputs"
            ) from None

    def torch_source(self) -> str:
        return self.source


def generate(name: str, inputs: Sequence[Basic], outputs: Sequence[Output],
             rewrite: bool = True) -> GeneratedFunction:
    """Generate, compile and wrap a function (``rewrite``: see :func:`generate_source`)."""
    src = generate_source(name, inputs, outputs, rewrite)
    return GeneratedFunction(name, tuple(inputs), tuple(outputs), src, compile_source(name, src))
