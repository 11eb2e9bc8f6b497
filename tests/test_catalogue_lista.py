"""The LISTA / ISTA catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

# small float64 tensors: one thread is ~10–30× faster than two on the shared 2-core machine
torch.set_num_threads(1)

from unfold.catalogue import _lista_refs as ref
from unfold.catalogue import lista
from unfold.catalogue import RunConfig
from unfold.verify.descent import check_descent


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(lista.ENTRY)


def _result(report, name):
    return next(r for r in report.results if r.check == name)


def test_every_check_passes(report):
    assert {r.check for r in report.results} == {
        "unrolled_equals_ista", "lasso_non_increasing", "limit_matches_lasso_solver", "learned_lista_beats_ista"}
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert all(a.holds for a in r.assumptions)


def test_exact_and_limit_numbers(report):
    assert _result(report, "unrolled_equals_ista").error < 1e-13
    lim = _result(report, "limit_matches_lasso_solver")
    assert lim.error < 1e-10
    assert max(lim.data["kkt_ista"]) < 1e-10 and max(lim.data["kkt_scipy"]) < 1e-10
    E = _result(report, "lasso_non_increasing").data["energies"]
    assert all(b <= a for a, b in zip(E, E[1:])) and E[-1] < E[0]


def test_learned_lista_numbers(report):
    d = _result(report, "learned_lista_beats_ista").data
    K = d["depth"]
    assert d["lista_nmse"][-1] < d["ista_nmse"][K]  # better than ISTA at the same depth
    assert d["ista_iterations_to_match"] is not None and d["ista_iterations_to_match"] >= 4 * K
    assert d["losses"][-1] < 0.5 * d["losses"][0]
    # LISTA's layer 0 output is the start z = 0, as ISTA's
    assert d["lista_nmse"][0] == pytest.approx(d["ista_nmse"][0], rel=0, abs=0)


def test_untrained_lista_is_ista():
    P = lista.sample_problem(RunConfig(seed=4), batch=5)
    A, x, L = P["A"], P["x"], P["L"]
    model = lista.lista_model(A, L, depth=6)
    with torch.no_grad():
        out = model(torch.zeros(5, A.shape[1], 1, dtype=A.dtype), x=x)
    assert torch.allclose(out, ref.ista(x, A, lista.LAM, L, 6)[-1], rtol=0, atol=1e-13)


def test_step_beyond_bound_breaks_descent():
    P = lista.sample_problem(RunConfig(seed=0), batch=8)
    A, x, L = P["A"], P["x"], P["L"]
    model = lista.ista_model(L / 2.5, depth=30)  # step 2.5/L > 2/L
    res = check_descent(model, torch.zeros(8, A.shape[1], 1, dtype=A.dtype), A=A, x=x)
    assert not res.passed
    assert not lista._step_bound(A, L / 2.5).holds


def test_training_is_deterministic():
    a = lista.compare_lista_ista(RunConfig(seed=1), depth=3, steps=5, max_ista=50)
    b = lista.compare_lista_ista(RunConfig(seed=1), depth=3, steps=5, max_ista=50)
    assert a["lista_nmse"] == b["lista_nmse"] and a["losses"] == b["losses"]
