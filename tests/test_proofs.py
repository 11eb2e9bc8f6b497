"""Every module ``proofs/proof_<entry>.py`` defines ``prove()``, which raises AssertionError unless its
symbolic proofs hold and returns ``{key: how}``; the keys are exactly the statements the catalogue
entry ``<entry>`` declares in ``Entry.proofs`` (with their scope), and every proof backs a real check."""

from __future__ import annotations

import importlib
import pathlib

import pytest
import sympy as sp
from sympy.matrices.expressions import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix

from unfold.catalogue import PROOF_SCOPES, Proof, entries, get_entry, strongest_scope
from unfold.errors import InputError

PROOFS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / "proofs").glob("proof_*.py"))


@pytest.mark.parametrize("name", PROOFS)
def test_proof_establishes_the_entry_statements(name: str) -> None:
    mod = importlib.import_module(f"proofs.{name}")
    proven = mod.prove()
    entry = get_entry(name.removeprefix("proof_"))
    assert set(proven) == {p.key for p in entry.proofs}, (sorted(proven), [p.key for p in entry.proofs])


def test_every_entry_statement_backs_its_checks() -> None:
    for e in entries():
        checks = {c.name for c in e.checks}
        for p in e.proofs:
            assert p.scope in PROOF_SCOPES
            assert set(p.backs) <= checks, (e.name, p.key, p.backs)
        if e.proofs:
            assert (pathlib.Path(__file__).parent.parent / "proofs" / f"proof_{e.name}.py").exists(), e.name


def test_proof_scope_is_validated_and_ranked() -> None:
    with pytest.raises(InputError, match="scope"):
        Proof("k", "a statement", "proved", "by assertion")  # type: ignore[arg-type]
    weak = Proof("a", "s", "numeric", "m")
    strong = Proof("b", "s", "general", "m")
    assert strongest_scope([weak, strong]) == "general"
    assert strongest_scope([weak]) == "numeric"
    assert strongest_scope([]) is None


def test_symbolic_zero_rejects_a_false_block_identity() -> None:
    """The helpers the general proofs rely on say "not equal" for a wrong identity: the looped
    transformer's one-loop identity with A instead of Aᵀ (A general)."""
    from proofs._common import blocks_equal, symbolic_zero

    d, n = sp.symbols("d n", integer=True, positive=True)
    X, y, w = MatrixSymbol("X", d, n), MatrixSymbol("y", n, 1), MatrixSymbol("w", d, 1)
    xq, A = MatrixSymbol("x_q", d, 1), MatrixSymbol("A", d, d)

    def Z(v):  # type: ignore[no-untyped-def]
        return BlockMatrix([[X, xq], [(y - X.T * v).T, -xq.T * v]])

    P = BlockMatrix([[ZeroMatrix(d, d), ZeroMatrix(d, 1)], [ZeroMatrix(1, d), Identity(1)]])
    M = BlockMatrix([[Identity(n), ZeroMatrix(n, 1)], [ZeroMatrix(1, n), ZeroMatrix(1, 1)]])
    Q = BlockMatrix([[A, ZeroMatrix(d, 1)], [ZeroMatrix(1, d), ZeroMatrix(1, 1)]])
    loop = Z(w) - (P * Z(w) * M * Z(w).T * Q * Z(w)) / n
    grad = X * (X.T * w - y) / n
    assert blocks_equal(loop, Z(w - A.T * grad))
    assert not blocks_equal(loop, Z(w - A * grad))
    assert not symbolic_zero(xq.T * A * w - w.T * A * xq)  # a 1×1 product and its transpose differ for A ≠ Aᵀ
    assert symbolic_zero(xq.T * A * w - w.T * A.T * xq)


def test_scopes_are_shown_by_list_verify_and_report(capsys: pytest.CaptureFixture[str]) -> None:
    from unfold.catalogue import RunConfig, run_entry
    from unfold.cli import main
    from unfold.report.table import format_table

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    looped = get_entry("looped")
    for p in looped.proofs:
        assert f"[{p.scope}] {p.statement[:40]}" in out.replace("\n" + " " * 17, " ")
    rep = run_entry(get_entry("icl_gd"), RunConfig(quick=True), only=["lsa_equals_gd_step_w0_zero", "gd_step_descends_L"])
    by = {r.check: r for r in rep.results}
    assert by["lsa_equals_gd_step_w0_zero"].proof == "general"
    assert by["gd_step_descends_L"].proof == "general"
    golden = run_entry(get_entry("causal_attention"), RunConfig(quick=True), only=["query_side_is_causal_attention"])
    assert golden.results[0].proof == "engine-golden"  # its backing statements compare the engine's output
    table = format_table(rep.results).splitlines()
    assert table[0].split()[3] == "proof" and "general" in table[2].split()


def test_main_prints_one_line_per_proved_statement(capsys) -> None:
    from proofs._common import main

    main(lambda: {"a": "how a", "b": "how b"})
    assert capsys.readouterr().out.splitlines() == ["PROVED a  [how a]", "PROVED b  [how b]"]

    def fails() -> dict[str, str]:
        raise AssertionError("step 2 does not hold")

    with pytest.raises(AssertionError, match="step 2"):
        main(fails)


@pytest.mark.parametrize("name", PROOFS)
def test_running_a_proof_module_goes_through_main(name: str, monkeypatch) -> None:
    """``python -m proofs.<name>`` hands its ``prove`` to the one printer (recorded here, not run).
    As under ``-m``, the module is not imported yet when it runs: an earlier test's import is taken
    out of ``sys.modules`` for the run (else runpy warns that it executes a module already imported)."""
    import runpy
    import sys

    import proofs._common

    called: list[object] = []
    monkeypatch.setattr(proofs._common, "main", called.append)
    monkeypatch.delitem(sys.modules, f"proofs.{name}", raising=False)
    ns = runpy.run_module(f"proofs.{name}", run_name="__main__")
    assert called == [ns["prove"]]
