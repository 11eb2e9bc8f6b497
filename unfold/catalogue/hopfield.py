"""Modern Hopfield retrieval is softmax attention (Ramsauer et al., arXiv 2008.02217).

Energy (stored patterns are the columns of ``X ∈ R^{d×N}``, ``S`` query columns ``Ξ ∈ R^{d×S}``,
``M = maxᵢ‖xᵢ‖``)::

    E(Ξ) = Σ_s [ −lse(β, Xᵀξ_s) + ½ξ_sᵀξ_s + β⁻¹ log N + ½M² ],   lse(β, z) = β⁻¹ log Σᵢ exp(β zᵢ)

CCCP split: convex ``½‖Ξ‖²``, concave ``−lse + const``.  The CCCP step solves
``∇convex(Ξ⁺) = −∇concave(Ξ)``, i.e. ``Ξ⁺ = X softmax(β XᵀΞ)`` (softmax over the N patterns); it is
also the gradient step with step size 1.  With ``Q = R W_Q``, ``K = Y W_K``, ``V = Y W_K W_V``
(rows are tokens), ``X = Kᵀ``, ``Ξ = Qᵀ`` and ``β = 1/√d_k``: ``(Ξ⁺)ᵀ W_V = softmax(βQKᵀ)V``, one
attention head (their eq. 10).  CCCP guarantees ``E(Ξ⁺) ≤ E(Ξ)`` for every step (no step-size
condition), and ``0 ≤ E ≤ 2M²`` per query (their Lemma A1).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Mapping

import sympy as sp
import torch

from ..models.hopfield_heads import HopfieldHeads, head_cccp_step
from ..steps import CCCPStep, GradientStep, Unrolled
from ..symbolic import ops as s
from ..symbolic.axes import axis
from ..symbolic.energy import Energy
from ..symbolic.symbols import dims, param, scalar, state
from ..verify.descent import DescentResult
from . import _attention_refs as ref
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Control, Descent, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "convex_part", "concave_part", "cccp_step", "gradient_step", "attention_layer",
           "HFLAYERS_MULTIHEAD"]

NAME = "hopfield"
EXACT_TOL = 1e-12  # float64, scaled error max|a−b|/max(1, max|b|); RunConfig.tol scales it (≈4504 ulps)
FIXED_POINT_TOL = 1e-10  # float64, max |f(x*) − x*| of the fixed points used by Theorem 5


# ---- the energy in unfold's language -------------------------------------------------------------
def _symbols() -> tuple[Any, ...]:
    d, N, S = dims("d N S")
    return (param("X", d, N), state("Xi", d, S), scalar("beta", positive=True),
            scalar("M", positive=True), N, S)


def concave_part() -> Energy:
    """``−Σ_s lse(β, Xᵀξ_s)`` (concave: lse is convex) plus the constants
    ``S(β⁻¹ log N + ½M²)`` that make ``0 ≤ E ≤ 2M²`` per query (kept here, with ``X``, so that the
    dimension ``N`` is bound by a matrix input of the generated code)."""
    X, Xi, beta, M, N, S = _symbols()
    return Energy(terms={"lse": -s.lse(beta * X.T * Xi) / beta, "const": S * (s.log(N) / beta + M**2 / 2)})


def convex_part() -> Energy:
    """``½‖Ξ‖²``."""
    _, Xi, _, _, _, _ = _symbols()
    return Energy(terms={"quadratic": s.fro2(Xi) / 2})


def energy() -> Energy:
    """The modern Hopfield energy ``E = concave + convex`` (terms lse, quadratic, const)."""
    return concave_part() + convex_part()


@lru_cache(maxsize=None)
def cccp_step() -> CCCPStep:
    """The unfolded layer: one CCCP step, built by :class:`unfold.steps.CCCPStep`."""
    return CCCPStep(convex_part(), concave_part(), wrt="Xi")


@lru_cache(maxsize=None)
def gradient_step() -> GradientStep:
    """The unit gradient step on the whole energy (the same update)."""
    return GradientStep(energy(), wrt="Xi", step=1.0)


def attention_layer(R: torch.Tensor, Y: torch.Tensor, WQ: torch.Tensor, WK: torch.Tensor,
                    WV: torch.Tensor) -> torch.Tensor:
    """One attention head computed by the CCCP step under the paper's mapping:
    ``X = (Y W_K)ᵀ``, ``Ξ = (R W_Q)ᵀ``, ``β = 1/√d_k``; output ``(Ξ⁺)ᵀ W_V`` (rows are tokens)."""
    X, Xi = (Y @ WK).mT, (R @ WQ).mT
    beta = 1.0 / math.sqrt(WK.shape[-1])
    M = float(X.norm(dim=-2).max())
    return cccp_step()(Xi, X=X, beta=beta, M=M).mT @ WV


# ---- data ------------------------------------------------------------------------------------------
def _inputs(g: torch.Generator, dtype: torch.dtype, d: int, N: int, S: int, batch: int, beta: float,
            scale: float = 1.0) -> dict[str, Any]:
    X = scale * torch.randn(d, N, generator=g, dtype=dtype)
    Xi = torch.randn(batch, d, S, generator=g, dtype=dtype)
    return {"X": X, "Xi": Xi, "beta": beta, "M": float(X.norm(dim=0).max())}


def _unit_columns(g: torch.Generator, dtype: torch.dtype, d: int, N: int) -> torch.Tensor:
    X = torch.randn(d, N, generator=g, dtype=dtype)
    return X / X.norm(dim=0, keepdim=True)


# ---- checks ---------------------------------------------------------------------------------------
def _cccp_inputs(config: RunConfig) -> dict[str, Any]:
    d, N, S = (8, 12, 3) if config.quick else (16, 50, 4)
    return _inputs(config.generator(1), config.dtype, d, N, S, batch=3, beta=2.0)


def _steps(t: Inputs) -> dict[str, torch.Tensor]:
    kw = {k: t[k] for k in ("X", "beta", "M")}
    return {"CCCP step": cccp_step()(t["Xi"], **kw), "unit gradient step": gradient_step()(t["Xi"], **kw)}


def _rule_is_attention(step: Any) -> Callable[[Inputs, RunConfig], tuple[bool, str]]:
    def test(t: Inputs, config: RunConfig) -> tuple[bool, str]:
        X, Xi, beta = _symbols()[:3]
        return step().update_rule() == X * s.softmax(beta * X.T * Xi), ""
    return test


CCCP_IS_ATTENTION = Claim(
    "cccp_step_is_attention", "exact", "CCCP step and unit gradient step = X softmax(βXᵀΞ)",
    inputs=_cccp_inputs, layer=_steps, reference=lambda t: ref.hopfield_update(t["X"], t["Xi"], t["beta"]), tol64=EXACT_TOL,
    conditions=(Predicate("CCCP rule = X*Softmax(beta*X.T*Xi)", _rule_is_attention(cccp_step)),
                Predicate("gradient rule = X*Softmax(beta*X.T*Xi)", _rule_is_attention(gradient_step))),
    data=lambda t: {"cccp_rule": str(cccp_step().update_rule()), "gradient_rule": str(gradient_step().update_rule())},
    describe=lambda t: f"vs X·softmax(βXᵀΞ): d={t['X'].shape[0]}, N={t['X'].shape[1]}, S={t['Xi'].shape[-1]}, "
                       f"batch {t['Xi'].shape[0]}, β={t['beta']}",
)


def _attention_inputs(config: RunConfig) -> dict[str, Any]:
    g = config.generator(2)
    B, S, N, d_y, d_k = (2, 3, 5, 6, 4) if config.quick else (2, 5, 9, 12, 8)
    dt = config.dtype
    return {"R": torch.randn(B, S, d_k, generator=g, dtype=dt),          # d_r = d_k (MultiheadAttention's embed_dim)
            "Y": torch.randn(B, N, d_y, generator=g, dtype=dt),
            "WQ": torch.randn(d_k, d_k, generator=g, dtype=dt) / math.sqrt(d_k),
            "WK": torch.randn(d_y, d_k, generator=g, dtype=dt) / math.sqrt(d_y),
            "WV": torch.randn(d_k, d_k, generator=g, dtype=dt) / math.sqrt(d_k)}


def _torch_attention(t: Inputs) -> dict[str, torch.Tensor]:
    args = (t["R"], t["Y"], t["WQ"], t["WK"], t["WV"])
    return {"F.scaled_dot_product_attention": ref.sdpa_attention(*args), "nn.MultiheadAttention": ref.mha_attention(*args)}


def _unit_temperature(t: Inputs) -> torch.Tensor:
    Q, K = t["R"] @ t["WQ"], t["Y"] @ t["WK"]
    return torch.nn.functional.scaled_dot_product_attention(Q, K, K @ t["WV"], scale=1.0)


ATTENTION_EQUIVALENCE = Claim(
    "attention_equivalence", "exact", "mapped CCCP step = F.scaled_dot_product_attention = nn.MultiheadAttention",
    inputs=_attention_inputs, layer=lambda t: attention_layer(t["R"], t["Y"], t["WQ"], t["WK"], t["WV"]), reference=_torch_attention, tol64=EXACT_TOL,
    controls=(Control("attention at temperature 1 instead of 1/√d_k", reference=_unit_temperature),),
    describe=lambda t: (f"(Ξ⁺)ᵀW_V with X=(YW_K)ᵀ, Ξ=(RW_Q)ᵀ, β=1/√d_k (batch {t['R'].shape[0]}, "
                        f"S={t['R'].shape[1]} queries, N={t['Y'].shape[1]} keys, d_y={t['Y'].shape[2]}, "
                        f"d_k={t['WK'].shape[1]}); nn.MultiheadAttention with 1 head, bias=False"),
)


def _descent_inputs(config: RunConfig) -> dict[str, Any]:
    d, N, depth = (8, 20, 15) if config.quick else (16, 50, 30)
    inp = _inputs(config.generator(3), config.dtype, d, N, 1, batch=4, beta=2.0)
    return {"Xi0": inp.pop("Xi"), "step": inp, "depth": depth}


def _cccp_runs(t: Inputs) -> dict[str, Any]:
    return {"CCCP": (Unrolled(cccp_step(), depth=t["depth"]), t["Xi0"], t["step"])}


def _energy_measures(t: Inputs, res: Mapping[str, DescentResult]) -> dict[str, Any]:
    """The energy along the CCCP trajectory: its range, and the generated energy against the paper's
    formula (plain torch) at every state of the trajectory."""
    E, inp = res["CCCP"].energies, t["step"]                # E: (depth+1, batch)
    _, traj = _cccp_runs(t)["CCCP"][0](t["Xi0"], return_trajectory=True, **inp)
    ref_E = torch.stack([ref.hopfield_energy(inp["X"], x, inp["beta"])[..., 0] for x in traj.states])
    return {"max_increase": res["CCCP"].max_increase, "energy_formula_error": ref.rel_err(E, ref_E),
            "E_min": float(E.min()), "E_max": float(E.max()), "2M2": 2 * inp["M"] ** 2}


def _bounded(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    """``0 ≤ E ≤ 2M²`` within ``64·ε·max(1, 2M²)`` (Lemma A1)."""
    lo, hi, top = t["E_min"], t["E_max"], t["2M2"]
    tol_b = 64 * torch.finfo(config.dtype).eps * max(1.0, top)
    return lo >= -tol_b and hi <= top + tol_b, f"[{lo:.4g}, {hi:.4g}] ⊂ [0, 2M²={top:.4g}]"


def _energy_formula(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    e = t["energy_formula_error"]
    return e <= config.tol(EXACT_TOL), f"{e:.2e}" + config.tol_note(EXACT_TOL)


def _energy_figure(t: Inputs, res: Mapping[str, DescentResult]) -> list[Figure]:
    E, top = res["CCCP"].energies, 2 * t["step"]["M"] ** 2
    x = [float(k) for k in range(E.shape[0])]
    return [Figure("hopfield_energy", "Hopfield energy along CCCP steps", x,
                   {f"query {b}": E[:, b].tolist() for b in range(E.shape[1])} | {"2M²": [top] * len(x)},
                   xlabel="step t", ylabel="E(ξ_t)")]


BOUNDED = Predicate("0 <= E <= 2M^2 along the trajectory", _bounded)

#: ``E`` non-increasing along the CCCP steps and inside ``[0, 2M²]`` per query; the energy the
#: generated code reports is the paper's formula at every state of the trajectory.
DESCENT_AND_BOUNDS = Descent(
    "descent_and_bounds", "E non-increasing along CCCP steps, within [0, 2M²]",
    inputs=_descent_inputs, runs=_cccp_runs, assumptions=(BOUNDED,),
    conditions=(BOUNDED, Predicate("generated energy = the paper's formula", _energy_formula)),
    describe=lambda t: (f"d={t['step']['X'].shape[0]}, N={t['step']['X'].shape[1]}, β={t['step']['beta']:g}, "
                        f"{t['depth']} steps"),
    data=_energy_measures, figures=_energy_figure,
)


def check_retrieval(config: RunConfig) -> CheckResult:
    """One-step retrieval error below Theorem 5's bound for well-separated patterns."""
    g = config.generator(4)
    d, N, Mnorm, beta = (24, 10, 4.0, 2.0) if config.quick else (32, 20, 4.0, 2.0)
    dt = config.dtype
    X = Mnorm * _unit_columns(g, dt, d, N)                   # patterns on the sphere of radius M
    delta = ref.hopfield_separation(X)
    radii = [0.05, 0.2, 0.5]
    # fixed points x_i* near each pattern: iterate the CCCP step from x_i
    fp_model = Unrolled(cccp_step(), depth=20)
    inp = {"X": X, "beta": beta, "M": Mnorm}
    xstar = fp_model(X.mT[..., None], **inp)                 # (N, d, 1)
    fp_res = ref.max_abs(cccp_step()(xstar, **inp), xstar)
    ratios, errors, bounds, sep_rows = [], [], [], []
    for r in radii:
        noise = torch.randn(N, d, 1, generator=g, dtype=dt)
        xi = X.mT[..., None] + r * noise / noise.norm(dim=-2, keepdim=True)
        out = cccp_step()(xi, **inp)
        for i in range(N):
            e = float((out[i, :, 0] - X[:, i]).norm())
            rad = max(r, float((xstar[i, :, 0] - X[:, i]).norm()))
            bnd = ref.theorem5_bound(beta, N, Mnorm, float(delta[i]), rad)
            errors.append(e)
            bounds.append(bnd)
            ratios.append(e / bnd)
            sep_rows.append(float(delta[i]) - 2 * rad * Mnorm)
    worst = max(ratios)
    # the paper's separation condition (their Theorem 4/5): Δᵢ ≥ 2/(βN) + β⁻¹ log(2(N−1)NβM²)
    need = 2 / (beta * N) + math.log(2 * (N - 1) * N * beta * Mnorm**2) / beta
    separated = bool(delta.min() >= need)
    positive = min(sep_rows) > 0
    ok = worst <= 1.0 and separated and fp_res <= config.tol(FIXED_POINT_TOL)
    return CheckResult(
        passed=ok, error=worst, tol=1.0,
        detail=(f"max over {len(ratios)} queries (radius {radii}) of ‖f(ξ)−xᵢ‖ / bound = {worst:.3g}; "
                f"largest error {max(errors):.2e}, largest bound {max(bounds):.2e}; min Δᵢ = "
                f"{float(delta.min()):.3f} ≥ {need:.3f} (d={d}, N={N}, M={Mnorm}, β={beta})"),
        assumptions=[
            AssumptionResult("patterns well separated: Δ_i ≥ 2/(βN) + log(2(N−1)NβM²)/β", separated,
                             f"min Δ_i = {float(delta.min()):.4g}, needed {need:.4g}"),
            AssumptionResult("bound exponent positive: Δ_i > 2 M max{‖ξ−x_i‖, ‖x_i*−x_i‖}", positive,
                             f"min margin {min(sep_rows):.4g}"),
        ],
        data={"ratio_max": worst, "error_max": max(errors), "bound_max": max(bounds),
              "fixed_point_residual": fp_res, "delta_min": float(delta.min()), "separation_needed": need},
    )


