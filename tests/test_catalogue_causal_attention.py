"""The causal-attention / NRGPT catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

from unfold.catalogue import _causal_refs as ref
from unfold.catalogue import causal_attention as ca
from unfold.catalogue import RunConfig


@pytest.fixture(scope="module")
def report(entry_results):
    return entry_results(ca.ENTRY)


def test_every_check_passes_with_its_assumptions_and_controls(report, assert_checks_pass):
    assert_checks_pass(report, {"query_side_is_causal_attention", "full_step_is_gradient", "causality_of_the_steps",
                                "nrgpt_head_is_per_token_gradient", "nrgpt_per_token_descent"}, error_below=1e-14)
    for r in report.values():
        if r.claim == "exact":
            assert r.controls and all(c.rejected for c in r.controls), (r.check, r.controls)


def test_float32_passes_under_the_precision_rule(assert_float32_rule):
    assert_float32_rule(ca.ENTRY, every_claim=True)


def test_key_side_is_as_large_as_the_query_side(report):
    """For random weights the acausal key-side term is not a small correction."""
    assert report["full_step_is_gradient"].data["key_over_query_norm"] > 0.3


def test_full_step_leaks_and_query_side_does_not(report):
    d = report["causality_of_the_steps"].data
    assert d["query_leak"] == 0.0 and d["full_leak"] > 1e-2 and d["query_jacobian_asymmetry"] > 0.1
    (fig,) = report["causality_of_the_steps"].figures
    assert max(fig.series["query-side update"]) == 0.0 and max(fig.series["full gradient step"]) > 1e-2


def test_perturbing_the_last_token_moves_only_the_key_side_of_the_first():
    t = ca.sample(RunConfig(seed=1), batch=1)
    w = {k: v for k, v in t.items() if k.startswith("W") or k == "beta"}
    X = t["X"]
    X2 = X.clone()
    X2[..., -1, :] += 0.5
    q1, q2 = ca.query_side(t), ca.query_side({**t, "X": X2})
    f1, f2 = X - ca.full_step()(X, **w), X2 - ca.full_step()(X2, **w)
    assert torch.equal(q1[..., 0, :], q2[..., 0, :])
    assert (f1[..., 0, :] - f2[..., 0, :]).abs().max() > 1e-3


def test_wrong_scale_is_not_causal_attention():
    """β in the scores and in the 1/β prefactor must be the same: SDPA at another scale differs."""
    t = ca.sample(RunConfig(seed=2))
    WQ, WK = [t["WQ1"], t["WQ2"]], [t["WK1"], t["WK2"]]
    assert (ca.query_side(t) - ref.causal_attention(t["X"], WQ, WK, 1.0)).abs().max() > 1e-3


def test_nrgpt_token_energy_descends_at_every_step_size(report):
    """E_i is concave in x_i: even a step 200× beyond the smoothness-style bound 1/L lowers it."""
    d = report["nrgpt_per_token_descent"].data
    assert all(v < 0 for v in d["worst_change"].values()) and d["hessian_lambda_max"] < 1e-12
