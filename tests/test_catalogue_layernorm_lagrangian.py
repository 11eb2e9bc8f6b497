"""The LayerNorm-as-a-gradient catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

from unfold.catalogue import layernorm_lagrangian as ln
from unfold.catalogue import RunConfig


@pytest.fixture(scope="module")
def report(entry_results):
    return entry_results(ln.ENTRY)


def test_every_check_passes_with_its_assumptions(report, assert_checks_pass):
    assert_checks_pass(report, {"layernorm_is_gradient", "hessian_symmetric_psd", "convex_along_lines"}, error_below=1e-14)
    assert report["convex_along_lines"].data["min_second_difference"] > 0


def test_float32_passes_under_the_precision_rule(assert_float32_rule):
    assert_float32_rule(ln.ENTRY, every_claim=True)


def test_per_feature_gain_has_no_lagrangian(report):
    (c,) = [c for c in report["hessian_symmetric_psd"].controls if "per-feature" in c.name]
    assert c.rejected and c.error > 1e-2
    (u,) = [c for c in report["layernorm_is_gradient"].controls if "unbiased" in c.name]
    assert u.rejected and u.error > 1e-2


def test_reference_distinguishes_the_variance_convention():
    """The generated ∇L is layer norm with the biased variance: the unbiased one differs."""
    d = ln.sample_tokens(RunConfig(seed=1), 6)
    X, delta = d["X"], d["delta"]
    G = ln.gradient_layer().gradient(X, delta=delta, gamma=1.0, eps=ln.EPS)
    xc = X - X.mean(dim=-2, keepdim=True)
    unbiased = xc / torch.sqrt(X.var(dim=-2, keepdim=True) + ln.EPS) + delta
    biased = xc / torch.sqrt(X.var(dim=-2, keepdim=True, correction=0) + ln.EPS) + delta
    assert torch.allclose(G, biased, rtol=0, atol=1e-13)
    assert (G - unbiased).abs().max() > 1e-2


def test_hessian_eigenvalues_at_a_second_point():
    """Smallest eigenvalue 0 (eigenvector 1), D − 2 eigenvalues equal to γ/s, one equal to (γ/s)ε/(V+ε)."""
    D, gamma, eps = 7, 1.3, 0.2
    x = torch.linspace(-1.0, 2.0, D, dtype=torch.float64)[:, None] ** 2
    H = ln.hessian(x, torch.zeros(D, 1, dtype=torch.float64), gamma, eps)
    lam = torch.linalg.eigvalsh(H)
    V = float(x.var(correction=0))
    s = (V + eps) ** 0.5
    expect = sorted([0.0, gamma / s * eps / (V + eps)] + [gamma / s] * (D - 2))
    assert torch.allclose(lam, torch.tensor(expect, dtype=torch.float64), rtol=0, atol=1e-13)


def test_hessian_check_in_a_fresh_process():
    """`unfold verify` runs checks in worker processes where the layer is not built yet: the
    gradient check (random inputs) must not run inside the Jacobian transform."""
    import subprocess
    import sys

    code = ("from unfold.catalogue import layernorm_lagrangian as m\n"
            "from unfold.catalogue import run_entry, RunConfig\n"
            "r = run_entry(m.ENTRY, RunConfig(), only=['hessian_symmetric_psd']).results[0]\n"
            "assert r.passed, r.detail\n")
    subprocess.run([sys.executable, "-c", code], check=True)