def _clustered(g: torch.Generator, dt: torch.dtype, d: int, K: int, per: int, spread: float) -> torch.Tensor:
    centres = 3.0 * _unit_columns(g, dt, d, K)
    pts = [centres[:, k:k + 1] + spread * torch.randn(d, per, generator=g, dtype=dt) / math.sqrt(d)
           for k in range(K)]
    return torch.cat(pts, dim=1)


def check_beta_sweep(config: RunConfig) -> CheckResult:
    """Fixed-point types across β: global average (small β), metastable cluster averages, single
    patterns (large β), on clustered patterns; ``k`` is the paper's head statistic (entries for
    90 % of the softmax mass)."""
    g = config.generator(5)
    d, K, per = 16, 3, 4
    N = K * per
    dt = config.dtype
    X = _clustered(g, dt, d, K, per, spread=1.5)
    M = float(X.norm(dim=0).max())
    betas = [10 ** (-2 + 0.25 * k) for k in range(15)]          # 0.01 … 31.6
    depth = 60
    model = Unrolled(cccp_step(), depth=depth)
    i = 0                                                        # query near pattern 0 (cluster 0)
    q = X[:, i:i + 1] + 0.1 * torch.randn(d, 1, generator=g, dtype=dt)
    rows: dict[str, list[float]] = {"k (90% mass)": [], "‖ξ*−x_i‖": [], "‖ξ*−cluster mean‖": [],
                                   "‖ξ*−global mean‖": [], "one-step ‖f(ξ)−x_i‖": []}
    regimes = []
    for b in betas:
        inp = {"X": X, "beta": b, "M": M}
        xs = model(q, **inp)
        P = torch.softmax(b * X.T @ xs, dim=0)
        k = int(ref.mass_count(P)[0])
        dists = [float((xs[:, 0] - X[:, i]).norm()), float((xs[:, 0] - X[:, :per].mean(1)).norm()),
                 float((xs[:, 0] - X.mean(1)).norm())]
        one = float((cccp_step()(q, **inp)[:, 0] - X[:, i]).norm())
        for key, v in zip(list(rows)[1:], dists + [one]):
            rows[key].append(v)
        rows["k (90% mass)"].append(float(k))
        regimes.append(["single pattern", "metastable (cluster)", "global average"][min(range(3), key=lambda j: dists[j])])
    small_global = regimes[0] == "global average" and rows["k (90% mass)"][0] > N / 2
    metastable = any(r == "metastable (cluster)" and 1 < kk <= per
                     for r, kk in zip(regimes, rows["k (90% mass)"]))
    large_single = regimes[-1] == "single pattern" and rows["k (90% mass)"][-1] == 1
    ok = small_global and metastable and large_single
    x = [math.log10(b) for b in betas]
    figs = [
        Figure("hopfield_beta_k", "Hopfield fixed points: softmax entries holding 90% mass", x,
               {"k": rows["k (90% mass)"], "cluster size": [float(per)] * len(x)},
               xlabel="log10 β", ylabel="k"),
        Figure("hopfield_beta_dist", "Distance of the fixed point to pattern / cluster mean / global mean", x,
               {k: v for k, v in rows.items() if k != "k (90% mass)"}, xlabel="log10 β", ylabel="distance",
               kind="semilogy"),
    ]
    return CheckResult(
        passed=ok,
        detail=(f"regimes over β={betas[0]:.2g}…{betas[-1]:.3g}: {' → '.join(dict.fromkeys(regimes))}; "
                f"k at smallest β = {rows['k (90% mass)'][0]:.0f} (N={N}), at largest β = "
                f"{rows['k (90% mass)'][-1]:.0f}; metastable cluster average seen: {metastable}"),
        data={"betas": betas, "regimes": regimes, **rows},
        figures=figs,
    )


