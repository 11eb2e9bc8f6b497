"""LISTA / ISTA: unrolled proximal gradient on the LASSO (Gregor & LeCun, ICML 2010).

Energy (the built-in ``lasso``)::

    E(z) = ½‖x − Az‖² + λ‖z‖₁          (term "fit" smooth, term "l1" handled by its prox)

Generated layer: :class:`~unfold.steps.ProximalGradientStep` on the "fit" term with the
:class:`~unfold.steps.L1` prox and step ``1/L`` (``L = λ_max(AᵀA)``)::

    z ← h_{λ/L}(z − (1/L) Aᵀ(Az − x)) = h_θ(Bx + Sz),   B = Aᵀ/L,  S = I − AᵀA/L,  θ = λ/L

so the unrolled network with the ISTA weights *is* ISTA, and each layer does not increase ``E``
(the proximal-gradient sufficient decrease for step ``≤ 1/L``).

LISTA (learned): each layer is a generated proximal-gradient step on a *learned* quadratic energy

    E_l(z) = ½ zᵀG_l z − zᵀW_l x + λ‖z‖₁   →   z ← h_{η_lλ}((I − η_l Ḡ_l) z + η_l W_l x),  Ḡ = (G + Gᵀ)/2

i.e. LISTA's ``S_l = I − η_l Ḡ_l`` (symmetric), ``B_l = η_l W_l`` (free), ``θ_l = η_l λ``, with
``G_l``, ``W_l``, ``η_l`` trainable per layer (``Unrolled(tied=False)``).  At ``G = AᵀA``, ``W = Aᵀ``,
``E_l`` is the LASSO up to the constant ``−½‖x‖²`` and the layer is ISTA.  Trained briefly (Adam)
to map ``x`` to the LASSO solution ``z*(x)`` (FISTA codes, as in Gregor & LeCun).

Reference (``_lista_refs``): ISTA iterates written from the paper in plain torch; the LASSO limit
from scipy (L-BFGS-B on the split ``z = u − v``, polished on its support).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import symbolic as s
from ..energies import lasso
from ..steps import L1, LearnableStep, ProximalGradientStep, Unrolled
from ..symbolic import Energy
from . import _lista_refs as ref
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Descent, EnergyPlot, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "lista_energy", "ista_step", "ista_model", "lista_model", "sample_problem",
           "train_lista", "compare_lista_ista", "TOL", "LAM"]

TOL = 1e-12  # exact claims, float64 scaled error; RunConfig.tol scales it (≈4504 ulps of the working precision)
LAM = 0.1
SIZES = {"m": 15, "k": 30, "s": 3}


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``½‖x − Az‖² + λ‖z‖₁`` (built-in ``lasso``; terms ``fit`` and ``l1``)."""
    return lasso()


@lru_cache(maxsize=1)
def lista_energy() -> Energy:
    """The smooth part of a learned LISTA layer's energy, ``½ zᵀGz − zᵀWx`` (``G`` k×k, ``W`` k×m)."""
    m, k = s.dims("m k")
    z, G, W, x = s.state("z", k, 1), s.param("G", k, k), s.param("W", k, m), s.param("x", m, 1)
    return Energy(s.as_scalar(z.T * G * z) / 2 - s.as_scalar(z.T * W * x), name="quadratic")


def ista_step(L: float, lam: float = LAM) -> ProximalGradientStep:
    """The generated ISTA layer ``z ← prox_{ηλ‖·‖₁}(z − η∇½‖x − Az‖²)``, ``η = 1/L``."""
    return ProximalGradientStep(energy().term("fit"), L1(lam), wrt="z", step=1.0 / L)


def ista_model(L: float, depth: int, lam: float = LAM) -> Unrolled:
    """``depth`` tied ISTA layers (``A``, ``x`` given at call time)."""
    return Unrolled(ista_step(L, lam), depth=depth, tied=True)


def lista_model(A: torch.Tensor, L: float, depth: int, lam: float = LAM) -> Unrolled:
    """``depth`` untied learned layers, each with its own ``G_l``, ``W_l``, ``η_l`` (initialised at ISTA:
    ``AᵀA``, ``Aᵀ``, ``1/L``)."""
    step = ProximalGradientStep(lista_energy(), L1(lam), wrt="z", step=LearnableStep(1.0 / L),
                                params={"G": A.mT @ A, "W": A.mT})
    model = Unrolled(step, depth=depth, tied=False).to(A.dtype)
    # LearnableStep keeps η in the default dtype (float32): re-set it at the working precision so the
    # untrained model is ISTA to float64 (local adapter; see the report)
    with torch.no_grad():
        for k in range(depth):
            _eta(model, k).fill_(1.0 / L)
    return model


