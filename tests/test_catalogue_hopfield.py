"""The modern-Hopfield catalogue entry: its checks, and targeted tests of its claims."""

import math

import pytest
import torch
import torch.nn.functional as F

from unfold.catalogue import _attention_refs as ref
from unfold.catalogue import hopfield as hop
from unfold.catalogue import RunConfig, run_entry
from unfold.steps import CCCPStep, Unrolled
from unfold.verify.descent import check_descent

torch.set_num_threads(1)  # tiny float64 tensors: extra threads only contend for the 2 shared cores
DT = torch.float64


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(hop.ENTRY)


def test_every_check_passes(report):
    assert [r.check for r in report.results] == [
        "cccp_step_is_attention", "attention_equivalence", "hflayers_multihead", "descent_and_bounds",
        "retrieval_theorem5", "beta_sweep"]
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        if r.tol is not None:
            assert r.error is not None and r.error <= r.tol, r.check
        assert all(a.holds for a in r.assumptions), r.check


def test_quick_profile_skips_the_sweep():
    rep = run_entry(hop.ENTRY, RunConfig(seed=0, quick=True))
    assert "beta_sweep" not in {r.check for r in rep.results} and rep.passed


def test_exact_numbers(report):
    by = {r.check: r for r in report.results}
    assert max(by["cccp_step_is_attention"].data["errors"].values()) < 1e-13
    assert by["cccp_step_is_attention"].data["cccp_rule"] == "X*Softmax(beta*X.T*Xi)"
    assert by["cccp_step_is_attention"].data["gradient_rule"] == "X*Softmax(beta*X.T*Xi)"
    assert by["attention_equivalence"].data["errors"]["F.scaled_dot_product_attention"] < 1e-13
    assert by["attention_equivalence"].data["errors"]["nn.MultiheadAttention"] < 1e-13
    assert all(c.rejected for c in by["attention_equivalence"].controls)
    assert by["descent_and_bounds"].data["energy_formula_error"] < 1e-13
    hf = by["hflayers_multihead"]
    assert set(hf.data["errors"]) == {"update_steps_max=0", "update_steps_max=1", "update_steps_max=3"}
    assert max(hf.data["errors"].values()) < 1e-13
    # k steps read as k retrievals, or one β for every head, are off by a resolvable amount
    assert all(c.rejected and c.error > 1e-2 for c in hf.controls if not c.name.startswith("layer shifted"))


def test_sdpa_equivalence_batched_and_scaled():
    """F.scaled_dot_product_attention with its default scale 1/√d_k is the mapped CCCP step."""
    g = torch.Generator().manual_seed(1)
    B, S, N, d_y, d_k = 3, 4, 7, 5, 6
    R, Y = torch.randn(B, S, d_k, generator=g, dtype=DT), torch.randn(B, N, d_y, generator=g, dtype=DT)
    WQ, WK, WV = (torch.randn(*sh, generator=g, dtype=DT) for sh in ((d_k, d_k), (d_y, d_k), (d_k, d_k)))
    ours = hop.attention_layer(R, Y, WQ, WK, WV)
    assert ref.rel_err(ours, F.scaled_dot_product_attention(R @ WQ, Y @ WK, Y @ WK @ WV)) < 1e-13
    # a wrong temperature is detected
    wrong = F.scaled_dot_product_attention(R @ WQ, Y @ WK, Y @ WK @ WV, scale=1.0)
    assert ref.rel_err(ours, wrong) > 1e-3


def test_multihead_attention_module_matches():
    g = torch.Generator().manual_seed(2)
    S, N, d_y, d_k = 3, 5, 4, 4
    R, Y = torch.randn(1, S, d_k, generator=g, dtype=DT), torch.randn(1, N, d_y, generator=g, dtype=DT)
    WQ, WK, WV = (torch.randn(*sh, generator=g, dtype=DT) / 2 for sh in ((d_k, d_k), (d_y, d_k), (d_k, d_k)))
    assert ref.rel_err(hop.attention_layer(R, Y, WQ, WK, WV), ref.mha_attention(R, Y, WQ, WK, WV)) < 1e-13


def test_cccp_step_is_a_steps_module_with_symbolic_rule():
    step = hop.cccp_step()
    assert isinstance(step, CCCPStep) and isinstance(step, torch.nn.Module)
    assert str(step.update_rule()) == "X*Softmax(beta*X.T*Xi)"
    assert str(hop.gradient_step().update_rule()) == "X*Softmax(beta*X.T*Xi)"


def test_energy_bounds_and_descent_from_far_away():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(6, 9, generator=g, dtype=DT)
    M = float(X.norm(dim=0).max())
    Xi0 = 10 * torch.randn(2, 6, 1, generator=g, dtype=DT)      # far from the patterns: E > 2M² at the start
    res = check_descent(Unrolled(hop.cccp_step(), depth=10), Xi0, X=X, beta=1.5, M=M)
    assert res.passed
    assert float(res.energies[0].min()) > 2 * M * M                # the bound is for the retrieval region
    assert float(res.energies[1:].max()) <= 2 * M * M + 1e-12      # one step lands inside [0, 2M²]
    assert float(res.energies.min()) >= 0


def test_retrieval_bound_violated_when_query_ignored():
    """The Theorem-5 comparison can fail: a random query far from x_i violates the bound."""
    g = torch.Generator().manual_seed(4)
    d, N, M, beta = 16, 8, 3.0, 2.0
    X = torch.randn(d, N, generator=g, dtype=DT)
    X = M * X / X.norm(dim=0, keepdim=True)
    delta = ref.hopfield_separation(X)
    xi = X[:, 1:2]                                                  # pattern 1 is the query ...
    err = float((ref.hopfield_update(X, xi, beta)[:, 0] - X[:, 0]).norm())  # ... compared with pattern 0
    assert err > ref.theorem5_bound(beta, N, M, float(delta[0]), 0.0)


def test_same_seed_same_numbers_and_different_seed_differs():
    a = hop.check_retrieval(RunConfig(seed=5, quick=True))
    b = hop.check_retrieval(RunConfig(seed=5, quick=True))
    c = hop.check_retrieval(RunConfig(seed=6, quick=True))
    assert a.data == b.data and a.data != c.data


def test_beta_sweep_regimes(report):
    r = next(r for r in report.results if r.check == "beta_sweep")
    reg = r.data["regimes"]
    assert reg[0] == "global average" and reg[-1] == "single pattern" and "metastable (cluster)" in reg
    k = r.data["k (90% mass)"]
    assert k[0] >= 10 and k[-1] == 1
    assert len(r.figures) == 2 and all(len(f.x) == len(r.data["betas"]) for f in r.figures)
    assert math.isclose(r.data["betas"][0], 0.01)
