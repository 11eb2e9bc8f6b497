"""Numerics of the generated code: stability at large β, log-determinants, float32 accuracy, and
determinism of the catalogue checks.

References are independent of the generated code: mpmath at 50 digits for log-sum-exp/softmax,
Cholesky (not the LU ``slogdet`` the generated code uses) for log-determinants, and the float64 run
of the same function for float32 accuracy.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

import unfold as uf
from unfold.energies import BUILTIN_ENERGIES, builtin_energy
from unfold.sampling import explicit_sizes, random_inputs

f64, f32 = torch.float64, torch.float32


def _mp_lse_softmax(z: list[float]) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
    with mpmath.workdps(50):
        zs = [mpmath.mpf(v) for v in z]
        m = max(zs)
        s = mpmath.fsum(mpmath.exp(v - m) for v in zs)
        return m + mpmath.log(s), [mpmath.exp(v - m) / s for v in zs]


@pytest.fixture(scope="module")
def hopfield_large_beta():
    E = builtin_energy("hopfield")  # −lse(β Xᵀξ)/β + ½‖ξ‖²
    g = torch.Generator().manual_seed(3)
    X = torch.randn(8, 16, generator=g, dtype=f64)
    xi = torch.randn(4, 8, 1, generator=g, dtype=f64)
    return E, X, xi, 1e3


def _reference(X: torch.Tensor, xi: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy and gradient ξ − X softmax(β Xᵀξ) per batch element, from 50-digit mpmath."""
    energies, grads = [], []
    for b in range(xi.shape[0]):
        z = (beta * X.T @ xi[b])[:, 0].tolist()
        lse, p = _mp_lse_softmax(z)
        with mpmath.workdps(50):
            e = -lse / beta + mpmath.fsum(mpmath.mpf(v) ** 2 for v in xi[b, :, 0].tolist()) / 2
            sm = torch.tensor([float(v) for v in p], dtype=f64)
        energies.append(float(e))
        grads.append(xi[b] - X @ sm[:, None])
    return torch.tensor(energies, dtype=f64), torch.stack(grads)


def test_logsumexp_and_softmax_stable_at_beta_1e3(hopfield_large_beta) -> None:
    E, X, xi, beta = hopfield_large_beta
    assert torch.isinf(torch.exp(beta * X.T @ xi)).any()  # the naive formula overflows here
    cm = E.compile()
    args = cm.args(X=X, xi=xi, beta=beta)
    e_ref, g_ref = _reference(X, xi, beta)
    e, g = cm.energy_fn(*args), cm.grad_fn("xi")(*args)
    assert torch.isfinite(e).all() and torch.isfinite(g).all()
    assert float(((e - e_ref).abs() / e_ref.abs().clamp(min=1)).max()) < 1e-12
    assert float((g - g_ref).abs().max()) < 1e-12


def test_beta_1e3_in_float32(hopfield_large_beta) -> None:
    E, X, xi, beta = hopfield_large_beta
    cm = E.compile()
    e_ref, g_ref = _reference(X, xi, beta)
    args = cm.args(X=X.float(), xi=xi.float(), beta=beta)
    e, g = cm.energy_fn(*args), cm.grad_fn("xi")(*args)
    assert e.dtype == f32 and g.dtype == f32
    assert float(((e.double() - e_ref).abs() / e_ref.abs().clamp(min=1)).max()) < 1e-5
    # measured: energy 3.6e-7 relative, gradient 1.4e-7 absolute (the weights are nearly one-hot at
    # this β; near-tied logits would move them by ~β·ε₃₂·|z|)
    assert torch.isfinite(g).all() and float((g.double() - g_ref).abs().max()) < 1e-5


def test_row_softmax_and_update_rule_stable_at_beta_1e3() -> None:
    """Tokens as rows (``axis=1``): the generated Hopfield update ``softmax(β Ξ Xᵀ) X`` at β = 1e3."""
    from unfold.steps import GradientStep

    E = builtin_energy("hopfield_rows")
    g = torch.Generator().manual_seed(5)
    X, Xi = torch.randn(16, 8, generator=g, dtype=f64), torch.randn(2, 5, 8, generator=g, dtype=f64)
    step = GradientStep(E, wrt="Xi", step=1.0)
    out = step(Xi, X=X, beta=1e3)
    ref = torch.empty_like(Xi)
    for b in range(2):
        for i in range(5):
            _, p = _mp_lse_softmax((1e3 * X @ Xi[b, i]).tolist())
            ref[b, i] = torch.tensor([float(v) for v in p], dtype=f64) @ X
    assert float((out - ref).abs().max()) < 1e-12


