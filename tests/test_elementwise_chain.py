"""Derivatives of composed elementwise functions stay finite wherever the function is
differentiable (the chain rule node by node, never sympy's derivative of the composition).

sympy differentiates ``|log u|`` as ``log(u/sign u)·sign(u)²·sign(log u)/(u log u)`` (0/0 at
``u = 1``) and ``|√(1+u)|`` through ``atan2``; every gradient here is compared with
``torch.func.grad`` of a plain-torch energy in float64, at the points where that went wrong.
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch
from torch.func import grad

import unfold as uf
from unfold.symbolic.nodes import U
from unfold.symbolic.vjp import elementwise_derivative

d, n = uf.dims("d n")
Y = uf.state("Y", d, n)
ONES = uf.ones(d, n)

CASES = {
    # name: (unfold energy, plain torch energy of y)
    "abs_log_1p_y2": (uf.fro2(uf.abs_(uf.log(ONES + uf.hadamard(Y, Y)))),
                      lambda y: (torch.log(1 + y * y).abs() ** 2).sum()),
    "abs_sqrt_1p_y2": (uf.fro2(uf.abs_(uf.sqrt(ONES + uf.hadamard(Y, Y)))),
                       lambda y: (torch.sqrt(1 + y * y).abs() ** 2).sum()),
    "abs_tanh_cubed": (uf.sum_entries(uf.hpow(uf.abs_(uf.tanh(Y)), 3)),
                       lambda y: (torch.tanh(y).abs() ** 3).sum()),
    "relu_cubed": (uf.sum_entries(uf.hpow(uf.relu(Y), 3)), lambda y: (torch.relu(y) ** 3).sum()),
    "log_cosh_via_exp": (uf.sum_entries(uf.log(uf.exp(Y) + uf.exp(-Y))),
                         lambda y: torch.log(torch.exp(y) + torch.exp(-y)).sum()),
}

POINTS = {
    "zero": torch.zeros(2, 3, 4, dtype=torch.float64),
    "random": torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
}


@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_gradient_equals_autograd(case, point):
    expr, ref = CASES[case]
    y = POINTS[point]
    got = uf.Energy(expr).compile().grad("Y", Y=y)
    want = torch.stack([grad(ref)(y[b]) for b in range(y.shape[0])])
    assert torch.isfinite(got).all(), got
    scale = max(want.abs().max().item(), 1.0)
    assert (got - want).abs().max().item() <= 1e-12 * scale


def test_abs_log_derivative_is_finite_at_one():
    dv = elementwise_derivative(sp.Abs(sp.log(U)))
    assert dv.subs(U, 1) == 0  # sympy's own form is nan there
    assert sp.diff(sp.Abs(sp.log(U)), U).subs(U, 1) is sp.nan  # the defect this guards against


def test_abs_sqrt_derivative_needs_no_atan2():
    dv = elementwise_derivative(sp.Abs(sp.sqrt(1 + U)))
    assert not dv.has(sp.atan2)
    assert abs(float(dv.subs(U, 3)) - 0.25) < 1e-15  # d/du √(1+u) = 1/(2√(1+u)) = 1/4 at u = 3
