"""Symbolic proofs for the Energy-Transformer entry (``unfold.catalogue.energy_transformer``);
statements and scopes are the entry's ``proofs`` (``unfold list energy_transformer`` shows them).

1. ``gradient_golden`` (engine-golden, general N, D, K, M, any additive mask C): unfold's derived
   ``∂E/∂g`` equals the closed form ``−Σ_h [P_h K_h W_Q^h + P_hᵀ Q_h W_K^h] − relu(gΞ)Ξᵀ``,
   ``P_h = softmax_rows(β Q_h K_hᵀ + C)``, written independently in unfold's language.  The engine
   writes the memory term as ``−½ (2 relu(gΞ) ∘ step(gΞ)) Ξᵀ``; the only rewrite applied before the
   structural comparison fuses a Hadamard product of elementwise functions *of one argument* into the
   elementwise product function, simplified by a pointwise identity proved for every real ``u``
   (``relu_step_pointwise``).  Every coefficient, transpose and factor outside the Hadamard product
   is compared as derived; the proof also checks that a doubled memory term is rejected.
2. ``attention_gradient_entrywise`` / ``memory_gradient_entrywise`` (fixed-size): the same identity,
   entry by entry, from the energy expanded into scalars and differentiated with plain ``sp.diff``
   at N = 2, D = 2, K = 2, M = 1 (independent of the engine).  A derivative at symbolic N, D needs
   sympy's matrix calculus, which is unreliable (see the README), so the engine-independent proof
   of the gradient is at fixed size only.
3. ``ln_is_gradient`` / ``ln_jacobian_psd`` (fixed-size, D = 3): the energy layer norm is the
   gradient of ``L(x) = Dγ sqrt(var x + ε) + δᵀx``; its Jacobian is symmetric and equals
   ``(γ/σ)(P − uuᵀ)`` with ``P = I − 11ᵀ/D``, ``u = (x − x̄)/(σ√D)``, ``‖u‖² = var/(var + ε) < 1``,
   ``Pu = u``, hence PSD for ``γ > 0``.  The mean and variance of a symbolic-length vector are
   sums with a symbolic number of terms, which sympy differentiates only entry by entry, so D is
   explicit.
   ``ln_gradient_general`` / ``ln_hessian_psd_general`` (general D): the same Lagrangian is the
   ``layernorm_lagrangian`` entry's, whose proofs are at a symbolic D (directional derivatives in
   the algebra of ``11ᵀ``); they are run here and cover this entry's layer norm.
4. ``per_feature_not_symmetric`` (fixed-size, D = 3): with a per-feature gain the Jacobian is not
   symmetric.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions import HadamardProduct, MatMul

from proofs._common import explicit_zero, main
from unfold.catalogue.energy_transformer import EPS, energy
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.nodes import U, Elementwise

_POS = sp.Symbol("p", positive=True)


def _pointwise_equal(f: sp.Expr, h: sp.Expr) -> bool:
    """``f(u) = h(u)`` for every real u, for functions built from Max(0, u), Heaviside(u) and
    polynomials: both are analytic on u > 0 and on u < 0, so equality at a positive symbol, a
    negative symbol and at 0 is equality everywhere."""
    return all(sp.simplify((f - h).subs(U, v)) == 0 for v in (_POS, -_POS, sp.Integer(0)))


def _relu_step_pointwise() -> str:
    assert _pointwise_equal(sp.Max(0, U) * sp.Heaviside(U), sp.Max(0, U))
    return "case analysis u > 0, u < 0, u = 0 (sympy's Heaviside(0) = 1/2 is multiplied by Max(0, 0) = 0)"


def _split(a: Any) -> tuple[sp.Expr, Any]:
    """``c·M`` as ``(c, M)`` for a single matrix factor ``M``."""
    if isinstance(a, MatMul):
        c, mats = a.as_coeff_matrices()
        return (c, mats[0]) if len(mats) == 1 else (sp.Integer(1), a)
    return sp.Integer(1), a


def _fuse_elementwise(expr: Any) -> Any:
    """Rewrite each ``(c₁f₁(Z)) ∘ (c₂f₂(Z)) ∘ …`` (elementwise functions of one argument ``Z``) as
    ``c·h(Z)`` with ``c·h(u) = Π cᵢfᵢ(u)`` after the pointwise identity ``Max(0,u)·Heaviside(u) =
    Max(0,u)``; each rewrite is checked with :func:`_pointwise_equal`."""

    def fusable(e: Any) -> bool:
        if not isinstance(e, HadamardProduct):
            return False
        parts = [_split(a)[1] for a in e.args]
        return all(isinstance(m, Elementwise) for m in parts) and len({m.expr for m in parts}) == 1

    def fused(e: Any) -> Any:
        coeff, fn, arg = sp.Integer(1), sp.Integer(1), None
        for a in e.args:
            c, m = _split(a)
            coeff, fn, arg = coeff * c, fn * m.function(U), m.expr
        simpler = fn.subs(sp.Max(0, U) * sp.Heaviside(U), sp.Max(0, U))
        assert _pointwise_equal(fn, simpler), (fn, simpler)
        k, h = simpler.as_coeff_Mul()
        return (coeff * k) * Elementwise(sp.Lambda(U, h), arg)

    return expr.replace(fusable, fused)


def _closed_gradient(E: Any, heads: int, memory_scale: int = 1) -> Any:
    """``−Σ_h [P_h K_h W_Q^h + P_hᵀ Q_h W_K^h] − c·relu(gΞ)Ξᵀ`` (``c = 1``: the paper's form)."""
    g, Xi, C, beta = (E.symbol(k) for k in ("g", "Xi", "C", "beta"))
    closed = -memory_scale * s.relu(g * Xi) * Xi.T
    for h in range(1, heads + 1):
        WQ, WK = E.symbol(f"WQ{h}"), E.symbol(f"WK{h}")
        Q, K = g * WQ.T, g * WK.T
        P = s.softmax(beta * Q * K.T + C, axis=1)
        closed = closed - P * K * WQ - P.T * Q * WK
    return closed


def _gradient_golden() -> str:
    heads = 2
    E = energy(heads)
    derived = _fuse_elementwise(E.grad(E.symbol("g"))).doit()
    assert derived == _closed_gradient(E, heads).doit(), derived
    assert derived != _closed_gradient(E, heads, memory_scale=2).doit(), "a wrong coefficient was accepted"
    return "structural equality after fusing relu(gΞ)∘step(gΞ) pointwise; a doubled memory term is rejected"


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    proven["relu_step_pointwise"] = _relu_step_pointwise()
    proven["gradient_golden"] = _gradient_golden()
    E = energy(1)
    beta = E.symbol("beta")

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
    assert explicit_zero(grad_att + Pe * Ke * WQe + Pe.T * Qe * WKe)
    proven["attention_gradient_entrywise"] = "scalar sp.diff at N = 2, D = 2, K = 2, M = 1; cancel"
    Ex_mem = expand_explicit(E1.terms["memory"], env)
    grad_mem = sp.Matrix(2, 2, lambda a, j: sp.diff(Ex_mem, gx[a, j]))  # scalar
    pre = gx * Xe
    want = -(pre.applyfunc(lambda v: sp.Max(v, 0))) * Xe.T
    # Max(z, 0)·Heaviside(z) = Max(z, 0) for every real z (relu_step_pointwise), applied per pre-activation z
    fused = {sp.Max(z, 0) * sp.Heaviside(z): sp.Max(z, 0) for z in pre}
    diff = (grad_mem - want).applyfunc(lambda v: sp.expand(v).subs(fused))
    assert explicit_zero(diff), diff
    proven["memory_gradient_entrywise"] = "scalar sp.diff at N = D = 2, M = 1, symbolic entries; relu·step = relu per pre-activation"

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
    assert explicit_zero(gradL - ln)
    proven["ln_is_gradient"] = "scalar sp.diff at D = 3; cancel"
    J = sp.Matrix(D, D, lambda i, j: sp.diff(ln[i], x[j]))  # scalar
    assert explicit_zero(J - J.T)
    P = sp.eye(D) - sp.ones(D, D) / D
    u = c / (sigma * sp.sqrt(D))
    assert explicit_zero(J - gam / sigma * (P - u * u.T))
    assert explicit_zero(P * u - u)
    assert sp.cancel(sum(v**2 for v in u) - var / (var + eps)) == 0
    proven["ln_jacobian_psd"] = "J = Jᵀ, J = (γ/σ)(P − uuᵀ), Pu = u, ‖u‖² = var/(var+ε) at D = 3; cancel"

    # 4. per-feature gain breaks symmetry
    gv = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"gamma_{i}", positive=True))
    ln_f = sp.diag(*gv) * c / sigma + delta
    Jf = sp.Matrix(D, D, lambda i, j: sp.diff(ln_f[i], x[j]))  # scalar
    pt = {x[0]: 1, x[1]: -2, x[2]: sp.Rational(1, 2), gv[0]: 1, gv[1]: 2, gv[2]: 3}
    asym = (Jf - Jf.T).subs(pt)
    assert any(sp.simplify(v) != 0 for v in asym)
    assert explicit_zero((Jf - Jf.T).subs({gv[1]: gv[0], gv[2]: gv[0]}))
    from proofs.proof_layernorm_lagrangian import prove as prove_layernorm

    ln = prove_layernorm()  # L(x) = Dγ sqrt(‖Px‖²/D + ε) + δᵀx: the same Lagrangian, scalar γ
    proven["ln_gradient_general"] = "proofs/proof_layernorm_lagrangian.py: " + ln["gradient_general"]
    proven["ln_hessian_psd_general"] = ("proofs/proof_layernorm_lagrangian.py: " + ln["hessian_general"] + "; "
                                        + ln["hessian_eigenvalues"])
    proven["per_feature_not_symmetric"] = "nonzero at an exact rational point; symmetric again when all γ_i are equal"
    return proven


if __name__ == "__main__":
    main(prove)