def _eta(model: Unrolled, k: int) -> torch.Tensor:
    """The learnable step size ``η_k`` of layer ``k`` of a LISTA model."""
    policy = getattr(model.layer(k), "policy", None)
    assert isinstance(policy, LearnableStep)
    return policy.eta


def sample_problem(config: RunConfig, batch: int, offset: int = 0, m: int = SIZES["m"], k: int = SIZES["k"],
                   s: int = SIZES["s"]) -> dict[str, Any]:
    """Gaussian dictionary with unit-norm columns (fixed per seed), ``s``-sparse codes with N(0,1)
    entries, ``x = Az + 0.01·noise``."""
    gA = config.generator(0)
    A = torch.randn(m, k, generator=gA, dtype=torch.float64)
    A = A / A.norm(dim=0, keepdim=True)
    g = config.generator(100 + offset)
    z = torch.zeros(batch, k, 1, dtype=torch.float64)
    for b in range(batch):
        idx = torch.randperm(k, generator=g)[:s]
        z[b, idx, 0] = torch.randn(s, generator=g, dtype=torch.float64)
    x = A @ z + 0.01 * torch.randn(batch, m, 1, generator=g, dtype=torch.float64)
    L = float(torch.linalg.eigvalsh(A.T @ A).max())
    return {"A": A.to(config.dtype), "x": x.to(config.dtype), "z_true": z.to(config.dtype), "L": L}


#: relative slack of the step-size predicate at float64 (``L`` is computed from the float64 ``A``)
STEP_BOUND_TOL = 1e-14


def _step_bound(A: torch.Tensor, L: float, tol: float = STEP_BOUND_TOL) -> AssumptionResult:
    """``1/L ≤ 1/λ_max(AᵀA)`` up to the relative slack ``tol`` (``λ_max`` of the working-precision ``A``)."""
    lmax = float(torch.linalg.eigvalsh(A.mT @ A).max())
    return AssumptionResult("step 1/L ≤ 1/λ_max(AᵀA)", L >= lmax * (1 - tol), f"L = {L:.4f}, λ_max(AᵀA) = {lmax:.4f}")


# ---- checks --------------------------------------------------------------------------------------
def _unrolled_inputs(config: RunConfig) -> dict[str, Any]:
    return {**sample_problem(config, batch=8), "depth": 20}


def _unrolled(t: Inputs) -> dict[str, torch.Tensor]:
    """Every layer's output of the generated unrolled prox-gradient model, from ``z = 0``."""
    A, x = t["A"], t["x"]
    _, traj = ista_model(t["L"], t["depth"])(torch.zeros(x.shape[0], A.shape[1], 1, dtype=A.dtype), A=A, x=x,
                                              return_trajectory=True)
    return {f"layer {k}": z for k, z in enumerate(traj.states)}


def _ista(t: Inputs) -> dict[str, torch.Tensor]:
    """ISTA ``z⁺ = h_θ(Bx + Sz)`` with ``B = Aᵀ/L``, ``S = I − AᵀA/L``, ``θ = λ/L`` (plain torch)."""
    return {f"layer {k}": z for k, z in enumerate(ref.ista(t["x"], t["A"], LAM, t["L"], t["depth"]))}


STEP_BOUND = Predicate.of("step 1/L ≤ 1/λ_max(AᵀA)", lambda t, c: _step_bound(t["A"], t["L"], c.tol(STEP_BOUND_TOL)))


UNROLLED_EQUALS_ISTA = Claim(
    "unrolled_equals_ista", "exact", "unrolled generated steps = ISTA iterates",
    inputs=_unrolled_inputs, layer=_unrolled, reference=_ista, tol64=TOL,
    assumptions=(STEP_BOUND,),
    describe=lambda t: (f"{t['depth']} layers of the generated prox-gradient step vs ISTA h_θ(Bx + Sz) "
                        f"(m={t['A'].shape[0]}, k={t['A'].shape[1]}, λ={LAM}, {t['x'].shape[0]} signals)"),
)


LASSO_NON_INCREASING = Descent(
    "lasso_non_increasing", "LASSO energy non-increasing per layer (step 1/L)",
    inputs=lambda config: sample_problem(config, batch=8),
    runs=lambda t: {"½‖x − Az‖² + λ‖z‖₁": (ista_model(t["L"], 40), torch.zeros(8, t["A"].shape[1], 1, dtype=t["A"].dtype),
                                           {"A": t["A"], "x": t["x"]})},
    assumptions=(STEP_BOUND,),
    plot=EnergyPlot("lista_lasso_energy", "LASSO energy per ISTA layer (mean over signals)", "energy", "layer", "semilogy"),
)


LIMIT_TOL = 1e-10  # float64; RunConfig.tol scales it (capped at 1e-3)


#: the limit check's problem: m ≥ k, so the LASSO is strongly convex and ISTA converges linearly
LIMIT_SIZES = {"m": 20, "k": 16, "s": 3}


