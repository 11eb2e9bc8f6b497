"""Attention implicit bias = Att-SVM (Tarzanagh et al., arXiv 2308.16898 and 2306.13596).

Not a forward-pass equivalence but a training-dynamics one.  Model and energy (tokens as rows)::

    f_W(X, z) = vᵀXᵀ softmax(XWz),     L(W) = (1/n) Σ_i log(1 + exp(−y_i f_W(X_i, z_i)))

Normalized gradient descent ``W ← W − η ∇L/‖∇L‖_F`` (``η = 0.1``; and on ``(K, Q)`` with
``W = KQᵀ``) is claimed to converge in direction to the Att-SVM solution for the selected tokens::

    W^mm = argmin ‖W‖_F  s.t.  (x_{iα_i} − x_it)ᵀ W z_i ≥ 1  (t ≠ α_i),     nuclear norm for (K, Q)

Checks: the derived loss and gradients against the paper's formula in plain torch and autograd;
the Att-SVMs solved by cvxpy (CLARABEL) with their KKT conditions and an SLSQP cross-check;
``corr(W(k), W^mm) > 0.99`` after 2000 iterations at ``n = 6, T = 8, d = 10`` (asymptotic; trained
in float64 whatever ``--dtype``, the lower-precision run is reported beside it: docs/numerics.md);
the ``(K, Q)`` correlation with the nuclear-norm SVM, measured while the loss gradient is above
rounding level; the loss measured along the run (normalized GD has no descent guarantee).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..attsvm.data import random_datasets
from ..attsvm.experiment import Experiment, run_experiment
from ..attsvm.model import attention_loss, attention_loss_kq, batched_state, dataset_loss, reference_loss
from ..attsvm.svm import constraint_matrices, kkt_report, solve_att_svm, solve_att_svm_slsqp
from ..symbolic import Energy
from ..verify.gradient import check_gradient
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "experiment", "SIZES", "ETA", "ITERS", "KQ_ITERS", "THRESHOLD", "KKT_TOL", "TOL"]

SIZES = {"n": 6, "T": 8, "d": 10}
ETA = 0.1
ITERS = 2000
KQ_ITERS = 300     # the (K, Q) run saturates the float64 softmax within ~100-250 iterations at η = 0.1
THRESHOLD = 0.99
KKT_TOL = 1e-6     # interior-point solver precision (CLARABEL's default tolerances are ~1e-8)
TOL = 1e-12       # loss and gradient vs the paper's formula: float64 scaled error; RunConfig.tol scales it


def energy() -> Energy:
    """``ℓ(W) = log(1 + exp(−y vᵀXᵀ softmax(XWz)))`` for one sequence; ``L`` is its mean over sequences."""
    return attention_loss()


def _datasets(config: RunConfig, param: str) -> int:
    if param == "W":
        return 2 if config.quick else 3
    return 2 if config.quick else 4


POOL = 20  # the notebook's 20 datasets; the catalogue checks run the first few of them


@lru_cache(maxsize=8)
def experiment(param: str, datasets: int, seed: int, dtype: torch.dtype = torch.float64) -> Experiment:
    """The local-convergence experiment at the paper's sizes on the first ``datasets`` of the
    ``POOL`` datasets drawn with ``seed`` (cached: several checks read it)."""
    if param == "W":
        return run_experiment(datasets, SIZES["n"], SIZES["T"], SIZES["d"], iters=ITERS, eta=ETA, param="W", seed=seed,
                              dtype=dtype, pool=POOL)
    return run_experiment(datasets, SIZES["n"], SIZES["T"], SIZES["d"], iters=KQ_ITERS, eta=ETA, param="KQ", seed=seed, dtype=dtype,
                          select_at="resolved", pool=POOL)


def _exp(config: RunConfig, param: str) -> Experiment:
    return experiment(param, _datasets(config, param), 7 + config.seed, config.dtype)


# ---- checks ---------------------------------------------------------------------------------------
def _gradient_inputs(config: RunConfig) -> dict[str, Any]:
    """3 datasets at the paper's sizes and a random ``W`` per dataset."""
    W = torch.randn(3, SIZES["d"], SIZES["d"], generator=config.generator(5), dtype=torch.float64).to(config.dtype)
    return {"data": random_datasets(3, **SIZES, seed=config.seed, dtype=config.dtype), "W": W}


