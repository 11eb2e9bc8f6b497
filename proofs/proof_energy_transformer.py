"""Exact symbolic proofs for the Energy-Transformer entry (``unfold.catalogue.energy_transformer``).

Claims:

1. (general N, D, K, M, any additive mask C) unfold's derived ``∂E/∂g`` is the two-term closed form
   ``−Σ_h [P_h K_h W_Q^h + P_hᵀ Q_h W_K^h] − relu(gΞ)Ξᵀ`` with ``P_h = softmax_rows(β Q_h K_hᵀ + C)``
   (query role, key role), written independently in unfold's language: structural equality after
   replacing ``(2·relu(z))∘step(z)/2`` by ``relu(z)`` (proved separately for every real z);
2. (explicit N = 2, D = 2, K = 2, M = 1) the same identity entry by entry from the energy expanded
   into scalars and differentiated with plain ``sp.diff`` (``cancel``);
3. (explicit D = 3) the energy layer norm is the gradient of the Lagrangian
   ``L(x) = Dγ sqrt(var x + ε) + δᵀx``; its Jacobian ``∇²L`` is symmetric and equals
   ``(γ/σ)(P − uuᵀ)`` with ``P = I − 11ᵀ/D``, ``u = (x − x̄)/(σ√D)``, ``‖u‖² = var/(var + ε) < 1`` and
   ``Pu = u``, hence PSD for ``γ > 0``;
4. (explicit D = 3) with a per-feature gain ``diag(γ)`` the Jacobian is not symmetric.
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.energy_transformer import EPS, energy
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.nodes import U


def _relu_step_is_relu() -> None:
    """``Max(u, 0)·Heaviside(u) = Max(u, 0)`` for every real u (both sides vanish for u ≤ 0)."""
    pos = sp.Symbol("p", positive=True)
    lhs = sp.Max(U, 0) * sp.Heaviside(U)
    assert sp.simplify(lhs.subs(U, pos) - pos) == 0
    assert sp.simplify(lhs.subs(U, -pos)) == 0 and lhs.subs(U, 0) == 0


def _zero(M: sp.Matrix) -> bool:
    return all(sp.cancel(sp.expand(e)) == 0 for e in M)


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    heads = 2
    E = energy(heads)
    g, Xi, C, beta = (E.symbol(k) for k in ("g", "Xi", "C", "beta"))
    _relu_step_is_relu()

    # 1. general dims: two-term closed form (structural)
    closed = -s.relu(g * Xi) * Xi.T
    for h in range(1, heads + 1):
        WQ, WK = E.symbol(f"WQ{h}"), E.symbol(f"WK{h}")
        Q, K = g * WQ.T, g * WK.T
        P = s.softmax(beta * Q * K.T + C, axis=1)
        closed = closed - P * K * WQ - P.T * Q * WK
    derived = E.grad(g)
    relu_m = s.relu(g * Xi)
    step_m = [a for a in derived.atoms(sp.MatrixExpr) if "step" in str(a) or "Heaviside" in str(a)]
    replaced = derived.replace(
        lambda e: isinstance(e, sp.MatMul) and e.has(relu_m) and any(e.has(a) for a in step_m),
        lambda e: -relu_m * Xi.T,
    )
    assert replaced.doit() == closed.doit(), (replaced, closed)
    proven["∂E/∂g = −Σ_h[P_h K_h W_Q^h + P_hᵀ Q_h W_K^h] − relu(gΞ)Ξᵀ, any mask C (general dims)"] = \
        "structural equality, relu∘step identity proved for all real u"

    # 2. explicit sizes, scalar derivatives (independent of the engine), one head, M = 1
    E1 = energy(1)
    sizes = {dm: {"N": 2, "D": 2, "K": 2, "M": 1}[str(dm)] for dm in E1.dims}
    env = explicit_env(E1.inputs, sizes)
    gx, Xe, Ce = env[E1.symbol("g")], env[E1.symbol("Xi")], env[E1.symbol("C")]
    WQe, WKe = env[E1.symbol("WQ1")], env[E1.symbol("WK1")]
    Ex_att = expand_explicit(E1.terms["attention_h1"], env)
    grad_att = sp.Matrix(2, 2, lambda a, j: sp.diff(Ex_att, gx[a, j]))  # scalar
    Qe, Ke = gx * WQe.T, gx * WKe.T
    A = beta * Qe * Ke.T + Ce
    Pe = sp.Matrix(2, 2, lambda c, b: sp.exp(A[c, b]) / sum(sp.exp(A[c, k]) for k in range(2)))
    assert _zero(grad_att + Pe * Ke * WQe + Pe.T * Qe * WKe)
    proven["attention gradient = query role + key role at N=2, D=2, K=2 (scalar sp.diff)"] = "cancel"
    Ex_mem = expand_explicit(E1.terms["memory"], env)
    grad_mem = sp.Matrix(2, 2, lambda a, j: sp.diff(Ex_mem, gx[a, j]))  # scalar
    pre = gx * Xe
    want = -(pre.applyfunc(lambda v: sp.Max(v, 0))) * Xe.T
    for sign in (1, -1):  # each token's pre-activation positive, then negative
        pt = {gx[0, 0]: sign * sp.Rational(3, 2), gx[0, 1]: sp.Rational(1, 3), gx[1, 0]: -sign * 2,
              gx[1, 1]: sp.Rational(1, 5), Xe[0, 0]: 1, Xe[1, 0]: sp.Rational(1, 2)}
        diff = (grad_mem - want).subs(pt)
        assert all(sp.simplify(v) == 0 for v in diff)
    proven["memory gradient = −Ξ relu(Ξᵀg_A) (scalar sp.diff, both sign patterns)"] = "exact rationals"

    # 3. the energy layer norm is ∇L, ∇²L = (γ/σ)(P − uuᵀ) is symmetric PSD
    D = 3
    x = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"x_{i}", real=True))
    delta = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"delta_{i}", real=True))
    gam, eps = sp.Symbol("gamma", positive=True), sp.nsimplify(EPS)
    mu = sum(x) / D
    c = x - mu * sp.ones(D, 1)
    var = sum(v**2 for v in c) / D
    sigma = sp.sqrt(var + eps)
    L = D * gam * sigma + (delta.T * x)[0, 0]
    gradL = sp.Matrix(D, 1, lambda i, _: sp.diff(L, x[i]))  # scalar
    ln = gam * c / sigma + delta
    assert _zero(gradL - ln)
    proven["g = γ(x − x̄)/sqrt(var + ε) + δ = ∇L(x), L = Dγ sqrt(var + ε) + δᵀx (D=3)"] = "cancel"
    J = sp.Matrix(D, D, lambda i, j: sp.diff(ln[i], x[j]))  # scalar
    assert _zero(J - J.T)
    proven["J_LN = ∇²L is symmetric (scalar γ, D=3)"] = "cancel"
    P = sp.eye(D) - sp.ones(D, D) / D
    u = c / (sigma * sp.sqrt(D))
    assert _zero(J - gam / sigma * (P - u * u.T))
    assert _zero(P * u - u)
    assert sp.cancel(sum(v**2 for v in u) - var / (var + eps)) == 0
    proven["J_LN = (γ/σ)(P − uuᵀ), Pu = u, ‖u‖² = var/(var+ε) < 1 ⇒ PSD (D=3)"] = "cancel"

    # 4. per-feature gain breaks symmetry
    gv = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"gamma_{i}", positive=True))
    ln_f = sp.diag(*gv) * c / sigma + delta
    Jf = sp.Matrix(D, D, lambda i, j: sp.diff(ln_f[i], x[j]))  # scalar
    pt = {x[0]: 1, x[1]: -2, x[2]: sp.Rational(1, 2), gv[0]: 1, gv[1]: 2, gv[2]: 3}
    asym = (Jf - Jf.T).subs(pt)
    assert any(sp.simplify(v) != 0 for v in asym)
    assert _zero((Jf - Jf.T).subs({gv[1]: gv[0], gv[2]: gv[0]}))
    proven["per-feature γ: J_LN not symmetric (symmetric again when all γ_i are equal)"] = \
        "exact rational point / cancel"
    return proven


if __name__ == "__main__":
    for k, v in prove().items():
        print(f"PROVED {k}  [{v}]")
