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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import symbolic as s
from ..steps import GradientStep
from ..symbolic import Energy
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Control, Inputs, Predicate
from ._proof import Proof

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


GAMMA = 1.7


def _ln_inputs(config: RunConfig) -> dict[str, Any]:
    return {f"D={D}": sample_tokens(config, D) for D in SIZES}


def _ln_layer(t: Inputs) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for tag, d in t.items():
        G = gradient_layer().gradient(d["X"], delta=d["delta"], gamma=GAMMA, eps=EPS)
        out |= {f"{tag} vs F.layer_norm": G, f"{tag} vs nn.LayerNorm": G}
    return out


def _ln_reference(t: Inputs, correction: int = 0) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for tag, d in t.items():
        X, delta = d["X"], d["delta"]
        D = X.shape[-2]
        w = torch.full((D,), GAMMA, dtype=X.dtype)
        ln = nn.LayerNorm(D, eps=EPS, dtype=X.dtype)
        with torch.no_grad():
            ln.weight.fill_(GAMMA)
            ln.bias.copy_(delta[:, 0])
            mod = ln(X.mT).mT
        ref = F.layer_norm(X.mT, (D,), w, delta[:, 0], EPS).mT
        if correction:  # the unbiased variance (torch.var's default): a different map
            xc = X - X.mean(dim=-2, keepdim=True)
            ref = mod = GAMMA * xc / torch.sqrt(X.var(dim=-2, keepdim=True) + EPS) + delta
        out |= {f"{tag} vs F.layer_norm": ref, f"{tag} vs nn.LayerNorm": mod}
    return out


GRADIENT_CLAIM = Claim(
    name="layernorm_is_gradient", kind="exact",
    description="generated ∇L = F.layer_norm = nn.LayerNorm (scalar gain)",
    inputs=_ln_inputs, layer=_ln_layer, reference=_ln_reference, tol64=TOL,
    assumptions=(Predicate.by_construction("scalar gain γ", f"γ = {GAMMA} (one number for all features)"),
                 Predicate.by_construction("biased variance",
                                           "biased variance, ε inside the square root, as torch's layer norm")),
    controls=(Control("layer norm with the unbiased variance", reference=lambda t: _ln_reference(t, correction=1)),),
    describe=lambda t: f"generated ∇L vs layer norm (γ={GAMMA}, ε={EPS}, 5 tokens × 3 batches)",
)


def _hess_inputs(config: RunConfig) -> dict[str, Any]:
    D = SIZES[0] + 2
    d = sample_tokens(config, D, n=1, batch=1)
    g = config.generator(189)
    return {"x": d["X"][0], "delta": d["delta"], "gamma": 0.8, "eps": HESSIAN_EPS,
            "gains": 1 + torch.rand(D, generator=g, dtype=torch.float64).to(config.dtype)}


