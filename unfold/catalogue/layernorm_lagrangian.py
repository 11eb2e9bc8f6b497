"""LayerNorm is a gradient (Hoover et al., Energy Transformer, arXiv 2302.07253; HAMUX).

Energy (the Lagrangian of the layer-norm neuron, tokens as the ``n`` columns of ``X ∈ R^{D×n}``)::

    L(X) = Σ_j [ D γ sqrt(V(x_j) + ε) + δᵀx_j ],    V(x) = ‖Px‖²/D,   P = I − 11ᵀ/D   (biased variance)

Generated layer: the checked generated gradient of :class:`~unfold.steps.GradientStep` on ``L``::

    ∇_{x_j} L = γ (x_j − mean(x_j)1)/sqrt(V(x_j) + ε) + δ  =  LayerNorm(x_j) with scalar gain γ, bias δ

Hessian (per token, ``y = Px``, ``s = sqrt(V + ε)``): ``∇²L = (γ/s)(P − yyᵀ/(D s²))`` — symmetric, with
eigenvalue 0 on ``1``, ``(γ/s)·ε/(V + ε)`` on ``y`` and ``γ/s`` on the other ``D − 2`` directions, hence
PSD for ``γ > 0``: ``L`` is convex and layer norm is a legitimate energy neuron.  With a per-feature
gain ``diag(γ)`` the Jacobian ``diag(γ)(P − yyᵀ/(Ds²))/s`` is not symmetric, so no Lagrangian exists.

Reference: ``torch.nn.functional.layer_norm`` and ``nn.LayerNorm`` (weight filled with γ).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .. import symbolic as s
from ..steps import GradientStep
from ..symbolic import Energy
from ._measure import scaled_error
from .base import AssumptionResult, Check, CheckResult, Entry, RunConfig
from .proof import Proof

__all__ = ["ENTRY", "TOL", "EPS", "energy", "gradient_layer", "sample_tokens", "hessian"]

NAME = "layernorm_lagrangian"
TOL = 1e-12
EPS = 1e-5
SIZES = (4, 16)  # feature dimensions D checked
HESSIAN_EPS = 0.5  # a large ε makes the eigenvalue (γ/s)ε/(V+ε) on y well resolved (the claim holds for every ε > 0)


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``L(X) = Σ_j D γ sqrt(‖Px_j‖²/D + ε) + δᵀx_j`` with ``P = I − 11ᵀ/D``."""
    D, n = s.dims("D n")
    X, delta = s.state("X", D, n), s.param("delta", D, 1)
    gamma, eps = s.scalar("gamma", positive=True), s.scalar("eps", positive=True)
    Y = (s.identity(D) - s.ones(D, D) / D) * X
    var = s.ones(1, D) * s.hadamard(Y, Y) / D
    return Energy(terms={"scale": D * gamma * s.sum_entries(s.sqrt(var + eps * s.ones(1, n))),
                         "bias": s.sum_entries(delta.T * X)}, name="L")


@lru_cache(maxsize=1)
def gradient_layer() -> GradientStep:
    """The generated step on ``L``; its ``gradient(X, …)`` is the layer-norm map."""
    return GradientStep(energy(), wrt="X", step=1.0)


def sample_tokens(config: RunConfig, D: int, n: int = 5, batch: int = 3) -> dict[str, torch.Tensor]:
    g = config.generator(180 + D)
    f64 = torch.float64
    X = 2 * torch.randn(batch, D, n, generator=g, dtype=f64) + torch.randn(batch, 1, n, generator=g, dtype=f64)
    delta = torch.randn(D, 1, generator=g, dtype=f64)
    return {"X": X.to(config.dtype), "delta": delta.to(config.dtype)}


def hessian(x: torch.Tensor, delta: torch.Tensor, gamma: float, eps: float = EPS) -> torch.Tensor:
    """``∇²L`` of one token ``x`` (shape (D, 1)): the Jacobian of the generated gradient (``torch.func``)."""
    layer = gradient_layer()  # built (and its gradient checked) outside the transform

    def grad(v: torch.Tensor) -> torch.Tensor:
        return layer.gradient(v[:, None], delta=delta, gamma=gamma, eps=eps)[:, 0]

    return torch.func.jacfwd(grad)(x[:, 0])


def check_gradient_is_layernorm(config: RunConfig) -> CheckResult:
    errors: dict[str, float] = {}
    gamma = 1.7
    for D in SIZES:
        d = sample_tokens(config, D)
        X, delta = d["X"], d["delta"]
        G = gradient_layer().gradient(X, delta=delta, gamma=gamma, eps=EPS)
        w = torch.full((D,), gamma, dtype=X.dtype)
        ref = F.layer_norm(X.mT, (D,), w, delta[:, 0], EPS).mT
        ln = nn.LayerNorm(D, eps=EPS, dtype=X.dtype)
        with torch.no_grad():
            ln.weight.fill_(gamma)
            ln.bias.copy_(delta[:, 0])
            mod = ln(X.mT).mT
        errors[f"D={D} vs F.layer_norm"] = scaled_error(G, ref)
        errors[f"D={D} vs nn.LayerNorm"] = scaled_error(G, mod)
    err = max(errors.values())
    tol = config.tol(TOL)
    return CheckResult(
        NAME, "layernorm_is_gradient", "exact", err <= tol, err, tol,
        detail=(f"generated ∇L vs layer norm (γ={gamma}, ε={EPS}, 5 tokens × 3 batches), {config.dtype_name}: "
                + "; ".join(f"{k} {v:.1e}" for k, v in errors.items()) + config.tol_note(TOL)),
        assumptions=[AssumptionResult("scalar gain γ (one number for all features)", True, f"γ = {gamma}"),
                     AssumptionResult("biased variance, ε inside the square root", True, "as torch's layer norm")],
        data=errors)


