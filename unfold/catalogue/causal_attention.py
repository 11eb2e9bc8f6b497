"""Causal (GPT-style) attention and NRGPT (Dehmamy et al., arXiv 2512.16762) against the masked
log-sum-exp energy.

Energy (tokens are the rows of ``X ∈ R^{T×D}``; heads ``h`` with ``W_Q,h, W_K,h ∈ R^{d×D}``; the causal
mask lets query ``i`` see keys ``j ≤ i``)::

    E(X) = −(1/β) Σ_h Σ_i log Σ_{j≤i} exp(β x_iᵀ W_Q,hᵀ W_K,h x_j)

    −∇_{x_m} E = Σ_h [ Σ_{j≤m} a_mj W_Q,hᵀ W_K,h x_j  +  Σ_{i≥m} a_im W_K,hᵀ W_Q,h x_i ]
                      └── query side Q_m ──────────┘   └── key side K_m (reads later tokens) ─┘

Generated layers (:class:`~unfold.steps.GradientStep`, step 1): on ``E`` in ``X`` (the full step
``X + Q + K``), and on the query-slot energy ``E_q(U; X)`` (the queries ``U`` a separate state, keys
``X`` held) at ``U = X`` (the step ``X + Q``).  Claims:

* ``Q`` is causal attention with tied weights (``W_V = W_K``, ``W_O = W_Qᵀ``): equal to
  ``F.scaled_dot_product_attention(is_causal=True)`` and ``nn.MultiheadAttention`` (exact);
* the full step is the gradient of ``E`` (exact), and it is not causal: the key side moves earlier tokens
  with later ones (measured by the Jacobian); the causal field ``Q`` is not a gradient field (its
  Jacobian is not symmetric, measured);
* NRGPT's head output ``−Σ_j a_ij H x_j`` is, under its strict mask (``j < i``), exactly the per-token
  partial gradient ``∂E_i/∂x_i`` (every other token frozen), and ``∂E/∂x_T`` of the whole energy for the
  last token only; under the inclusive mask it misses ``a_ii Hᵀx_i`` (measured).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import torch

from .. import symbolic as s
from ..steps import GradientStep
from ..symbolic import Energy
from ..verify.causality import check_causality
from . import _causal_refs as ref
from .base import AssumptionResult, Check, CheckResult, ControlResult, Entry, Figure, RunConfig
from ._claim import Claim, Control, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "TOL", "HEADS", "energy", "query_energy", "nrgpt_energy", "full_step", "query_step",
           "nrgpt_step", "sample"]

NAME = "causal_attention"
TOL = 1e-12
HEADS = 2


def _weights() -> tuple[Any, ...]:
    T, D, d = s.dims("T D d")
    WQ = [s.param(f"WQ{h}", d, D) for h in range(1, HEADS + 1)]
    WK = [s.param(f"WK{h}", d, D) for h in range(1, HEADS + 1)]
    return T, D, WQ, WK, s.scalar("beta", positive=True)


def _lse_terms(U: Any, X: Any, WQ: list[Any], WK: list[Any], beta: Any) -> dict[str, Any]:
    return {f"head{h + 1}": -s.lse(beta * (U * q.T) * (X * k.T).T, axis=1, mask=s.causal) / beta
            for h, (q, k) in enumerate(zip(WQ, WK))}


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``E(X) = −(1/β) Σ_h lse_rows(β (XW_Q,hᵀ)(XW_K,hᵀ)ᵀ; causal)`` (both slots are ``X``)."""
    T, D, WQ, WK, beta = _weights()
    X = s.state("X", T, D)
    return Energy(terms=_lse_terms(X, X, WQ, WK, beta), name="E")


@lru_cache(maxsize=1)
def query_energy() -> Energy:
    """``E_q(U; X)``: the queries ``U`` are the state, the keys ``X`` a held input (``E_q(X; X) = E(X)``)."""
    T, D, WQ, WK, beta = _weights()
    U, X = s.state("U", T, D), s.param("X", T, D)
    return Energy(terms=_lse_terms(U, X, WQ, WK, beta), name="E_q")


