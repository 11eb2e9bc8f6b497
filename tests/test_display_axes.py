"""The display of softmax and log-sum-exp names the axis they normalise along.

A column-wise and a row-wise softmax of the same matrix must read differently (text and LaTeX),
both must show the scores (and mask) as the user wrote them, and a vector, where the two agree,
carries no axis.  LaTeX is checked by matplotlib's mathtext parser (it rejects malformed input).
"""

from __future__ import annotations

import pytest
from matplotlib.mathtext import MathTextParser

import unfold as uf


@pytest.fixture(scope="module")
def syms():
    d, n = uf.dims("d n")
    return {"A": uf.state("A", n, n), "Y": uf.state("Y", d, n), "v": uf.state("v", n, 1),
            "pad": uf.mask("pad", 1, n)}


def _parses(tex: str) -> bool:
    MathTextParser("path").parse("$" + tex + "$")  # raises ValueError on malformed LaTeX
    return True


@pytest.mark.parametrize("fn", [lambda M, ax, **k: uf.softmax(M, axis=ax, **k),
                                lambda M, ax, **k: uf.lse_rows(M, **k) if ax else uf.lse_cols(M, **k)],
                         ids=["softmax", "lse"])
def test_row_and_column_forms_display_differently(syms, fn) -> None:
    A = syms["A"]
    col, row = fn(A, 0), fn(A, 1)
    assert uf.to_str(col) != uf.to_str(row) and uf.to_latex(col) != uf.to_latex(row)
    assert "cols" in uf.to_str(col) and "rows" not in uf.to_str(col)
    assert "rows" in uf.to_str(row) and "cols" not in uf.to_str(row)
    assert r"\text{cols}" in uf.to_latex(col) and r"\text{rows}" in uf.to_latex(row)
    for e in (col, row):  # the scores as written: the row form is not shown as a transpose
        assert "A.T" not in uf.to_str(e) and "^{T}" not in uf.to_latex(e)
        assert _parses(uf.to_latex(e))


def test_a_mask_is_shown_as_written(syms) -> None:
    A, pad = syms["A"], syms["pad"]
    for ax in (0, 1):
        for m, shown in ((uf.causal, "causal"), (pad, "pad")):
            e = uf.softmax(A, axis=ax, mask=m)
            text, tex = uf.to_str(e), uf.to_latex(e)
            assert shown in text and "pad.T" not in text and "^{T}" not in tex
            assert _parses(tex)
    assert uf.to_str(uf.softmax(A, axis=0, mask=pad)) != uf.to_str(uf.softmax(A, axis=1, mask=pad))


def test_a_vector_has_no_axis(syms) -> None:
    v = syms["v"]
    for e in (uf.softmax(v), uf.softmax(v.T, axis=1), uf.lse_cols(v), uf.lse_rows(v.T)):
        assert "cols" not in uf.to_str(e) and "rows" not in uf.to_str(e) and r"\text" not in uf.to_latex(e)
        assert _parses(uf.to_latex(e))


def test_a_derived_gradient_names_the_axis_it_came_from(syms) -> None:
    """``∂/∂A Σᵢ lse(A_{i,:}) = softmax_rows(A)``: the engine builds it as a transposed column
    softmax of ``Aᵀ``; the display reads it back as the row form.  ``Σ_j lse(A_{:,j})`` gives the
    column form; for the symmetric scores ``YᵀY`` both forms occur."""
    A, Y = syms["A"], syms["Y"]
    rows = uf.to_str(uf.Energy(uf.lse(A, axis=1)).grad(A))
    cols = uf.to_str(uf.Energy(uf.lse(A, axis=0)).grad(A))
    assert "Softmax_rows(A)" in rows and "cols" not in rows
    assert "Softmax_cols(A)" in cols and "rows" not in cols
    both = uf.Energy(uf.lse(Y.T @ Y, axis=1)).grad(Y)
    assert "Softmax_rows(Y.T*Y)" in uf.to_str(both) and "Softmax_cols(Y.T*Y)" in uf.to_str(both)
    assert _parses(uf.to_latex(both))
