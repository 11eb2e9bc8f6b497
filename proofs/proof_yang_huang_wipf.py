"""Exact symbolic proofs for the Yang–Huang–Wipf entry (``unfold.catalogue.yang_huang_wipf``).

Claims:

1. (scalar) ``ρ(z) = −exp(−z)`` is concave and non-decreasing, so its tangent line majorizes it:
   ``ρ(z) ≤ ρ(z₀) + ρ'(z₀)(z − z₀)`` — the majorizer ``Q(Y|A)`` is built from it;
2. (explicit n = 3, d = 2, symbolic tokens, exact rational W_s) ``Q(A|A) = E₁(A)`` and
   ``∇_Y Q(Y|A)|_{Y=A} = ∇E₁(A)`` (tangency), energies expanded into scalars, plain ``sp.diff``;
3. (explicit n = 2, d = 2, symbolic tokens, exact rational W_s) unfold's generated MM rule at α = 1,
   ``Y − D⁻¹ ∇_Y Q G⁻¹ |_{A=Y}``, equals ``softmax(YGYᵀ − ½1diag(YGYᵀ)ᵀ)Y`` (other α: the rule is
   ``Y − α(…)`` by construction; checked numerically by the entry);
4. (explicit) the key bias cancels when the rows have equal G-norm: a row softmax is unchanged by a
   common shift;
5. (general dims) unfold's proximal-gradient rule for the FFN is ``relu(Y − α(½Y(W + Wᵀ) + Y − 1bᵀ))``,
   which for symmetric ``W`` is ``ReLU(Y((1−α)I − αW) + α1bᵀ)`` (expanded, structural).
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.yang_huang_wipf import attention_energy, attention_rule, ffn_step, majorizer
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env


def _zero(M: sp.Matrix) -> bool:
    return all(sp.cancel(sp.expand(e)) == 0 for e in M)


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}

    # 1. concavity of ρ and the tangent-line bound
    z, z0 = sp.symbols("z z0", real=True)
    rho = -sp.exp(-z)
    assert sp.simplify(sp.diff(rho, z, 2) + sp.exp(-z)) == 0          # scalar: ρ'' = −e^{−z} < 0
    assert sp.simplify(sp.diff(rho, z) - sp.exp(-z)) == 0             # scalar: ρ' = e^{−z} > 0
    gap = (rho.subs(z, z0) + sp.diff(rho, z).subs(z, z0) * (z - z0)) - rho   # scalar
    t = sp.Symbol("t", real=True)                                      # gap = e^{−z0}(e^{−t} − 1 + t), t = z − z0
    assert sp.simplify(gap.subs(z, z0 + t) - sp.exp(-z0) * (sp.exp(-t) - 1 + t)) == 0
    proven["ρ(z) = −e^{−z} concave, increasing; tangent gap = e^{−z₀}(e^{−t} − 1 + t) ≥ 0"] = "scalar sp.diff, simplify"

    # 2. tangency of the majorizer at explicit size (symbolic tokens and anchor, exact rational W_s)
    E1, Q = attention_energy(), majorizer()
    Wnum = sp.Matrix([[1, sp.Rational(1, 3)], [sp.Rational(-1, 2), 2]])
    env = explicit_env(Q.inputs, {dm: {"n": 3, "d": 2}[str(dm)] for dm in Q.dims})
    env[Q.symbol("Ws")] = Wnum
    Y, A = env[Q.symbol("Y")], env[Q.symbol("A")]
    at_anchor = {y: a for y, a in zip(Y, A)}
    Qx, Ex = expand_explicit(Q.expr, env), expand_explicit(E1.expr, env)
    assert sp.simplify(sp.nsimplify(Qx.subs(at_anchor) - Ex.subs(at_anchor))) == 0
    for i, j in ((0, 0), (1, 1), (2, 0)):
        dQ = sp.diff(Qx, Y[i, j]).subs(at_anchor)  # scalar
        dE = sp.diff(Ex, Y[i, j]).subs(at_anchor)  # scalar
        assert sp.simplify(dQ - dE) == 0
    proven["Q(A|A) = E₁(A) and ∇Q(·|A) = ∇E₁ at A (n=3, d=2, symbolic tokens, rational W_s)"] = \
        "scalar sp.diff, simplify"

    # 3. unfold's generated MM rule (α = 1) is softmax attention with the key bias
    env2 = explicit_env(Q.inputs, {dm: {"n": 2, "d": 2}[str(dm)] for dm in Q.dims})
    env2[Q.symbol("Ws")] = Wnum
    Yv = env2[Q.symbol("Y")]
    G = Wnum.T * Wnum
    S = Yv * G * Yv.T
    logits = S - sp.ones(2, 1) * sp.Matrix([[S[j, j] for j in range(2)]]) / 2
    P = sp.Matrix(2, 2, lambda i, j: sp.exp(logits[i, j]) / sum(sp.exp(logits[i, k]) for k in range(2)))
    got = expand_explicit(attention_rule(1.0), env2)
    assert all(sp.simplify(sp.powsimp(sp.expand(e))) == 0 for e in got - P * Yv)
    proven["MM rule Y − D⁻¹∇Q G⁻¹|_(A=Y) = softmax(YGYᵀ − ½1diag(YGYᵀ)ᵀ)Y (n=2, d=2, symbolic Y)"] = \
        "unfold's rule expanded, simplify"

    # 4. equal G-norms: the bias is a common shift of each softmax row and cancels
    a = sp.symbols("a0:3", real=True)
    c = sp.Symbol("c", real=True)
    for j in range(3):
        lhs = sp.exp(a[j] - c / 2) / sum(sp.exp(a[k] - c / 2) for k in range(3))
        rhs = sp.exp(a[j]) / sum(sp.exp(a[k]) for k in range(3))
        assert sp.simplify(lhs - rhs) == 0
    proven["equal G-norms: softmax(s − ½c1ᵀ) = softmax(s), i.e. plain softmax(YGYᵀ)Y"] = "simplify"

    # 5. FFN proximal-gradient rule, general dims
    step = ffn_step(1.0)
    f = step.source_energy
    Yg, W, b = f.symbol("Y"), f.symbol("W"), f.symbol("b")
    n = Yg.shape[0]
    d = Yg.shape[1]
    inner_arg = step.update_rule().args[-1]                     # the argument of the elementwise relu
    want = Yg * (0 * s.identity(d) - W) + s.ones(n, 1) * b.T   # α = 1: Y((1−α)I − αW) + α1bᵀ
    sym = inner_arg.xreplace({W.T: W})
    assert sp.expand(sym).doit() == sp.expand(want).doit(), (sym, want)
    proven["FFN prox step (α=1) = ReLU(−YW + 1bᵀ) for symmetric W (general dims)"] = "expanded, structural"
    step_h = ffn_step(0.5)
    sym_h = step_h.update_rule().args[-1].xreplace({W.T: W})
    want_h = Yg * (s.identity(d) / 2 - W / 2) + s.ones(n, 1) * b.T / 2
    assert sp.expand(sym_h).doit() == sp.expand(want_h).doit(), (sym_h, want_h)
    proven["FFN prox step (α=1/2) = ReLU(Y(½I − ½W) + ½1bᵀ) (general dims)"] = "expanded, structural"
    return proven


if __name__ == "__main__":
    for k, v in prove().items():
        print(f"PROVED {k}  [{v}]")