@lru_cache(maxsize=1)
def nrgpt_energy() -> Energy:
    """``−Σ_i log Σ_{j≤i} exp(u_iᵀ H k_j)`` (β = 1, one full matrix ``H``): the strict mask ``j < i`` of
    NRGPT is this with ``U = X[1:]``, ``K = X[:−1]``; the inclusive one with ``U = K = X``."""
    T, D = s.dims("T D")
    U, K, H = s.state("U", T, D), s.param("K", T, D), s.param("H", D, D)
    return Energy(-s.lse(U * H * K.T, axis=1, mask=s.causal), name="E_nrgpt")


@lru_cache(maxsize=1)
def full_step() -> GradientStep:
    return GradientStep(energy(), wrt="X", step=1.0)


@lru_cache(maxsize=1)
def query_step() -> GradientStep:
    return GradientStep(query_energy(), wrt="U", step=1.0)


@lru_cache(maxsize=1)
def nrgpt_step() -> GradientStep:
    return GradientStep(nrgpt_energy(), wrt="U", step=1.0)


def sample(config: RunConfig, offset: int = 0, batch: int = 3, T: int = 6, D: int = 8) -> dict[str, Any]:
    """Tokens and per-head weights (``d = D/H`` so that ``nn.MultiheadAttention`` applies), ``β = 1/√d``."""
    g = config.generator(230 + offset)
    f64, dt = torch.float64, config.dtype
    d = D // HEADS
    out: dict[str, Any] = {"X": torch.randn(batch, T, D, generator=g, dtype=f64).to(dt), "beta": d ** -0.5}
    for h in range(1, HEADS + 1):
        out[f"WQ{h}"] = (torch.randn(d, D, generator=g, dtype=f64) / D ** 0.5).to(dt)
        out[f"WK{h}"] = (torch.randn(d, D, generator=g, dtype=f64) / D ** 0.5).to(dt)
    out["H"] = (torch.randn(D, D, generator=g, dtype=f64) / D ** 0.5).to(dt)
    return out


def _heads(t: Inputs) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [t[f"WQ{h}"] for h in range(1, HEADS + 1)], [t[f"WK{h}"] for h in range(1, HEADS + 1)]


def _weights_of(t: Inputs) -> dict[str, Any]:
    return {k: v for k, v in t.items() if k.startswith("W") or k == "beta"}


def _query_update(X: torch.Tensor, w: dict[str, Any]) -> torch.Tensor:
    """``step_q(X; X) − X``: the generated query-slot step's update (queries and keys both ``X``)."""
    return query_step()(X, X=X, **w) - X


def _full_direction(X: torch.Tensor, w: dict[str, Any]) -> torch.Tensor:
    """``X − step(X) = ∇E(X)``: the generated full step's direction."""
    return X - full_step()(X, **w)


def query_side(t: Inputs) -> torch.Tensor:
    """``Q = step_q(X; X) − X`` from the generated query-slot step."""
    return _query_update(t["X"], _weights_of(t))


def _query_layer(t: Inputs) -> dict[str, torch.Tensor]:
    Q = query_side(t)
    return {"vs SDPA is_causal": Q, "vs nn.MultiheadAttention": Q}


def _query_reference(t: Inputs) -> dict[str, torch.Tensor]:
    WQ, WK = _heads(t)
    return {"vs SDPA is_causal": ref.causal_attention(t["X"], WQ, WK, t["beta"]),
            "vs nn.MultiheadAttention": ref.causal_mha(t["X"], WQ, WK)}


def _untied_values(t: Inputs) -> dict[str, torch.Tensor]:
    """Control: a GPT head with its own value matrix (W_V ≠ W_K) is not the query-side gradient."""
    WQ, WK = _heads(t)
    WV = [k.flip(-1) for k in WK]
    out = torch.zeros_like(t["X"])
    for q, k, v in zip(WQ, WK, WV):
        out = out + torch.nn.functional.scaled_dot_product_attention(
            t["X"] @ q.mT, t["X"] @ k.mT, t["X"] @ v.mT, is_causal=True, scale=t["beta"]) @ q
    return {"vs SDPA is_causal": out, "vs nn.MultiheadAttention": out}