def _check_limit(config: RunConfig) -> CheckResult:
    batch = 3
    P = sample_problem(config, batch=batch, offset=1, **LIMIT_SIZES)
    A, x, L = P["A"], P["x"], P["L"]
    depth = 300
    with torch.no_grad():
        z = ista_model(L, depth)(torch.zeros(batch, A.shape[1], 1, dtype=A.dtype), A=A, x=x)
    An = A.double().numpy()
    errs, kkt_ista, kkt_ref = [], [], []
    for b in range(batch):
        xb = x[b, :, 0].double().numpy()
        zs = ref.lasso_scipy(An, xb, LAM)
        zi = z[b, :, 0].double().numpy()
        errs.append(float(np.abs(zi - zs).max() / max(1.0, np.abs(zs).max())))
        kkt_ista.append(ref.kkt_residual(zi, An, xb, LAM))
        kkt_ref.append(ref.kkt_residual(zs, An, xb, LAM))
    err, tol = max(errs), config.tol(LIMIT_TOL)
    return CheckResult(
        entry="lista", check="limit_matches_lasso_solver", claim="asymptotic", passed=err <= tol, error=err,
        tol=tol,
        detail=(f"m={A.shape[0]}, k={A.shape[1]}: after {depth} layers vs scipy L-BFGS-B (polished on its support), "
                f"{batch} signals: max scaled "
                f"difference {err:.1e}; KKT residual dist(−Aᵀ(Az − x), λ∂‖z‖₁): ISTA {max(kkt_ista):.1e}, "
                f"scipy {max(kkt_ref):.1e}" + config.tol_note(LIMIT_TOL)),
        assumptions=[_step_bound(A, L, config.tol(STEP_BOUND_TOL))],
        data={"errors": errs, "kkt_ista": kkt_ista, "kkt_scipy": kkt_ref},
    )


def _nmse(z: torch.Tensor, z_star: torch.Tensor) -> float:
    return float(((z - z_star) ** 2).sum() / (z_star**2).sum())


def train_lista(config: RunConfig, depth: int = 5, steps: int = 100, batch: int = 256, lr: float = 1e-2
                ) -> tuple[Unrolled, dict[str, Any]]:
    """Train the learned LISTA (per-layer ``G_l``, ``W_l``, ``η_l``) with Adam on ``‖z^K(x) − z*(x)‖²``
    (full batch, deterministic; targets ``z*`` by 500 FISTA iterations); returns the model and the data."""
    tr = sample_problem(config, batch=batch, offset=2)
    te = sample_problem(config, batch=batch, offset=3)
    A, L = tr["A"], tr["L"]
    z_tr, z_te = (ref.fista(P["x"], A, LAM, L, 500) for P in (tr, te))
    model = lista_model(A, L, depth)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    z0 = torch.zeros(batch, A.shape[1], 1, dtype=A.dtype)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(z0, x=tr["x"]) - z_tr) ** 2).sum(dim=(-2, -1)).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model, {"train": tr, "test": te, "z_test": z_te, "losses": losses}


def compare_lista_ista(config: RunConfig, depth: int = 5, steps: int = 100, max_ista: int = 300) -> dict[str, Any]:
    """Test NMSE ``‖z − z*‖²/‖z*‖²`` of the trained LISTA per layer and of ISTA per iteration, and the
    number of ISTA iterations needed to reach LISTA's error at depth ``K``.  (ISTA's curve is computed
    with the plain-torch reference, equal to the generated layers to float64 by ``unrolled_equals_ista``.)"""
    model, data = train_lista(config, depth=depth, steps=steps)
    te, z_star = data["test"], data["z_test"]
    A, L, x = te["A"], te["L"], te["x"]
    z0 = torch.zeros(x.shape[0], A.shape[1], 1, dtype=A.dtype)
    with torch.no_grad():
        _, traj = model(z0, x=x, return_trajectory=True)
        ista_states = ref.ista(x, A, LAM, L, max_ista)
    lista_err = [_nmse(z, z_star) for z in traj.states]
    ista_err = [_nmse(z, z_star) for z in ista_states]
    target = lista_err[-1]
    needed = next((k for k, e in enumerate(ista_err) if e <= target), None)
    return {"depth": depth, "train_steps": steps, "lista_nmse": lista_err, "ista_nmse": ista_err,
            "ista_iterations_to_match": needed, "max_ista": max_ista, "losses": data["losses"],
            "etas": [float(_eta(model, k).detach()) for k in range(depth)], "L": L,
            "m": A.shape[0], "k": A.shape[1]}