def check_hessian(config: RunConfig) -> CheckResult:
    gamma, D = 0.8, SIZES[0] + 2
    d = sample_tokens(config, D, n=1, batch=1)
    x, delta = d["X"][0], d["delta"]
    eps = HESSIAN_EPS
    H = hessian(x, delta, gamma, eps)
    y = x - x.mean()
    V = float((y * y).mean())
    sdev = (V + eps) ** 0.5
    one = torch.ones(D, 1, dtype=x.dtype)
    scale = gamma / sdev
    errors = {
        "‖H − Hᵀ‖": scaled_error(H, H.mT),
        "H1 = 0": scaled_error(H @ one, torch.zeros_like(one)),
        "Hy = (γ/s)ε/(V+ε) y": scaled_error(H @ y, scale * eps / (V + eps) * y),
    }
    # the other D − 2 eigenvalues are γ/s: on the complement of span(1, y)
    basis = torch.linalg.qr(torch.cat([one, y, torch.eye(D, dtype=x.dtype)], dim=1))[0][:, 2:D]
    errors["H = γ/s on span(1, y)^⊥"] = scaled_error(H @ basis, scale * basis)
    lam_min = float(torch.linalg.eigvalsh((H + H.mT) / 2).min())
    errors["λ_min ≥ 0 (violation)"] = max(-lam_min, 0.0)
    # per-feature gain: no Lagrangian (the Jacobian of nn.LayerNorm with random weights is not symmetric)
    g = config.generator(189)
    ln = nn.LayerNorm(D, eps=eps, dtype=x.dtype)
    with torch.no_grad():
        ln.weight.copy_(1 + torch.rand(D, generator=g, dtype=torch.float64).to(x.dtype))
    J = torch.func.jacrev(lambda v: ln(v))(x[:, 0]).detach()
    asym = float((J - J.mT).abs().max() / J.abs().max())
    err = max(errors.values())
    tol = config.tol(TOL)
    return CheckResult(
        NAME, "hessian_symmetric_psd", "exact", err <= tol and asym > 1e-3, err, tol,
        detail=(f"∇²L of the generated gradient (jacfwd), D={D}, γ={gamma}, ε={eps}, {config.dtype_name}: "
                + "; ".join(f"{k} {v:.1e}" for k, v in errors.items())
                + f"; λ_min = {lam_min:.1e}; control: per-feature gain, ‖J − Jᵀ‖/‖J‖ = {asym:.2f} (no Lagrangian)"
                + config.tol_note(TOL)),
        assumptions=[AssumptionResult("γ > 0", gamma > 0, f"γ = {gamma}"),
                     AssumptionResult("ε > 0 (else y joins the null space)", eps > 0, f"ε = {eps}")],
        data={**errors, "lambda_min": lam_min, "per_feature_asymmetry": asym})


_GRAD, _HESS = ("layernorm_is_gradient",), ("hessian_symmetric_psd",)
PROOFS = (
    Proof("centering_projector", "P = I − 11ᵀ/D is symmetric and idempotent, P1 = 0", "general",
          "algebra of O = 11ᵀ with O² = D·O (any D)", _GRAD + _HESS),
    Proof("gradient_general", "∇L = γ(x − mean)/sqrt(var + ε) + δ", "general",
          "scalar sp.diff of L(x + tu) in t, any D", _GRAD),
    Proof("hessian_general", "∇²L = (γ/s)(P − yyᵀ/(Ds²)), symmetric", "general", "scalar sp.diff in t, any D", _HESS),
    Proof("hessian_eigenvalues", "eigenvalues 0, (γ/s)ε/(V + ε), γ/s: all ≥ 0 (PSD)", "general",
          "eigenspaces spanning R^D, any D", _HESS),
    Proof("engine_entrywise", "unfold's derived ∇L = γ(x − mean)/sqrt(var + ε) + δ entry by entry", "fixed-size",
          "expanded at D = 4, cancel", _GRAD),
)

ENTRY = Entry(
    name=NAME,
    title="LayerNorm is the gradient of a convex Lagrangian",
    source="Hoover et al., Energy Transformer, arXiv 2302.07253; HAMUX (bhoov/hamux)",
    summary=("Layer norm with a scalar gain γ and bias δ is ∇ of L(x) = Dγ sqrt(var(x) + ε) + δᵀx (exact); "
             "its Hessian is symmetric PSD for γ > 0; with a per-feature gain no Lagrangian exists."),
    energy=energy,
    checks=(
        Check("layernorm_is_gradient", "exact", "generated ∇L = F.layer_norm = nn.LayerNorm (scalar gain)",
              check_gradient_is_layernorm),
        Check("hessian_symmetric_psd", "exact",
              "∇²L symmetric, eigenvalues 0, (γ/s)ε/(V+ε), γ/s (D−2 times); per-feature gain not symmetric",
              check_hessian),
    ),
    assumptions=("scalar gain γ > 0", "biased variance", "ε > 0 inside the square root"),
    mapping="nn.LayerNorm(D, eps) with weight = γ·1, bias = δ  ↔  ∇L",
    notes="NRGPT's BareLayerNorm is the case γ = 1 (weight frozen at 1, learnable bias).",
    order=115,
    proofs=PROOFS,
)