def _generated_loss(t: Inputs) -> dict[str, torch.Tensor]:
    cm = attention_loss().compile()
    vals = {**t["data"].inputs(), "W": batched_state(t["W"])}
    return {"L(W)": dataset_loss(cm.energy_fn(*cm.args(**vals))), "∇L": cm.grad_fn("W")(*cm.args(**vals))[:, 0] / SIZES["n"]}


def _paper_loss(t: Inputs) -> dict[str, torch.Tensor]:
    """The paper's loss in plain torch and its gradient by ``torch.autograd``."""
    W = t["W"].clone().requires_grad_(True)
    L = reference_loss(W, t["data"])
    (G,) = torch.autograd.grad(L.sum(), W)
    return {"L(W)": L.detach(), "∇L": G}


@lru_cache(maxsize=None)
def _two_leg(wrt: tuple[str, ...]) -> tuple[bool, str]:
    """The generic two-leg gradient check (autograd and the explicit-size derivative) of the loss in
    ``W`` or in ``(K, Q)`` (float64, independent of the claim's inputs; once per process)."""
    r = check_gradient(attention_loss() if wrt == ("W",) else attention_loss_kq(), wrt=list(wrt))
    return r.passed, f"max error {r.max_error:.1e}"


LOSS_AND_GRADIENT = Claim(
    "loss_and_gradient", "gradient",
    "derived L and ∇L (W and K, Q) vs the paper's formula in plain torch, autograd, two legs",
    inputs=_gradient_inputs, layer=_generated_loss, reference=_paper_loss, tol64=TOL,
    conditions=(Predicate("two-leg check of ∇_W ℓ", lambda t, c: _two_leg(("W",))),
                Predicate("two-leg check of ∇_K ℓ, ∇_Q ℓ (W = KQᵀ)", lambda t, c: _two_leg(("K", "Q")))),
    describe=lambda t: (f"generated L(W) vs the paper's formula in plain torch, generated ∇L vs torch.autograd of "
                        f"that formula, n={SIZES['n']}, T={SIZES['T']}, d={SIZES['d']}, {t['W'].shape[0]} datasets"),
)


def _check_kkt(config: RunConfig) -> CheckResult:
    data = random_datasets(2, **SIZES, seed=config.seed + 100, dtype=torch.float64)
    rows, worst, slsqp = [], 0.0, 0.0
    for b in range(2):
        sel = data[b].optimal_tokens()[0]
        A, mask = constraint_matrices(data[b], sel)
        for norm in ("fro", "nuc"):
            sol = solve_att_svm(data[b], sel, norm)
            rep = kkt_report(sol, A, mask, KKT_TOL)
            worst = max(worst, rep.worst)
            rows.append(f"{norm}[{b}]: {rep}, {int(sol.support.sum())} support tokens, rank {np.linalg.matrix_rank(sol.W, 1e-6)}")
            if norm == "fro":
                Ws = solve_att_svm_slsqp(data[b], sel)
                slsqp = max(slsqp, float(np.linalg.norm(Ws - sol.W) / np.linalg.norm(sol.W)))
    err = max(worst, slsqp)
    return CheckResult(
        "att_svm", "att_svm_kkt", "approximate", err <= KKT_TOL, err, KKT_TOL,
        detail=("Att-SVM (globally optimal tokens, 2 datasets) by cvxpy/CLARABEL; KKT residuals recomputed "
                "with numpy: " + "; ".join(rows) + f"; Frobenius solution vs scipy SLSQP: relative {slsqp:.1e}"),
        data={"max_kkt_residual": worst, "slsqp_relative_difference": slsqp},
    )


def _figures(exp: Experiment, which: str) -> list[Figure]:
    it = [float(k) for k in exp.run.iterations]
    corr = (exp.corr_fro if which == "fro" else exp.corr_nuc).correlations
    p = exp.max_prob
    out = []
    for name, title, ys, ylabel in (
        (f"att_svm_{exp.run.param}_corr", f"{exp.run.param}: corr(W(k), W^mm_{which})", corr, "correlation"),
        (f"att_svm_{exp.run.param}_maxprob", f"{exp.run.param}: largest softmax probability", p, "max softmax prob."),
    ):
        m, s = ys.mean(1), ys.std(1) if ys.shape[1] > 1 else torch.zeros_like(ys[:, 0])
        out.append(Figure(name, title, it, {"mean": m.tolist()}, "iteration", ylabel,
                          bands={"mean": ((m - s).tolist(), (m + s).tolist())}))
    return out


