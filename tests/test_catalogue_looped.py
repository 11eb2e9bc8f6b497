"""The looped-transformer catalogue entry: its checks, and targeted tests of its claims."""

import numpy as np
import pytest
import torch

# small float64 tensors: one thread is ~10–30× faster than two on the shared 2-core machine
torch.set_num_threads(1)

from unfold.catalogue import looped
from unfold.catalogue._looped_refs import looped_construction, looped_lsa
from unfold.catalogue import RunConfig, run_entry
from unfold.verify.descent import check_descent


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(looped.ENTRY)


def test_every_check_passes_with_its_assumptions(report):
    assert {r.check for r in report.results} == {"loops_equal_preconditioned_gd", "loop_energy_descends"}
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert r.error is not None and r.error <= r.tol
        assert all(a.holds for a in r.assumptions), [a for a in r.assumptions if not a.holds]


def test_every_loop_is_exact_to_float64(report):
    errs = next(r for r in report.results if r.check == "loops_equal_preconditioned_gd").data["errors"]
    assert sorted(errs) == sorted(f"{p} t={t}" for p in ("query", "residual", "x rows") for t in range(1, 9))
    assert max(errs.values()) < 1e-13
    assert all(errs[f"x rows t={t}"] == 0.0 for t in range(1, 9))


def test_symmetry_assumption_matters(report):
    r = next(r for r in report.results if r.check == "loops_equal_preconditioned_gd")
    # a general A runs GD preconditioned by Aᵀ (a condition of the claim: the check passed) ...
    assert r.passed
    # ... and not by A: the control is rejected by a wide margin
    (ctl,) = [c for c in r.controls if c.name.startswith("non-symmetric A")]
    assert ctl.rejected and ctl.error > 1e-3


def test_reference_against_numpy_gd():
    """The plain-torch loop against preconditioned GD written in numpy (a third implementation)."""
    task = looped.sample_task(RunConfig(seed=3), d=4, n=9, batch=1)
    X, y, xq, A = (task[k][0].numpy() if task[k].dim() == 3 else task[k].numpy() for k in ("X", "y", "xq", "A"))
    Zs = looped_lsa(*looped_construction(task["X"], task["y"], task["xq"], task["A"]), loops=5)
    w = np.zeros((4, 1))
    for t in range(1, 6):
        w = w - A @ X @ (X.T @ w - y) / 9
        assert abs(-float(Zs[t][0, 4, 9]) - (xq.T @ w).item()) < 1e-13


def test_step_bound_violation_is_detected():
    task = looped.sample_task(RunConfig(seed=0), d=5, n=20, batch=4)
    A_big = 4.0 * task["A"]  # λ_max(A^{1/2}XXᵀA^{1/2}/n) ≈ 4·1.46 > 2
    res = check_descent(looped.gd_model(A_big, 8), torch.zeros_like(task["xq"]), X=task["X"], y=task["y"])
    assert not res.passed and res.first_violation is not None


def test_same_seed_same_numbers():
    a = run_entry(looped.ENTRY, RunConfig(seed=1))
    b = run_entry(looped.ENTRY, RunConfig(seed=1))
    assert [r.data for r in a.results] == [r.data for r in b.results]
    assert [r.error for r in a.results] == [r.error for r in b.results]


def test_generated_layer_rule_mentions_the_preconditioner():
    step = looped.gd_model(torch.eye(3, dtype=torch.float64), 1).layer(0)
    rule = str(step.update_rule())
    assert "P" in rule and "X" in rule and "w" in rule