def _eigenframe(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The claimed eigenspaces of ``∇²L`` at the token ``x`` (D, 1): ``1``, ``y = Px``, and an orthonormal
    basis (D, D − 2) of ``span(1, y)^⊥``."""
    D = x.shape[0]
    y = x - x.mean()
    one = torch.ones(D, 1, dtype=x.dtype)
    basis = torch.linalg.qr(torch.cat([one, y, torch.eye(D, dtype=x.dtype)], dim=1))[0][:, 2:D]
    return one, y, basis


def _hess_parts(H: torch.Tensor, t: Inputs) -> dict[str, torch.Tensor]:
    one, y, basis = _eigenframe(t["x"])
    lam_min = torch.linalg.eigvalsh((H + H.mT) / 2).min()
    return {"H − Hᵀ = 0": H - H.mT, "H1 = 0": H @ one, "Hy = (γ/s)ε/(V+ε) y": H @ y,
            "H = γ/s on span(1, y)^⊥": H @ basis, "λ_min ≥ 0 (violation)": torch.clamp(-lam_min, min=0)[None]}


def _hess_layer(t: Inputs) -> dict[str, torch.Tensor]:
    return _hess_parts(hessian(t["x"], t["delta"], t["gamma"], t["eps"]), t)


def _hess_reference(t: Inputs) -> dict[str, torch.Tensor]:
    x, gamma, eps = t["x"], t["gamma"], t["eps"]
    D = x.shape[0]
    one, y, basis = _eigenframe(x)
    V = float((y * y).mean())
    scale = gamma / (V + eps) ** 0.5
    return {"H − Hᵀ = 0": torch.zeros(D, D, dtype=x.dtype), "H1 = 0": torch.zeros_like(one),
            "Hy = (γ/s)ε/(V+ε) y": scale * eps / (V + eps) * y, "H = γ/s on span(1, y)^⊥": scale * basis,
            "λ_min ≥ 0 (violation)": torch.zeros(1, dtype=x.dtype)}


def _per_feature_gain(t: Inputs) -> dict[str, torch.Tensor]:
    """Control: the Jacobian of nn.LayerNorm with a per-feature gain (no Lagrangian: not symmetric)."""
    x = t["x"]
    D = x.shape[0]
    ln = nn.LayerNorm(D, eps=t["eps"], dtype=x.dtype)
    with torch.no_grad():
        ln.weight.copy_(t["gains"])
    J = torch.func.jacrev(lambda v: ln(v))(x[:, 0]).detach()
    return {**_hess_layer(t), "H − Hᵀ = 0": J - J.mT}


def _gamma_positive(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    return t["gamma"] > 0, f"γ = {t['gamma']}"


def _eps_positive(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    return t["eps"] > 0, f"ε = {t['eps']}"


HESSIAN_CLAIM = Claim(
    name="hessian_symmetric_psd", kind="exact",
    description="∇²L symmetric, eigenvalues 0, (γ/s)ε/(V+ε), γ/s (D−2 times); per-feature gain not symmetric",
    inputs=_hess_inputs, layer=_hess_layer, reference=_hess_reference, tol64=TOL,
    assumptions=(Predicate("γ > 0", _gamma_positive), Predicate("ε > 0 (else y joins the null space)", _eps_positive)),
    controls=(Control("per-feature gain (nn.LayerNorm weights ≠ const): symmetric Jacobian", layer=_per_feature_gain),),
    describe=lambda t: f"∇²L of the generated gradient (jacfwd), D={t['x'].shape[0]}, γ={t['gamma']}, ε={t['eps']}",
)


def check_convex_along_lines(config: RunConfig) -> CheckResult:
    """``t ↦ L(x + t u)`` is convex (second differences ≥ 0) along random lines: the generated energy."""
    D, lines = 6, 4
    d = sample_tokens(config, D, n=1, batch=lines)
    g = config.generator(188)
    u = torch.randn(lines, D, 1, generator=g, dtype=torch.float64).to(config.dtype)
    ts = torch.linspace(-3, 3, 61, dtype=torch.float64).to(config.dtype)
    layer = gradient_layer()
    vals = torch.stack([layer.energy(d["X"] + t * u, delta=d["delta"], gamma=GAMMA, eps=EPS) for t in ts])  # (61, lines)
    second = vals[2:] - 2 * vals[1:-1] + vals[:-2]
    scale = float(vals.abs().max())
    violation = max(float(-second.min()) / max(1.0, scale), 0.0)
    tol = config.tol(TOL)
    fig = Figure("layernorm_lagrangian_lines", "Lagrangian of layer norm along random lines (convex)",
                 ts.tolist(), {f"line {k}": (vals[:, k] - vals[30, k]).tolist() for k in range(lines)},
                 xlabel="t", ylabel="L(x + t u) − L(x)")
    return CheckResult(
        passed=violation <= tol, error=violation, tol=tol,
        detail=(f"{lines} random lines, 61 points on t ∈ [−3, 3], D={D}, γ={GAMMA}, {config.dtype_name}: smallest second "
                f"difference {float(second.min()):.2e} (scaled violation {violation:.1e})" + config.tol_note(TOL)),
        assumptions=[AssumptionResult("γ > 0", GAMMA > 0, f"γ = {GAMMA}")],
        data={"min_second_difference": float(second.min())}, figures=[fig])


_GRAD, _HESS = ("layernorm_is_gradient",), ("hessian_symmetric_psd",)
PROOFS = (
    Proof("centering_projector", "P = I − 11ᵀ/D is symmetric and idempotent, P1 = 0", "general",
          "algebra of O = 11ᵀ with O² = D·O (any D)", _GRAD + _HESS),
    Proof("gradient_general", "∇L = γ(x − mean)/sqrt(var + ε) + δ", "general",
          "scalar sp.diff of L(x + tu) in t, any D", _GRAD),
    Proof("hessian_general", "∇²L = (γ/s)(P − yyᵀ/(Ds²)), symmetric", "general", "scalar sp.diff in t, any D", _HESS),
    Proof("hessian_eigenvalues", "eigenvalues 0, (γ/s)ε/(V + ε), γ/s: all ≥ 0 (PSD), so L is convex along every line",
          "general", "the Hessian form applied to eigenspaces spanning R^D, any D", _HESS + ("convex_along_lines",)),
    Proof("engine_golden", "unfold's derived ∇L = 2γP(PX ⊙ 1·(1/(2√(var + ε)))) + δ1ᵀ = γPX/s + δ1ᵀ (P² = P)",
          "engine-golden", "structural at symbolic D, n", _GRAD),
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
    checks=(GRADIENT_CLAIM, HESSIAN_CLAIM,
            Check("convex_along_lines", "exact", "L(x + tu) convex in t along random lines (second differences ≥ 0)",
                  check_convex_along_lines)),
    assumptions=("scalar gain γ > 0", "biased variance", "ε > 0 inside the square root"),
    mapping="nn.LayerNorm(D, eps) with weight = γ·1, bias = δ  ↔  ∇L",
    notes="NRGPT's BareLayerNorm is the case γ = 1 (weight frozen at 1, learnable bias).",
    order=115,
    proofs=PROOFS,
)
