"""The sparse Hopfield catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

from unfold.catalogue import sparse_hopfield as sh
from unfold.catalogue import RunConfig


@pytest.fixture(scope="module")
def report(entry_results):
    return entry_results(sh.ENTRY)


def test_every_check_passes_with_its_assumptions(report, assert_checks_pass):
    assert_checks_pass(report, {"cccp_step_is_sparse_attention", "energy_non_increasing", "exact_retrieval_at_the_margin"})
    assert report["cccp_step_is_sparse_attention"].error < 1e-14


def test_float32_passes_under_the_precision_rule(assert_float32_rule):
    assert_float32_rule(sh.ENTRY)


def test_margin_is_sharp(report):
    r = report["exact_retrieval_at_the_margin"]
    assert max(r.data["errors"].values()) < 1e-14
    below = [c for c in r.controls if "0.97 of the margin" in c.name]
    assert len(below) == 3 and all(c.rejected and c.error is not None and c.error > 1e-3 for c in below)


def test_sparse_step_differs_from_softmax_attention():
    """The reference is not vacuous: softmax attention (α = 1) is a different layer on the same data."""
    d = sh.sample(RunConfig(seed=1))
    X, Xi = d["X"], d["Xi"]
    soft = X @ torch.softmax(sh.BETA * X.mT @ Xi, dim=-2)
    assert (sh.cccp_step(2)(Xi, X=X, beta=sh.BETA) - soft).abs().max() > 1e-2


def test_descent_holds_at_any_beta():
    d = sh.sample(RunConfig(seed=2))
    from unfold.steps import Unrolled
    from unfold.verify.descent import check_descent

    for beta in (0.05, 5.0, 50.0):
        assert check_descent(Unrolled(sh.cccp_step(1.5), depth=5), d["Xi"], X=d["X"], beta=beta).passed


@pytest.mark.parametrize("alpha", sh.ALPHAS)
def test_each_cccp_step_lowers_the_energy_by_half_the_squared_move(alpha):
    """The proved sufficient decrease E(Ξ⁺) ≤ E(Ξ) − ½‖Ξ⁺ − Ξ‖², per query column, along 6 steps at β = 0.5 and 5."""
    d = sh.sample(RunConfig(seed=3))
    step, energy = sh.cccp_step(alpha), sh.gradient_step(alpha).energy
    for beta in (sh.BETA, 5.0):
        Xi = d["Xi"]
        for _ in range(6):
            Xn = step(Xi, X=d["X"], beta=beta)
            drop = energy(Xi, X=d["X"], beta=beta) - energy(Xn, X=d["X"], beta=beta)
            move = 0.5 * ((Xn - Xi) ** 2).sum(dim=(-2, -1))
            assert (drop - move >= -1e-12 * (1 + drop.abs())).all(), (alpha, beta, drop, move)
            Xi = Xn
