"""Energy Transformer (Hoover et al., arXiv 2302.07253): a layer is a descent step on
``E = E_ATT + E_HN`` evaluated on layer-normed tokens.

Tokens are rows ``x_A ∈ R^D`` (``x ∈ R^{N×D}``).  The energy layer norm has a **scalar** gain::

    g = γ (x − mean x)/sqrt(var x + ε) + δ                       (per token; = ∇_x L(x),
                                                                    L = Dγ sqrt(var + ε) + δᵀx)
    E_ATT(g) = −(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC + C_CB),  K_hB = W_K^h g_B, Q_hC = W_Q^h g_C
    E_HN(g)  = −½ Σ_A Σ_μ relu(g_Aᵀ Ξ)_μ²,                        β = 1/√(head dim)

``C`` is an additive attention mask: ``0`` includes the self-pairs ``B = C`` (the official code),
``−∞`` on the diagonal gives the ``B ≠ C`` variant.  The layer (the paper's discrete dynamics) is

    x⁺ = x − α ∂E/∂g |_{g = LN(x)},

and ``−∂E/∂g_A`` is the two-term attention update (the token as query *and* as key) plus
``Ξ relu(Ξᵀ g_A)``.  Since ``dE/dt = −(∂E/∂g)ᵀ J_LN (∂E/∂g)`` and ``J_LN = ∇²L`` is symmetric PSD for
a scalar ``γ``, the continuous dynamics descend ``E(LN(x))``; discrete steps need a small ``α``
(the paper's code uses 0.1).  A per-feature gain makes ``J_LN`` non-symmetric and the argument fails.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import sympy as sp
import torch

from ..codegen.generate import Output, generate
from ..steps import EnergyStep, Unrolled
from ..symbolic import ops as s
from ..symbolic.energy import Energy
from ..symbolic.symbols import dims, param, scalar, state
from ..verify.certificates import checked_grad_fn
from . import _attention_refs as ref
from .base import AssumptionResult, Check, CheckResult, ControlResult, Entry, RunConfig
from ._claim import Claim, Control, Descent, EnergyPlot, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "energy_heads", "layernorm_expr", "ETLayer", "et_layer", "make_inputs", "reference_gradient"]

#: The independent reference: the paper's two-term closed-form gradient ``∂E/∂g`` in plain torch.
reference_gradient = ref.et_grad_closed_form

NAME = "energy_transformer"
EXACT_TOL = 1e-12  # float64 scaled error; RunConfig.tol scales it (≈4504 ulps of the working precision)
EPS = 1e-5


def _dims() -> tuple[Any, ...]:
    return dims("N D K M")


@lru_cache(maxsize=None)
def energy(heads: int = 2, mask: bool = True) -> Energy:
    """(Cached: one derivation per process.) ``E_ATT + E_HN`` over the layer-normed tokens ``g`` (state, N×D), with terms
    ``attention_h1..H`` and ``memory``; parameters ``WQh, WKh`` (K×D), ``Xi`` (D×M) and, with ``mask``,
    the additive mask ``C`` (N×N).  ``mask=False`` is the energy with ``C = 0`` (self-pairs included,
    the official code's choice) without the mask input: its layer skips the N×N addition."""
    N, D, K, M = _dims()
    g, Xi, C = state("g", N, D), param("Xi", D, M), param("C", N, N)
    beta = scalar("beta", positive=True)
    terms: dict[str, Any] = {}
    for h in range(1, heads + 1):
        WQ, WK = param(f"WQ{h}", K, D), param(f"WK{h}", K, D)
        scores = beta * (g * WQ.T) * (g * WK.T).T              # [C, B] = β K_Bᵀ Q_C
        if mask:
            scores = scores + C                                 # + the additive mask C_CB
        terms[f"attention_h{h}"] = -s.lse(scores, axis=1) / beta
    terms["memory"] = -s.sum_entries(s.hpow(s.relu(g * Xi), 2)) / 2
    return Energy(terms=terms)


@lru_cache(maxsize=None)
def energy_heads(heads: Any = None, mask: bool = False) -> Energy:
    """(Cached.) The same energy with the heads as a named axis: ``E = −(1/β) Σ_h Σ_C lse_B(β K_hBᵀ Q_hC
    [+ C_CB]) − ½ Σ relu(g Ξ)²`` with ``WQ, WK`` one ``(H, K, D)`` tensor each (``heads``: a number,
    or ``None`` for a symbolic ``H``); with ``mask`` the additive mask ``C`` (N×N, ``-inf`` on the
    diagonal excludes self-pairs) is a declared mask input.  Derived once for any number of heads:
    the official configuration (12 heads of 64, D = 768) is one generated layer."""
    from ..symbolic.axes import axis, sum_over
    from ..symbolic.masks import mask as declare_mask

    N, D, K, M = _dims()
    h = axis("h", heads if heads is not None else dims("H")[0])
    g, Xi = state("g", N, D), param("Xi", D, M)
    WQ, WK = param("WQ", K, D, over=h), param("WK", K, D, over=h)
    beta = scalar("beta", positive=True)
    scores = beta * (g * WQ.T) * (g * WK.T).T                  # [C, B] = β K_Bᵀ Q_C
    C = declare_mask("C", N, N) if mask else None
    return Energy(terms={
        "attention": -sum_over(h, s.lse(scores, axis=1, mask=C)) / beta,
        "memory": -s.sum_entries(s.hpow(s.relu(g * Xi), 2)) / 2,
    })


def layernorm_expr(per_feature: bool = False) -> tuple[Any, Any]:
    """The energy layer norm ``γ LN(x) + 1δᵀ`` (scalar γ), or with a per-feature gain
    ``LN(x) diag(γ) + 1δᵀ`` (``Gam`` a D×D parameter): returns ``(x, expression)``."""
    N, D, _, _ = _dims()
    x, delta = state("x", N, D), param("delta", D, 1)
    if per_feature:
        Gam = param("Gam", D, D)
        return x, s.layernorm(x, EPS, axis=1) * Gam + s.ones(N, 1) * delta.T
    gamma = scalar("gamma", positive=True)
    return x, s.layernorm(x, EPS, gain=gamma, axis=1) + s.ones(N, 1) * delta.T


@lru_cache(maxsize=None)
def _layernorm_fn(per_feature: bool = False) -> Any:
    x, expr = layernorm_expr(per_feature)
    ins = [x] + sorted((a for a in expr.atoms(sp.Symbol, sp.MatrixSymbol) if a != x and str(a) in
                        {"delta", "Gam", "gamma"}), key=str)
    return generate("energy_layernorm", ins, [Output("matrix", expr)])


def layernorm(x: torch.Tensor, **ln: Any) -> torch.Tensor:
    """The generated energy layer norm at ``x`` (``gamma``, ``delta`` or ``Gam``, ``delta``)."""
    fn = _layernorm_fn("Gam" in ln)
    return fn(*[x if a == "x" else ln[a] for a in fn.input_names])


class ETLayer(EnergyStep):
    """``x⁺ = x − α ∂E/∂g |_{g = LN(x)}``: the Energy-Transformer block.

    A :class:`unfold.steps.EnergyStep` over ``E(g)`` (state ``g``): the gradient is the one unfold
    generates from the energy (never written by hand), evaluated at ``g = LN(x)`` (the generated
    energy layer norm) and applied to ``x``.  unfold.steps has no "gradient in the activations,
    step in the pre-activations" (HAMUX neuron-layer) step, and ``GradientStep`` refuses ``E_HN``
    (its smoothness test does not recognise ``(2·relu(z))∘step(z)``, the continuous gradient of
    ``½relu(z)²``), so this is the smallest adapter on the steps base class.  ``energy(x)`` is
    ``E(LN(x))``, the Lyapunov function of the dynamics.  ``check=True`` runs the two-leg gradient
    check before first use.
    """

    def __init__(self, energy: Energy, alpha: float, ln: Mapping[str, Any], check: bool = False,
                 **kw: Any) -> None:
        super().__init__(energy, "g", **kw)
        self.alpha = float(alpha)
        self._ln = dict(ln)
        cm = self._compiled
        self._grad = checked_grad_fn(cm.energy, self.wrt) if check else cm.grad_fn(self.wrt)

    def g(self, x: torch.Tensor) -> torch.Tensor:
        """The layer-normed tokens ``LN(x)``."""
        return layernorm(x, **self._ln)

    def gradient(self, g: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """The generated ``∂E/∂g`` at ``g``."""
        cm = self._compiled
        return self._grad(*cm.args(**self.inputs_for(self.source_energy, g, inputs)))

    def forward(self, x: torch.Tensor, **inputs: Any) -> torch.Tensor:
        return x - self.alpha * self.gradient(self.g(x), **inputs)

    def energy_g(self, g: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """``E(g)`` at layer-normed tokens ``g``."""
        return super().energy(g, **inputs)

    def energy(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor:
        """``E(LN(x))``."""
        return super().energy(self.g(x), **inputs)

    def energy_terms(self, x: torch.Tensor, /, **inputs: Any) -> dict[str, torch.Tensor]:
        return super().energy_terms(self.g(x), **inputs)

    def update_rule(self) -> Any:
        """``x − α ∂E/∂g`` with ``∂E/∂g`` symbolic (to be evaluated at ``g = LN(x)``)."""
        x, _ = layernorm_expr()
        return x - sp.Float(self.alpha) * self.source_energy.grad(self.wrt)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, " + super().extra_repr()


def et_layer(alpha: float, heads: int = 2, ln: Mapping[str, Any] | None = None, check: bool = False,
             mask: bool = True) -> ETLayer:
    """An ET block with step ``α`` (``ln``: ``gamma``, ``delta`` of the layer norm; ``mask=False``:
    the energy without the mask input ``C``, i.e. ``C = 0``).

    The gradient is validated on every ``unfold verify`` run against the paper's closed form and
    against ``torch.func.grad`` of an independent plain-torch energy; ``check=True`` also runs the
    generic two-leg check (≈10 s at explicit sizes, done once per process)."""
    return ETLayer(energy(heads, mask), alpha, ln or {}, check=check)


# ---- data ------------------------------------------------------------------------------------------
def make_inputs(g: torch.Generator, dtype: torch.dtype, N: int, D: int, K: int, M: int, heads: int,
                mask_self: bool = False) -> dict[str, Any]:
    """Random ET weights: ``W_Q, W_K ~ N(0, 1/D)``, ``Ξ ~ N(0, 1/D)``, ``β = 1/√K``."""
    out: dict[str, Any] = {}
    for h in range(1, heads + 1):
        out[f"WQ{h}"] = torch.randn(K, D, generator=g, dtype=dtype) / math.sqrt(D)
        out[f"WK{h}"] = torch.randn(K, D, generator=g, dtype=dtype) / math.sqrt(D)
    out["Xi"] = torch.randn(D, M, generator=g, dtype=dtype) / math.sqrt(D)
    C = torch.zeros(N, N, dtype=dtype)
    out["C"] = C.fill_diagonal_(float("-inf")) if mask_self else C
    out["beta"] = 1.0 / math.sqrt(K)
    return out


def _ref_args(inp: Mapping[str, Any], heads: int) -> tuple[list, list, torch.Tensor, float]:
    WQ = [inp[f"WQ{h}"] for h in range(1, heads + 1)]
    WK = [inp[f"WK{h}"] for h in range(1, heads + 1)]
    return WQ, WK, inp["Xi"], inp["beta"]


def _sizes(config: RunConfig) -> tuple[int, int, int, int, int]:
    return (6, 8, 4, 16, 2) if config.quick else (8, 16, 8, 64, 2)   # N, D, K, M, heads


# ---- checks ---------------------------------------------------------------------------------------
_PAIRS = {"B = C": False, "B ≠ C": True}   # the two masks: self-pairs included / excluded


def _gradient_inputs(config: RunConfig) -> dict[str, Any]:
    """Per mask: the ET weights and a batch of 3 layer-normed token sets ``g``."""
    N, D, K, M, H = _sizes(config)
    out: dict[str, Any] = {"sizes": (N, D, K, M, H)}
    for tag, mask in _PAIRS.items():
        g = config.generator(10 + mask)
        inp = make_inputs(g, config.dtype, N, D, K, M, H, mask_self=mask)
        out[tag] = (inp, torch.randn(3, N, D, generator=g, dtype=config.dtype))
    return out


def _generated_gradient(t: Inputs) -> dict[str, torch.Tensor]:
    """The generated ``∂E/∂g`` (compared with the closed form and with autograd) and ``E(g)``."""
    step, out = et_layer(1.0, t["sizes"][-1]), dict[str, torch.Tensor]()
    for tag in _PAIRS:
        inp, gtok = t[tag]
        grad = step.gradient(gtok, **inp)
        out |= {f"∂E/∂g vs closed form ({tag})": grad, f"∂E/∂g vs autograd ({tag})": grad,
                f"E ({tag})": step.energy_g(gtok, **inp)}
    return out


def _paper_gradient(t: Inputs, key_role: bool = True) -> dict[str, torch.Tensor]:
    """The paper's two-term closed form (``key_role=False``: the query-role term only, a standard
    attention update), ``torch.func.grad`` of the plain-torch energy, and the energy itself."""
    out: dict[str, torch.Tensor] = {}
    for tag, mask in _PAIRS.items():
        inp, gtok = t[tag]
        WQ, WK, Xi, beta = _ref_args(inp, t["sizes"][-1])
        out |= {f"∂E/∂g vs closed form ({tag})": ref.et_grad_closed_form(gtok, WQ, WK, Xi, beta, mask_self=mask,
                                                                          key_role=key_role),
                f"∂E/∂g vs autograd ({tag})": torch.func.grad(
                    lambda v: ref.et_energy(v, WQ, WK, Xi, beta, mask).sum())(gtok),
                f"E ({tag})": ref.et_energy(gtok, WQ, WK, Xi, beta, mask)}
    return out


GRADIENT_CLOSED_FORM = Claim(
    "gradient_closed_form", "exact", "∂E/∂g = query-role + key-role attention + Ξ relu(Ξᵀg) (B = C and B ≠ C)",
    inputs=_gradient_inputs, layer=_generated_gradient, reference=_paper_gradient, tol64=EXACT_TOL,
    controls=(Control("closed form without the key-role term (a standard attention update)",
                      reference=lambda t: _paper_gradient(t, key_role=False), at_least=1e-3),),
    describe=lambda t: "generated ∂E/∂g and E(g), N={}, D={}, head dim {}, M={}, H={}, 3 samples".format(*t["sizes"]),
)


_DESCENT_RUNS = ((0.01, False), (0.1, False), (0.1, True))   # (α, self-pairs masked B≠C)


def _run_tag(alpha: float, mask: bool) -> str:
    return f"alpha={alpha}" + (" (B≠C)" if mask else "")


def _descent_inputs(config: RunConfig) -> dict[str, Any]:
    """Shared start ``x0`` (2 samples) and layer norm; per run the ET weights (seed 13, masked or not)."""
    N, D, K, M, H = _sizes(config)
    g = config.generator(12)
    ln: dict[str, Any] = {"gamma": 1.0, "delta": 0.1 * torch.randn(D, 1, generator=g, dtype=config.dtype)}
    x0 = torch.randn(2, N, D, generator=g, dtype=config.dtype)
    weights = {_run_tag(a, m): make_inputs(config.generator(13), config.dtype, N, D, K, M, H, mask_self=m)
               for a, m in _DESCENT_RUNS}
    return {"x0": x0, "ln": ln, "heads": H, "depth": 12 if config.quick else 16, "weights": weights,
            "unmasked": make_inputs(config.generator(13), config.dtype, N, D, K, M, H)}


def _descent_runs(t: Inputs) -> dict[str, Any]:
    return {_run_tag(a, m): (Unrolled(et_layer(a, t["heads"], t["ln"]), depth=t["depth"]), t["x0"],
                             t["weights"][_run_tag(a, m)]) for a, m in _DESCENT_RUNS}


def _formula_errors(t: Inputs) -> tuple[float, float]:
    """Scaled errors of the layer's LN(x0) and E(LN(x0)) against the paper's formulas in plain torch."""
    inp, x0, delta = t["unmasked"], t["x0"], t["ln"]["delta"]
    layer = et_layer(0.1, t["heads"], t["ln"])
    WQ, WK, Xi, beta = _ref_args(inp, t["heads"])
    g_ref = ref.energy_layernorm(x0, 1.0, delta.mT, EPS)
    return ref.rel_err(layer.g(x0), g_ref), ref.rel_err(layer.energy(x0, **inp), ref.et_energy(g_ref, WQ, WK, Xi, beta))


def _formula_condition(key: str, what: str) -> Predicate:
    def test(t: Inputs, config: RunConfig) -> tuple[bool, str]:
        return t[key] <= config.tol(EXACT_TOL), f"{t[key]:.1e}" + config.tol_note(EXACT_TOL)
    return Predicate(what, test)


def _descent_data(t: Inputs, res: Mapping[str, Any]) -> dict[str, Any]:
    e_ln, e_energy = _formula_errors(t)
    per_run = {f"{k} {n}": v for k, r in res.items()
               for n, v in (("max_increase", r.max_increase), ("decrease", float((r.energies[0] - r.energies[-1]).min())))}
    return per_run | {"layernorm_error": e_ln, "energy_error": e_energy}


#: ``E(LN(x))`` non-increasing along ``x ← x − α ∂E/∂g`` for α ∈ {0.01, 0.1} (and the masked variant at
#: α = 0.1); the energy the layer reports is the paper's ``E(LN(x))`` (independent formula).
DESCENT = Descent(
    "descent", "E(LN(x)) non-increasing along 12+ steps, α ∈ {0.01, 0.1}",
    inputs=_descent_inputs, runs=_descent_runs,
    assumptions=(Predicate.by_construction("small step α (no certificate; the paper uses 0.1)", "α ∈ {0.01, 0.1}"),),
    conditions=(_formula_condition("layernorm_error", "generated LN = plain LN"),
                _formula_condition("energy_error", "E(LN(x)) = the paper's formula")),
    curve=lambda E: E[:, 0],
    plot=EnergyPlot("et_energy", "Energy Transformer: E(LN(x_t)) along the block", "E(LN(x))", xlabel="step t"),
    data=_descent_data,
)


def ln_jacobian_predicate(x: torch.Tensor, *, tol: float = EXACT_TOL, **ln: Any) -> tuple[AssumptionResult, float, float]:
    """Evaluate "the layer-norm Jacobian ∂g_A/∂x_A is symmetric PSD" (scaled asymmetry ≤ ``tol``,
    smallest eigenvalue of its symmetric part ≥ −``tol``) on the tokens ``x`` (N×D) for the generated
    layer norm with inputs ``ln``; returns (result, asymmetry, smallest eigenvalue)."""
    J = ref.layernorm_jacobians(x, lambda v: layernorm(v, **ln))
    asym = float((J - J.mT).abs().max()) / max(1.0, float(J.abs().max()))
    lam = float(torch.linalg.eigvalsh(0.5 * (J + J.mT)).min())
    holds = asym <= tol and lam >= -tol
    kind = "per-feature γ" if "Gam" in ln else "scalar γ"
    return (AssumptionResult(f"layer-norm Jacobian symmetric PSD ({kind})", holds,
                             f"max |J − Jᵀ| = {asym:.2e}, smallest eigenvalue of sym(J) = {lam:.2e}"),
            asym, lam)


def check_layernorm_jacobian(config: RunConfig) -> CheckResult:
    """The predicate holds for the scalar-γ energy layer norm and fails for a per-feature γ (a
    control: the predicate is not vacuous)."""
    g = config.generator(14)
    N, D = 4, 8
    x = torch.randn(N, D, generator=g, dtype=config.dtype)
    delta = torch.randn(D, 1, generator=g, dtype=config.dtype)
    gam = 0.5 + torch.rand(D, generator=g, dtype=config.dtype)
    tol = config.tol(EXACT_TOL)
    scalar_res, asym_s, lam_s = ln_jacobian_predicate(x, tol=tol, gamma=1.3, delta=delta)
    feat_res, asym_f, lam_f = ln_jacobian_predicate(x, tol=tol, Gam=torch.diag(gam), delta=delta)
    e_ln = ref.rel_err(layernorm(x, Gam=torch.diag(gam), delta=delta),
                       ref.energy_layernorm(x, gam, delta.mT, EPS))
    ok = scalar_res.holds and not feat_res.holds and e_ln <= tol
    return CheckResult(
        NAME, "layernorm_jacobian", "exact", ok, asym_s, tol,
        detail=(f"scalar γ: {scalar_res.detail} (holds); per-feature γ: {feat_res.detail} "
                f"(reported failing: {not feat_res.holds}); generated per-feature LN vs plain {e_ln:.1e}"
                + config.tol_note(EXACT_TOL)),
        assumptions=[scalar_res],
        controls=[ControlResult(f"per-feature γ: {feat_res.name} must fail", not feat_res.holds, asym_f,
                                feat_res.detail)],
        data={"scalar_asymmetry": asym_s, "scalar_min_eig": lam_s, "per_feature_asymmetry": asym_f,
              "per_feature_min_eig": lam_f},
    )


_GRAD, _LN = ("gradient_closed_form",), ("descent", "layernorm_jacobian")
PROOFS = (
    Proof("relu_step_pointwise", "max(u, 0)·step(u) = max(u, 0) for every real u (a lemma of gradient_golden)",
          "general", "case analysis u > 0, u < 0, u = 0"),
    Proof("gradient_golden", "unfold's derived ∂E/∂g = −Σ_h[P_h K_h W_Q^h + P_hᵀ Q_h W_K^h] − relu(gΞ)Ξᵀ, "
          "P_h = softmax_rows(βQ_hK_hᵀ + C), any mask C", "engine-golden",
          "structural equality at symbolic N, D, K, M (2 heads) after fusing relu∘step by the pointwise identity", _GRAD),
    Proof("attention_gradient_entrywise", "∂E_ATT/∂g = −(P K W_Q + Pᵀ Q W_K), entry by entry", "fixed-size",
          "plain scalar sp.diff of the expanded energy at N = D = K = 2, M = 1", _GRAD),
    Proof("memory_gradient_entrywise", "∂E_HN/∂g = −relu(gΞ)Ξᵀ, entry by entry", "fixed-size",
          "plain scalar sp.diff at N = D = 2, M = 1 with the pointwise relu·step identity", _GRAD),
    Proof("ln_is_gradient", "the energy layer norm γ(x − x̄)/sqrt(var + ε) + δ is ∇L, L = Dγ sqrt(var + ε) + δᵀx",
          "fixed-size", "scalar sp.diff at D = 3", _LN),
    Proof("ln_jacobian_psd", "J_LN = (γ/σ)(P − uuᵀ) is symmetric, Pu = u, ‖u‖² < 1, hence PSD for γ > 0",
          "fixed-size", "scalar sp.diff and cancel at D = 3", _LN),
    Proof("ln_gradient_general", "the energy layer norm is ∇L, L = Dγ sqrt(var + ε) + δᵀx, for every D", "general",
          "the layernorm_lagrangian entry's directional-derivative proof (the same Lagrangian)", _LN),
    Proof("ln_hessian_psd_general", "∇²L = (γ/σ)(P − uuᵀ) is symmetric PSD for every D (scalar γ > 0)", "general",
          "the layernorm_lagrangian entry's eigen-structure proof (the same Lagrangian)", _LN),
    Proof("per_feature_not_symmetric", "with a per-feature gain diag(γ) the LN Jacobian is not symmetric",
          "fixed-size", "an exact rational point at D = 3", ("layernorm_jacobian",)),
)

ENTRY = Entry(
    name=NAME,
    title="Energy Transformer block = descent on E_ATT + E_HN through the energy layer norm",
    source="Hoover et al., Energy Transformer, arXiv 2302.07253 (NeurIPS 2023); code bhoov/energy-transformer-jax",
    summary=("x ← x − α ∂E/∂g at g = LN(x) with E = E_ATT + E_HN; −∂E/∂g is attention with the token as "
             "query and as key plus Ξ relu(Ξᵀg); E(LN(x)) decreases for small α because the scalar-γ "
             "layer-norm Jacobian is symmetric PSD."),
    energy=energy,
    checks=(
        GRADIENT_CLOSED_FORM,
        DESCENT,
        Check("layernorm_jacobian", "exact",
              "LN Jacobian symmetric PSD for scalar γ; predicate fails for per-feature γ", check_layernorm_jacobian),
    ),
    assumptions=("energy layer norm with a scalar gain γ (J_LN symmetric PSD)", "small step α",
                 "self-pairs B = C included (mask C = 0); B ≠ C via C = −∞·I"),
    mapping=("K_hB = W_K^h g_B, Q_hC = W_Q^h g_C, β = 1/√(head dim), memories Ξ ∈ R^{D×M}; "
             "the block x ← x − α ∂E/∂g(LN(x)) weight-shared over depth (paper: α = 0.1, 12 steps)"),
    notes=("Tokens are rows. The official JAX/Flax/torch codes include B = C in the attention sum; the paper "
           "may exclude it: both are offered through the additive mask C. ET's training code descends "
           "E_ATT + E_HN only (no HAMUX leak term). The README omits the square in E_HN; the code has it, "
           "as here. The block's gradient is unfold's generated ∂E/∂g, applied to x by the small ETLayer "
           "adapter on unfold.steps.EnergyStep (see its docstring)."),
    order=20,
    proofs=PROOFS,
)