_CCCP = ("cccp_step_is_attention",)
# ---- hflayers' multi-head projected Hopfield layer ------------------------------------------------
HFLAYERS_STEPS = (0, 1, 3)  # update_steps_max values compared


def _hflayers_inputs(config: RunConfig) -> dict[str, Any]:
    g = config.generator(8)
    B, n, m, E, H, p = (2, 3, 5, 8, 2, 3) if config.quick else (2, 4, 9, 12, 3, 4)
    dt = config.dtype

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g, dtype=dt)
    w = {"WQ": rnd(H, p, E, scale=E ** -0.5), "WK": rnd(H, p, E, scale=E ** -0.5), "WV": rnd(H, p, E, scale=E ** -0.5),
         "WO": rnd(H, E, p, scale=(H * p) ** -0.5), "bq": rnd(H, 1, p, scale=0.1), "bk": rnd(H, 1, p, scale=0.1),
         "bv": rnd(H, 1, p, scale=0.1), "bo": rnd(1, E, scale=0.1)}
    return {"w": w, "beta": [0.5, 2.0, 8.0][:H], "R": rnd(B, n, E), "Y": rnd(B, m, E), "V": rnd(B, m, E)}


def _hflayers_module(t: Inputs, k: int) -> HopfieldHeads:
    H, p, E = t["w"]["WQ"].shape
    mod = HopfieldHeads(E, H, head_dim=p, update_steps_max=k, beta=t["beta"]).to(t["R"].dtype)
    mod.load_state_dict({**t["w"], "beta": torch.tensor(t["beta"])})
    return mod