def _spd(n: int, cond: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=f64))
    return Q @ torch.diag(torch.logspace(0, math.log10(cond), n, dtype=f64)) @ Q.T


@pytest.mark.parametrize("cond", [1.0e1, 1.0e6, 1.0e10])
def test_logdet_matches_cholesky_reference(cond: float) -> None:
    n, = uf.dims("n")
    S, Z = uf.param("S", n, n), uf.state("Z", n, 1)
    E = uf.Energy(uf.logdet(S) + uf.fro2(Z))
    cm = E.compile()
    M = _spd(6, cond, 1)
    args = cm.args(S=M, Z=torch.zeros(1, 6, 1, dtype=f64))
    L = torch.linalg.cholesky(M)
    ref = 2 * torch.log(torch.diagonal(L)).sum()
    got = cm.energy_fn(*args)[0]
    # both legs compute log det of the same rounded matrix; they may differ by the first-order
    # perturbation bound tr(S⁻¹ δS) ≤ n·cond·ε (measured: 1e-15 at cond 10, 6e-8 at cond 1e10)
    eps = torch.finfo(f64).eps
    assert abs(float(got - ref)) <= 6 * cond * eps * max(1.0, abs(float(ref)))
    # ∂ log det S / ∂S = S⁻ᵀ, reference from the Cholesky factor (cholesky_inverse)
    G_ref = torch.cholesky_inverse(L)
    G = cm.grad_fn("S")(*args)
    assert float((G - G_ref).abs().max()) <= 1e-15 * cond * float(G_ref.abs().max()) * 10


def test_logdet_outside_domain_is_never_a_finite_number_under_vmap() -> None:
    """On concrete tensors det ≤ 0 raises InputError (tests/test_malformed.py); under vmap (no data-
    dependent raise possible) the value is NaN, never a finite wrong number."""
    n, = uf.dims("n")
    S, Z = uf.param("S", n, n), uf.state("Z", n, 1)
    cm = uf.Energy(uf.logdet(S) + uf.fro2(Z)).compile()
    mats = torch.stack([_spd(3, 10.0, 2), torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=f64))])
    out = torch.func.vmap(lambda s: cm.energy_fn.fn(torch.zeros(3, 1, dtype=f64), s))(mats)
    assert torch.isfinite(out[0]) and torch.isnan(out[1])
    with pytest.raises(uf.InputError, match="positive determinant"):
        cm.energy_fn(torch.zeros(2, 3, 1, dtype=f64), mats)


#: Measured float32 accuracy of the generated gradient of every built-in energy (max error scaled by
#: max(1, |float64 value|), at the random check point). See docs/numerics.md.
FLOAT32_GRAD_TOL = 2e-5  # measured worst: 2.3e-6 (pairwise_gaussian)


@pytest.mark.parametrize("name", sorted(BUILTIN_ENERGIES))
def test_builtin_gradients_in_float32(name: str) -> None:
    E = builtin_energy(name)
    cm = E.compile()
    sizes = {d: s + 1 for d, s in explicit_sizes(E.dims).items()}
    inp = random_inputs(E, sizes, batch=(2,), seed=0)
    a64 = cm.args(**inp)
    a32 = cm.args(**{k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in inp.items()})
    for v in E.states:
        g64, g32 = cm.grad_fn(v)(*a64), cm.grad_fn(v)(*a32)
        assert g32.dtype == f32
        err = float((g32.double() - g64).abs().max()) / max(1.0, float(g64.abs().max()))
        assert err < FLOAT32_GRAD_TOL, f"{name}: float32 gradient error {err:.2e}"


def test_same_seed_same_catalogue_results() -> None:
    """Determinism: the same seed gives identical check results (and results.json); another seed does not."""
    from unfold.catalogue.base import RunConfig
    from unfold.catalogue import entries as load_entries, run_checks, select
    from unfold.report.results import results_json

    chosen = select(load_entries(), ["hopfield"])

    def run(seed: int) -> dict:
        s = run_checks(chosen, RunConfig(seed=seed, quick=True), None, jobs=1)
        return results_json(s)

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c
