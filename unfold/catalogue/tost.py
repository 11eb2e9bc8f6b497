"""ToST: token statistics self-attention (Wu et al., arXiv 2412.17810) as a gradient step.

Energy (column layout, ``Z ∈ R^{d×N}``, ``K`` heads ``U_k ∈ R^{d×p}``, memberships ``π_k ∈ R^N`` held
fixed, ``N_k = 1ᵀπ_k``, ``f(x) = log(1 + c x)`` applied entrywise; the inputs are the log-memberships
``lpi_k = log π_k``, so that the energy is defined at every input, as its gradient check needs)::

    R^var(Z | Π, U) = ½ Σ_k (N_k/N) Σ_i f(m_{k,i}),    m_k = (U_kᵀZ)^{⊙2} π_k / N_k

Generated layer: :class:`~unfold.steps.GradientStep` on ``R^var`` in ``Z`` with step ``τ``::

    Z⁺ = Z − τ ∇R^var = Z − (τ/N) Σ_k U_k D_k U_kᵀ Z Diag(π_k),    D_k = Diag(c/(1 + c m_k))

which is the paper's TSSA update (exact, with Π and U frozen).  It lowers ``R^var`` only for a small
step.  No bound is stated in the text the reference notes read; one follows from the curvature: for
concave nondecreasing ``f`` the Hessian of ``R^var`` in ``Z`` is at most
``L = f'(0)·max_jk π_jk·‖Σ_k U_k U_kᵀ‖₂ / N`` (``= c/N`` at most for ``f = log(1 + cx)`` and mutually
orthonormal ``U_k``), so every ``τ < 2/L`` descends, by at least ``τ(1 − Lτ/2)‖∇R^var‖²`` (proved; the
sweep also shows where descent stops).  Π is
recomputed from ``Z`` in the architecture (``Π_jk = softmax_k(‖U_kᵀz_j‖²/(2η))``), and that
dependence is not part of the step: the layer is not the gradient of ``R^var(Z, Π(Z))`` (measured).
The released layer (``AttentionTSSA``) replaces ``U_k`` in the output by a free linear map with bias
and computes its own Π; it equals the paper's step only with the output tied to ``(τ/N)W_qkvᵀ`` and
zero biases (up to its ``1e-8`` in a denominator).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import torch

from .. import symbolic as s
from ..steps import GradientStep
from ..symbolic import Energy
from . import _tost_refs as ref
from ._measure import scaled_error
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Control, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "TOL", "HEADS", "energy", "tssa_step", "sample", "inputs_of", "curvature_bound"]

NAME = "tost"
TOL = 1e-12
HEADS = 3
C = 1.0          # f(x) = log(1 + c x); the released code has c = 1 (the paper's d/ε² absorbed elsewhere)
TAU = 1.0
SWEEP = (0.1, 1.0, 5.0, 20.0, 50.0, 200.0)


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``R^var = ½ Σ_k (N_k/N) Σ_i log(1 + c·m_{k,i})`` with ``K = HEADS`` heads, Π fixed."""
    d, N, p = s.dims("d N p")
    Z, c = s.state("Z", d, N), s.scalar("c", positive=True)
    terms = {}
    for k in range(1, HEADS + 1):
        U, pi = s.param(f"U{k}", d, p), s.exp(s.param(f"lpi{k}", N, 1))
        W = U.T * Z
        Nk = s.as_scalar(s.ones(1, N) * pi)
        m = s.hadamard(W, W) * pi / Nk
        terms[f"R{k}"] = Nk / N * s.sum_entries(s.log(s.ones(p, 1) + c * m)) / 2
    return Energy(terms=terms, name="R_var")


@lru_cache(maxsize=None)
def tssa_step(tau: float = TAU) -> GradientStep:
    """``Z⁺ = Z − τ∇R^var(Z | Π, U)``."""
    return GradientStep(energy(), wrt="Z", step=tau)