def _beta_is_mha_scale(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    d = t["WQ1"].shape[0]
    return abs(t["beta"] - d ** -0.5) < 1e-15, f"β = {t['beta']:.4f}, 1/√d = {d ** -0.5:.4f}"


QUERY_CLAIM = Claim(
    name="query_side_is_causal_attention", kind="exact",
    description="query-side part of −∇E (generated) = causal attention: SDPA is_causal and nn.MultiheadAttention",
    inputs=sample, layer=_query_layer, reference=_query_reference, tol64=TOL,
    assumptions=(Predicate.by_construction("tied weights W_V = W_K, W_O = W_Qᵀ",
                                           "values W_K x (W_V = W_K), output W_Qᵀ per head, by construction"),
                 Predicate("β = 1/√d (the scale of nn.MultiheadAttention)", _beta_is_mha_scale)),
    controls=(Control("untied value matrix W_V ≠ W_K", reference=_untied_values),),
    describe=lambda t: f"T={t['X'].shape[-2]}, D={t['X'].shape[-1]}, {HEADS} heads, β={t['beta']:.3f}",
)


def _full_layer(t: Inputs) -> torch.Tensor:
    return _full_direction(t["X"], _weights_of(t))


def _full_reference(t: Inputs) -> torch.Tensor:
    WQ, WK = _heads(t)
    X = t["X"].detach().requires_grad_(True)
    (g,) = torch.autograd.grad(ref.masked_lse_energy(X, WQ, WK, t["beta"]).sum(), X)
    return g


def _sides(t: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(query side ``Q``, key side ``K = −∇E − Q``), both from the generated steps."""
    Q = query_side(t)
    return Q, -_full_layer(t) - Q


def _key_side_ratio(t: Inputs) -> dict[str, Any]:
    Q, K = _sides(t)
    per_token = (K.norm(dim=-1) / Q.norm(dim=-1)).mean(dim=0)
    return {"key_over_query_norm": float(K.norm() / Q.norm()), "key_over_query_per_token": per_token.tolist()}


def _key_side_not_small(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    r = _key_side_ratio(t)["key_over_query_norm"]
    return r > 0.1, f"‖K‖/‖Q‖ = {r:.2f}: the acausal key side is as large as the query side"


def _key_side_figure(t: Inputs, errs: dict[str, float], config: RunConfig) -> list[Figure]:
    r = _key_side_ratio(t)["key_over_query_per_token"]
    return [Figure("causal_attention_key_side", "Size of the acausal key-side term per token (mean over batch)",
                   list(range(1, len(r) + 1)), {"‖K_m‖/‖Q_m‖": r}, xlabel="token m",
                   ylabel="key side / query side")]


FULL_CLAIM = Claim(
    name="full_step_is_gradient", kind="exact",
    description="the full step's direction (generated) = ∇E by autograd of the masked-lse energy in plain torch",
    inputs=lambda c: sample(c, 1), layer=_full_layer, reference=_full_reference, tol64=TOL,
    conditions=(Predicate("the key side (the step's acausal part) is not a small correction", _key_side_not_small),),
    controls=(Control("query side only (the key-side term left out)",
                      layer=lambda t: -query_side(t)),),
    data=_key_side_ratio, figures=_key_side_figure,
    describe=lambda t: f"T={t['X'].shape[-2]}, D={t['X'].shape[-1]}, {HEADS} heads",
)


def check_causality_of_steps(config: RunConfig) -> CheckResult:
    """The query-side update is causal (zero Jacobian blocks above the diagonal); the full step is not;
    the causal field is not a gradient field (non-symmetric Jacobian)."""
    t = sample(config, 2, batch=1)
    X = t["X"][0]
    w = _weights_of(t)
    q_map, full_map = partial(_query_update, w=w), partial(_full_direction, w=w)
    q, full = check_causality(q_map, X), check_causality(full_map, X)
    J, J_full = torch.func.jacrev(q_map)(X), torch.func.jacrev(full_map)(X)
    T = X.shape[0]
    later = torch.ones(T, T, dtype=torch.bool).triu(1)

    def per_token(Jac: torch.Tensor) -> list[float]:
        block = Jac.abs().amax(dim=(1, 3))                     # (out token, in token)
        return [float(block[i][later[i]].max() / block.max()) for i in range(T - 1)]

    fig = Figure("causal_attention_leak", "Largest effect of later tokens on each token's update (relative)",
                 list(range(1, T)), {"full gradient step": per_token(J_full), "query-side update": per_token(J)},
                 xlabel="token i", ylabel="max_{j>i} |∂y_i/∂x_j| / max |J|")
    n = X.numel()
    Jm = J.reshape(n, n)
    asym = float((Jm - Jm.mT).norm() / Jm.norm())
    tol = config.tol(TOL)
    controls = [ControlResult("full gradient step (key side included) is causal", full.leak > tol, full.leak,
                              f"later tokens move earlier outputs by {full.leak:.2e} (relative)"),
                ControlResult("the causal field is a gradient field (symmetric Jacobian)", asym > tol, asym,
                              f"‖J − Jᵀ‖/‖J‖ = {asym:.2f}")]
    ok = q.leak <= tol and all(c.rejected for c in controls)
    return CheckResult(
        passed=ok, error=q.leak, tol=tol,
        detail=(f"Jacobians at one sequence (T={X.shape[0]}, D={X.shape[1]}), {config.dtype_name}: query-side update "
                f"leak {q.leak:.1e} (causal); full gradient step leak {full.leak:.2f} (not causal: the key side reads "
                f"later tokens); query-side field ‖J − Jᵀ‖/‖J‖ = {asym:.2f} (not a gradient field)" + config.tol_note(TOL)),
        assumptions=[AssumptionResult("causal mask key ≤ query", True, "uf.causal")],
        controls=controls, data={"query_leak": q.leak, "full_leak": full.leak, "query_jacobian_asymmetry": asym},
        figures=[fig])


def _nrgpt_generated(t: Inputs) -> dict[str, torch.Tensor]:
    """The generated query-slot gradient ``∇_U E_q`` (keys frozen): strict mask by the shift ``U = x_2..x_T``,
    ``K = x_1..x_{T−1}``; inclusive with ``K = X``.  Each part is named by what it is compared with."""
    X, H = t["X"], t["H"]
    strict = X[..., 1:, :] - nrgpt_step()(X[..., 1:, :], K=X[..., :-1, :], H=H)
    inclusive = X - nrgpt_step()(X, K=X, H=H)
    return {"strict head": strict, "∂E_i/∂x_i (others frozen)": strict,
            "last token: ∂E/∂x_T (whole energy)": strict[..., -1, :], "inclusive head": inclusive,
            "inclusive: ∂E_i/∂x_i + a_ii Hᵀx_i": inclusive}


def _nrgpt_paper(t: Inputs) -> dict[str, torch.Tensor]:
    """NRGPT's head in plain torch, and the per-token and whole-energy gradients by autograd."""
    X, H = t["X"], t["H"]
    return {"strict head": ref.nrgpt_head(X, H, strict=True)[..., 1:, :],
            "∂E_i/∂x_i (others frozen)": ref.per_token_partial_gradients(X, H, strict=True)[..., 1:, :],
            "last token: ∂E/∂x_T (whole energy)": ref.strict_energy_gradient(X, H)[..., -1, :],
            "inclusive head": ref.nrgpt_head(X, H, strict=False),
            "inclusive: ∂E_i/∂x_i + a_ii Hᵀx_i": ref.per_token_partial_gradients(X, H, strict=False)
            + ref.self_key_term(X, H)}


def _missing_key_side(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    """What the strict head leaves out of ∇E for tokens before the last: the key-side terms Σ_{k>i} ∂E_k/∂x_i."""
    X, H = t["X"], t["H"]
    head = ref.nrgpt_head(X, H, strict=True)[..., :-1, :]
    full = ref.strict_energy_gradient(X, H)[..., :-1, :]
    rel = float((full - head).norm() / full.norm())
    return rel > 0.1, f"‖∇E − head‖/‖∇E‖ over tokens 1..T−1 = {rel:.2f}"


def _first_row_zero(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    e = float(ref.nrgpt_head(t["X"], t["H"], strict=True)[..., 0, :].abs().max())
    return e == 0.0, f"max |row 1| = {e:.1e}"


NRGPT_CLAIM = Claim(
    "nrgpt_head_is_per_token_gradient", "exact",
    "NRGPT head = ∂E_i/∂x_i (strict mask), = ∂E/∂x_T for the last token only; inclusive mask: misses a_ii Hᵀx_i",
    inputs=lambda config: sample(config, 3), layer=_nrgpt_generated, reference=_nrgpt_paper, tol64=TOL,
    assumptions=(Predicate.by_construction("strict mask j < i (NRGPT tril_plus_one=True); first row weights 0",
                                           "as in the released code"),),
    conditions=(Predicate("the strict head's first token is 0", _first_row_zero),
                Predicate("before the last token the head is not ∇E (the key-side terms are missing)", _missing_key_side)),
    controls=(Control("inclusive head = ∂E_i/∂x_i (it misses a_ii Hᵀx_i)",
                      layer=lambda t: ref.nrgpt_head(t["X"], t["H"], strict=False),
                      reference=lambda t: ref.per_token_partial_gradients(t["X"], t["H"], strict=False)),
              Control("strict head = ∇ of the whole energy before the last token (misses Σ_k>i ∂E_k/∂x_i)",
                      layer=lambda t: ref.nrgpt_head(t["X"], t["H"], strict=True)[..., :-1, :],
                      reference=lambda t: ref.strict_energy_gradient(t["X"], t["H"])[..., :-1, :])),
    describe=lambda t: (f"NRGPT head (one full H, β = 1) vs the generated query-slot gradient, T={t['X'].shape[-2]}, "
                        f"D={t['X'].shape[-1]}: a Jacobi step of a T-player game, exact for the whole energy at the "
                        "last token only"),
)


@lru_cache(maxsize=None)
def nrgpt_token_step(eta: float) -> GradientStep:
    """``u_i ← u_i − η ∂E_i/∂u_i`` for every token at once, keys frozen (a Jacobi step; β = 1)."""
    return GradientStep(nrgpt_energy(), wrt="U", step=eta)


def _strict_token_energies(U: torch.Tensor, K: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``E_i = −log Σ_{j<i} exp(x_iᵀ H x_j)`` for tokens ``i = 2..T`` (rows of ``U = X[1:]``, keys ``K = X[:−1]``)."""
    n = U.shape[-2]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()
    return -torch.logsumexp((U @ H @ K.mT).masked_fill(~allowed, float("-inf")), dim=-1)


def check_nrgpt_descent(config: RunConfig) -> CheckResult:
    """With every other token frozen, ``E_i(x_i) = −lse_j(x_iᵀ H x_j)`` is concave in ``x_i`` (Hessian
    ``−H Cov_a(x) Hᵀ ⪯ 0``), so the per-token step lowers it for every η > 0:
    ``E(u − ηg) ≤ E(u) − η‖g‖²`` (a concave function lies below its tangent).  It is also unbounded
    below, which is why NRGPT normalises its input (BareLayerNorm) before the step."""
    t = sample(config, 4)
    X, H = t["X"], t["H"]
    U, K = X[..., 1:, :], X[..., :-1, :]
    L = float(torch.linalg.matrix_norm(H, ord=2) ** 2 * (K * K).sum(-1).max())
    rows: dict[str, list[float]] = {}
    worst: dict[float, float] = {}
    for scale in (0.5, 1.0, 20.0, 200.0):
        U1 = nrgpt_token_step(scale / L)(U, K=K, H=H)
        change = _strict_token_energies(U1, K, H) - _strict_token_energies(U, K, H)   # per batch, per token
        worst[scale] = float(change.max())
        rows[f"η = {scale:g}/L"] = change.amax(dim=0).tolist()
    # concavity at the data: the largest Hessian eigenvalue of E_T in x_T (plain torch)
    last = lambda u: _strict_token_energies(torch.cat([U[0, :-1], u[None]], dim=0), K[0], H)[-1]  # noqa: E731
    lam_max = float(torch.linalg.eigvalsh(torch.func.hessian(last)(U[0, -1])).max())
    ok = max(worst.values()) <= 0
    fig = Figure("causal_attention_nrgpt_descent", "NRGPT per-token step: change of E_i (others frozen, worst over batch)",
                 list(range(2, X.shape[-2] + 1)), rows, xlabel="token i", ylabel="E_i(after) − E_i(before)")
    return CheckResult(
        passed=ok, error=max(max(worst.values()), 0.0), tol=None,
        detail=(f"largest change of E_i over steps η = c/L, L = ‖H‖²·max‖x‖² = {L:.2f}: "
                + ", ".join(f"c={k:g}: {v:.2e}" for k, v in worst.items())
                + f"; E_T's Hessian in x_T has largest eigenvalue {lam_max:.1e} (concave): descent for every η > 0, "
                  "E_i unbounded below"),
        assumptions=[AssumptionResult("E_i concave in x_i (−lse of a linear map)", lam_max <= config.tol(TOL) * max(1.0, L),
                                      f"λ_max(∇²E_T) = {lam_max:.1e}")],
        data={"worst_change": {str(k): v for k, v in worst.items()}, "L": L, "hessian_lambda_max": lam_max},
        figures=[fig])



PROOFS = (
    Proof("query_gradient_golden", "unfold's ∇_U E_q = −Σ_h softmax_rows(β(UW_Qᵀ)(XW_Kᵀ)ᵀ; causal)(XW_Kᵀ)W_Q: row i "
          "involves u_i and x_j, j ≤ i only, so at U = X the query-side update is causal",
          "engine-golden", "structural equality at symbolic T, D, d",
          ("query_side_is_causal_attention", "causality_of_the_steps")),
    Proof("full_gradient_golden", "unfold's ∇_X E = query side + key side −Σ_h P_hᵀ(XW_Q,hᵀ)W_K,h", "engine-golden",
          "structural equality at symbolic T, D, d", ("full_step_is_gradient",)),
    Proof("nrgpt_gradient_golden", "unfold's ∇_U(−Σ_i lse_{j≤i} u_iᵀHk_j) = −softmax_rows(UHKᵀ; causal)KHᵀ, the head output",
          "engine-golden", "structural equality at symbolic sizes", ("nrgpt_head_is_per_token_gradient",)),
    Proof("token_energy_concave", "vᵀ(Diag(a) − aaᵀ)v = Σ_j a_j(v_j − Σ_l a_l v_l)² ≥ 0 for weights summing to 1: each "
          "token's energy is concave in x_i, so the per-token step descends for every step size", "general",
          "linearity of a sum over a symbolic number of keys", ("nrgpt_per_token_descent",)),
)

ENTRY = Entry(
    name=NAME,
    title="Causal attention and NRGPT: the query side of the masked log-sum-exp gradient",
    source="Hoover et al., arXiv 2302.07253 (the energy); Dehmamy et al., NRGPT, arXiv 2512.16762; code bhoov/nrgpt",
    summary=("The query-side part of −∇ of the causally masked log-sum-exp energy is causal attention with tied weights "
             "(exact: SDPA is_causal, nn.MultiheadAttention); the full gradient step is not causal: its key side is as "
             "large as the query side (measured). NRGPT's update is query-side only: its head is the per-token partial "
             "gradient ∂E_i/∂x_i under its strict mask (a Jacobi step), −∇E of the whole energy for the last token only "
             "(before it the key-side terms are missing, measured); under the inclusive mask it also misses a_ii Hᵀx_i."),
    energy=energy,
    checks=(
        QUERY_CLAIM,
        FULL_CLAIM,
        Check("causality_of_the_steps", "exact",
              "the query-side update is causal; the full step is not; the causal field is not a gradient field",
              check_causality_of_steps),
        NRGPT_CLAIM,
        Check("nrgpt_per_token_descent", "descent",
              "with the other tokens frozen, every step η > 0 lowers each token's (concave) energy E_i",
              check_nrgpt_descent),
    ),
    assumptions=("tied weights W_V = W_K, W_O = W_Qᵀ per head", "the same β in the scores and the 1/β prefactor",
                 "NRGPT: strict mask, fully masked first row has weights 0"),
    mapping="per head: queries XW_Qᵀ, keys = values XW_Kᵀ, output projection W_Q  ↔  −∇_query E",
    notes=("NRGPT's learned preconditioner P and BareLayerNorm (γ = 1, learnable bias, see layernorm_lagrangian) are "
           "outside this check; descent needs J_LN·P with a PSD symmetric part (e.g. P = cI) and holds per token."),
    order=105,
    proofs=PROOFS,
)
