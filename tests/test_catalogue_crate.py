"""The CRATE catalogue entry: its checks, and targeted tests of its claims."""

import numpy as np
import pytest
import torch

# small float64 tensors: one thread is ~10–30× faster than two on the shared 2-core machine
torch.set_num_threads(1)

from unfold.catalogue import _crate_refs as ref
from unfold.catalogue import crate
from unfold.catalogue import RunConfig, run_entry
from unfold.steps import Unrolled
from unfold.verify.descent import check_descent

CHECKS = {"rate_gradients_closed_form", "ista_block_is_prox_step", "ista_lasso_descends", "mssa_vs_exact_step",
          "layerwise_rc_sparsity", "redunet_layer_is_gradient_ascent"}


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(crate.ENTRY)


def _result(report, name):
    return next(r for r in report.results if r.check == name)


def test_every_check_passes(report):
    assert {r.check for r in report.results} == CHECKS
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"


def test_exact_claims_are_float64_exact(report):
    for name in ("rate_gradients_closed_form", "ista_block_is_prox_step", "redunet_layer_is_gradient_ascent"):
        r = _result(report, name)
        assert r.claim == "exact" and r.error < 1e-13, (name, r.error)
        assert all(a.holds for a in r.assumptions)


def test_regime_table_reproduces_the_neumann_finding(report):
    rows = _result(report, "mssa_vs_exact_step").data["table"]
    assert [r["eps"] for r in rows] == [0.5, 1.0, 2.0, 4.0]
    regimes = [r["regime"] for r in rows]
    assert all(b < a for a, b in zip(regimes, regimes[1:]))  # ‖γA‖ ∝ 1/ε²
    big, small = rows[0], [r for r in rows if r["regime"] < 0.2]
    assert big["regime"] > 1 and big["cos_neumann"] < 0.5  # the first-order Neumann series fails ...
    assert small and all(r["cos_neumann"] > 0.999 for r in small)  # ... and is near-exact below 0.2
    assert all(r["Rc_exact_step"] < r["Rc"] for r in rows)  # the exact step always lowers R^c
    # every row carries its regime: inside it (‖γA‖ < 1) an evaluated assumption that holds, outside it a
    # control (Neumann-1 not near-exact) that is rejected
    r = _result(report, "mssa_vs_exact_step")
    regime_assumptions = [a for a in r.assumptions if "regime" in a.name]
    assert len(regime_assumptions) == 3 and all(a.holds for a in regime_assumptions)
    assert len(r.controls) == 1 and r.controls[0].rejected and r.controls[0].error > 1


def test_layerwise_curves_are_reported(report):
    r = _result(report, "layerwise_rc_sparsity")
    for variant in ("exact", "mssa"):
        d = r.data[variant]
        assert len(d["Rc_half"]) == len(d["sparsity"]) == 8
        assert all(0 <= s <= 1 for s in d["sparsity"])
    assert max(r.data["exact"]["Rc_change"]) < 0
    assert {f.name for f in r.figures} == {"crate_layerwise_rc", "crate_layerwise_sparsity"}


def test_closed_form_holds_for_any_bases():
    """Eq. 9 does not need orthonormal or incoherent U_k: random non-orthogonal bases, ε = 0.7."""
    g = torch.Generator().manual_seed(5)
    Us = [torch.randn(6, 2, generator=g, dtype=torch.float64) for _ in range(4)]
    Z = torch.randn(2, 6, 5, generator=g, dtype=torch.float64)
    cm = crate.compression_energy().compile()
    args = cm.args(Z=Z, eps=0.7, **crate.u_inputs(Us))
    assert torch.allclose(cm.grad_fn("Z")(*args), ref.grad_compression(Z, Us, 0.7), rtol=0, atol=1e-13)


def test_ista_output_solves_the_prox_subproblem_by_scipy():
    """The ISTA step's output against the prox subproblem min_{z≥0} ηλ‖z‖₁ + ½‖z − v‖² solved by scipy."""
    from scipy.optimize import minimize

    D, Zh = crate._ista_data(RunConfig(seed=0))
    out = crate.ista_step()(Zh, Zh=Zh, D=D)[0].numpy()
    Dn, Zn = D.numpy(), Zh[0].numpy()
    v = (Zn - crate.ETA * Dn.T @ (Dn @ Zn - Zn)).ravel()
    t = crate.ETA * crate.LAM
    res = minimize(lambda z: (t * z.sum() + 0.5 * ((z - v) ** 2).sum(), t + z - v), np.zeros_like(v), jac=True,
                   method="L-BFGS-B", bounds=[(0, None)] * v.size, options={"ftol": 1e-15, "gtol": 1e-12})
    assert np.abs(res.x - out.ravel()).max() < 1e-7


def test_ista_step_bound_matters():
    D, Zh = crate._ista_data(RunConfig(seed=0))
    L = float(torch.linalg.eigvalsh(D.T @ D).max())
    eta = 2.5 / L  # beyond 2/L: no descent guarantee, and the LASSO energy goes up
    step = crate.ista_step(eta=eta)
    Z1 = step(Zh, Zh=Zh, D=D)
    assert not check_descent(Unrolled(step, depth=20), Z1, Zh=Zh, D=D).passed
    assert not crate._step_bound(D, eta).holds


def test_quick_profile_is_deterministic():
    only = ["mssa_vs_exact_step", "layerwise_rc_sparsity"]
    a = run_entry(crate.ENTRY, RunConfig(seed=2, quick=True), only=only)
    b = run_entry(crate.ENTRY, RunConfig(seed=2, quick=True), only=only)
    assert len(a.results) == 2
    assert all(r.passed for r in a.results)
    assert [r.error for r in a.results] == [r.error for r in b.results]
    assert [str(r.data) for r in a.results] == [str(r.data) for r in b.results]
