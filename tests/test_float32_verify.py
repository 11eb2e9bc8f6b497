"""The catalogue at float32 (``unfold verify --dtype float32``): the precision rule
:meth:`RunConfig.tol` (docs/numerics.md, "Catalogue checks at float32").

* every quick check whose tolerance is precision-dependent passes at float32, with the tolerance the
  rule gives for its float64 tolerance, and the exact claims hold to a few float32 ulps;
* at float64 the rule returns the old tolerances unchanged (the constants and the checks' ``tol``);
* the scaled tolerances are not vacuous: a result off by a scaled 1e-3 fails at float32.

Not run here (their float32 outcome does not depend on the rule; measured in docs/numerics.md):
the ``gradients`` entry (float32 tolerance 1e-4, unchanged; tests/test_cli.py), ``att_svm_kkt``
(solved in float64 by cvxpy at any dtype), ``directional_convergence_KQ`` and
``learned_lista_beats_ista`` (no tolerance: measured comparisons).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from unfold.catalogue import att_svm, crate, energy_transformer, gradients, hopfield, icl_gd, lista, looped
from unfold.catalogue import yang_huang_wipf
from unfold.catalogue import run_entry
from unfold.catalogue._claim import MUTATED_KINDS
from unfold.catalogue.base import EPS64, EXACT_CAP, CheckResult, RunConfig
from unfold.catalogue.registry import entries, get_entry

pytestmark = pytest.mark.slow  # run by CI; `pytest -m "not slow"` skips it while editing

F32, F64 = RunConfig(dtype=torch.float32, quick=True), RunConfig(dtype=torch.float64, quick=True)

#: precision-independent outcomes, not run (see the module docstring)
SKIPPED = {("att_svm", "att_svm_kkt"), ("att_svm", "directional_convergence_KQ"),
           ("lista", "learned_lista_beats_ista")}

#: the float64 tolerance every rule-scaled check had before the rule (written out, not read from the code)
OLD_TOL64: dict[tuple[str, str], float] = {
    ("energy_transformer", "layernorm_jacobian"): 1e-12,
    ("lista", "limit_matches_lasso_solver"): 1e-10,
    ("looped", "loop_energy_descends"): 1e-12,
}
#: ... and of every typed exact claim of the entries above (its ``tol64``; the float32 tests read it generically)
CLAIM_TOL64 = 1e-12


@pytest.fixture(scope="module")
def float32_results() -> dict[tuple[str, str], CheckResult]:
    out = {}
    for e in entries():
        if e.name == "gradients":
            continue
        names = [c.name for c in e.checks if c.quick and (e.name, c.name) not in SKIPPED]
        for r in run_entry(e, F32, only=names).results:
            out[(r.entry, r.check)] = r
    return out


# ---- the rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize("tol64", [1e-14, 1e-12, 1e-10, 1e-6, 0.5, 3.0])
def test_rule_returns_float64_tolerances_unchanged(tol64: float) -> None:
    # bit-identical at float64, even above the cap (the cap applies to lower precisions only)
    assert RunConfig().tol(tol64) == tol64 and RunConfig().tol(tol64, cap=1e-20) == tol64
    assert RunConfig().tol_note(tol64) == ""


def test_rule_at_float32_is_k_ulps_capped() -> None:
    eps32 = torch.finfo(torch.float32).eps
    assert F32.tol(1e-12) == pytest.approx(1e-12 / 2.0**-52 * 2.0**-23, rel=1e-15)   # 2²⁹·1e-12 = 5.4e-4
    assert F32.tol(1e-12) == pytest.approx(F32.ulps(1e-12) * eps32) and round(F32.ulps(1e-12)) == 4504
    assert F32.tol(1e-10) == EXACT_CAP == 1e-3                       # 0.054 capped
    assert F32.tol(1e-10, cap=1e-4) == 1e-4                          # a check may tighten the cap
    assert F32.tol(1e-16) == pytest.approx(1e-16 / EPS64 * eps32)    # small tolerances scale, uncapped
    assert "4504 ulps of float32" in F32.tol_note(1e-12) and "capped at 0.001" in F32.tol_note(1e-10)


def test_module_constants_are_the_old_float64_tolerances() -> None:
    for tol in (hopfield.EXACT_TOL, energy_transformer.EXACT_TOL, yang_huang_wipf.EXACT_TOL, crate.TOL, lista.TOL,
                icl_gd.TOL, looped.TOL, att_svm.TOL):
        assert tol == 1e-12 and RunConfig().tol(tol) == 1e-12
    assert lista.LIMIT_TOL == hopfield.FIXED_POINT_TOL == 1e-10 and lista.STEP_BOUND_TOL == 1e-14
    assert gradients.tolerance(torch.float64) == gradients.TOL[torch.float64] == 1e-10
    assert gradients.tolerance(torch.float32) == gradients.TOL[torch.float32] == 1e-4   # unchanged at float32


def test_float64_checks_keep_their_old_tolerances(catalogue_run) -> None:
    """A few fast checks at float64 (the session's float64 run): the reported tolerance is the old
    literal, bit for bit."""
    for name, checks in (("hopfield", ["cccp_step_is_attention", "attention_equivalence"]),
                         ("icl_gd", ["lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero"]),
                         ("looped", ["loops_equal_preconditioned_gd", "loop_energy_descends"]),
                         ("lista", ["unrolled_equals_ista"])):
        for r in [r for r in catalogue_run(get_entry(name)).results if r.check in checks]:
            assert r.passed and r.tol == OLD_TOL64.get((name, r.check), CLAIM_TOL64), (r.check, r.tol)
            assert r.error is not None and r.error < 1e-14
            assert "ulps" not in r.detail                         # float64 details unchanged


# ---- the catalogue at float32 -------------------------------------------------------------------
def test_every_precision_dependent_quick_check_passes_at_float32(float32_results) -> None:
    expected = {(e.name, c.name) for e in entries() if e.name != "gradients"
                for c in e.checks if c.quick} - SKIPPED
    assert set(float32_results) == expected and len(expected) >= 51   # a new quick check joins by itself
    failed = [f"{k}: {r.detail}" for k, r in float32_results.items() if not r.passed]
    assert not failed, failed


def test_float32_tolerances_are_the_rule_applied_to_the_old_ones(float32_results) -> None:
    from unfold.catalogue import Claim

    eps32 = torch.finfo(torch.float32).eps
    claims = {(e.name, c.name): c for e in entries() for c in e.checks if isinstance(c, Claim)}
    old = dict(OLD_TOL64) | {k: c.tol64 for k, c in claims.items() if k in float32_results and c.kind in MUTATED_KINDS}
    assert len(old) >= len(OLD_TOL64) + 10
    for key, tol64 in old.items():
        r = float32_results[key]
        assert r.tol == F32.tol(tol64, claims[key].cap if key in claims else EXACT_CAP), key
        assert r.tol == (min(tol64 / EPS64 * eps32, 1e-3)), key
        assert "[tolerance" in r.detail, key                       # the detail says how it was scaled


def test_exact_claims_hold_to_a_few_float32_ulps(float32_results) -> None:
    """The scaled tolerance (≈4504 ulps) is a margin, not the measurement: every exact claim is met to
    ≤ 64 ulps of float32 (measured ≤ 8.1: docs/numerics.md)."""
    eps32 = torch.finfo(torch.float32).eps
    for key, r in float32_results.items():
        if r.claim == "exact":
            assert r.error is not None and r.error <= 64 * eps32, (key, r.error)
    assert float32_results[("lista", "limit_matches_lasso_solver")].error <= 64 * eps32


def test_float32_details_name_the_working_precision(float32_results) -> None:
    for key in (("crate", "rate_gradients_closed_form"), ("icl_gd", "lsa_equals_gd_step_w0_zero"),
                ("looped", "loops_equal_preconditioned_gd")):
        assert "float32" in float32_results[key].detail and "float64" not in float32_results[key].detail.split("[")[0]


def test_embedded_predicates_scale_too(float32_results) -> None:
    """Predicates inside checks use the rule: at float32 they hold where they held at float64 …"""
    held = {a.name: a.holds for r in float32_results.values() for a in r.assumptions}
    assert held["U_k orthonormal columns (the paper's setting; the identity holds for any U_k)"]
    assert held["generated ∇R^c = eq. 9 at this data"]
    assert held["step 1/L ≤ 1/λ_max(AᵀA)"] and held["W symmetric"] and held["A symmetric"]
    assert held["layer-norm Jacobian symmetric PSD (scalar γ)"]
    # … and still fail where the assumption is false (shown as a control, rejected)
    (ln,) = float32_results[("energy_transformer", "layernorm_jacobian")].controls
    assert "per-feature γ" in ln.name and ln.rejected
    eq = float32_results[("yang_huang_wipf", "plain_softmax_equal_norms")]
    assert [a.holds for a in eq.assumptions] == [True]               # equal norms held on the claim's data
    assert [c.rejected for c in eq.controls] == [True, True]        # unequal norms: the control, rejected


def test_att_svm_direction_is_trained_in_float64_and_float32_run_reported(float32_results) -> None:
    r = float32_results[("att_svm", "directional_convergence_W")]
    assert r.passed and r.error < 1 - att_svm.THRESHOLD
    assert "Run in float64 regardless of --dtype float32" in r.detail
    low = r.data["float32_run"]
    # the float32 run is the measured reason: it stalls below the threshold (gradient below rounding early)
    assert min(low["final_corr_fro"]) < att_svm.THRESHOLD
    assert max(low["gradient_resolved_until"]) < att_svm.ITERS
    # the float64 verdict is the float64 run's: same numbers as the float64 experiment
    exp64 = att_svm.experiment("W", 2, 7, torch.float64)
    assert r.error == float(1 - exp64.corr_fro.final.min())


# ---- the scaled tolerances are not vacuous --------------------------------------------------------
def _shift(size: float) -> Callable[[Any], Any]:
    """Add ``size·max(1, max|t|)`` to every entry: a result off by exactly ``size`` in the scaled error."""
    def f(t: Any) -> Any:
        if isinstance(t, (list, tuple)):
            return type(t)(f(x) for x in t)
        return t + size * max(1.0, float(t.abs().max()))
    return f


def _perturb(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, size: float) -> None:
    orig, shift = getattr(module, name), _shift(size)
    monkeypatch.setattr(module, name, lambda *a, **k: shift(orig(*a, **k)))


def test_resolution_of_the_float32_tolerance(monkeypatch) -> None:
    """Where the float32 tolerance sits: a scaled discrepancy of 1e-4 is below it (passes at float32,
    fails at float64), 1e-3 is above it (fails at both)."""
    _perturb(monkeypatch, icl_gd, "lsa_layer", 1e-4)
    entry = get_entry("icl_gd")
    (r32,) = run_entry(entry, F32, only=["lsa_equals_gd_step_w0_nonzero"]).results
    (r64,) = run_entry(entry, F64, only=["lsa_equals_gd_step_w0_nonzero"]).results
    assert r32.passed and not r64.passed
    assert 0.99e-4 <= r32.error < r32.tol and r64.error > r64.tol


def test_every_exact_claim_rejects_its_mutation_at_float32(float32_results) -> None:
    """The runner's generic mutation control: for every typed exact claim, the layer shifted by
    1e-3 is rejected at float32 (its scaled tolerance stays below a real discrepancy)."""
    from unfold.catalogue import Claim

    keys = [(e.name, c.name) for e in entries() for c in e.checks
            if isinstance(c, Claim) and c.kind in MUTATED_KINDS and c.quick and (e.name, c.name) in float32_results]
    assert len(keys) >= 4
    for key in keys:
        r = float32_results[key]
        (m,) = [c for c in r.controls if c.name == "layer shifted by 0.001"]
        assert m.rejected and m.error is not None and m.error >= 0.99e-3 > r.tol, key


def test_typed_exact_claims_state_float64_tolerances_no_looser_than_1e_10() -> None:
    """The tolerance of a typed claim is data: every exact one is stated at float64 and at most 1e-10
    (the precision rule reads it at other precisions), with a cap no looser than the rule's."""
    from unfold.catalogue import Claim

    claims = [c for e in entries() for c in e.checks if isinstance(c, Claim) and c.kind in MUTATED_KINDS]
    assert claims and all(c.tol64 <= 1e-10 and c.cap <= EXACT_CAP for c in claims)
