"""The in-context-learning-by-GD catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

# small float64 tensors: one thread is ~10–30× faster than two on the shared 2-core machine
torch.set_num_threads(1)

from unfold.catalogue import icl_gd
from unfold.catalogue import RunConfig, run_entry


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(icl_gd.ENTRY)


def test_every_check_passes_with_its_assumptions(report):
    assert {r.check for r in report.results} == {
        "lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero", "gd_step_descends_L"}
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert all(a.holds for a in r.assumptions)


def test_context_and_query_are_exact(report):
    for name in ("lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero"):
        d = next(r for r in report.results if r.check == name).data["errors"]
        assert d["context"] < 1e-13 and d["query"] < 1e-13 and d["x_slots"] == 0.0
    d0 = next(r for r in report.results if r.check == "lsa_equals_gd_step_w0_zero").data["errors"]
    assert d0["prediction"] < 1e-13


def test_gd_step_against_explicit_formula():
    """The generated step against ΔW = −(η/N)(W₀X − Y)Xᵀ written out by hand."""
    t = icl_gd.sample_task(RunConfig(seed=2), ny=3, w0_zero=False)
    W1 = icl_gd.gd_step(0.3)(t["W0"], X=t["X"], Y=t["Y"])
    N = t["X"].shape[-1]
    expect = t["W0"] - 0.3 / N * (t["W0"] @ t["X"] - t["Y"]) @ t["X"].mT
    assert torch.allclose(W1, expect, rtol=0, atol=1e-14)


def test_wrong_construction_and_shifted_layer_are_rejected(report):
    """Controls: a value matrix without the −I block (W_V = [[0,0],[W₀,0]]) is not the GD step, and
    the layer shifted by 1e-3 fails — both by far more than the tolerance."""
    for name in ("lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero"):
        r = next(r for r in report.results if r.check == name)
        ctl = {c.name: c for c in r.controls}
        assert set(ctl) == {"W_V without its −I block", "layer shifted by 0.001"}
        assert all(c.rejected for c in ctl.values())
        assert ctl["W_V without its −I block"].error > 1e-3 and ctl["layer shifted by 0.001"].error >= 0.99e-3


def test_descent_bound_predicate_detects_large_steps():
    t = icl_gd.sample_task(RunConfig(seed=0), w0_zero=False)
    lam = float(torch.linalg.eigvalsh(t["X"] @ t["X"].mT / t["X"].shape[-1]).max())
    eta = 3.0 / lam  # beyond 2/λ_max: the step overshoots and L increases
    step = icl_gd.gd_step(eta)
    E0 = step.energy(t["W0"], X=t["X"], Y=t["Y"])
    E1 = step.energy(step(t["W0"], X=t["X"], Y=t["Y"]), X=t["X"], Y=t["Y"])
    assert bool((E1 > E0).any())


def test_same_seed_same_numbers(report):
    again = run_entry(icl_gd.ENTRY, RunConfig(seed=0))
    assert [r.data for r in again.results] == [r.data for r in report.results]
    other = run_entry(icl_gd.ENTRY, RunConfig(seed=5), only=["lsa_equals_gd_step_w0_nonzero"])
    assert other.results[0].data != report.results[1].data
