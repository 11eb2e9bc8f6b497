"""The two-leg gradient check.

Leg 1: ``torch.func.grad`` of the generated energy against the generated gradient, float64, on
random batched inputs, for every variable.  Leg 2: the energy expanded at explicit small sizes
(every dim ≤ 3) into scalar sympy (:mod:`unfold.symbolic.explicit`), differentiated entry by entry
with plain scalar ``sp.diff`` and evaluated in 30-digit arithmetic, against the generated energy *and* gradient: this catches printer bugs that
would corrupt energy and gradient alike.  A variable passes when both legs agree to ``tol`` in the
scaled error ``max|a − b| / max(1, max|b|)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import mpmath
import numpy as np
import sympy as sp
import torch
from sympy import Basic
from sympy.matrices.expressions import MatrixSymbol
from sympy.matrices.utilities import dotprodsimp

from ..errors import GradientCheckError, InputError
from ..symbolic.explicit import expand_explicit, explicit_env
from ..symbolic.symbols import Dim

__all__ = ["VariableCheck", "GradientCheckResult", "check_gradient", "random_inputs", "explicit_sizes"]


@dataclass
class VariableCheck:
    """Errors of both legs for one variable (scaled max-abs errors; ``worst`` locates leg 1's)."""

    name: str
    leg1_error: float
    leg2_energy_error: float
    leg2_grad_error: float
    worst: str
    passed: bool


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
            rows.append(
                f"  {'PASS' if v.passed else 'FAIL'} {v.name:>8}: autograd {v.leg1_error:.1e}  "
                f"explicit-size energy {v.leg2_energy_error:.1e} gradient {v.leg2_grad_error:.1e}"
            )
        return "\n".join(rows)


def explicit_sizes(dims: Sequence[Dim]) -> dict[Dim, int]:
    """Small sizes: 3 for the first dimension, 2 for the others (every dim ≤ 3; at least two
    distinct sizes whenever there are two dims, so a transposed product is a shape error)."""
    return {d: (3 if i == 0 else 2) for i, d in enumerate(dims)}


def _is_positive(s: Basic) -> bool:
    return bool(getattr(s, "is_positive", False))


def random_inputs(
    energy: Any,
    sizes: Mapping[Dim, int],
    batch: tuple[int, ...] = (),
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Any]:
    """Random inputs: states batched, parameters unbatched; square matrices near ``2I`` (so
    inverses and log-determinants are defined), others ``N(0, 0.5²)``; scalars in ``[0.5, 1.5]``."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for s in energy.inputs:
        if isinstance(s, MatrixSymbol):
            r, c = (int(sp.sympify(x).subs(sizes)) for x in s.shape)  # safe: dims/ints
            lead = batch if getattr(s, "role", "") == "state" else ()
            t = torch.randn(*lead, r, c, generator=g, dtype=dtype)
            if r == c and r > 1:
                t = 2 * torch.eye(r, dtype=dtype) + 0.3 * t
            else:
                t = 0.5 * t
            out[str(s)] = t
        else:
            out[str(s)] = float(0.5 + torch.rand((), generator=g, dtype=torch.float64))
    return out


def _scaled(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    diff = (a - b).abs()
    if not torch.isfinite(diff).all():
        return float("inf"), 0
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    k = int(diff.reshape(-1).argmax()) if diff.numel() else 0
    return float(diff.max()) / scale if diff.numel() else 0.0, k


def _leg1(cm: Any, v: Basic, args: tuple[Any, ...]) -> tuple[float, str]:
    gen = torch.as_tensor(cm.grad_fn(v)(*args))
    i = cm.inputs.index(v)
    a = list(args)
    if not isinstance(a[i], torch.Tensor):
        a[i] = torch.tensor(float(a[i]), dtype=torch.float64)
    auto = cm.autograd_grad(v)(*a)
    err, k = _scaled(gen, auto)
    loc = "" if gen.dim() == 0 else str(tuple(int(x) for x in np.unravel_index(k, tuple(gen.shape))))
    return err, f"{v}{loc}: generated {gen.reshape(-1)[k].item():.6g} vs autograd {auto.reshape(-1)[k].item():.6g}" \
        if gen.numel() else ""


_DIGITS = 30  # working precision of the explicit-size reference (mpmath), well beyond float64


def _evaluate(exprs: Sequence[Basic], point: Mapping[Basic, Any]) -> list[float]:
    """Values of scalar sympy expressions at ``point`` (symbol -> mpmath number), in ``_DIGITS``
    digits.  Shared sub-trees are evaluated once (memoised on the expression), so a few dozen
    derivative trees of one energy cost about one tree walk; nodes other than numbers, sums,
    products and powers are evaluated by sympy itself on Float arguments."""
    memo: dict[Basic, Any] = dict(point)

    def ev(x: Basic) -> Any:
        hit = memo.get(x)
        if hit is not None:
            return hit
        if isinstance(x, sp.Float):
            r = mpmath.mpf(x)
        elif isinstance(x, sp.Rational):
            r = mpmath.mpf(int(x.p)) / int(x.q)
        elif x.is_NumberSymbol:
            r = mpmath.mpf(x.evalf(_DIGITS + 5))
        elif isinstance(x, sp.Add):
            r = mpmath.fsum(ev(a) for a in x.args)
        elif isinstance(x, sp.Mul):  # δ(a)·g with g = 0 at the point is 0 (g(a)δ(a) = 0): skip the δ
            deltas = [a for a in x.args if isinstance(a, sp.DiracDelta)]
            r = mpmath.fprod(ev(a) for a in x.args if not isinstance(a, sp.DiracDelta))
            if deltas and r != 0:
                r = r * mpmath.fprod(ev(a) for a in deltas)
        elif isinstance(x, sp.Pow) and x.exp.is_Integer:
            r = ev(x.base) ** int(x.exp)
        elif isinstance(x, sp.Pow):
            r = ev(x.base) ** ev(x.exp)
        elif isinstance(x, sp.Function) and all(isinstance(a, sp.Expr) for a in x.args):
            v = x.func(*[sp.Float(ev(a), _DIGITS) for a in x.args]).evalf(_DIGITS)
            r = mpmath.mpf(v)
        else:  # e.g. Piecewise: let sympy substitute and evaluate
            sub = {s: sp.Float(point[s], _DIGITS) for s in x.free_symbols}
            r = mpmath.mpf(sp.N(x.xreplace(sub), _DIGITS))
        memo[x] = r
        return r

    with mpmath.workdps(_DIGITS):
        return [float(ev(x)) for x in exprs]


def _leg2(energy: Any, cm: Any, wrt: Sequence[Basic], sizes: Mapping[Dim, int], seed: int) -> dict[Basic, tuple[float, float]]:
    """Explicit-size leg: expand the energy once with every entry of every input a real scalar
    symbol (:func:`expand_explicit`; sympy's intermediate ``dotprodsimp`` simplification off, which
    only changes the form of the expansion, not its value), differentiate it with plain scalar
    ``sp.diff`` with respect to every entry of every variable in ``wrt``, evaluate energy and
    derivatives at a random point in 30-digit arithmetic, and compare with the generated code."""
    vals = random_inputs(energy, sizes, batch=(), seed=seed + 1)
    env = explicit_env(energy.inputs, sizes)
    point: dict[Basic, Any] = {}
    entries: dict[Basic, list[Basic]] = {}
    for s in energy.inputs:
        v = vals[str(s)]
        if isinstance(s, MatrixSymbol):
            M = env[s]
            entries[s] = [M[i, j] for i in range(M.rows) for j in range(M.cols)]  # row-major
            for i in range(M.rows):
                for j in range(M.cols):
                    point[M[i, j]] = mpmath.mpf(float(v[i, j]))
        else:
            z = sp.Symbol(f"{s}_", real=True)
            env[s], entries[s], point[z] = z, [z], mpmath.mpf(float(v))
    with dotprodsimp(False):
        E = expand_explicit(energy.expr, env)
    E = E[0, 0] if isinstance(E, sp.MatrixBase) else E
    exprs = [E]
    for v in wrt:
        exprs += [sp.diff(E, x) for x in entries[v]]  # scalar
    try:
        values = _evaluate(exprs, point)
    except (TypeError, ValueError, ZeroDivisionError) as exc:  # e.g. DiracDelta(0), log(0) at the point
        raise GradientCheckError(
            f"the explicit-size reference of {energy} cannot be evaluated at its check point ({exc}); the "
            "energy is not differentiable there (a kink of relu/abs/soft_threshold hit exactly), so the "
            "gradient is not certified: rerun check_gradient with another seed"
        ) from None
    e_ref = values[0]
    args = cm.args(**vals)
    e_gen = float(cm.energy_fn(*args))
    e_err = abs(e_gen - e_ref) / max(1.0, abs(e_ref))
    out: dict[Basic, tuple[float, float]] = {}
    k = 1
    for v in wrt:
        ref = torch.tensor(values[k:k + len(entries[v])], dtype=torch.float64)
        k += len(entries[v])
        gen = torch.as_tensor(cm.grad_fn(v)(*args), dtype=torch.float64).reshape(-1)
        g_err, _ = _scaled(gen, ref)
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
) -> GradientCheckResult:
    """Check every (or the given) variable's generated gradient with both legs.

    ``inputs`` (tensors by name) replaces the random leg-1 point, e.g. to stay inside a domain.
    Raises :class:`GradientCheckError` naming the worst entry when a leg disagrees (unless
    ``raise_on_failure=False``), and :class:`InputError` when the energy is not finite at the
    random point (give ``inputs=``).
    """
    t0 = time.perf_counter()
    cm = energy.compile()
    variables = [energy._resolve(w) for w in (wrt if wrt is not None else energy.variables)]
    sizes = explicit_sizes(energy.dims)
    if inputs is None:
        big = {d: s + 1 for d, s in sizes.items()}
        inputs = random_inputs(energy, big, batch=batch, seed=seed)
    args = cm.args(**inputs)
    value = cm.energy_fn(*args)
    if not torch.isfinite(value).all():
        raise InputError(
            f"energy {energy} is not finite at the check point; pass inputs= inside its domain"
        )
    leg2 = _leg2(energy, cm, variables, sizes, seed) if explicit else {}
    result = GradientCheckResult(str(energy), tol, sizes={str(k): v for k, v in sizes.items()})
    for v in variables:
        e1, worst = _leg1(cm, v, args)
        e2e, e2g = leg2.get(v, (0.0, 0.0))
        ok = e1 <= tol and e2e <= tol and e2g <= tol
        result.variables.append(VariableCheck(str(v), e1, e2e, e2g, worst, ok))
        if ok:
            cm.checked.add(v)
    result.seconds = time.perf_counter() - t0
    if raise_on_failure and not result.passed:
        bad = [v for v in result.variables if not v.passed]
        raise GradientCheckError(
            f"{result}\nworst entry: {bad[0].worst}"
        )
    return result
