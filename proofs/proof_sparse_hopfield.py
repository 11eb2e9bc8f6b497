"""Exact symbolic proofs for the sparse Hopfield entry (``unfold.catalogue.sparse_hopfield``).

Claims:

1. (general d, N, S, every α in the catalogue) unfold's derived unit gradient step on
   ``E = −(1/β)Ω*_α(βXᵀΞ) + ½‖Ξ‖²`` is ``X entmax_α(βXᵀΞ)`` (structural), and the CCCP step
   (``∇convex = Ξ``) is the same expression;
2. (general n, symbolic α > 1) the envelope theorem behind ``∇Ω*_α = entmax_α``: on the support,
   ``θ_k + ∂H_α/∂p_k = τ/(α−1) + 1/(α(α−1))`` is the same for every k (with
   ``p_k^{α−1} = (α−1)θ_k − τ``), so ``Σ_k (θ_k + ∂H/∂p_k) ∂p_k/∂θ_j = c·∂(Σp)/∂θ_j = 0``;
3. (general n, symbolic α > 1) exact retrieval: ``entmax_α(θ) = e_i`` iff ``θ_i − θ_j ≥ 1/(α−1)`` for
   every ``j ≠ i`` — the threshold of ``e_i`` is ``τ = (α−1)θ_i − 1`` and coordinate ``j`` is outside the
   support iff ``(α−1)θ_j − τ ≤ 0``;
4. (general d, N, any α > 1, any β > 0) CCCP descent: ``g(q) = (1/β)Ω*_α(βXᵀq)`` is convex (``Ω*_α`` is a
   pointwise max of the affine functions ``θ ↦ ⟨p, θ⟩ + H_α(p)``, composed with a linear map), so it lies
   above its tangent at ``q``, whose slope is ``∇g(q) = X entmax_α(βXᵀq) = q⁺`` (2.).  Hence
   ``E(q⁺) = ½‖q⁺‖² − g(q⁺) ≤ ½‖q⁺‖² − g(q) − ⟨q⁺, q⁺ − q⟩ = E(q) − ½‖q⁺ − q‖²`` (the last step an identity in the
   inner products ``‖q⁺‖², ⟨q⁺, q⟩, ‖q‖²``, checked symbolically): the energy falls by at least ``½‖q⁺ − q‖²`` at
   every step, for every β, with no step-size condition.
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue import sparse_hopfield as sh
from unfold.symbolic.primitives import entmax as tsallis
from proofs._common import main


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    for a in sh.ALPHAS:
        E = sh.energy(a)
        X, Xi, beta = E.symbol("X"), E.symbol("Xi"), E.symbol("beta")
        attention = X * tsallis.entmax(beta * X.T * Xi, a)
        assert E.update_rule(Xi, 1) == attention, E.update_rule(Xi, 1)
        assert sh.convex_part().grad(Xi) == Xi
        assert -sh.concave_part(a).grad(Xi) == attention
    proven["unit_step_golden"] = "unfold's engine, structural"

    a, u = sp.symbols("a u", positive=True)                      # a = α − 1 > 0, u = (α−1)θ − τ > 0 on the support
    tau = sp.Symbol("tau", real=True)
    alpha, theta = 1 + a, (u + tau) / a
    p = u ** (1 / a)                                               # the support coordinate [(α−1)θ − τ]^{1/(α−1)}
    dH = (1 - alpha * p ** (alpha - 1)) / (alpha * (alpha - 1))    # ∂H_α/∂p at p
    c = sp.simplify(theta + dH)
    assert sp.simplify(c - (tau / a + 1 / (alpha * a))) == 0, c
    proven["entmax_envelope"] = \
        "sympy simplify, symbolic α, τ, θ"

    a_pos = a
    ti, tj = sp.symbols("theta_i theta_j", real=True)
    tau_i = a_pos * ti - 1                                         # [(α−1)θ_i − τ]^{1/(α−1)} = 1
    assert sp.simplify((a_pos * ti - tau_i) - 1) == 0
    # (α−1)θ_j − τ = (α−1)·(θ_j − (θ_i − 1/(α−1))), and α − 1 > 0: ≤ 0 iff θ_i − θ_j ≥ 1/(α−1)
    assert sp.expand(a_pos * tj - tau_i - a_pos * (tj - (ti - 1 / a_pos))) == 0 and a_pos.is_positive
    proven["exact_retrieval_margin"] = \
        "threshold of e_i, then the support condition solved for θ_j"

    # 4. CCCP descent: the majoriser at q⁺ (tangent of the convex g at q, slope q⁺) in inner products
    pp, pq, qq, g_q = sp.symbols("pp pq qq g_q", real=True)       # ‖q⁺‖², ⟨q⁺, q⟩, ‖q‖², g(q)
    majoriser = pp / 2 - (g_q + (pp - pq))                          # ½‖q⁺‖² − [g(q) + ⟨q⁺, q⁺ − q⟩]
    assert sp.expand(majoriser - ((qq / 2 - g_q) - (pp - 2 * pq + qq) / 2)) == 0
    # the tangent of an affine piece ℓ_p(θ) = ⟨p, θ⟩ + h is itself: ℓ_p(θ') = ℓ_p(θ) + ⟨p, θ' − θ⟩ (so Ω* ≥ its tangent)
    th, th2, pv, h = sp.symbols("theta theta2 p h", real=True)
    assert sp.expand((pv * th2 + h) - ((pv * th + h) + pv * (th2 - th))) == 0
    proven["cccp_descent"] = "convexity of Ω* (max of affine pieces), then an identity in inner products"
    return proven


if __name__ == "__main__":
    main(prove)
