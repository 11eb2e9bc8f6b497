"""Display of float constants and of elementwise functions without a registered name."""

import random

import sympy as sp

import unfold as uf
from unfold.steps import NonNegL1, ProximalGradientStep
from unfold.steps.policies import exact_number
from unfold.symbolic.display import DISPLAY_RTOL


def _coefficient_text(text: str) -> str:
    return text.split("*")[0]


def test_a_float_step_prints_its_shortest_round_trip_decimal() -> None:
    X = sp.MatrixSymbol("X", 3, 3)
    assert uf.to_str(exact_number(0.1) * X) == "0.1*X"
    assert uf.to_latex(exact_number(0.1) * X) == "0.1 X"
    rng = random.Random(0)
    for _ in range(200):
        v = rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12)
        text = _coefficient_text(uf.to_str(exact_number(v) * X))
        assert float(text) == v, (v, text)  # round-trips to the float64 the generated code uses
        assert len(text) <= len(repr(v)) + 1  # no spurious digits (the sign may be printed apart)
        typed = float(f"{v:.{rng.randint(1, 12)}g}")  # a constant as a user types it
        assert float(_coefficient_text(uf.to_str(exact_number(typed) * X))) == typed


def _significant_digits(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


def test_float_noise_of_derived_constants_is_not_displayed() -> None:
    """``0.1*0.1`` is the float64 ``0.010000000000000002``; it displays as ``0.01``, within the
    stated relative DISPLAY_RTOL of the value the code uses (which keeps every bit)."""
    X = sp.MatrixSymbol("X", 3, 3)
    assert _coefficient_text(uf.to_str(exact_number(0.1 * 0.1) * X)) == "0.01"
    assert uf.to_latex(exact_number(0.1 * 0.1) * X) == "0.01 X"
    rng = random.Random(1)
    for _ in range(200):  # products and sums of short user constants
        a, b = (round(rng.uniform(0.01, 10), rng.randint(1, 4)) for _ in range(2))
        for v in (a * b, a + b, a * b * a, a / 10):
            text = _coefficient_text(uf.to_str(sp.Float(v, 17) * X))  # as a step policy stores it
            assert abs(float(text) - v) <= DISPLAY_RTOL * abs(v), (v, text)
            assert _significant_digits(text) <= _significant_digits(repr(v))
    assert float(exact_number(0.1 * 0.1)) == 0.1 * 0.1  # the value kept for the code: every bit
    d, n = uf.dims("d n")
    Z, Zh = uf.state("Z", d, n), uf.param("Zh", d, n)
    step = ProximalGradientStep(uf.Energy(uf.fro2(Z - Zh) / 2), NonNegL1(0.1), step=0.1, wrt="Z")
    assert repr(0.1 * 0.1) in step.torch_source() and "0.01*1)" in uf.to_str(step.update_rule())


def test_latex_writes_the_exponent_as_a_power_of_ten() -> None:
    X = sp.MatrixSymbol("X", 2, 2)
    assert uf.to_latex(exact_number(1e-5) * X) == r"1 \cdot 10^{-5} X"
    assert uf.to_latex(exact_number(2.5e-20) * X) == r"2.5 \cdot 10^{-20} X"


def test_a_high_precision_constant_keeps_its_digits() -> None:
    x = sp.Symbol("x")
    c = sp.Float("0.1000000000000000000001", 30)
    assert "0.1000000000000000000001" in uf.to_str(c * x)
    assert "0.1000000000000000000001" in uf.to_latex(c * x)


def test_the_nonnegative_prox_shows_as_a_shifted_relu() -> None:
    """``u ↦ max(0, u − ηλ)`` (η = 0.25, λ = 0.5) is ``relu(M − 0.125·1)`` (the map is unnamed; its
    matrix form is tested against the explicit expansion in test_display_elementwise)."""
    d, n = uf.dims("d n")
    Z, Zh = uf.state("Z", d, n), uf.param("Zh", d, n)
    step = ProximalGradientStep(uf.Energy(uf.fro2(Z - Zh) / 2), NonNegL1(0.5), step=0.25, wrt="Z")
    text = uf.to_latex(step.update_rule())
    assert text.startswith(r"\operatorname{relu}\left(") and text.endswith(r" - 0.125 \mathbf{1}\right)")
    assert r"\operatorname{f}" not in text
    plain = uf.to_str(step.update_rule())
    assert plain.startswith("relu(") and plain.endswith(" - 0.125*1)")


def test_entmax_latex_shows_its_alpha() -> None:
    d, n = uf.dims("d n")
    A = uf.state("A", d, n)
    assert uf.to_latex(uf.entmax(A, 1.5)).startswith(r"\operatorname{entmax}_{\frac{3}{2}}\left(")
    assert uf.to_latex(uf.sparsemax(A)).startswith(r"\operatorname{entmax}_{2}\left(")
    assert r"\operatorname{lse}_{2}\left(" in uf.to_latex(uf.entmax_lse(A, 2))
