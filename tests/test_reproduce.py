"""`unfold reproduce --quick`: the reduced version of every trained-model experiment, its criteria,
the report it writes and its determinism."""

from __future__ import annotations

import json

import pytest

from unfold import reproduce
from unfold.cli import main
from unfold.errors import InputError

QUICK = reproduce.Profile(quick=True, seed=0)
pytestmark = pytest.mark.slow  # trains every model briefly (≈ 40 s); run by CI; `pytest -m "not slow"` skips it


@pytest.fixture(scope="module")
def results():
    return {r.name: r for r in reproduce.run(None, QUICK)}


@pytest.mark.parametrize("name", [e.name for e in reproduce.EXPERIMENTS])
def test_quick_experiment_meets_its_asserted_criteria(results, name):
    r = results[name]
    failed = [(c.name, c.measured, c.sense, c.bound, c.detail) for c in r.criteria if c.asserted and not c.passed]
    assert not failed, failed
    assert r.figures and all(f.series for f in r.figures)


def test_descent_criteria_are_measured_not_assumed(results):
    crate = results["crate_digits"]
    assert crate.criterion("fraction of test images whose R^c falls at every compression step").measured == 1.0
    assert results["deq_digits"].criterion(
        "largest relative energy increase along the fixed-point iteration").measured <= 1e-12
    assert results["icl_one_step"].criterion("cos(predictions, one GD step)").measured >= 0.99


def test_same_seed_same_numbers(results):
    again = reproduce.run(["deq_digits", "icl_one_step"], QUICK)
    for r in again:
        assert [c.measured for c in r.criteria] == [c.measured for c in results[r.name].criteria]


def test_cli_writes_report(tmp_path, capsys):
    rc = main(["reproduce", "deq_digits", "--quick", "--no-progress", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "deq_digits" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data[0]["name"] == "deq_digits" and data[0]["passed"]
    assert (tmp_path / "figures" / "deq_digits_deq_energy.png").stat().st_size > 1000


def test_unknown_experiment():
    with pytest.raises(InputError, match="unknown experiment"):
        reproduce.run(["nope"], QUICK)


def test_threads_are_set_for_the_run_and_restored(monkeypatch):
    import torch

    before = torch.get_num_threads()
    seen = []

    def probe(profile):
        seen.append(torch.get_num_threads())
        return reproduce.ExperimentResult("probe", "probe", "none")

    monkeypatch.setattr(reproduce, "EXPERIMENTS", reproduce.EXPERIMENTS + (reproduce.Experiment("probe", "probe", probe),))
    reproduce.run(["probe"], reproduce.Profile(quick=True, threads=before + 1))
    assert seen == [before + 1] and torch.get_num_threads() == before
    with pytest.raises(InputError, match="threads must be ≥ 1"):
        reproduce.run(["probe"], reproduce.Profile(threads=0))
