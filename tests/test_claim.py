"""The typed catalogue claim and its runner, on small synthetic claims (no catalogue entry)."""

from __future__ import annotations

import torch

from unfold.catalogue import (
    Check, CheckResult, Claim, Control, Descent, EnergyPlot, Entry, Figure, Predicate, RunConfig, run_entry,
)


def _inputs(config: RunConfig) -> dict:
    n = 3 if config.quick else 8
    return {"x": torch.randn(4, n, generator=config.generator(), dtype=config.dtype)}


def _relu(t: dict) -> torch.Tensor:
    return torch.relu(t["x"])


def _by_hand(t: dict) -> torch.Tensor:
    return t["x"].clamp(min=0)


def _entry(*checks) -> Entry:
    return Entry("toy", "toy", "nobody", "s", energy=lambda: None, checks=checks)


def _run(claim, config: RunConfig = RunConfig()) -> CheckResult:
    (r,) = run_entry(_entry(claim), config).results
    return r


def test_a_true_exact_claim_passes_with_names_filled_in_and_the_mutation_rejected() -> None:
    r = _run(Claim("relu", "exact", "relu = clamp", _inputs, _relu, _by_hand, tol64=1e-15))
    assert r.passed and (r.entry, r.check, r.claim) == ("toy", "relu", "exact")
    assert r.error == 0.0 and r.tol == 1e-15 and r.data["errors"] == {"output": 0.0}
    assert [(c.name, c.rejected) for c in r.controls] == [("layer shifted by 0.001", True)]


def test_a_wrong_layer_fails_and_reports_its_error() -> None:
    r = _run(Claim("relu", "exact", "wrong", _inputs, lambda t: torch.relu(t["x"]) * 1.01, _by_hand))
    assert not r.passed and r.error is not None and r.error > 1e-3


def test_a_control_that_is_not_rejected_fails_the_check() -> None:
    same = Control("clamp again (not wrong at all)", layer=_by_hand)
    r = _run(Claim("relu", "exact", "", _inputs, _relu, _by_hand, controls=(same,)))
    assert not r.passed and not r.controls[0].rejected and r.controls[1].rejected


def test_a_failing_condition_fails_the_check_but_a_failing_assumption_only_reports() -> None:
    false = Predicate("never", lambda t, c: (False, "as written"))
    assert not _run(Claim("relu", "exact", "", _inputs, _relu, _by_hand, conditions=(false,))).passed
    r = _run(Claim("relu", "exact", "", _inputs, _relu, _by_hand, assumptions=(false,)))
    assert r.passed and [(a.name, a.holds, a.detail) for a in r.assumptions] == [("never", False, "as written")]


def test_one_reference_against_named_parts_and_a_part_mismatch_is_reported() -> None:
    r = _run(Claim("two", "exact", "", _inputs, lambda t: {"relu": _relu(t), "clamp": _by_hand(t)}, _by_hand))
    assert r.passed and set(r.data["errors"]) == {"relu", "clamp"}
    bad = _run(Claim("two", "exact", "", _inputs, lambda t: {"a": _relu(t)}, lambda t: {"b": _by_hand(t)}))
    assert not bad.passed and "differ from reference parts" in bad.detail


def test_the_precision_rule_and_quick_sizes_reach_the_claim() -> None:
    r = _run(Claim("relu", "exact", "", _inputs, _relu, _by_hand, tol64=1e-12,
                   describe=lambda t: f"n={t['x'].shape[1]}"), RunConfig(dtype=torch.float32, quick=True))
    assert r.tol == RunConfig(dtype=torch.float32).tol(1e-12) and r.detail.startswith("n=3, float32")


def test_a_free_form_check_gets_its_names_and_a_raising_check_fails_with_its_message() -> None:
    ok = Check("free", "descent", "free-form", lambda config: CheckResult(passed=True))
    boom = Check("boom", "exact", "raises", lambda config: 1 / 0)
    a, b = run_entry(_entry(ok, boom)).results
    assert (a.entry, a.check, a.claim, a.passed) == ("toy", "free", "descent", True)
    assert not b.passed and "ZeroDivisionError" in b.detail


def test_controls_are_shown_as_rejected_not_as_failed_assumptions() -> None:
    from unfold.report.table import format_failures, format_table

    good = _run(Claim("relu", "exact", "", _inputs, _relu, _by_hand))
    bad = _run(Claim("same", "exact", "", _inputs, _relu, _by_hand, controls=(Control("clamp again", layer=_by_hand),)))
    table = format_table([good, bad]).splitlines()
    assert "controls" in table[0]
    assert "1/1 rejected" in table[2] and "PASS" in table[2] and "NOT HELD" not in table[2]
    assert "NOT REJECTED: clamp again" in table[3] and "FAIL" in table[3]
    assert "control not rejected: clamp again" in format_failures([bad])


