"""Is an energy continuously differentiable in a state?  (Gradient steps need it.)

The derived gradient is inspected: a ``sign`` or ``Heaviside`` (or a soft-threshold mask) in it
means the gradient jumps, e.g. ``‖x‖₁`` (gradient ``sign x``) or ``Σ relu x`` (gradient
``[x > 0]``).  The continuous pattern ``[M > 0] ∘ c·max(M, 0)^∘k`` (``k > 0``; the gradient of
``Σ relu(M)^(k+1)``) is recognised and allowed.
"""

from __future__ import annotations

import sympy as sp
from sympy import Basic
from sympy.matrices.expressions import HadamardPower, HadamardProduct, MatMul, MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..errors import AssumptionError
from ..symbolic.display import to_str
from ..symbolic.energy import Energy
from ..symbolic.nodes import U

__all__ = ["jump_factor", "require_smooth"]

_JUMPS = (sp.sign, sp.Heaviside, sp.DiracDelta)


def _has_jump(e: Basic) -> bool:
    return any(e.atoms(f) for f in _JUMPS)


def _is_relu_of(e: Basic, arg: Basic) -> bool:
    if isinstance(e, MatMul):  # c · relu(M)
        mats = [a for a in e.args if isinstance(a, MatrixExpr)]
        if len(mats) != 1:
            return False
        e = mats[0]
    if isinstance(e, HadamardPower) and e.exp.is_positive:  # relu(M)^∘k, k > 0: also vanishes at M ≤ 0
        e = e.base
    return (isinstance(e, ElementwiseApplyFunction) and e.expr == arg
            and e.function.expr.subs(e.function.variables[0], U) == sp.Max(U, 0))


def _masked_relu(h: ElementwiseApplyFunction, parent: Basic) -> bool:
    """``[M > 0] ∘ relu(M) ∘ ...``: the jump is multiplied by something vanishing at the jump."""
    body = h.function.expr.subs(h.function.variables[0], U)
    return (body == sp.Heaviside(U) and isinstance(parent, HadamardProduct)
            and any(_is_relu_of(a, h.expr) for a in parent.args if a is not h))


def jump_factor(e: Basic, parent: Basic = None) -> Basic | None:
    """A sub-expression of ``e`` at which a derivative jumps, or None.

    Whether a node is a jump depends on its parent (a step masked by a relu of the same argument is
    not); what lies *below* a node does not, so that search is done once per distinct node: linear
    in the size of the expression DAG (a derived gradient's tree can be exponential in its depth)."""
    below_memo: dict[Basic, Basic | None] = {}

    def at(x: Basic, par: Basic | None) -> Basic | None:
        if isinstance(x, ElementwiseApplyFunction) and _has_jump(x.function.expr):
            if not (par is not None and _masked_relu(x, par)):
                return x
        elif isinstance(x, sp.Function) and isinstance(x, _JUMPS):
            return x
        return below(x)

    def below(x: Basic) -> Basic | None:
        if x in below_memo:
            return below_memo[x]
        found = None
        for a in [x.expr] if isinstance(x, ElementwiseApplyFunction) else x.args:
            found = at(a, x)
            if found is not None:
                break
        below_memo[x] = found
        return found

    return at(e, parent)


def require_smooth(energy: Energy, wrt: Basic, who: str) -> None:
    """Raise :class:`AssumptionError` naming the first term whose gradient in ``wrt`` is discontinuous."""
    for name in energy.terms:
        if not energy.terms[name].has(wrt):
            continue
        g = energy.grad(wrt, term=name)
        bad = jump_factor(g)
        if bad is not None:
            raise AssumptionError(
                f"{who}: the energy term {name!r} ({to_str(energy.terms[name])}) is not continuously "
                f"differentiable in {wrt}: its gradient contains {to_str(bad)}. A gradient step needs "
                "a smooth energy; put this term in ProximalGradientStep(smooth, nonsmooth=...) with a "
                "proximal map (L1, NonNegative, NonNegL1, Box, Sphere)"
            )