def _check_learned(config: RunConfig) -> CheckResult:
    depth = 5
    steps = 30 if config.quick else 100
    r = compare_lista_ista(config, depth=depth, steps=steps)
    lista_K, ista_K, need = r["lista_nmse"][-1], r["ista_nmse"][depth], r["ista_iterations_to_match"]
    factor = 2 if config.quick else 4
    passed = need is None or need >= factor * depth
    shown = min(len(r["ista_nmse"]), max(60, 2 * (need or 0)))
    return CheckResult(
        entry="lista", check="learned_lista_beats_ista", claim="approximate", passed=passed, error=lista_K, tol=None,
        detail=(f"LISTA (per-layer G_l, W_l, η_l; {steps} Adam steps, 256 training signals, m={r['m']}, k={r['k']}) at depth {depth}: test NMSE "
                f"{lista_K:.2e}; ISTA at {depth} iterations: {ista_K:.2e}; ISTA needs "
                f"{need if need is not None else '> ' + str(r['max_ista'])} iterations to reach LISTA's error "
                f"(asserted ≥ {factor * depth})"),
        assumptions=[AssumptionResult("targets are LASSO solutions z*(x)", True, "500 FISTA iterations per signal"),
                     AssumptionResult("LISTA initialised at ISTA (G = AᵀA, W = Aᵀ, η = 1/L)", True, "by construction")],
        data=r,
        figures=[Figure("lista_vs_ista", "test NMSE ‖z − z*‖²/‖z*‖² vs depth / iterations",
                        x=[float(k) for k in range(shown)],
                        series={"ISTA": r["ista_nmse"][:shown],
                                "LISTA (trained)": r["lista_nmse"] + [float("nan")] * (shown - depth - 1)},
                        xlabel="layers / iterations", ylabel="NMSE", kind="semilogy")],
    )


_EQ = ("unrolled_equals_ista",)
PROOFS = (
    Proof("soft_threshold_is_prox", "h_t(v) = sign(v) max(|v| − t, 0) = argmin_x ½(x − v)² + t|x| for every real v, t > 0",
          "general", "one-dimensional case analysis (x > 0, x < 0, subgradient at 0)", _EQ),
    Proof("ista_affine_map", "Bx + Sz = z − (1/L)∇½‖x − Az‖² with B = Aᵀ/L, S = I − AᵀA/L",
          "engine-golden", "unfold's derived gradient, matrix identity at symbolic sizes", _EQ),
    Proof("gradient_entrywise", "∇_z ½‖x − Az‖² = Aᵀ(Az − x), entry by entry", "fixed-size",
          "scalar sp.diff of the expanded energy at (m, k) ∈ {(2, 3), (3, 2)}", _EQ),
    Proof("generated_rule", "the generated layer's rule is SoftThreshold(z − η∇f(z), ηλ) for symbolic η, λ; at "
          "η = 1/L it is h_θ(Bx + Sz) with the exact threshold θ = λ/L",
          "engine-golden", "the step's update_rule() with symbolic η and λ, then η = 1/L (symbolic L): structural", _EQ),
    Proof("fixed_threshold", "the catalogue's fixed-step layer (L = 4, λ = 0.1) thresholds at the float64 product "
          "0.1 × 0.25 (exact: η = 1/4 is a power of two)", "numeric",
          "update_rule() threshold compared with the float product, bit for bit", _EQ),
    Proof("untrained_lista_is_ista", "the learned LISTA energy ½zᵀGz − zᵀWx at G = AᵀA, W = Aᵀ has the LASSO gradient",
          "engine-golden", "unfold's derived gradient, substituted, matrix identity at symbolic sizes", _EQ),
)

ENTRY = Entry(
    name="lista",
    title="LISTA / ISTA: unrolled proximal gradient on the LASSO",
    source="Gregor & LeCun, Learning Fast Approximations of Sparse Coding, ICML 2010",
    summary=(
        "The unrolled network with B = Aᵀ/L, S = I − AᵀA/L, θ = λ/L is ISTA (a generated prox-gradient step per "
        "layer); the LASSO energy is non-increasing per layer; the limit is the LASSO solution; a briefly "
        "trained LISTA reaches at depth K an error ISTA needs many more iterations for."
    ),
    energy=energy,
    checks=(
        UNROLLED_EQUALS_ISTA,
        LASSO_NON_INCREASING,
        Check("limit_matches_lasso_solver", "asymptotic", "the limit equals scipy's LASSO solution", _check_limit),
        Check("learned_lista_beats_ista", "approximate", "trained LISTA at depth K vs ISTA iterations", _check_learned),
    ),
    assumptions=("L ≥ λ_max(AᵀA) (step 1/L)",),
    mapping="B = Aᵀ/L, S = I − AᵀA/L, θ = λ/L;  LISTA: B_l = η_lA_lᵀ, S_l = I − η_lA_lᵀA_l, θ_l = η_lλ",
    notes="Learned LISTA uses the per-layer-dictionary parameterisation (each layer a prox-gradient step on a LASSO).",
    order=50,
    proofs=PROOFS,
)