def sample(config: RunConfig, offset: int = 0, batch: int = 3, d: int = 6, N: int = 7) -> dict[str, torch.Tensor]:
    """Tokens ``Z``, orthonormal ``U`` (one QR split into K blocks of width p = d/K), Π from the paper's
    posterior ``softmax_k(‖U_kᵀz_j‖²/(2η))`` at η = 1 (then held fixed)."""
    g = config.generator(190 + offset)
    f64 = torch.float64
    Z = torch.randn(batch, d, N, generator=g, dtype=f64)
    Qm, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))
    U = Qm.reshape(d, HEADS, d // HEADS).permute(1, 0, 2).contiguous()     # (K, d, p)
    Pi = ref.memberships(Z, U, eta=1.0)
    return {"Z": Z.to(config.dtype), "U": U.to(config.dtype), "Pi": Pi.to(config.dtype)}


def inputs_of(U: torch.Tensor, Pi: torch.Tensor) -> dict[str, torch.Tensor]:
    """The energy's inputs ``U1.., lpi1..`` from ``U`` (K, d, p) and ``Π`` (…, N, K) (``lpi_k = log π_k``)."""
    out: dict[str, torch.Tensor] = {"c": torch.tensor(C, dtype=U.dtype)}
    for k in range(HEADS):
        out[f"U{k + 1}"] = U[k]
        out[f"lpi{k + 1}"] = torch.log(Pi[..., :, k:k + 1])
    return out


def _orthonormal(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    U = t["U"]
    B = torch.cat(list(U), dim=1)
    err = float((B.mT @ B - torch.eye(B.shape[1], dtype=U.dtype)).abs().max())
    return err <= 1e-6 if U.dtype != torch.float64 else err <= 1e-12, f"max|UᵀU − I| = {err:.1e}"


def _stochastic(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    Pi = t["Pi"]
    err = float((Pi.sum(-1) - 1).abs().max())
    return err <= config.tol(TOL) and bool((Pi >= 0).all()), f"max|Π1 − 1| = {err:.1e}"


ORTHONORMAL = Predicate("U_k orthonormal columns (R^var ≥ R_c; the step identity holds for any U)", _orthonormal)
STOCHASTIC = Predicate("Π row-stochastic (rows sum to 1 over heads)", _stochastic)


def _step_layer(t: Inputs) -> dict[str, torch.Tensor]:
    Zp = tssa_step()(t["Z"], **inputs_of(t["U"], t["Pi"]))
    return {"vs paper closed form": Zp, "vs Z − τ·autograd(R^var)": Zp,
            "energy vs plain-torch R^var": tssa_step().energy(t["Z"], **inputs_of(t["U"], t["Pi"]))}


def _step_reference(t: Inputs, Pi_closed: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    Z, U, Pi = t["Z"], t["U"], t["Pi"]
    Zr = Z.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(ref.rate_var(Zr, U, Pi, C).sum(), Zr)
    closed = Z + ref.tssa_closed_form(Z, U, Pi if Pi_closed is None else Pi_closed, C, TAU)
    return {"vs paper closed form": closed, "vs Z − τ·autograd(R^var)": Z - TAU * g,
            "energy vs plain-torch R^var": ref.rate_var(Z, U, Pi, C)}


STEP_CLAIM = Claim(
    name="tssa_is_gradient_step", kind="exact",
    description="Z − τ∇R^var (generated) = the paper's TSSA update, Π and U frozen",
    inputs=sample, layer=_step_layer, reference=_step_reference, tol64=TOL,
    assumptions=(STOCHASTIC, ORTHONORMAL),
    controls=(Control("uniform memberships in the closed form (Diag(π_k) dropped)",
                      reference=lambda t: _step_reference(t, torch.full_like(t["Pi"], 1.0 / HEADS))),),
    describe=lambda t: f"Z − τ∇R^var (generated, τ={TAU}, c={C}, K={HEADS}, d={t['Z'].shape[-2]}, N={t['Z'].shape[-1]})",
)


def curvature_bound(U: torch.Tensor, Pi: torch.Tensor, c: float = C) -> torch.Tensor:
    """``L = c·max_jk π_jk·‖Σ_k U_k U_kᵀ‖₂ / N`` per batch element: an upper bound on the Hessian of ``R^var``
    in ``Z`` for ``f = log(1 + c x)`` (``f' ≤ f'(0) = c``, ``f'' ≤ 0``); a step ``τ < 2/L`` descends."""
    B = torch.cat(list(U), dim=1)                                   # [U_1 … U_K]: Σ_k U_k U_kᵀ = B Bᵀ
    spread = torch.linalg.matrix_norm(B @ B.mT, ord=2)
    return c * Pi.amax(dim=(-2, -1)) * spread / Pi.shape[-2]


def check_descent_sweep(config: RunConfig) -> CheckResult:
    """``R^var(Z⁺) ≤ R^var(Z) − τ(1 − Lτ/2)‖∇R^var‖²`` for every τ (the descent lemma with the curvature bound
    ``L``): descent for ``τ < 2/L``; the sweep shows where descent stops in fact."""
    d = sample(config, 1)
    Z, U, Pi = d["Z"], d["U"], d["Pi"]
    ins = inputs_of(U, Pi)
    e0 = tssa_step().energy(Z, **ins)
    g2 = ((Z - tssa_step(1.0)(Z, **ins)) ** 2).sum(dim=(-2, -1))    # ‖∇R^var‖² per batch element
    L = curvature_bound(U, Pi)
    rows, slack = {}, {}
    for tau in SWEEP:
        step = tssa_step(tau)
        rows[tau] = (step.energy(step(Z, **ins), **ins) - e0)
        bound = -tau * (1 - L * tau / 2) * g2                          # descent lemma, every τ
        slack[tau] = float((rows[tau] - bound).max())                 # ≤ 0 (up to rounding)
    guaranteed = [t for t in SWEEP if t < float((2 / L).min())]
    worst_small = max(float(rows[t].max()) for t in guaranteed) if guaranteed else float("inf")
    first_up = next((t for t in SWEEP if float(rows[t].max()) > 0), None)
    scale = max(float(e0.abs().max()), 1.0)
    lemma_ok = max(slack.values()) <= 64 * config.eps * scale * len(SWEEP)
    ok = worst_small <= 0 and lemma_ok and bool(guaranteed)
    # normalised by τ‖∇R‖²: the descent lemma bounds every sequence's curve by −(1 − L_max τ/2), which crosses 0 at 2/L
    fig = Figure("tost_tau_sweep", "ToST: change of R^var after one TSSA step (Π, U frozen), per τ‖∇R^var‖²",
                 [float(t) for t in SWEEP],
                 {**{f"batch {b}": [float(rows[t][b] / (t * g2[b])) for t in SWEEP] for b in range(Z.shape[0])},
                  "descent-lemma bound −(1 − Lτ/2)": [float(-(1 - L.max() * t / 2)) for t in SWEEP]},
                 xlabel="step τ", ylabel="(R^var(Z⁺) − R^var(Z)) / (τ‖∇R^var‖²)")
    return CheckResult(
        NAME, "tssa_descends_for_small_step", "descent", ok, max(worst_small, 0.0), None,
        detail=(f"curvature bound L = c·max π·‖Σ_k U_kU_kᵀ‖/N ≤ {float(L.max()):.3f}, so every τ < 2/L = "
                f"{float((2 / L).min()):.1f} descends (proved): largest change for τ ∈ {guaranteed}: {worst_small:.3g}; "
                f"descent-lemma bound R(Z⁺) − R(Z) ≤ −τ(1 − Lτ/2)‖∇R‖² held at every τ of the sweep {list(SWEEP)} "
                f"(largest excess {max(slack.values()):.1e}); first τ where R^var rises: {first_up} "
                "(the paper's text gives no bound)"),
        assumptions=[STOCHASTIC.evaluate({"Pi": Pi}, config), ORTHONORMAL.evaluate({"U": U}, config)],
        data={"changes": {str(t): rows[t].tolist() for t in SWEEP}, "first_increase_tau": first_up,
              "curvature_bound": L.tolist(), "guaranteed_taus": guaranteed, "lemma_excess": slack}, figures=[fig])


def check_memberships_frozen(config: RunConfig) -> CheckResult:
    """The step freezes Π: it is not the gradient of R^var(Z, Π(Z)) (measured)."""
    d = sample(config, 2)
    Z, U = d["Z"], d["U"]
    Zr = Z.detach().requires_grad_(True)
    (g_total,) = torch.autograd.grad(ref.rate_var(Zr, U, ref.memberships(Zr, U, 1.0), C).sum(), Zr)
    Pi = ref.memberships(Z, U, 1.0)
    g_step = (Z - tssa_step()(Z, **inputs_of(U, Pi))) / TAU
    rel = float((g_total - g_step).norm() / g_step.norm())
    return CheckResult(
        NAME, "memberships_frozen", "approximate", rel > 1e-6, rel, None,
        detail=(f"‖∇_Z R^var(Z, Π(Z)) − ∇_Z R^var(Z | Π)‖/‖∇_Z R^var(Z | Π)‖ = {rel:.3f}: the TSSA step is a gradient step "
                "with Π frozen, not on the composite objective"),
        assumptions=[STOCHASTIC.evaluate({"Pi": Pi}, config)], data={"relative_difference": rel})


def _released(config: RunConfig, d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released layer on rows, three ways (same random weights): ``"tied"`` (to_out = (τ/N)W_qkvᵀ, no
    biases), ``"untied"`` (a free to_out, no biases), ``"released"`` (free to_out with bias, qkv bias); and
    the generated step's update with the code's Π (``"step, code's Π"``) and with the paper's
    ``Π_jk = softmax_k(‖U_kᵀz_j‖²/(2η))`` at η = 1 (``"step, paper's Π"``)."""
    Z, U = d["Z"], d["U"]
    dim, N = Z.shape[-2], Z.shape[-1]
    W_qkv = torch.cat([U[k].mT for k in range(HEADS)], dim=0)               # rows: U_1ᵀ; U_2ᵀ; …
    g = config.generator(199)
    draw = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).to(Z.dtype)  # noqa: E731
    temp = torch.rand(HEADS, generator=g, dtype=torch.float64).to(Z.dtype) + 0.5
    W_free, b_qkv, b_out = draw(dim, dim) / dim ** 0.5, 0.1 * draw(dim), 0.1 * draw(dim)
    x = Z.mT
    out = {"tied": ref.released_tssa(x, W_qkv, None, temp, (TAU / N) * W_qkv.mT, None, HEADS),
           "untied": ref.released_tssa(x, W_qkv, None, temp, W_free, None, HEADS),
           "released": ref.released_tssa(x, W_qkv, b_qkv, temp, W_free, b_out, HEADS)}
    w = (x @ W_qkv.mT).reshape(*x.shape[:-1], HEADS, dim // HEADS).transpose(-3, -2)
    Pi_code = ref.released_memberships(w, temp).transpose(-2, -1)                # (b, N, K)
    out["step, code's Π"] = (tssa_step()(Z, **inputs_of(U, Pi_code)) - Z).mT
    out["step, paper's Π"] = (tssa_step()(Z, **inputs_of(U, ref.memberships(Z, U, 1.0))) - Z).mT
    return out


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_released_layer(config: RunConfig) -> CheckResult:
    """AttentionTSSA against the paper's step, one difference at a time: its own Π, the untied output map,
    the biases."""
    d = sample(config, 3)
    y = _released(config, d)
    step = y["step, code's Π"]
    tied = scaled_error(y["tied"], step)
    gaps = {"own Π (code's Π vs paper's at η = 1, both tied)": _relative(step, y["step, paper's Π"]),
            "untied output map (no biases)": _relative(y["untied"], step),
            "as released (untied output map, qkv and output biases)": _relative(y["released"], step)}
    tol = config.tol(1e-6)
    ok = tied <= tol and min(gaps.values()) > 1e-2
    return CheckResult(
        NAME, "released_layer_vs_paper", "approximate", ok, tied, tol,
        detail=(f"re-implemented AttentionTSSA with to_out = (τ/N)W_qkvᵀ, zero biases, its own Π given to the generated "
                f"step: {tied:.1e} (the code's +1e-8 in the moment denominator), {config.dtype_name}; relative "
                "difference from the step, one change at a time: " + "; ".join(f"{k} {v:.2f}" for k, v in gaps.items())
                + " — the released layer is not a gradient step on R^var (LayerScale and the pre-LN not modelled)"),
        assumptions=[AssumptionResult("K·p = dim (heads tile the width)", d["U"].shape[0] * d["U"].shape[2] == d["Z"].shape[-2],
                                      f"K={HEADS}, p={d['U'].shape[2]}")],
        data={"tied_error": tied, "released_relative_difference": gaps["as released (untied output map, qkv and output biases)"],
              "own_memberships_relative_difference": gaps["own Π (code's Π vs paper's at η = 1, both tied)"],
              "untied_relative_difference": gaps["untied output map (no biases)"]})


PROOFS = (
    Proof("descent_step_bound", "along any direction, the second derivative of ½(N_k/N)f(Σ_j π_j(u_iᵀz_j)²/N_k) is "
          "(1/N)[f'(m)Σ_j π_j b_j² + (2/N_k) f''(m)(Σ_j π_j a_j b_j)²] ≤ (f'(0)/N) max_j π_j Σ_j b_j² for concave "
          "nondecreasing f (f = log(1 + cx): f' ≤ c, f'' ≤ 0); summed over heads, ∇²R^var ⪯ L·I with "
          "L = c·max π·‖Σ_k U_kU_kᵀ‖/N, so a step τ < 2/L descends (descent lemma)", "general",
          "second directional derivative with sympy Sum over a symbolic number of tokens; signs of f', f''",
          ("tssa_descends_for_small_step",)),
    Proof("gradient_general", "∇_Z R^var = (1/N)Σ_k U_k D_k U_kᵀ Z Diag(π_k) (Π and U frozen): the TSSA update "
          "Z − τ∇R^var is one gradient step", "general",
          "directional derivative with sympy Sum over a symbolic number of tokens, any f", ("tssa_is_gradient_step",)),
    Proof("engine_entrywise", "unfold's derived ∇R^var equals that closed form entry by entry", "fixed-size",
          "expanded at d = 2, N = 2, p = 1, three heads; cancel", ("tssa_is_gradient_step",)),
)

ENTRY = Entry(
    name=NAME,
    title="ToST: token statistics self-attention is a gradient step on variational rate reduction",
    source="Wu et al., Token Statistics Transformer, arXiv 2412.17810 (ICLR 2025); code RobinWu218/ToST",
    summary=("TSSA is exactly one gradient step on the variational compression term R^var with the memberships Π and "
             "bases U frozen; it descends for a small step (every τ < 2/L, L = c·max π·‖Σ_k U_kU_kᵀ‖/N, proved); the "
             "released layer (free output map, its own Π) is an approximation."),
    energy=energy,
    checks=(
        STEP_CLAIM,
        Check("tssa_descends_for_small_step", "descent", "R^var decreases for every τ < 2/L (curvature bound; sweep)",
              check_descent_sweep),
        Check("memberships_frozen", "approximate", "the step is not ∇ of R^var(Z, Π(Z)) (measured)",
              check_memberships_frozen),
        Check("released_layer_vs_paper", "approximate",
              "AttentionTSSA = the step only with tied output and zero biases (measured)", check_released_layer),
    ),
    assumptions=("Π and U held fixed during the step", "f(x) = log(1 + c x), c = 1 as in the code",
                 "τ < 2/L for descent (L = c·max π·‖Σ_k U_kU_kᵀ‖/N)", "orthonormal U_k for R^var ≥ R_c"),
    mapping="W_qkv = [U_1ᵀ; …; U_Kᵀ], to_out = (τ/N)W_qkvᵀ, biases 0  ↔  Z⁺ = Z − τ∇R^var",
    notes="The released block adds pre-LayerNorm and per-channel LayerScale; its causal variant uses prefix statistics.",
    order=120,
    proofs=PROOFS,
)
