"""The two-leg gradient check.

Leg 1: ``torch.func.grad`` of the generated energy against the generated gradient, float64, on
random batched inputs, for every variable.

Leg 2: the energy expanded at explicit small sizes (every dim ≤ 3) into scalar sympy
(:mod:`unfold.symbolic.explicit`: every entry of every input a real symbol, every node from its
textbook definition), differentiated with respect to every entry of every variable by scalar
calculus, and evaluated in 30-digit arithmetic, against the generated energy *and* gradient: this
catches printer bugs that would corrupt energy and gradient alike.  The derivative is the chain
rule over the expansion's expression DAG, with each operation's local partial derivatives from
plain scalar ``sp.diff`` (:func:`_value_and_gradient`): the value of ``sp.diff(E, x)`` at the point,
in one pass for all entries.  It shares nothing with unfold's matrix VJP rules, its canonical
forms or its torch printer.

A variable passes when both legs agree to ``tol`` in the relative error
``max|a − b| / max(max|b|, |E| / max|v|)`` (``b`` the reference, ``E`` the energy and ``v`` the
variable at the point): scale-free, so multiplying the energy by ``1e-12`` changes nothing, and
absolute only below the gradient's natural scale, where a gradient that vanishes identically is
rounding noise on both sides.  Leg 1 runs at two points: the small sizes of leg 2 plus one, and
one larger size (every dim 5 to 7), so an error that appears only at larger sizes is seen.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import mpmath
import numpy as np
import sympy as sp
import torch
from sympy import Basic
from sympy.matrices.expressions import MatrixSymbol
from sympy.matrices.utilities import dotprodsimp

from ..errors import CheckFailedError, GradientCheckError, InputError
from ..sampling import explicit_sizes, random_inputs
from .certificates import certify
from .scaled import relative_error_at
from ..symbolic.axes import Axis
from ..symbolic.explicit import expand_explicit, explicit_env
from ..symbolic.symbols import Dim

__all__ = ["VariableCheck", "GradientCheckResult", "check_gradient"]


@dataclass
class VariableCheck:
    """Errors of both legs for one variable (scaled max-abs errors; ``worst`` locates leg 1's).

    ``leg2_run`` is False when leg 2 was switched off (``check_gradient(explicit=False)``): its
    errors are then reported as 0, ``passed`` covers leg 1 only, and the gradient is not marked
    checked on the compiled energy.
    """

    name: str
    leg1_error: float
    leg2_energy_error: float
    leg2_grad_error: float
    worst: str
    passed: bool
    leg2_run: bool = True


@dataclass
class GradientCheckResult:
    """Result of :func:`check_gradient`."""

    energy: str
    tol: float
    variables: list[VariableCheck] = field(default_factory=list)
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.variables)

    @property
    def max_error(self) -> float:
        return max([max(v.leg1_error, v.leg2_energy_error, v.leg2_grad_error) for v in self.variables] or [0.0])

    def __str__(self) -> str:
        rows = [f"gradient check of {self.energy} (tol {self.tol:.0e}, {self.seconds * 1e3:.0f} ms)"]
        for v in self.variables:
            leg2 = (f"explicit-size energy {v.leg2_energy_error:.1e} gradient {v.leg2_grad_error:.1e}"
                    if v.leg2_run else "explicit-size leg not run")
            rows.append(f"  {'PASS' if v.passed else 'FAIL'} {v.name:>8}: autograd {v.leg1_error:.1e}  {leg2}")
        return "\n".join(rows)


def _sizes_text(sizes: Mapping[Dim, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def _floor(energy_size: float, v: Any) -> float:
    """The gradient scale ``|E| / max|v|`` under which differences are measured absolutely."""
    size = float(torch.as_tensor(v).abs().max()) if torch.as_tensor(v).numel() else 0.0
    return energy_size / size if size > 0 else 0.0


def _leg1(cm: Any, variables: Sequence[Basic], args: tuple[Any, ...]) -> dict[Basic, tuple[float, str]]:
    """Relative error (:func:`relative_error_at`, floor ``|E| / max|v|``) of every variable's
    generated gradient against ``torch.func.grad`` of the generated energy (all variables in one
    forward/backward pass), with the worst entry."""
    energy_size = float(torch.as_tensor(cm.energy_fn(*args)).abs().max())
    a = list(args)
    for v in variables:
        i = cm.inputs.index(v)
        if not isinstance(a[i], torch.Tensor):
            a[i] = torch.tensor(float(a[i]), dtype=torch.float64)
    autos = cm.autograd_grads(variables)(*a) if variables else ()
    out: dict[Basic, tuple[float, str]] = {}
    for v, auto in zip(variables, autos):
        gen = torch.as_tensor(cm.grad_fn(v)(*args))
        err, k = relative_error_at(gen, auto, _floor(energy_size, args[cm.inputs.index(v)]))
        loc = "" if gen.dim() == 0 else str(tuple(int(x) for x in np.unravel_index(k, tuple(gen.shape))))
        worst = (f"{v}{loc}: generated {gen.reshape(-1)[k].item():.6g} vs autograd "
                 f"{auto.reshape(-1)[k].item():.6g}") if gen.numel() else ""
        out[v] = (err, worst)
    return out


_DIGITS = 30  # working precision of the explicit-size reference (mpmath), well beyond float64


def _opaque(x: Basic) -> bool:
    """A node the chain rule does not look inside (e.g. ``Piecewise``): it is evaluated and
    differentiated as a whole by sympy, with respect to the entry symbols it contains."""
    return not (isinstance(x, (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min))
                or (isinstance(x, sp.Function) and all(isinstance(a, sp.Expr) for a in x.args)))


def _topological(root: Basic) -> list[Basic]:
    """Distinct sub-expressions of ``root``, every one after its arguments (iterative DFS)."""
    order: list[Basic] = []
    seen: set[Basic] = set()
    stack: list[tuple[Basic, bool]] = [(root, False)]
    while stack:
        x, done = stack.pop()
        if done:
            order.append(x)
            continue
        if x in seen:
            continue
        seen.add(x)
        stack.append((x, True))
        if x.args and not x.is_Atom and not _opaque(x):
            stack.extend((a, False) for a in x.args if a not in seen)
    return order


def _value(x: Basic, val: Any, point: Mapping[Basic, Any]) -> Any:
    """The value of node ``x`` in ``_DIGITS`` digits, given ``val(a)`` for its arguments; numbers,
    sums, products and powers in mpmath, other functions by sympy on Float arguments."""
    if isinstance(x, sp.Symbol):
        return point[x]
    if isinstance(x, sp.Float):
        return mpmath.mpf(x)
    if isinstance(x, sp.Rational):
        return mpmath.mpf(int(x.p)) / int(x.q)
    if x.is_NumberSymbol:
        return mpmath.mpf(x.evalf(_DIGITS + 5))
    if isinstance(x, sp.Add):
        return mpmath.fsum(val(a) for a in x.args)
    if isinstance(x, sp.Mul):  # δ(a)·g with g = 0 at the point is 0 (g(a)δ(a) = 0): skip the δ
        deltas = [a for a in x.args if isinstance(a, sp.DiracDelta)]
        r = mpmath.fprod(val(a) for a in x.args if not isinstance(a, sp.DiracDelta))
        if deltas and r != 0:
            r = r * mpmath.fprod(val(a) for a in deltas)
        return r
    if isinstance(x, sp.Pow) and x.exp.is_Integer:
        return val(x.base) ** int(x.exp)
    if isinstance(x, sp.Pow):
        return val(x.base) ** val(x.exp)
    if not _opaque(x):
        v = x.func(*[sp.Float(val(a), _DIGITS) for a in x.args]).evalf(_DIGITS)
        return mpmath.mpf(v)
    sub = {s: sp.Float(point[s], _DIGITS) for s in x.free_symbols}  # e.g. Piecewise
    return mpmath.mpf(sp.N(x.xreplace(sub), _DIGITS))


def _valuer(point: Mapping[Basic, Any]) -> tuple[dict[Basic, Any], Callable[[Basic], Any]]:
    """A memoised evaluator at ``point``: ``(memo, val)`` with ``val(x)`` the value of ``x``
    (every distinct sub-expression evaluated once, results kept in ``memo``)."""
    memo: dict[Basic, Any] = {}

    def val(a: Basic) -> Any:
        hit = memo.get(a)
        if hit is None:
            hit = memo[a] = _value(a, val, point)
        return hit

    return memo, val


def _evaluate(exprs: Sequence[Basic], point: Mapping[Basic, Any]) -> list[Any]:
    """Values (mpmath, ``_DIGITS`` digits) of scalar sympy expressions at ``point`` (symbol ->
    mpmath number); every distinct sub-expression is evaluated once."""
    memo, val = _valuer(point)
    for x in exprs:
        for y in _topological(x):
            val(y)
    return [memo[x] for x in exprs]


_PARTIALS: dict[tuple[Any, ...], tuple[tuple[sp.Dummy, ...], list[Basic]]] = {}


def _local_partials(x: Basic) -> tuple[tuple[sp.Dummy, ...], list[Basic]]:
    """``∂f/∂zᵢ`` for the node's operation ``f(z₀, …, z_k)`` (``x = f(args)``), by plain scalar
    ``sp.diff`` on dummy arguments; cached per operation (and per exponent of a power)."""
    numeric_pow = isinstance(x, sp.Pow) and x.exp.is_Number
    key = ("pow", x.exp) if numeric_pow else ("op", x.func, len(x.args))
    hit = _PARTIALS.get(key)
    if hit is None:
        z = tuple(sp.Dummy(f"z{i}", real=True) for i in range(len(x.args)))
        f = sp.Pow(z[0], x.exp) if numeric_pow else x.func(*z)
        parts = [sp.diff(f, zi) for zi in z]  # scalar
        if any(p.has(sp.Derivative, sp.Subs) for p in parts):
            raise GradientCheckError(f"sympy cannot differentiate {x.func} (in {x}); no explicit-size reference")
        hit = _PARTIALS[key] = (z, parts)
    return hit


def _value_and_gradient(
    E: Basic, point: Mapping[Basic, Any], leaves: Sequence[Basic], order: Optional[list[Basic]] = None
) -> list[Any]:
    """``[E, ∂E/∂leaf for leaf in leaves]`` at ``point`` in ``_DIGITS`` digits.

    The derivative is the chain rule of scalar calculus applied to ``E``'s expression DAG in
    reverse (each distinct sub-expression once): the adjoint of a node is the sum over its parents
    of the parent's adjoint times the parent operation's partial derivative, each partial obtained
    by plain scalar ``sp.diff`` of that operation (:func:`_local_partials`) and evaluated at the
    arguments' values.  This equals ``sp.diff(E, leaf)`` evaluated at the point, at the cost of one
    pass instead of one derivative tree per leaf (whose size grows with the nesting depth).  A node
    whose adjoint is exactly 0 passes nothing on, so ``δ(a)·0`` terms (kinks of relu/abs/sign
    multiplied by a vanishing factor) are 0, as the product rule gives.  ``order`` is
    ``_topological(E)`` if the caller has it.
    """
    order = _topological(E) if order is None else order
    memo, val = _valuer(point)

    leafset = set(leaves)
    dep: dict[Basic, bool] = {}
    for x in order:
        val(x)
        if x in leafset:
            dep[x] = True
        elif _opaque(x):
            dep[x] = bool(x.free_symbols & leafset)
        else:
            dep[x] = any(dep[a] for a in x.args)
    adj: dict[Basic, Any] = {E: mpmath.mpf(1)}
    for x in reversed(order):
        a = adj.get(x)
        if a is None or a == 0 or x in leafset or not dep[x]:
            continue
        if _opaque(x):
            for s in x.free_symbols & leafset:
                g = _value_at(sp.diff(x, s), point)  # scalar
                adj[s] = adj.get(s, 0) + a * g
            continue
        z, parts = _local_partials(x)
        at = dict(zip(z, (memo[c] for c in x.args)))
        for c, p in zip(x.args, parts):
            if dep[c]:
                adj[c] = adj.get(c, 0) + a * _value_at(p, at)
    return [memo[E]] + [adj.get(s, mpmath.mpf(0)) for s in leaves]


def _value_at(e: Basic, point: Mapping[Basic, Any]) -> Any:
    if e.is_Number:
        return _value(e, None, point)  # type: ignore[arg-type]
    return _evaluate([e], point)[0]


#: Most distinct scalar operations the explicit-size reference may have (see ``check_gradient``).
EXPLICIT_BUDGET = 100_000


def _leg2(energy: Any, cm: Any, wrt: Sequence[Basic], sizes: Mapping[Dim, int], seed: int,
          budget: int = EXPLICIT_BUDGET) -> dict[Basic, tuple[float, float]]:
    energy_vars = list(wrt)
    """Explicit-size leg: expand the energy once with every entry of every input a real scalar
    symbol (:func:`expand_explicit`, unevaluated; sympy's intermediate ``dotprodsimp``
    simplification off: both change the form of the expansion, not its value), differentiate it
    with respect to every entry of every variable in ``wrt`` (:func:`_value_and_gradient`),
    evaluate energy and derivatives at a random point in 30-digit arithmetic, and compare with the
    generated code.  Refuses (:class:`CheckFailedError`) above ``budget`` distinct operations.

    Named axes of a fixed size above 2 are checked at size 2 (the body of a family is one
    expression in its index, so two values exercise every rule, including the sums over the axis
    and the cotangents summed into arguments that do not range over it): the energy is rebuilt with
    the smaller axes and generated again, so the cost does not grow with the number of heads."""
    small = {a: Axis(a.name, 2) for a in energy.axes if a.size.is_Integer and int(a.size) > 2}
    if small:
        from ..symbolic.energy import Energy

        energy = Energy(terms={k: v.xreplace(small) for k, v in energy.terms.items()})
        wrt = [v.xreplace(small) for v in wrt]
        cm = energy.compile()
        res = _leg2(energy, cm, wrt, sizes, seed, budget)
        back = {v.xreplace(small): v for v in energy_vars}
        return {back[k]: r for k, r in res.items()}
    vals = random_inputs(energy, sizes, batch=(), seed=seed + 1)
    env = explicit_env(energy.inputs, sizes)
    point: dict[Basic, Any] = {}
    entries: dict[Basic, list[Basic]] = {}
    for s in energy.inputs:
        v = vals[str(s)]
        if isinstance(s, MatrixSymbol) and getattr(s, "role", "") == "mask":  # numbers, not symbols
            def numeric(t: torch.Tensor) -> sp.Matrix:  # as an additive mask: 0 or −∞ for booleans
                add = torch.where(t, 0.0, float("-inf")) if t.dtype == torch.bool else t.double()
                return sp.Matrix(t.shape[-2], t.shape[-1], lambda i, j: sp.Float(float(add[i, j]))
                                 if torch.isfinite(add[i, j]) else -sp.oo)
            env[s] = ({key: numeric(v[key]) for key in env[s]} if isinstance(env[s], dict) else numeric(v))
            continue
        if isinstance(s, MatrixSymbol):
            family = env[s] if isinstance(env[s], dict) else {(): env[s]}
            entries[s] = []
            for key in sorted(family):  # row-major over (axes..., rows, cols), as the tensor
                M = family[key]
                entries[s] += [M[i, j] for i in range(M.rows) for j in range(M.cols)]
                for i in range(M.rows):
                    for j in range(M.cols):
                        point[M[i, j]] = mpmath.mpf(float(v[key + (i, j)]))
        else:
            z = sp.Symbol(f"{s}_", real=True)
            env[s], entries[s], point[z] = z, [z], mpmath.mpf(float(v))
    with dotprodsimp(False):
        E = expand_explicit(energy.expr, env, evaluate=False)
    E = E[0, 0] if isinstance(E, sp.MatrixBase) else E
    leaves = [x for v in wrt for x in entries[v]]
    order = _topological(E)
    if len(order) > budget:
        raise CheckFailedError(
            f"the explicit-size reference of {energy} (sizes {_sizes_text(sizes)}) has {len(order)} "
            f"distinct scalar operations, over the budget of {budget}: leg 2 was not run, so the "
            "gradient is not certified. Simplify the energy, pass a larger explicit_budget= to "
            "check_gradient, or pass explicit=False to check against autograd only (leg 1)"
        )
    try:
        with mpmath.workdps(_DIGITS):
            values = [float(x) for x in _value_and_gradient(E, point, leaves, order)]
    except (TypeError, ValueError, ZeroDivisionError) as exc:  # e.g. DiracDelta(0), log(0) at the point
        raise GradientCheckError(
            f"the explicit-size reference of {energy} cannot be evaluated at its check point ({exc}); the "
            "energy is not differentiable there (a kink of relu/abs/soft_threshold hit exactly), so the "
            "gradient is not certified: rerun check_gradient with another seed"
        ) from None
    e_ref = values[0]
    args = cm.args(**vals)
    e_gen = float(cm.energy_fn(*args))
    e_err = abs(e_gen - e_ref) / abs(e_ref) if e_ref else abs(e_gen)
    out: dict[Basic, tuple[float, float]] = {}
    k = 1
    for v in wrt:
        ref = torch.tensor(values[k:k + len(entries[v])], dtype=torch.float64)
        k += len(entries[v])
        gen = torch.as_tensor(cm.grad_fn(v)(*args), dtype=torch.float64).reshape(-1)
        g_err, _ = relative_error_at(gen, ref, _floor(abs(e_ref), [float(point[x]) for x in entries[v]]))
        out[v] = (e_err, g_err)
    return out


def check_gradient(
    energy: Any,
    wrt: Optional[Sequence[Union[Basic, str]]] = None,
    inputs: Optional[Mapping[str, Any]] = None,
    *,
    seed: int = 0,
    batch: tuple[int, ...] = (3,),
    tol: float = 1e-10,
    explicit: bool = True,
    raise_on_failure: bool = True,
    explicit_budget: int = EXPLICIT_BUDGET,
) -> GradientCheckResult:
    """Check every (or the given) variable's generated gradient with both legs.

    ``inputs`` (tensors by name) replaces the random leg-1 point, e.g. to stay inside a domain.
    Raises :class:`GradientCheckError` naming the worst entry when a leg disagrees (unless
    ``raise_on_failure=False``), and :class:`InputError` when the energy is not finite at the
    random point (give ``inputs=``).

    Cost: leg 2 is linear in the number of distinct scalar operations of the explicit-size
    expansion (every matrix node adds a bounded number per entry; nested inverses and
    log-determinants add Berkowitz adjugates, not products of them).  When that number exceeds
    ``explicit_budget`` leg 2 is not run and :class:`CheckFailedError` is raised (the gradient is
    then not certified: nothing is marked checked), instead of running for an unbounded time.
    """
    t0 = time.perf_counter()
    if not isinstance(batch, tuple) or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0
                                               for b in batch):
        raise InputError(f"check_gradient: batch must be a tuple of positive ints (e.g. (3,) or ()), got {batch!r}")
    cm = energy.compile()
    variables = list(dict.fromkeys(energy._resolve(w) for w in (wrt if wrt is not None else energy.variables)))
    sizes = explicit_sizes(energy.dims)
    larger = inputs is None and bool(sizes)  # given inputs may encode a domain: not resampled
    if inputs is None:
        big = {d: s + 1 for d, s in sizes.items()}
        inputs = random_inputs(energy, big, batch=batch, seed=seed)
    args = cm.args(**inputs)
    value = cm.energy_fn(*args)
    if not torch.isfinite(value).all():
        raise InputError(
            f"energy {energy} is not finite at the check point; pass inputs= inside its domain"
        )
    leg2 = _leg2(energy, cm, variables, sizes, seed, explicit_budget) if explicit else {}
    result = GradientCheckResult(str(energy), tol, sizes={str(k): v for k, v in sizes.items()})
    leg1 = _leg1(cm, variables, args)
    if larger:  # one point at larger sizes (dims 5, 6, 7, ...): leg 1 costs little there
        big_args = cm.args(**random_inputs(energy, {d: 5 + i % 3 for i, d in enumerate(sizes)}, batch=(2,),
                                           seed=seed + 2))
        if bool(torch.isfinite(torch.as_tensor(cm.energy_fn(*big_args))).all()):
            for v, (err, worst) in _leg1(cm, variables, big_args).items():
                if err > leg1[v][0]:
                    leg1[v] = (err, worst + " (at the larger sizes)")
    for v in variables:
        e1, worst = leg1[v]
        e2e, e2g = leg2.get(v, (0.0, 0.0))
        ok = e1 <= tol and e2e <= tol and e2g <= tol
        result.variables.append(VariableCheck(str(v), e1, e2e, e2g, worst, ok, leg2_run=explicit))
        if ok and explicit:  # certified only by both legs
            certify(energy, v)
    result.seconds = time.perf_counter() - t0
    if raise_on_failure and not result.passed:
        bad = [v for v in result.variables if not v.passed]
        raise GradientCheckError(
            f"{result}\nworst entry: {bad[0].worst}"
        )
    return result
