"""A batched PyTorch printer for unfold expressions.

Conventions of the generated code: every matrix is a tensor of shape ``(..., rows, cols)``; every
matrix-derived scalar (trace, det, log det, sums, scalar parameters) is kept as ``(..., 1, 1)`` so
that ``scalar * matrix`` broadcasts; dimensions are Python ints bound from input shapes; dtype and
device come from the inputs (``_dt``, ``_dev``).  ``Inverse(A) @ B`` prints as
``torch.linalg.solve(A, B)``.  Sub-trees that occur more than once are hoisted into temporaries
(``_t0``, ``_t1``, ...) and shared between all outputs printed by one printer.  Statements are
emitted into the printer's :class:`~.graph.Graph` (each with the values it reads, tracked while its
code is printed); whether a code is a plain name or a transposed view is asked of the graph.

The fusions are decided before printing (:func:`.fuse.fuse` replaces matches by fused nodes); the
printer has one plain lowering rule per fused node (:class:`~.fuse.FusedAttention` →
``_attention``, :class:`~.fuse.AffineLayerNorm` → ``_ln_rows``).

The printer knows exactly the nodes listed below and raises :class:`UnsupportedNodeError` for any
other; it never falls back to sympy's string form.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Sequence

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

from ..errors import UnsupportedNodeError
from ..symbolic.nodes import U
from ..symbolic.axes import Axis, AxisSum, MatAxisSum, axes_of
from ..symbolic.masks import Causal
from ..symbolic.symbols import Dim
from ..symbolic.primitives.registry import ADD, ATOM, MUL, POW, Code, primitive_of, primitives, scalar_function_of
from ..symbolic.tidy import distinct_subtrees, doit, transpose
from .fuse import AffineLayerNorm, FusedAttention
from .graph import Graph

__all__ = ["TorchCodePrinter"]



def _matrix_derived(e: Basic) -> bool:
    """A matrix, or a scalar computed from one (a trace or a registered node: det, log det, sums)."""
    return isinstance(e, (MatrixExpr, Trace)) or primitive_of(e) is not None


def _is_dim_only(e: Basic) -> bool:
    """True for expressions of numbers and dimensions only (printed as Python scalars)."""
    return all(isinstance(s, Dim) for s in e.free_symbols) and not any(
        _matrix_derived(a) for a in sp.preorder_traversal(e))


def _shape(e: Basic) -> tuple[Basic, Basic] | None:
    """The symbolic ``(rows, cols)`` of a matrix expression (None for a scalar)."""
    return (e.rows, e.cols) if isinstance(e, MatrixExpr) else None


def _batched(f: Basic) -> bool:
    """True when the factor involves a state (batched at run time; parameters usually are not)."""
    return any(getattr(a, "role", "") == "state" for a in distinct_subtrees(f) if isinstance(a, MatrixSymbol))


def _negated(t: Basic) -> Basic | None:
    """``-t`` when ``t`` reads as a negative term (sympy's ``could_extract_minus_sign``), else None.

    A product's sign is its leading number, and its negation goes through the cached ``doit``:
    sympy's ``-t`` and its ``could_extract_minus_sign`` (which builds ``-t``) re-canonicalise
    ``t`` in full, walking it as a tree."""
    if isinstance(t, MatMul):
        c = t.args[0]
        return doit(MatMul(sp.S.NegativeOne, t)) if c.is_Number and c.is_extended_negative else None
    return -t if t.could_extract_minus_sign() else None


def _low_rank_run(run: tuple[Basic, ...]) -> bool:
    """True for a parameter-only run of factors that contracts over a dim equal to neither outer dim
    (``W_Kᵀ W_Q``: ``d × p · p × d``): its product may be a full ``d × d`` matrix of rank ``p``, so
    it is never formed as a shared temporary; ``_mm`` orders each chain by its runtime sizes."""
    if any(_batched(f) for f in run):
        return False
    outer = {run[0].rows, run[-1].cols}
    return any(f.cols not in outer for f in run[:-1])


def registered_lowerings() -> list[tuple[type, Callable[["TorchCodePrinter", Basic], Code]]]:
    """The torch lowering of every node of :mod:`unfold.symbolic.primitives`, as printer rules."""
    return [(node, p.lower) for node, p in primitives().items()]


class TorchCodePrinter:
    """Prints unfold expressions as batched torch code, collecting hoisted temporaries."""

    def __init__(self, roots: Iterable[Basic] = (), axes: Sequence[Axis] = ()) -> None:
        #: named axes of the generated code, in the order of the tensor dims before (rows, cols)
        self.axes: tuple[Axis, ...] = tuple(axes)
        #: the statements printed so far
        self.graph = Graph()
        self._memo: dict[Basic, Code] = {}
        self._memo_reads: dict[Basic, frozenset[str]] = {}
        self._frames: list[set[str]] = [set()]  # values read by the code being printed, innermost last
        self._counts: Counter[Basic] = Counter()
        self._env: dict[Basic, str] = {}
        self._runcount: Counter[tuple[Basic, ...]] = Counter()  # runs of ≥ 2 factors in products
        self._runmemo: dict[tuple[Basic, ...], str] = {}           # run -> temporary holding it
        self._low_rank: set[tuple[Basic, ...]] = set()  # runs not shared unless computed anyway
        self._whole: set[tuple[Basic, ...]] = set()     # the factors of every product node
        self._making: set[tuple[Basic, ...]] = set()    # runs being printed by _run_code
        self._dim_kind: dict[Basic, str] = {}
        for r in roots:
            self._count(r)

    # ---- common sub-expression bookkeeping -------------------------------------------------------
    def _count(self, e: Basic) -> None:
        stack = [e]
        while stack:
            x = stack.pop()
            if isinstance(x, sp.Lambda) or not x.args or isinstance(x, MatrixSymbol):
                continue
            self._counts[x] += 1
            if self._counts[x] == 1:
                stack.extend(x.args)
                if isinstance(x, MatMul):
                    mats = tuple(a for a in x.args if isinstance(a, MatrixExpr))
                    if len(mats) >= 2 and len(mats) == len(x.args):
                        self._whole.add(mats)
                    seen: set[tuple[Basic, ...]] = set()  # a run and its transpose count once per product
                    for i in range(len(mats)):
                        for j in range(i + 2, len(mats) + 1):
                            run = mats[i:j]
                            if _low_rank_run(run):
                                self._low_rank.add(run)
                            if run not in seen and self._twin_run(run) not in seen:
                                seen.add(run)
                                self._runcount[run] += 1

    def _twin_run(self, run: tuple[Basic, ...]) -> tuple[Basic, ...]:
        """The factors of ``(F₁ ⋯ Fₖ)ᵀ = Fₖᵀ ⋯ F₁ᵀ``."""
        return tuple(transpose(f) for f in reversed(run))

    def _run_uses(self, run: tuple[Basic, ...]) -> int:
        """How many products contain the run of factors ``run`` (its transpose included).  A
        possibly low-rank run (:func:`_low_rank_run`) counts only when it, or its transpose, is also a
        whole product node of the tree: that product is computed anyway, so reusing it costs nothing
        (``Y Wsᵀ`` in ``(Y Wsᵀ)∘(Y Wsᵀ)`` and in the chain ``Y Wsᵀ Ws Yᵀ``)."""
        tw = self._twin_run(run)
        if (run in self._low_rank or tw in self._low_rank) and run not in self._whole and tw not in self._whole:
            return 0
        return self._runcount.get(run, 0) + (self._runcount.get(tw, 0) if tw != run else 0)

    def _negation(self, t: Basic) -> Basic | None:
        """``-t`` for a negative term ``t`` (printed after a minus sign), else None.  ``-t`` is a new
        node the counts never saw: it inherits ``t``'s count, so a shared negative term (``−½ v 1ᵀ``
        next to its transpose ``−½ 1 vᵀ``) is computed once, not once per occurrence."""
        minus_t = _negated(t)
        if minus_t is not None:
            k = self._shared(t)
            if k > self._counts.get(minus_t, 0):
                self._counts[minus_t] = k
        return minus_t

    def _shared(self, e: Basic) -> int:
        """How often ``e`` occurs, its transpose included."""
        n = self._counts.get(e, 0)
        if isinstance(e, MatMul):
            t = transpose(e)
            if t != e:  # a symmetric product is its own transpose: count it once
                n += self._counts.get(t, 0)
        return n

    def _read(self, names: Iterable[str]) -> None:
        """Record that the code being printed reads the values ``names``."""
        self._frames[-1].update(names)

    def _printing(self) -> set[str]:
        """Open a frame collecting the values read by the code printed until :meth:`_done`."""
        frame: set[str] = set()
        self._frames.append(frame)
        return frame

    def _done(self) -> set[str]:
        return self._frames.pop()

    def _temp(self, code: str, reads: Iterable[str], shape: tuple[Basic, Basic] | None) -> str:
        """A temporary holding ``code`` (which reads ``reads``), read by the enclosing code."""
        name = self.graph.value(code, reads, shape)
        self._read((name,))
        return name

    def _leaf(self, name: str) -> str:
        """``name``, a leaf of the graph (an input, a dim, ``_dt``/``_dev``) read by the enclosing
        code: the prologue binds only the leaves the live statements read."""
        self._read((self.graph.leaf(name),))
        return name

    def dtype(self) -> str:
        """``_dt``, the inputs' dtype, for code that makes a tensor (read as a leaf)."""
        return self._leaf("_dt")

    def like_inputs(self) -> str:
        """``dtype=_dt, device=_dev``: keyword arguments making a new tensor match the inputs."""
        return f"dtype={self.dtype()}, device={self._leaf('_dev')}"

    def transposed(self, code: str) -> str:
        """``code.mT`` (``code`` a primary), known to the graph as a transposed view; ``x`` when
        ``code`` is itself the view ``x.mT``."""
        base = self.graph.untranspose(code)
        return base if base is not None else self.graph.transposed(code)

    def hoist(self, e: Basic) -> str:
        """Print ``e`` into a named temporary (or return its name if it is already simple)."""
        self._printing()
        code, prec = self.print(e)
        reads = self._done()
        if self.graph.is_name(code):
            self._read(reads)
            return code
        name = self._temp(code, reads, _shape(e))
        self._memo[e] = (name, ATOM)
        self._memo_reads[e] = frozenset((name,))
        return name

    # ---- entry point -----------------------------------------------------------------------------
    def print(self, e: Basic) -> Code:
        if e in self._memo:
            self._read(self._memo_reads[e])
            return self._memo[e]
        if isinstance(e, MatMul) and not self._env:
            t = transpose(e)
            if t != e and t in self._memo and self._memo[t][1] == ATOM:  # eᵀ already computed
                out = (self.transposed(self._memo[t][0]), ATOM)
                self._memo[e], self._memo_reads[e] = out, self._memo_reads[t]
                self._read(self._memo_reads[t])
                return out
        self._printing()
        out = self._dispatch(e)
        reads = self._done()
        if self._env:
            self._read(reads)
            return out  # inside an elementwise body: `u` is bound, nothing may be shared
        if self._shared(e) > 1 and not self.graph.is_view_of_name(out[0]):
            out = (self.graph.value(out[0], reads, _shape(e)), ATOM)
            reads = {out[0]}
        self._memo[e], self._memo_reads[e] = out, frozenset(reads)
        self._read(reads)
        return out

    def code(self, e: Basic) -> str:
        return self.print(e)[0]

    def assign(self, target: str, e: Basic) -> None:
        """Append ``target = e``.  A sum of three or more terms is accumulated term by term, the
        terms ordered so that those sharing a temporary follow each other: each temporary is then
        computed just before its uses (``P₁`` feeds both of its products while still in cache,
        before ``P₂`` is computed) instead of all of them ahead of one long expression."""
        if not (isinstance(e, MatAdd) and len(e.args) > 2) or self._env:
            self._printing()
            code = self.code(e)
            self.graph.output(target, code, self._done())
            return
        for i, t in enumerate(self._grouped_terms(list(e.args))):
            minus_t = self._negation(t)
            neg = minus_t is not None
            self._printing()
            c = self._p(minus_t, MUL) if neg else self._p(t, ADD)
            reads = self._done()
            if i == 0:
                self.graph.output(target, f"{'-' + c if neg else c}", reads)
            else:
                self.graph.output(target, f"{target} {'-' if neg else '+'} {c}", reads)

    def _grouped_terms(self, terms: list[Basic]) -> list[Basic]:
        """Greedy order: after each term, the remaining one sharing most shared sub-trees with it."""
        deps = [{x for x in distinct_subtrees(t) if self._shared(x) > 1 and x.args} for t in terms]
        order, left = [0], list(range(1, len(terms)))
        while left:
            prev = deps[order[-1]]
            nxt = max(left, key=lambda j: (len(deps[j] & prev), -j))
            order.append(nxt)
            left.remove(nxt)
        return [terms[j] for j in order]

    def _dims_only(self, e: Basic) -> str:
        """``"dims"`` for a scalar of numbers and dimensions with at least one dimension (printed
        as a Python scalar), ``"none"`` for one without free symbols, else ``"other"``; memoised
        per node (``free_symbols`` walks the tree)."""
        hit = self._dim_kind.get(e)
        if hit is not None:
            return hit
        if _matrix_derived(e):
            kind = "other"
        elif isinstance(e, Dim):
            kind = "dims"
        elif isinstance(e, sp.Symbol):
            kind = "other"
        elif not e.args:
            kind = "none"
        elif isinstance(e, (sp.Lambda, sp.Derivative, sp.Subs)):  # bind variables of their own
            kind = "dims" if e.free_symbols and _is_dim_only(e) else ("none" if not e.free_symbols else "other")
        else:
            kinds = {self._dims_only(a) if isinstance(a, Basic) else "none" for a in e.args}
            kind = "other" if "other" in kinds else ("dims" if "dims" in kinds else "none")
        self._dim_kind[e] = kind
        return kind

    def _p(self, e: Basic, prec: int) -> str:
        """Code of ``e`` parenthesised when its precedence is below ``prec``."""
        c, p = self.print(e)
        return c if p >= prec else f"({c})"

    # ---- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, e: Basic) -> Code:
        if e in self._env:
            return self._env[e], ATOM
        if isinstance(e, sp.Number) or isinstance(e, sp.NumberSymbol):
            # integers beyond float64's exact range print as floats (torch has no int above 2⁶³)
            v = int(e) if e.is_Integer and abs(int(e)) <= 2 ** 53 else float(e)
            s = repr(v)
            return (s, ATOM) if v >= 0 else (s, ADD)
        if isinstance(e, (MatrixSymbol, sp.Symbol)):
            if isinstance(e, sp.Dummy) or e == U:
                raise UnsupportedNodeError(f"unbound variable {e} in generated code")
            return self._leaf(str(e.name)), ATOM
        if not isinstance(e, MatrixExpr) and self._dims_only(e) == "dims":
            for d in sorted(str(s) for s in e.free_symbols if isinstance(s, Dim)):
                self._leaf(d)
            return f"({sp.pycode(e, fully_qualified_modules=True)})", ATOM
        for cls, fn in self._RULES:
            if isinstance(e, cls):
                return fn(self, e)
        raise UnsupportedNodeError(f"no torch printing rule for {type(e).__name__} ({e})")

    # matrices
    def _matmul(self, e: MatMul) -> Code:
        scalars = [a for a in e.args if not isinstance(a, MatrixExpr)]
        mats = [a for a in e.args if isinstance(a, MatrixExpr)]
        coeff = sp.Mul(*scalars)
        plain = len(mats) >= 2 and not any(isinstance(m, (Inverse, OneMatrix)) for m in (mats[0], mats[-1]))
        if scalars and coeff != -1 and plain and tuple(mats) not in self._runmemo:
            codes = self._chain_codes(mats)
            if len(codes) >= 2:  # the coefficient goes on the smallest factor (or the result) at run time
                return f"_smm({self.code(coeff)}, {', '.join(c for c, _ in codes)})", ATOM
        if scalars and coeff != -1 and len(mats) >= 2 and self._ones_branch(mats):
            # c·(X 1) or c·(1 X): the coefficient scales the row/column sums before they are broadcast
            return self._chain(mats, scale=self.code(coeff))
        code = self._chain(mats)
        if not scalars:
            return code
        if coeff == -1:
            return f"-{code[0] if code[1] >= MUL else '(' + code[0] + ')'}", MUL
        c = self._p(coeff, MUL + 1) if not (isinstance(coeff, sp.Mul) and coeff.could_extract_minus_sign()) \
            else f"({self.code(coeff)})"
        return f"{c} * {code[0] if code[1] > MUL else '(' + code[0] + ')'}", MUL

    def _fused_attention(self, e: FusedAttention) -> Code:
        """``_attention(c, (F₁, …, Fⱼ), V, mask)``: ``softmax_rows(c (F₁⋯Fⱼ)ᵀ; mask) V`` by
        ``F.scaled_dot_product_attention`` (:func:`runtime.attention` splits the keys × queries
        product where the inner dim is smallest)."""
        fs = ", ".join(c for c, _ in self._chain_codes(e.score_factors))  # runs shared with the rest
        v = self._chain(e.value_factors)[0]
        m = e.mask
        c = self.code(e.scale)
        mc = "None" if m is None else '"causal"' if isinstance(m, Causal) else self.code(m)
        return f"_attention({c}, ({fs},), {v}, {mc})", ATOM

    @staticmethod
    def _ones_branch(mats: list[MatrixExpr]) -> bool:
        """True when :meth:`_chain` prints ``mats`` as a broadcast row/column sum (an all-ones end)."""
        first, last = mats[0], mats[-1]
        if isinstance(first, OneMatrix):
            return first.cols != 1 or first.rows != 1
        return (not isinstance(first, Inverse) and not isinstance(last, Inverse)
                and isinstance(last, OneMatrix) and last.rows != 1)

    def _chain(self, mats: list[MatrixExpr], scale: str | None = None) -> Code:
        """A product of matrices: solves for inverses (divisions for diagonal ones), sums and
        broadcasts for all-ones factors, and three or more plain factors multiplied in the cheapest
        order for the runtime shapes (``_mm``; the dims are symbolic when the code is printed)."""
        if len(mats) == 1:
            return self.print(mats[0])
        run = tuple(mats)
        if scale is None and (run in self._runmemo or self._twin_run(run) in self._runmemo):
            return self._run_code(run)  # (a scaled broadcast sum is printed with its own scale)
        if scale is None and not self._making & {run, self._twin_run(run)} and self._run_uses(run) >= 2:
            return self._run_code(run)  # a run of another product too: one temporary, whichever comes first
        first, rest, last = mats[0], mats[1:], mats[-1]
        if isinstance(first, Inverse):
            rhs = self._chain(rest)
            diag = self._diagonal(first.arg)
            if diag is not None:  # diag(v)⁻¹ B = B / v (row-wise)
                return f"{self._wrap(rhs, MUL + 1)} / {diag}[..., :, None]", MUL
            a = self.hoist(first.arg)
            return f"torch.linalg.solve({a}, _rhs({rhs[0]}, {a}))", ATOM
        if isinstance(first, OneMatrix) and first.cols != 1:
            rhs = self._chain(rest)
            r = "" if first.rows == 1 else f", {self.code(first.rows)}"
            k = "" if scale is None else f", scale={scale}"
            return f"_colsum({rhs[0]}{r}{k})", ATOM
        if isinstance(first, OneMatrix) and first.rows != 1:  # 1 (r×1) times a row: repeat the row
            rhs = self._chain(rest)
            k = "" if scale is None else f", scale={scale}"
            return f"_repeat_rows({rhs[0]}, {self.code(first.rows)}{k})", ATOM
        if isinstance(last, Inverse):
            lhs = self._chain(mats[:-1])
            diag = self._diagonal(last.arg)
            if diag is not None:  # A diag(v)⁻¹ = A / v (column-wise)
                return f"{self._wrap(lhs, MUL + 1)} / {diag}[..., None, :]", MUL
            a = self.hoist(last.arg)
            return self.transposed(f"torch.linalg.solve({a}.mT, _rhs({self._wrap(lhs, ATOM)}.mT, {a}))"), ATOM
        if isinstance(last, OneMatrix) and last.rows != 1:  # A 1 (k×c): row sums, repeated c times
            lhs = self._chain(mats[:-1])
            c = "" if last.cols == 1 else f", {self.code(last.cols)}"
            k = "" if scale is None else f", scale={scale}"
            return f"_rowsum({lhs[0]}{c}{k})", ATOM
        codes = self._chain_codes(mats)
        if len(codes) > 2:
            return f"_mm({', '.join(c for c, _ in codes)})", ATOM
        if len(codes) == 1:
            return codes[0]
        if self.axes:  # per-head weights against shared tokens: one folded matrix multiply
            return f"_mm({codes[0][0]}, {codes[1][0]})", ATOM
        return " @ ".join(self._wrap(c, MUL + 1) for c in codes), MUL

    def _chain_codes(self, mats: list[MatrixExpr], proper: bool = True) -> list[Code]:
        """Codes of the factors of a product; the shortest run of factors that occurs in more than one
        product of the tree (its transpose included) is printed once into a temporary and shared:
        ``g Wᵀ Q gᵀ`` next to ``S g Wᵀ`` computes ``g Wᵀ`` once.  Shortest first, so the remaining
        factors still go through ``_mm``'s run-time choice of the cheapest order.  ``proper``: the
        whole list is not itself a candidate (it is the product being printed)."""
        k = len(mats)
        for length in range(2, (k - 1 if proper else k) + 1):
            for i in range(0, k - length + 1):
                run = tuple(mats[i:i + length])
                if self._run_uses(run) < 2 and run not in self._runmemo:
                    continue
                return (self._chain_codes(list(mats[:i]), False) + [self._run_code(run)]
                        + self._chain_codes(list(mats[i + length:]), False))
        return [self.print(m) for m in mats]

    def _run_code(self, run: tuple[Basic, ...]) -> Code:
        """A temporary holding the product of ``run`` (or ``.mT`` of the one holding its transpose)."""
        if run in self._runmemo:
            self._read((self._runmemo[run],))
            return self._runmemo[run], ATOM
        tw = self._twin_run(run)
        if tw in self._runmemo:
            self._read((self._runmemo[tw],))
            return self.transposed(self._runmemo[tw]), ATOM
        if not _batched(run[0]) and _batched(tw[0]):
            # compute (F₁⋯Fₖ)ᵀ = Fₖᵀ⋯F₁ᵀ and transpose the view: a product whose left factor is
            # batched folds the batch into one matrix multiply (g Wᵀ), an unbatched left factor
            # is broadcast into a batched one (W gᵀ)
            return self.transposed(self._run_code(tw)[0]), ATOM
        self._printing()
        self._making.add(run)
        try:
            code = self._chain(list(run))
        finally:
            self._making.discard(run)
        reads = self._done()
        if self.graph.is_name(code[0]):
            name = code[0]
            self._read(reads)
        else:
            name = self._temp(code[0], reads, (run[0].rows, run[-1].cols))
        self._runmemo[run] = name
        return name, ATOM

    def _diagonal(self, e: Basic) -> str | None:
        """Code of the diagonal ``(..., k)`` when ``e`` is ``I ∘ X`` (a diagonal matrix), else None."""
        if not isinstance(e, HadamardProduct) or not any(isinstance(a, Identity) for a in e.args):
            return None
        others = [a for a in e.args if not isinstance(a, Identity)] or [e.args[0]]  # I ∘ I = I
        x = self.hoist(others[0] if len(others) == 1 else HadamardProduct(*others))
        return f"torch.diagonal({x}, dim1=-2, dim2=-1)"

    @staticmethod
    def _wrap(code: Code, prec: int) -> str:
        return code[0] if code[1] >= prec else f"({code[0]})"

    def _affine_ln(self, e: AffineLayerNorm) -> Code:
        """``γ LN_row(x) + 1 bᵀ`` as one ``F.layer_norm`` with weight and bias (``_ln_rows``)."""
        x = self.hoist(e.x)
        gain = self.code(e.gain) if e.gain != 1 else "None"
        return f"_ln_rows({x}, {float(e.eps)!r}, {gain}, {self.code(e.bias)})", ATOM

    def _add(self, e: Basic) -> Code:
        terms = list(e.args)
        signed = [(t, self._negation(t)) for t in terms]
        out = ""
        for t, minus_t in signed:
            if minus_t is None:
                c = self._p(t, ADD)
                out = c if not out else f"{out} + {c}"
        for _t, minus_t in signed:
            if minus_t is not None:
                c = self._p(minus_t, MUL)
                out = f"-{c}" if not out else f"{out} - {c}"
        return out, ADD

    def _transpose(self, e: Transpose) -> Code:
        c = self._p(e.arg, ATOM)
        base = self.graph.untranspose(c)
        if base is not None:
            return base, ATOM  # (xᵀ)ᵀ = x
        return self.transposed(c), ATOM  # atom-precedence code is a primary: `.mT` transposes all of it

    def _inverse(self, e: Inverse) -> Code:
        return f"torch.linalg.inv({self.code(e.arg)})", ATOM

    def _matpow(self, e: MatPow) -> Code:
        return f"torch.linalg.matrix_power({self.code(e.base)}, {int(e.exp)})", ATOM

    def _identity(self, e: Identity) -> Code:
        return f"torch.eye({self.code(e.rows)}, {self.like_inputs()})", ATOM

    def _ones(self, e: OneMatrix) -> Code:
        return f"torch.ones({self.code(e.rows)}, {self.code(e.cols)}, {self.like_inputs()})", ATOM

    def _zeros(self, e: ZeroMatrix) -> Code:
        return f"torch.zeros({self.code(e.rows)}, {self.code(e.cols)}, {self.like_inputs()})", ATOM

    def _hadamard(self, e: HadamardProduct) -> Code:
        diag = self._diagonal(e)
        if diag is not None:  # I ∘ X = diag(diag X): no dense identity
            return f"torch.diag_embed({diag})", ATOM
        return " * ".join(self._p(a, MUL + 1) for a in e.args), MUL

    def _hpow(self, e: HadamardPower) -> Code:
        base, p = e.args
        return self._pow_code(self._p(base, ATOM), p)

    def _pow_code(self, base: str, p: Basic) -> Code:
        if p == sp.S.Half:
            return f"torch.sqrt({base})", ATOM
        if p == -sp.S.Half:
            return f"torch.rsqrt({base})", ATOM
        if p == -1:
            return f"1 / {base}", MUL
        if p == 2:
            return f"torch.square({base})", ATOM
        return f"{base} ** {self._p(p, ATOM)}", POW

    def _elementwise(self, e: ElementwiseApplyFunction) -> Code:
        lam, M = e.function, e.expr
        arg = self.hoist(M)
        body = lam.expr.subs(lam.variables[0], U) if lam.variables[0] != U else lam.expr
        saved = self._env
        self._env = {**saved, U: arg}
        try:
            return self._dispatch(body)
        finally:
            self._env = saved

    # scalar-valued matrix functions: kept as (..., 1, 1)
    def _trace(self, e: Trace) -> Code:
        return f"torch.diagonal({self.code(e.arg)}, dim1=-2, dim2=-1).sum(-1)[..., None, None]", ATOM

    # named axes
    def _axis_sum(self, e: Basic) -> Code:
        """``Σ_h body``: a sum over the tensor dim of ``h`` (kept, size 1), or ``size · body`` when the
        body does not range over ``h`` (a cotangent summed for an argument used once per head)."""
        ax = e.args[1]
        if ax not in self.axes:
            raise UnsupportedNodeError(f"axis {ax} of {e} is not an axis of any input")
        body = e.args[0]
        if ax not in axes_of(body):
            return f"{self._p(ax.size, MUL + 1)} * {self._p(body, MUL + 1)}", MUL
        dim = -(2 + len(self.axes) - self.axes.index(ax))
        if isinstance(body, MatMul) and not self._env:
            coeff, mats = body.as_coeff_matrices()
            if len(mats) >= 2 and not any(isinstance(m, (Inverse, OneMatrix)) for m in mats):
                # Σ_h F₁⋯Fₖ: the last product contracts over h too (one matmul of width H·p, no
                # (…, H, rows, cols) intermediate)
                codes = self._chain_codes(list(mats), proper=False)
                if len(codes) >= 2:
                    code = f"_axis_mm({dim}, {', '.join(c for c, _ in codes)})"
                else:
                    code = f"{self._wrap(codes[0], ATOM)}.sum(dim={dim}, keepdim=True)"
                if coeff == 1:
                    return code, ATOM
                if coeff == -1:
                    return f"-{code}", MUL
                return f"{self._p(coeff, MUL + 1)} * {code}", MUL
        return f"{self._p(body, ATOM)}.sum(dim={dim}, keepdim=True)", ATOM

    # scalars
    def _mul(self, e: sp.Mul) -> Code:
        if e.could_extract_minus_sign():
            return f"-{self._p(-e, POW)}", MUL
        num, den = [], []
        for a in e.args:
            if isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0:
                den.append(a.base ** (-a.exp))
            elif isinstance(a, sp.Rational) and not a.is_Integer:
                num.append(sp.Integer(a.p))
                den.append(sp.Integer(a.q))
            else:
                num.append(a)
        num = [a for a in num if a != 1]
        top = " * ".join(self._p(a, MUL + 1) for a in num) or "1"
        if not den:
            return top, MUL
        bottom = " * ".join(self._p(a, MUL + 1) for a in den)
        return f"{top} / {bottom if len(den) == 1 else '(' + bottom + ')'}", MUL

    def _pow(self, e: sp.Pow) -> Code:
        if e.is_number and e.is_extended_real:  # e.g. sqrt(2): a Python float, not torch.sqrt(2)
            v = float(e)
            return (repr(v), ATOM) if v >= 0 else (repr(v), ADD)
        return self._pow_code(self._p(e.base, ATOM), e.exp)

    def _function(self, e: Basic) -> Code:
        """A registered scalar function (:mod:`unfold.symbolic.primitives`), by its own lowering."""
        f = scalar_function_of(type(e))
        if f is not None and f.lower is not None:
            return f.lower(self, e)
        raise UnsupportedNodeError(f"no torch printing rule for the function {e.func} in {e}")

    def _tensor(self, e: Basic) -> str:
        """Code that is a tensor (numbers are wrapped so torch functions accept them)."""
        c = self.code(e)
        if e.is_number or (not isinstance(e, MatrixExpr) and _is_dim_only(e)):
            return f"torch.as_tensor({c}, {self.like_inputs()})"
        return c

    _RULES: list[tuple[type, Callable[["TorchCodePrinter", Basic], Code]]] = [
        (FusedAttention, _fused_attention), (AffineLayerNorm, _affine_ln),
        (MatMul, _matmul), (MatAdd, _add), (Transpose, _transpose), (Inverse, _inverse),
        (MatPow, _matpow), (Identity, _identity), (OneMatrix, _ones), (ZeroMatrix, _zeros),
        (HadamardProduct, _hadamard), (HadamardPower, _hpow), (ElementwiseApplyFunction, _elementwise),
        (Trace, _trace), *registered_lowerings(), (AxisSum, _axis_sum), (MatAxisSum, _axis_sum),
        (sp.Add, _add), (sp.Mul, _mul), (sp.Pow, _pow),
        (sp.Function, _function), (sp.Max, _function), (sp.Min, _function),
    ]