def _assumptions(exp: Experiment) -> list[AssumptionResult]:
    n, T, d = SIZES["n"], SIZES["T"], SIZES["d"]
    kkt = max(r.worst for r in exp.kkt_fro + exp.kkt_nuc)
    return [
        AssumptionResult("d ≥ max(T − 1, n) (over-parameterised regime, condition [unconfirmed])", d >= max(T - 1, n),
                         f"d={d}, T={T}, n={n}"),
        AssumptionResult("Att-SVMs feasible for the selected tokens, KKT within tolerance", kkt <= KKT_TOL,
                         f"largest KKT residual {kkt:.1e}"),
    ]


def _low_precision_note(config: RunConfig) -> tuple[str, dict[str, object]]:
    """At a precision below float64: the same W run at that precision, reported (it does not decide)."""
    if config.dtype == torch.float64:
        return "", {}
    low = _exp(config, "W")
    name, ls = config.dtype_name, low.summary()
    final = low.corr_fro.final
    note = (f". Run in float64 regardless of --dtype {name}: directional convergence is a statement about the "
            f"exact-arithmetic iteration, and at {name} the softmax saturates once the selection margins exceed "
            f"−log ε ≈ {-math.log(config.eps):.0f}, after which the loss gradient is rounding noise. The same run at "
            f"{name} (measured, not claimed): corr(W({ITERS}), W^mm) min {float(final.min()):.3f}, mean "
            f"{float(final.mean()):.3f}; loss gradient above rounding level only until iterations "
            f"{ls['gradient_resolved_until']} (corr there {ls['corr_fro_at_resolved']})")
    return note, {f"{name}_run": {k: ls[k] for k in ("final_corr_fro", "gradient_resolved_until",
                                                       "corr_fro_at_resolved")}}


def _check_W(config: RunConfig) -> CheckResult:
    # the asymptotic claim is checked in float64 whatever config.dtype (docs/numerics.md)
    exp = experiment("W", _datasets(config, "W"), 7 + config.seed, torch.float64)
    res = exp.corr_fro
    s = exp.summary()
    note, low = _low_precision_note(config)
    return CheckResult(
        "att_svm", "directional_convergence_W", "asymptotic", res.passed,
        error=float(1 - res.final.min()), tol=1 - THRESHOLD,
        detail=(f"normalized GD (η={ETA}, {ITERS} iterations, n={SIZES['n']}, T={SIZES['T']}, d={SIZES['d']}, "
                f"{s['datasets']} datasets): {res.detail}; W^mm for the tokens selected at the last iterate; "
                f"selected = globally optimal in {int(exp.is_global.sum())}/{exp.is_global.numel()} datasets (local "
                f"convergence elsewhere: {s['sequences_not_optimal']} sequences off the optimum per dataset); loss "
                f"gradient above rounding level until iterations {s['gradient_resolved_until']} (corr there "
                f"{s['corr_fro_at_resolved']}); corr with the nuclear SVM {s['final_corr_nuc']}" + note),
        assumptions=_assumptions(exp), data=s | low, figures=_figures(exp, "fro"),
    )


def _check_KQ(config: RunConfig) -> CheckResult:
    exp = _exp(config, "KQ")
    s = exp.summary()
    nuc, fro = exp.at_resolved(exp.corr_nuc), exp.at_resolved(exp.corr_fro)
    closer = float(nuc.mean()) > float(fro.mean())
    return CheckResult(
        "att_svm", "directional_convergence_KQ", "asymptotic", closer,
        error=float(1 - nuc.mean()), tol=None,
        detail=(f"normalized GD on (K, Q) (each factor normalized, η={ETA}, {KQ_ITERS} iterations, {s['datasets']} "
                f"datasets): the loss gradient stays above rounding level until iterations "
                f"{s['gradient_resolved_until']} (then the {config.dtype_name} softmax has saturated and later steps follow "
                f"rounding noise); there corr(KQᵀ, W^mm_*) = "
                f"{s['corr_nuc_at_resolved']} (mean {float(nuc.mean()):.4f}) vs corr(KQᵀ, W^mm_F) = "
                f"{s['corr_fro_at_resolved']} (mean {float(fro.mean()):.4f}), nuclear closer in "
                f"{int((nuc > fro).sum())}/{nuc.numel()} datasets; selected = globally optimal in "
                f"{int(exp.is_global.sum())}/{exp.is_global.numel()} datasets; passes when the iterates are closer on "
                f"average to the nuclear-norm than to the Frobenius SVM; the 0.99 level is not reached before "
                f"saturation"),
        assumptions=_assumptions(exp), data=s, figures=_figures(exp, "nuc"),
    )