def _hflayers_reference(t: Inputs, steps: Callable[[int], int] = lambda k: k,
                        beta: Callable[[list[float]], list[float]] = lambda b: b) -> dict[str, torch.Tensor]:
    return {f"update_steps_max={k}": ref.hopfield_heads_layer(t["R"], t["Y"], t["V"], t["w"], beta(t["beta"]), steps(k))[0]
            for k in HFLAYERS_STEPS}


def _hflayers_rule(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    n, m, p, H = dims("n m p H")
    h = axis("h", H)
    Xi, K, lb = state("Xi", n, p, over=h), param("K", m, p, over=h), param("log_beta", 1, 1, over=h)
    want = s.softmax(sp.exp(s.as_scalar(lb)) * K * Xi.T).T * K
    rule = head_cccp_step().update_rule()
    return rule == want, f"per-head rule {rule}"


def _hflayers_descent(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    k = max(HFLAYERS_STEPS)
    _, E = ref.hopfield_heads_layer(t["R"], t["Y"], t["V"], t["w"], t["beta"], k)   # (k+1, B, H, n)
    inc = float((E[1:] - E[:-1]).max())
    return inc <= 64 * torch.finfo(E.dtype).eps * max(1.0, float(E.abs().max())), \
        f"largest E_h(ξ^(t+1)) − E_h(ξ^t) over {k} steps, heads and queries: {inc:.2e}"


HFLAYERS_MULTIHEAD = Claim(
    "hflayers_multihead", "exact",
    "hflayers' multi-head projected Hopfield layer (per-head β, update_steps_max = k: k CCCP steps + value read-out) "
    "= the paper's per-head update under eq. 10",
    inputs=_hflayers_inputs,
    layer=lambda t: {f"update_steps_max={k}": _hflayers_module(t, k)(t["R"], t["Y"], t["V"]).detach() for k in HFLAYERS_STEPS},
    reference=_hflayers_reference, tol64=EXACT_TOL,
    assumptions=(
        Predicate("β_h > 0 for every head", lambda t, c: (all(b > 0 for b in t["beta"]), f"β = {t['beta']}")),
        Predicate.by_construction("exactly k state updates (hflayers' update_steps_eps early stop not modelled)",
                                  "the layer runs k steps; hflayers stops a head once its association moves < eps"),
        Predicate.by_construction("stored patterns (projected keys) fixed within the layer",
                                  "K_h = Y W_K^hᵀ + 1b_K^hᵀ is computed once"),
    ),
    conditions=(Predicate("per-head update rule = softmax(β_h Ξ Kᵀ) K (CCCP step)", _hflayers_rule),
                Predicate("E_h non-increasing along the CCCP steps (every head, query)", _hflayers_descent)),
    controls=(Control("update_steps_max = k read as k retrievals (k − 1 state updates)",
                      reference=lambda t: _hflayers_reference(t, steps=lambda k: max(k - 1, 0)), at_least=1e-6),
              Control("one β (the heads' mean) for all heads",
                      reference=lambda t: _hflayers_reference(t, beta=lambda b: [sum(b) / len(b)] * len(b)),
                      at_least=1e-6)),
    describe=lambda t: (f"generated HopfieldHeads vs the paper's per-head update, values ≠ keys, biases, "
                        f"H={t['w']['WQ'].shape[0]}, p={t['w']['WQ'].shape[1]}, E={t['w']['WQ'].shape[2]}, "
                        f"n={t['R'].shape[1]}, m={t['Y'].shape[1]}, β={t['beta']}, k ∈ {list(HFLAYERS_STEPS)}"),
)


PROOFS = (
    Proof("unit_step_golden", "unfold's derived unit gradient step Ξ − ∇E(Ξ) is X softmax(βXᵀΞ)", "engine-golden",
          "structural equality at symbolic d, N, S", _CCCP),
    Proof("cccp_golden", "CCCP: ∇E_vex(Ξ⁺) = −∇E_cave(Ξ) with ∇E_vex = Ξ gives Ξ⁺ = X softmax(βXᵀΞ)", "engine-golden",
          "unfold's derived gradients of both parts, structural equality at symbolic sizes", _CCCP),
    Proof("gradient_entrywise", "ξ − ∇E(ξ) = X softmax(βXᵀξ), entry by entry", "fixed-size",
          "plain scalar sp.diff of the expanded energy at d = 2, N = 3", _CCCP),
    Proof("engine_entrywise", "unfold's gradient equals the entrywise derivative", "fixed-size",
          "expanded at d = 2, N = 3, cancel", _CCCP),
    Proof("attention_mapping", "with X = (YW_K)ᵀ, Ξ = (RW_Q)ᵀ: (Ξ⁺)ᵀW_V = softmax_rows(βRW_QW_KᵀYᵀ)YW_KW_V",
          "general", "equality of the two matrix expressions at symbolic d_y, d_k, S, N (no derivative)",
          ("attention_equivalence",)),
    Proof("theorem5_identities", "f(ξ) − xᵢ = Σ_{j≠i} p_j(x_j − xᵢ) and p_j/pᵢ = exp(β(x_j − xᵢ)ᵀξ)", "fixed-size",
          "cancel / simplify at d = 2, N = 3", ("retrieval_theorem5",)),
)

ENTRY = Entry(
    name=NAME,
    title="Modern Hopfield retrieval = softmax attention",
    source="Ramsauer et al., Hopfield Networks is All You Need, arXiv 2008.02217 (ICLR 2021)",
    summary=("One CCCP step on E(ξ) = −lse(β, Xᵀξ) + ½ξᵀξ + β⁻¹log N + ½M² is ξ⁺ = X softmax(βXᵀξ); "
             "with X = (YW_K)ᵀ, ξ = (RW_Q)ᵀ, β = 1/√d_k it is one attention head. E is non-increasing "
             "and stays in [0, 2M²]."),
    energy=energy,
    checks=(
        CCCP_IS_ATTENTION,
        ATTENTION_EQUIVALENCE,
        HFLAYERS_MULTIHEAD,
        DESCENT_AND_BOUNDS,
        Check("retrieval_theorem5", "approximate", "one-step retrieval error below Theorem 5's bound",
              check_retrieval),
        Check("beta_sweep", "approximate", "fixed-point regimes across β (averaging at small β)",
              check_beta_sweep, quick=False),
    ),
    assumptions=("stored patterns X held fixed within a step", "β > 0", "M = max_i ‖x_i‖ (constant term only)",
                 "Theorem 5: pattern well separated, Δ_i ≥ 2/(βN) + log(2(N−1)NβM²)/β"),
    mapping=("X = Kᵀ = (Y W_K)ᵀ, Ξ = Qᵀ = (R W_Q)ᵀ, β = 1/√d_k, output (Ξ⁺)ᵀ W_V = softmax(βQKᵀ) Y W_K W_V; "
             "nn.MultiheadAttention: q_proj = W_Qᵀ, k_proj = v_proj = W_Kᵀ, out_proj = W_Vᵀ, no bias"),
    notes=("Patterns are columns (the paper's X = (x_1..x_N)); attention tokens are rows. One layer is one "
           "CCCP step with the stored patterns fixed; no single energy is claimed for a stack with learned "
           "projections. The Theorem 5 bound is checked with x_i* the fixed point reached from x_i (20 CCCP "
           "steps, residual reported). The measured error is below the bound for any ξ: f(ξ) − x_i = "
           "Σ_{j≠i} p_j (x_j − x_i) and p_j/p_i = exp(β(x_j − x_i)ᵀξ) ≤ exp(−β(Δ_i − 2M‖ξ − x_i‖)) (identities "
           "proved in proofs/proof_hopfield.py); the separation predicate Δ_i ≥ 2/(βN) + log(2(N−1)NβM²)/β is "
           "the paper's well-separation condition for its Theorems 4–5 as recalled from the paper (it is not in "
           "the project's reference notes): it is reported, and the bound's own exponent condition is evaluated "
           "separately. The constant term S(β⁻¹log N + ½M²) sits in the concave part so that the dimension N "
           "is bound by X in the generated code (a dimension that appears only in a scalar is not bound). "
           "hflayers (ml-jku/hopfield-layers, hflayers/functional.py hopfield_core_forward, read at commit 5231d29): "
           "update_steps_max = k runs k + 1 association softmaxes — the state of each head is replaced by "
           "softmax(β_h ξ Kᵀ) K k times (projected keys as stored patterns; β_h scales the state before every "
           "softmax), and the last association weights the projected values; a head also stops early once its "
           "association moves by less than update_steps_eps (Frobenius norm, largest over the batch), which the "
           "hflayers_multihead claim does not model (it runs exactly k steps)."),
    order=10,
    proofs=PROOFS,
)
