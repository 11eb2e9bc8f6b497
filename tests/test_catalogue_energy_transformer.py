"""The Energy-Transformer catalogue entry: its checks, and targeted tests of its claims."""

import math

import pytest
import torch

import unfold as uf
from unfold.catalogue import _attention_refs as ref
from unfold.catalogue import energy_transformer as et
from unfold.catalogue import RunConfig
from unfold.steps import Unrolled
from unfold.verify.descent import check_descent

torch.set_num_threads(1)  # tiny float64 tensors: extra threads only contend for the 2 shared cores


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(et.ENTRY)


def test_every_check_passes(report):
    assert {r.check for r in report.results} == {"gradient_closed_form", "descent", "layernorm_jacobian"}
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert r.error is not None, r.check
        if r.tol is None:                      # a descent claim: the largest increase, clamped at 0
            assert r.error == 0.0, r.check     # the energy never went up
        else:
            assert r.error <= r.tol, r.check


def test_exact_errors_are_float64_small(report):
    r = next(r for r in report.results if r.check == "gradient_closed_form")
    errs = r.data["errors"]
    for tag in ("B = C", "B ≠ C"):
        for k in (f"∂E/∂g vs closed form ({tag})", f"∂E/∂g vs autograd ({tag})", f"E ({tag})"):
            assert errs[k] < 1e-13, k
    # the key-role term matters: a standard attention update (query role only) is far off
    (key_role,) = [c for c in r.controls if "key-role" in c.name]
    assert key_role.rejected and key_role.error is not None and key_role.error > 1e-2


def test_descent_curves_decrease_strictly(report):
    r = next(r for r in report.results if r.check == "descent")
    assert len(r.figures) == 1 and set(r.figures[0].series) == {"alpha=0.01", "alpha=0.1", "alpha=0.1 (B≠C)"}
    for curve in r.figures[0].series.values():
        assert len(curve) >= 13
        assert all(b < a for a, b in zip(curve, curve[1:]))


def test_two_leg_gradient_check_of_the_energy():
    res = uf.check_gradient(et.energy(heads=1), wrt=["g"])
    assert res.passed and res.max_error < 1e-10


def test_layernorm_predicate_scalar_holds_per_feature_fails():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    delta = torch.randn(6, 1, generator=g, dtype=torch.float64)
    ok, asym, lam = et.ln_jacobian_predicate(x, gamma=0.7, delta=delta)
    assert ok.holds and asym < 1e-13 and lam > -1e-12
    gam = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    bad, asym_f, _ = et.ln_jacobian_predicate(x, Gam=torch.diag(gam), delta=delta)
    assert not bad.holds and asym_f > 1e-3
    # a per-feature gain that happens to be constant is a scalar gain again
    same, asym_c, _ = et.ln_jacobian_predicate(x, Gam=0.7 * torch.eye(6, dtype=torch.float64), delta=delta)
    assert same.holds and asym_c < 1e-13


def test_masked_energy_excludes_self_pairs_by_explicit_loop():
    g = torch.Generator().manual_seed(4)
    N, D, K, M = 4, 5, 3, 6
    inp = et.make_inputs(g, torch.float64, N, D, K, M, heads=1, mask_self=True)
    gt = torch.randn(N, D, generator=g, dtype=torch.float64)
    Q, Kt = gt @ inp["WQ1"].T, gt @ inp["WK1"].T
    b = inp["beta"]
    att = -sum(math.log(sum(math.exp(b * float(Kt[B] @ Q[C])) for B in range(N) if B != C)) for C in range(N)) / b
    mem = -0.5 * float((torch.relu(gt @ inp["Xi"]) ** 2).sum())
    layer = et.et_layer(0.1, heads=1)
    assert abs(float(layer.energy_g(gt, **inp)) - (att + mem)) < 1e-12
    inp0 = et.make_inputs(torch.Generator().manual_seed(4), torch.float64, N, D, K, M, heads=1)
    assert abs(float(layer.energy_g(gt, **inp0)) - (att + mem)) > 1e-3  # the default includes B = C


def test_descent_check_catches_ascent():
    """The descent check can fail: the block with α < 0 (gradient ascent) is reported."""
    N, D, K, M, H = 6, 8, 4, 32, 1
    g = torch.Generator().manual_seed(5)
    inp = et.make_inputs(g, torch.float64, N, D, K, M, H)
    x0 = torch.randn(2, N, D, generator=g, dtype=torch.float64)
    ln = {"gamma": 1.0, "delta": torch.zeros(D, 1, dtype=torch.float64)}
    res = check_descent(Unrolled(et.et_layer(-0.1, H, ln), depth=12), x0, **inp)
    assert not res.passed and res.first_violation is not None and res.first_violation.layer == 0


def test_same_seed_same_numbers():
    a = et.GRADIENT_CLOSED_FORM.run(RunConfig(seed=7, quick=True))
    b = et.GRADIENT_CLOSED_FORM.run(RunConfig(seed=7, quick=True))
    assert a.data == b.data and a.error == b.error


def test_layer_is_a_module_with_generated_gradient():
    layer = et.et_layer(0.1, heads=2)
    assert isinstance(layer, torch.nn.Module)
    assert "Softmax" in uf.to_str(layer.update_rule())
    g = torch.Generator().manual_seed(6)
    inp = et.make_inputs(g, torch.float64, 5, 8, 4, 16, 2)
    ln = {"gamma": 1.0, "delta": torch.zeros(8, 1, dtype=torch.float64)}
    layer = et.et_layer(0.1, heads=2, ln=ln)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)
    gx = ref.energy_layernorm(x, 1.0, 0.0, et.EPS)
    WQ, WK = [inp["WQ1"], inp["WQ2"]], [inp["WK1"], inp["WK2"]]
    want = x - 0.1 * ref.et_grad_closed_form(gx, WQ, WK, inp["Xi"], inp["beta"])
    assert ref.rel_err(layer(x, **inp), want) < 1e-13
