"""The in-context-learning-by-GD catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

# small float64 tensors: one thread is ~10–30× faster than two on the shared 2-core machine
torch.set_num_threads(1)

from unfold.catalogue import icl_gd
from unfold.catalogue._icl_refs import gd_construction, lsa_layer, tokens
from unfold.catalogue.base import RunConfig, run_entry


@pytest.fixture(scope="module")
def report():
    return run_entry(icl_gd.ENTRY, RunConfig(seed=0))


def test_every_check_passes_with_its_assumptions(report):
    assert {r.check for r in report.results} == {
        "lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero", "gd_step_descends_L"}
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert all(a.holds for a in r.assumptions)


def test_context_and_query_are_exact(report):
    for name in ("lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero"):
        d = next(r for r in report.results if r.check == name).data
        assert d["context_error"] < 1e-13 and d["query_error"] < 1e-13 and d["x_slot_error"] == 0.0
    d0 = next(r for r in report.results if r.check == "lsa_equals_gd_step_w0_zero").data
    assert d0["prediction_error"] < 1e-13


def test_gd_step_against_explicit_formula():
    """The generated step against ΔW = −(η/N)(W₀X − Y)Xᵀ written out by hand."""
    t = icl_gd.sample_task(RunConfig(seed=2), ny=3, w0_zero=False)
    W1 = icl_gd.gd_step(0.3)(t["W0"], X=t["X"], Y=t["Y"])
    N = t["X"].shape[-1]
    expect = t["W0"] - 0.3 / N * (t["W0"] @ t["X"] - t["Y"]) @ t["X"].mT
    assert torch.allclose(W1, expect, rtol=0, atol=1e-14)


def test_wrong_construction_is_not_gd():
    """A value matrix without the −I block (W_V = [[0,0],[W₀,0]]) does not give the GD step."""
    t = icl_gd.sample_task(RunConfig(seed=0), w0_zero=False)
    nx, N = t["X"].shape[-2], t["X"].shape[-1]
    WK, WQ, WV, P = gd_construction(nx, 1, t["W0"], icl_gd.ETA, N)
    WV_bad = WV.clone()
    WV_bad[..., nx:, nx:] = 0
    E = lsa_layer(tokens(t["X"], t["Y"], t["xq"]), WK, WQ, WV_bad, P, n_context=N)
    dW = icl_gd.gd_step()(t["W0"], X=t["X"], Y=t["Y"]) - t["W0"]
    assert (E[..., nx:, :N] - (t["Y"] - dW @ t["X"])).abs().max() > 1e-3


def test_descent_bound_predicate_detects_large_steps():
    t = icl_gd.sample_task(RunConfig(seed=0), w0_zero=False)
    lam = float(torch.linalg.eigvalsh(t["X"] @ t["X"].mT / t["X"].shape[-1]).max())
    eta = 3.0 / lam  # beyond 2/λ_max: the step overshoots and L increases
    step = icl_gd.gd_step(eta)
    E0 = step.energy(t["W0"], X=t["X"], Y=t["Y"])
    E1 = step.energy(step(t["W0"], X=t["X"], Y=t["Y"]), X=t["X"], Y=t["Y"])
    assert bool((E1 > E0).any())


def test_same_seed_same_numbers():
    a = run_entry(icl_gd.ENTRY, RunConfig(seed=5))
    b = run_entry(icl_gd.ENTRY, RunConfig(seed=5))
    assert [r.data for r in a.results] == [r.data for r in b.results]
