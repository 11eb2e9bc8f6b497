"""GELU (exact erf form), softplus (β = 1) and erf, each defined in one module of
``unfold.symbolic.primitives``: lowering against torch's own functions (and 50-digit mpmath where
torch itself is not exact), generated gradients against ``torch.func.grad`` of energies written
in plain torch, at random points and where stability matters, in float64; parser name; display;
the two-leg gradient check."""

from __future__ import annotations

from typing import Any, Callable

import mpmath
import pytest
import torch
import torch.nn.functional as F

import unfold as uf
from unfold.parse import parse_energy_spec

TORCH_REFS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": lambda x: F.gelu(x),  # approximate="none": the exact erf form
    "softplus": lambda x: F.softplus(x),
    "erf": torch.erf,
}
NAMES = list(TORCH_REFS)


def _energy(name: str) -> tuple[uf.Energy, Any, Any]:
    """``E(X) = Σ C ∘ f(W X)`` (``C`` weights every entry, so the gradient is not just ``f'`` summed)."""
    d, n = uf.dims("d n")
    X, W, C = uf.state("X", d, n), uf.param("W", d, d), uf.param("C", d, n)
    f = getattr(uf, name)
    return uf.Energy(terms={"act": uf.sum_entries(uf.hadamard(C, f(W @ X)))}), X, W


def _points(seed: int, scale: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = scale * torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
    return {"X": X, "W": torch.eye(4, dtype=torch.float64), "C": torch.randn(4, 5, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_energy_and_gradient_match_torch(name: str, scale: float) -> None:
    E, X, W = _energy(name)
    cm = E.compile()
    inp = _points(7, scale)
    inp["W"] = inp["W"] + 0.3 * torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref_f = TORCH_REFS[name]

    def ref_energy(Xv: torch.Tensor, Wv: torch.Tensor) -> torch.Tensor:
        return (inp["C"] * ref_f(Wv @ Xv)).sum(dim=(-2, -1))

    def ref_total(Xv: torch.Tensor, Wv: torch.Tensor) -> torch.Tensor:
        return ref_energy(Xv, Wv).sum()  # batch entries are independent: ∂/∂X per entry, ∂/∂W summed

    args = cm.args(**inp)
    assert torch.allclose(cm.energy_fn(*args), ref_energy(inp["X"], inp["W"]), rtol=1e-13, atol=1e-13)
    gx, gw = torch.func.grad(ref_total, argnums=(0, 1))(inp["X"], inp["W"])
    assert torch.allclose(cm.grad_fn(X)(*args), gx, rtol=1e-12, atol=1e-12)
    assert torch.allclose(cm.grad_fn(W)(*args), gw, rtol=1e-12, atol=1e-12)


def _mp_softplus(x: float) -> float:
    with mpmath.workdps(50):
        return float(mpmath.log1p(mpmath.exp(mpmath.mpf(x))))


def _mp_sigmoid(x: float) -> float:
    with mpmath.workdps(50):
        return float(1 / (1 + mpmath.exp(-mpmath.mpf(x))))


EXTREMES = [-800.0, -60.0, -30.0, -19.5, -1e-3, 0.0, 1e-3, 19.5, 20.5, 30.0, 60.0, 800.0]


def test_softplus_is_exact_at_large_magnitudes() -> None:
    """Where ``log(1 + exp x)`` overflows (x > 709) or ``F.softplus`` switches to ``x`` (x > 20), the
    generated energy and gradient still equal the 50-digit values to float64 rounding, never NaN."""
    d, n = uf.dims("d n")
    X = uf.state("X", d, n)
    E = uf.Energy(uf.sum_entries(uf.softplus(X)))
    cm = E.compile()
    x = torch.tensor(EXTREMES, dtype=torch.float64).reshape(1, -1)
    per_entry = torch.stack([cm(X=x[:, i:i + 1]) for i in range(x.shape[1])])
    grad = cm.grad_fn(X)(x)
    assert torch.isfinite(per_entry).all() and torch.isfinite(grad).all()
    for i, v in enumerate(EXTREMES):
        assert abs(float(per_entry[i]) - _mp_softplus(v)) <= 4e-16 * max(1.0, abs(_mp_softplus(v)))
        assert abs(float(grad[0, i]) - _mp_sigmoid(v)) <= 4e-16
    # torch.func.grad of F.softplus agrees below its switch to x at 20 (above it, it returns 1,
    # off by exp(−x): 1.25e-9 at 20.5, where the generated gradient matches the 50-digit value)
    ref = torch.func.grad(lambda t: F.softplus(t).sum())(x)
    below = x.abs() < 20
    assert torch.allclose(grad[below], ref[below], rtol=0, atol=2e-16)


def test_gelu_and_erf_at_large_magnitudes() -> None:
    """Saturated tails: gelu(x) → x and gelu'(x) → 1 for x ≫ 0, both → 0 for x ≪ 0; erf → ±1 with
    erf' → 0; no NaN from ``x·exp(−x²/2)`` (it underflows to 0)."""
    d, n = uf.dims("d n")
    X = uf.state("X", d, n)
    x = torch.tensor([-1e4, -40.0, -8.0, 8.0, 40.0, 1e4], dtype=torch.float64).reshape(1, -1)
    for name in ("gelu", "erf"):
        cm = uf.Energy(uf.sum_entries(getattr(uf, name)(X))).compile()
        g = cm.grad_fn(X)(x)
        ref = torch.func.grad(lambda t: TORCH_REFS[name](t).sum())(x)
        assert torch.isfinite(g).all()
        assert torch.allclose(g, ref, rtol=1e-13, atol=1e-15), name


@pytest.mark.parametrize("name", NAMES)
def test_parser_reads_the_name(name: str) -> None:
    E = parse_energy_spec(f"sum_entries(hadamard(C, {name}(W @ X)))", "d n", ["X:d,n"], ["W:d,d", "C:d,n"])
    built, _, _ = _energy(name)
    assert E.expr == built.expr


@pytest.mark.parametrize("name", NAMES)
def test_display(name: str) -> None:
    d, n = uf.dims("d n")
    Y = uf.state("Y", d, n)
    f = getattr(uf, name)
    assert uf.to_str(f(Y)) == f"{name}(Y)"
    assert uf.to_latex(f(Y)) == r"\operatorname{" + name + r"}\left(Y\right)"
    s = uf.scalar("s")
    assert uf.to_str(f(s)) == f"{name}(s)"


@pytest.mark.parametrize("name", NAMES)
def test_two_leg_check(name: str) -> None:
    E, _, _ = _energy(name)
    assert uf.check_gradient(E).passed


def test_scalar_argument_and_numbers() -> None:
    """On a scalar the function is the ordinary one; on a number it is its value (the definition)."""
    s = uf.scalar("s")
    d, n = uf.dims("d n")
    X = uf.state("X", d, n)
    E = uf.Energy(uf.softplus(s) * uf.fro2(X) / 2 + uf.gelu(s) + uf.erf(s))
    cm = E.compile()
    sv = torch.tensor(0.7, dtype=torch.float64)
    xv = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = F.softplus(sv) * (xv ** 2).sum() / 2 + F.gelu(sv) + torch.erf(sv)
    assert torch.allclose(cm(X=xv, s=sv), ref, rtol=1e-14)
    assert float(uf.softplus(2)) == pytest.approx(_mp_softplus(2.0), rel=1e-15)
    assert uf.check_gradient(E).passed