def _check_descent(config: RunConfig) -> CheckResult:
    exp = _exp(config, "W")
    viol = exp.run.descent_violations()
    inc = exp.run.loss_increases()
    L = exp.run.loss
    return CheckResult(
        "att_svm", "training_loss_descent", "descent", bool((viol == 0).all()), float(inc.max()), None,
        detail=(f"L(W(k)) along normalized GD ({ITERS} iterations, {L.shape[1]} datasets): {L[0].tolist()} → "
                f"{L[-1].tolist()}; steps with an increase above 64·ε·max(1, L): {viol.tolist()}; largest change "
                f"{float(inc.max()):.2e}. Measured, not guaranteed: normalized GD with fixed η has no descent "
                f"condition"),
        data={"loss_first": L[0].tolist(), "loss_last": L[-1].tolist(), "violations": viol.tolist()},
    )


PROOFS = (
    Proof("loss_gradient", "∇_W log(1 + exp(−y vᵀXᵀsoftmax(XWz))) = −yσ(−yf) Xᵀ(diag(s) − ssᵀ)Xvzᵀ (unfold's "
          "derivation and plain sp.diff); softmax Jacobian ∂(uᵀs)/∂a = s∘(u − uᵀs)", "fixed-size",
          "T = 2, d = 2 with W symbolic and rational data (Jacobian: T = 3, symbolic scores)", ("loss_and_gradient",)),
    Proof("kkt_system", "Frobenius Att-SVM min ½‖W‖² s.t. ⟨A_k, W⟩ ≥ 1: W = Σλ_kA_k, dual Σλ − ½‖Σλ_kA_k‖², "
          "both active: λ = G⁻¹1, ‖W‖² = Σλ (zero gap)", "fixed-size", "d = 2, two symbolic constraints",
          ("att_svm_kkt",)),
    Proof("rational_instance", "a rational Att-SVM instance's exact KKT point (active-set enumeration) equals the "
          "cvxpy solution", "fixed-size", "n = 2, T = 3, d = 2 exact; the cvxpy agreement is numeric (1e-6)",
          ("att_svm_kkt",)),
)

ENTRY = Entry(
    name="att_svm",
    title="Attention implicit bias = Att-SVM (training dynamics)",
    source="Tarzanagh, Li, Thrampoulidis, Oymak, Transformers as Support Vector Machines, arXiv 2308.16898; "
           "Tarzanagh, Li, Zhang, Oymak, Max-Margin Token Selection in Attention Mechanism, arXiv 2306.13596",
    summary=("Normalized gradient descent on the logistic loss of f_W(X, z) = vᵀXᵀ softmax(XWz) converges in "
             "direction to the max-margin SVM separating each sequence's selected token (Frobenius norm for W, "
             "nuclear norm for W = KQᵀ); selected tokens may be only locally optimal."),
    energy=energy,
    checks=(
        LOSS_AND_GRADIENT,
        Check("att_svm_kkt", "approximate",
              "Frobenius and nuclear Att-SVM by cvxpy: KKT residuals ≤ 1e-6; SLSQP agrees", _check_kkt),
        Check("directional_convergence_W", "asymptotic",
              "corr(W(2000), W^mm) > 0.99 for the selected tokens; local vs global selection", _check_W),
        Check("directional_convergence_KQ", "asymptotic",
              "corr(KQᵀ, W^mm_*) measured up to numerical saturation; closer to W^mm_* than to W^mm_F", _check_KQ),
        Check("training_loss_descent", "descent",
              "L(W(k)) non-increasing along the normalized GD run (measured)", _check_descent),
    ),
    assumptions=("selected tokens: argmax of the softmax at the last iterate (at the last resolved iterate for K, Q)",
                 "d ≥ max(T − 1, n) for the global theory (condition [unconfirmed])",
                 "unit-norm tokens, queries and v; labels ±1"),
    mapping="W = KQᵀ in the (K, Q) parameterization; token scores γ_it = y_i vᵀx_it; α_i = argmax_t γ_it",
    notes=("Asymptotic claim checked at a finite horizon: corr > 0.99 at k = 2000 held in 61 of 62 datasets "
           "measured during development (one reached 0.9887, still rising); the checks run the first datasets of "
           "the notebook's pool of 20 (all above 0.994). "
           "In float64 the softmax saturates once the selection "
           "margins exceed −log ε ≈ 36: the loss gradient is then rounding noise, which normalized GD rescales to "
           "length η; reported as 'gradient_resolved_until'."),
    order=80,
    proofs=PROOFS,
)