def test_a_checks_proof_scope_comes_from_the_entrys_proof_statements_only() -> None:
    from unfold.catalogue import Proof

    relu = Claim("relu", "exact", "relu = clamp", _inputs, _relu, _by_hand, tol64=1e-15)
    other = Claim("other", "exact", "relu = clamp again", _inputs, _relu, _by_hand, tol64=1e-15)
    proofs = (Proof("case", "max(x,0) by cases", "general", "case analysis", backs=("relu",)),
              Proof("num", "max(x,0) at points", "numeric", "floats", backs=("relu",)),
              Proof("lemma", "a lemma", "general", "by hand"))
    entry = Entry("toy", "toy", "nobody", "s", energy=lambda: None, checks=(relu, other), proofs=proofs)
    by = {r.check: r.proof for r in run_entry(entry, RunConfig()).results}
    assert by == {"relu": "general", "other": None}   # strongest backing statement; a lemma backs nothing
    assert entry.proof_scope("relu") == "general" and entry.proof_scope("other") is None


def test_a_gradient_claim_gets_the_mutation_control_and_a_descent_claim_does_not() -> None:
    grad = _run(Claim("d relu", "gradient", "relu' = step", _inputs, lambda t: (t["x"] > 0).to(t["x"].dtype),
                      lambda t: torch.func.grad(lambda v: torch.relu(v).sum())(t["x"]), tol64=1e-15))
    assert grad.passed and [c.name for c in grad.controls] == ["layer shifted by 0.001"]
    desc = _run(Claim("relu", "descent", "relu = clamp", _inputs, _relu, _by_hand, tol64=1e-15))
    assert desc.passed and desc.controls == []


def _half_square_steps(t: dict, etas: tuple[float, ...]) -> dict:
    from unfold import symbolic as s
    from unfold.steps import GradientStep, Unrolled
    from unfold.symbolic import Energy

    (n,) = s.dims("n")
    x = s.state("x", n, 1)
    E = Energy(s.as_scalar(x.T * x) / 2, name="half_square")
    return {f"η={eta}": (Unrolled(GradientStep(E, wrt="x", step=eta), depth=4), t["x0"], {}) for eta in etas}


def _x0(config: RunConfig) -> dict:
    return {"x0": torch.randn(5, 3, 1, generator=config.generator(), dtype=config.dtype)}


def test_a_descent_claim_passes_on_descending_runs_with_clamped_error_and_one_curve_per_run() -> None:
    d = Descent("gd", "½‖x‖² descends for η ≤ 1", _x0, lambda t: _half_square_steps(t, (0.5,)),
                plot=EnergyPlot("toy_energy", "toy", "E", first=1))
    r = _run(d)
    assert r.passed and (r.check, r.claim) == ("gd", "descent")
    assert r.error == 0.0 and r.tol is None            # every step decreased E: the increase is clamped at 0
    E = r.data["energies"]                               # one run: its curve (mean over the batch), no label
    assert len(E) == 5 and all(b < a for a, b in zip(E, E[1:]))
    x0 = _x0(RunConfig())["x0"]
    assert abs(E[0] - float((x0 ** 2).sum((-2, -1)).mean() / 2)) < 1e-14   # ½‖x0‖², mean over the batch
    assert r.figures[0].x == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_descent_claim_fails_when_one_run_ascends_or_a_condition_fails() -> None:
    r = _run(Descent("gd", "too large a step", _x0, lambda t: _half_square_steps(t, (0.5, 2.5))))
    assert not r.passed and set(r.data["energies"]) == {"η=0.5", "η=2.5"}
    up = r.data["energies"]["η=2.5"]
    assert r.error > 0 and up[1] > up[0]               # x⁺ = −1.5x: E grows by 2.25 per step
    r = _run(Descent("gd", "descends, but a condition fails", _x0, lambda t: _half_square_steps(t, (0.5,)),
                     conditions=(Predicate("never", lambda t, c: (False, "")),)))
    assert not r.passed and r.error == 0.0


def _final_energy(t, res) -> dict:
    return {"E_end": float(res["η=0.5"].energies[-1].max())}


def _below(bound: float) -> Predicate:
    return Predicate(f"final E ≤ {bound}", lambda t, c: (t["E_end"] <= bound, f"{t['E_end']:.3g}"))


def test_descent_measurements_reach_data_conditions_and_assumptions() -> None:
    """``data(inputs, results)`` is measured on the runs; conditions and assumptions read it."""
    steps = lambda t: _half_square_steps(t, (0.5,))  # noqa: E731
    x0 = _x0(RunConfig())["x0"]
    end = float((x0 ** 2).sum((-2, -1)).max() / 2) * 0.25 ** 4   # x⁺ = x/2 four times: E shrinks by 4⁴
    r = _run(Descent("gd", "ends low", _x0, steps, conditions=(_below(2 * end),), assumptions=(_below(2 * end),),
                     data=_final_energy))
    assert r.passed and abs(r.data["E_end"] - end) < 1e-12 and r.assumptions[0].holds
    r = _run(Descent("gd", "ends lower than it does", _x0, steps, conditions=(_below(end / 2),),
                     assumptions=(_below(end / 2),), data=_final_energy,
                     figures=lambda t, res: [Figure("extra", "extra", [0.0], {"a": [1.0]})]))
    assert not r.passed and r.error == 0.0 and not r.assumptions[0].holds   # it descends, the condition fails
    assert [f.name for f in r.figures] == ["extra"]
