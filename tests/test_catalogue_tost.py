"""The ToST catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

from unfold.catalogue import _tost_refs as ref
from unfold.catalogue import tost
from unfold.catalogue import RunConfig


@pytest.fixture(scope="module")
def report(entry_results):
    return entry_results(tost.ENTRY)


def test_every_check_passes_with_its_assumptions(report, assert_checks_pass):
    assert_checks_pass(report, {"tssa_is_gradient_step", "tssa_descends_for_small_step", "memberships_frozen",
                                "released_layer_vs_paper"})
    assert report["tssa_is_gradient_step"].error < 1e-14


def test_float32_passes_under_the_precision_rule(assert_float32_rule):
    assert_float32_rule(tost.ENTRY)


def test_descent_only_for_a_small_step(report):
    """Steps below 2/L lower R^var (the curvature bound); a large enough one raises it (no universal step)."""
    r = report["tssa_descends_for_small_step"]
    changes = {float(k): max(v) for k, v in r.data["changes"].items()}
    bound = 2 / max(r.data["curvature_bound"])
    assert len(r.data["guaranteed_taus"]) >= 3 and all(changes[t] < 0 for t in changes if t < bound)
    assert r.data["first_increase_tau"] is not None and changes[r.data["first_increase_tau"]] > 0
    assert max(r.data["lemma_excess"].values()) <= 1e-12       # the descent-lemma inequality at every τ


def test_curvature_bound_bounds_the_hessian():
    """L = c·max π·‖Σ_k U_kU_kᵀ‖/N is at least the largest Hessian eigenvalue of R^var in Z (autograd, plain torch)."""
    d = tost.sample(RunConfig(seed=4), batch=1)
    Z, U, Pi = d["Z"][0], d["U"], d["Pi"][0]
    H = torch.func.hessian(lambda z: ref.rate_var(z, U, Pi, tost.C))(Z).reshape(Z.numel(), Z.numel())
    lam = torch.linalg.eigvalsh(H)
    L = float(tost.curvature_bound(U, Pi))
    assert lam.max() <= L and lam.max() > 0.05 * L            # a bound, and not a vacuous one


def test_released_layer_differs_in_each_change(report):
    d = report["released_layer_vs_paper"].data
    assert d["own_memberships_relative_difference"] > 1e-2 and d["untied_relative_difference"] > 1e-2


def test_step_differs_from_composite_gradient_and_from_released_layer(report):
    assert report["memberships_frozen"].data["relative_difference"] > 0.05
    d = report["released_layer_vs_paper"].data
    assert d["tied_error"] < 1e-8 and d["released_relative_difference"] > 0.1


def test_closed_form_reference_detects_a_missing_factor():
    """The paper's closed form is not vacuous: dropping Diag(π_k) breaks the agreement."""
    d = tost.sample(RunConfig(seed=1))
    Z, U, Pi = d["Z"], d["U"], d["Pi"]
    step = tost.tssa_step()(Z, **tost.inputs_of(U, Pi)) - Z
    assert torch.allclose(step, ref.tssa_closed_form(Z, U, Pi, tost.C, tost.TAU), rtol=0, atol=1e-14)
    flat = torch.full_like(Pi, 1.0 / tost.HEADS)
    assert (step - ref.tssa_closed_form(Z, U, flat, tost.C, tost.TAU)).abs().max() > 1e-3


def test_memberships_are_row_stochastic():
    d = tost.sample(RunConfig(seed=2))
    assert torch.allclose(d["Pi"].sum(-1), torch.ones(d["Pi"].shape[:-1], dtype=torch.float64), atol=1e-15)
