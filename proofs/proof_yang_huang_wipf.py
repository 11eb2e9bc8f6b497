"""Symbolic proofs for the Yang–Huang–Wipf entry (``unfold.catalogue.yang_huang_wipf``); statements
and scopes are the entry's ``proofs`` (``unfold list yang_huang_wipf`` shows them).

* ``rho_tangent`` (general, scalar): ``ρ(z) = −exp(−z)`` is concave and increasing; its tangent-line
  gap is ``e^{−z₀}(e^{−t} − 1 + t) ≥ 0``, so the majorizer ``Q(Y|A)`` (a sum of tangent lines)
  bounds ``E₁`` from above.
* ``majorizer_tangency`` (fixed-size): ``Q(A|A) = E₁(A)`` and all six entries of
  ``∇_Y Q(Y|A)|_{Y=A} = ∇E₁(A)`` at n = 3, d = 2 with symbolic tokens, anchor and ``W_s``, by plain
  scalar ``sp.diff`` of both energies expanded into scalars (independent of the engine).
* ``irls_weights_are_softmax`` (general, symbolic n and d): the MM weights
  ``exp(−½‖W_s(yᵢ − y_j)‖²) / Σ_k exp(−½‖W_s(yᵢ − y_k)‖²)`` are
  ``softmax_j(yᵢᵀGy_j − ½‖W_s y_j‖²)``: the quadratic expands (1×1 blocks at symbolic d) and the
  common factor ``exp(−½yᵢᵀGyᵢ)`` leaves a sum of ``n`` terms (sympy ``Sum`` at symbolic n).
* ``mm_step_form`` (general): ``Y − αD⁻¹(D − Γ)Y = (1 − α)Y + αD⁻¹ΓY`` at symbolic n, d.
* ``mm_rule_softmax`` (fixed-size): unfold's generated MM rule with a *symbolic* step ``α`` is
  ``(1 − α)Y + α softmax(YGYᵀ − ½1diag(YGYᵀ)ᵀ)Y`` at n = 2, d = 2, symbolic ``Y``, a rational
  ``W_s`` (with a symbolic ``W_s`` the same check takes ≈ 40 s: ``G⁻¹`` of a symbolic 2×2 matrix
  inside four exponentials).  Not at symbolic n, d: the generated rule is the engine's expression (a
  diagonal inverse of a row-sum of ``exp`` of a Gram matrix, Hadamard products, ``G⁻¹``), and sympy's
  matrix expressions have no normal form that would identify it with a softmax at symbolic sizes.  The
  size-independent content is proved in general by ``irls_weights_are_softmax`` and ``mm_step_form``;
  only the link from those to the engine's output is at a fixed size.
* ``equal_norm_bias_cancels`` (general, symbolic n): ``softmax(s − c1ᵀ) = softmax(s)`` row by row.
* ``ffn_rule`` (engine-golden, symbolic sizes and α): unfold's proximal-gradient rule is
  ``ReLU(Y − α(½Y(W + Wᵀ) + Y − 1bᵀ))`` = ``ReLU(Y((1 − α)I − αW) + α1bᵀ)`` for ``W = Wᵀ``.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import Identity, MatrixSymbol

from proofs._common import main, symbolic_zero
from unfold.catalogue.yang_huang_wipf import attention_energy, attention_rule, ffn_step, majorizer
from unfold.steps import LearnableStep
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env

_WS = sp.Matrix([[1, sp.Rational(1, 3)], [sp.Rational(-1, 2), 2]])  # an invertible rational W_s


def _rho_tangent() -> str:
    z, z0, t = sp.symbols("z z0 t", real=True)
    rho = -sp.exp(-z)
    assert sp.simplify(sp.diff(rho, z, 2) + sp.exp(-z)) == 0          # scalar: ρ'' = −e^{−z} < 0
    assert sp.simplify(sp.diff(rho, z) - sp.exp(-z)) == 0             # scalar: ρ' = e^{−z} > 0
    gap = (rho.subs(z, z0) + sp.diff(rho, z).subs(z, z0) * (z - z0)) - rho   # scalar
    assert sp.simplify(gap.subs(z, z0 + t) - sp.exp(-z0) * (sp.exp(-t) - 1 + t)) == 0
    # e^{−t} − 1 + t ≥ 0: it is convex with its minimum 0 at t = 0
    h = sp.exp(-t) - 1 + t
    assert sp.solve(sp.diff(h, t), t) == [0] and h.subs(t, 0) == 0
    assert sp.diff(h, t, 2) == sp.exp(-t) and sp.exp(-t).is_positive  # convex on all of R
    return "ρ'' = −e^{−z}, ρ' = e^{−z}; gap = e^{−z₀}(e^{−t} − 1 + t), convex in t with minimum 0 at t = 0"


def _majorizer_tangency() -> str:
    E1, Q = attention_energy(), majorizer()
    env = explicit_env(Q.inputs, {dm: {"n": 3, "d": 2}[str(dm)] for dm in Q.dims})
    Y, A = env[Q.symbol("Y")], env[Q.symbol("A")]
    at_anchor = dict(zip(Y, A))
    Qx, Ex = expand_explicit(Q.expr, env), expand_explicit(E1.expr, env)
    assert sp.expand(Qx.xreplace(at_anchor) - Ex.xreplace(at_anchor)) == 0, "Q(A|A) ≠ E₁(A)"
    for y in Y:
        dQ = sp.diff(Qx, y).xreplace(at_anchor)  # scalar
        dE = sp.diff(Ex, y).xreplace(at_anchor)  # scalar
        assert sp.expand(dQ - dE) == 0, f"∂Q/∂{y} ≠ ∂E₁/∂{y} at the anchor"
    return "n = 3, d = 2, symbolic Y, A, W_s: value and all 6 partial derivatives (scalar sp.diff) agree at Y = A"


def _irls_weights() -> str:
    d = sp.Symbol("d", integer=True, positive=True)
    Ws = MatrixSymbol("W_s", d, d)
    yi, yj = MatrixSymbol("y_i", d, 1), MatrixSymbol("y_j", d, 1)
    G = Ws.T * Ws
    dist = (Ws * (yi - yj)).T * (Ws * (yi - yj))
    # −½‖W_s(yᵢ − y_j)‖² = −½yᵢᵀGyᵢ + (yᵢᵀGy_j − ½y_jᵀGy_j)    (1×1 blocks, symbolic d)
    assert symbolic_zero(-dist / 2 - (-(yi.T * G * yi) / 2 + yi.T * G * yj - (yj.T * G * yj) / 2))
    # the common per-row term c = −½yᵢᵀGyᵢ cancels from a softmax over n keys (symbolic n)
    n = sp.Symbol("n", integer=True, positive=True)
    j, k = sp.symbols("j k", integer=True, positive=True)
    sc = sp.IndexedBase("s", real=True)
    c = sp.Symbol("c", real=True)
    weights = sp.exp(c + sc[j]) / sp.Sum(sp.exp(c + sc[k]), (k, 1, n))
    assert sp.simplify(weights - sp.exp(sc[j]) / sp.Sum(sp.exp(sc[k]), (k, 1, n))) == 0
    return "quadratic expansion at symbolic d (1×1 blocks); exp(c + s_j)/Σ_{k≤n} exp(c + s_k) = softmax_j(s), symbolic n"


def _mm_step_form() -> str:
    n = sp.Symbol("n", integer=True, positive=True)
    d = sp.Symbol("d", integer=True, positive=True)
    Y, Gam, D = MatrixSymbol("Y", n, d), MatrixSymbol("Gamma", n, n), MatrixSymbol("D", n, n)
    alpha = sp.Symbol("alpha", positive=True)
    lhs = Y - alpha * D.I * (D - Gam) * Y
    assert symbolic_zero((lhs - ((1 - alpha) * Y + alpha * D.I * Gam * Y)).doit())
    return "Y − αD⁻¹(D − Γ)Y − ((1 − α)Y + αD⁻¹ΓY) expands to 0 at symbolic n, d"


def _mm_rule_softmax() -> str:
    Q = majorizer()
    rule = attention_rule(LearnableStep(0.5))  # the step α appears as the symbol eta
    (alpha,) = [x for x in rule.free_symbols if str(x) == "eta"]
    env = explicit_env(Q.inputs, {dm: {"n": 2, "d": 2}[str(dm)] for dm in Q.dims})
    env[Q.symbol("Ws")] = _WS
    Yv = env[Q.symbol("Y")]
    S = Yv * _WS.T * _WS * Yv.T
    logits = S - sp.ones(2, 1) * sp.Matrix([[S[j, j] for j in range(2)]]) / 2
    P = sp.Matrix(2, 2, lambda i, j: sp.exp(logits[i, j]) / sum(sp.exp(logits[i, k]) for k in range(2)))
    diff = expand_explicit(rule, env) - ((1 - alpha) * Yv + alpha * P * Yv)
    assert all(sp.simplify(sp.powsimp(sp.expand(e))) == 0 for e in diff)
    return "unfold's rule with symbolic α expanded at n = 2, d = 2 (symbolic Y, rational W_s); simplify to 0"


def _equal_norm_bias() -> str:
    n = sp.Symbol("n", integer=True, positive=True)
    j, k = sp.symbols("j k", integer=True, positive=True)
    a = sp.IndexedBase("a", real=True)
    c = sp.Symbol("c", real=True)
    shifted = sp.exp(a[j] - c / 2) / sp.Sum(sp.exp(a[k] - c / 2), (k, 1, n))
    assert sp.simplify(shifted - sp.exp(a[j]) / sp.Sum(sp.exp(a[k]), (k, 1, n))) == 0
    return "softmax over n keys of a_j − c/2 = softmax of a_j, symbolic n"


def _ffn_rule() -> str:
    rule = ffn_step(LearnableStep(0.5)).update_rule()
    (alpha,) = [x for x in rule.free_symbols if str(x) == "eta"]
    E2 = ffn_step(1.0).source_energy
    Y, W, b = (E2.symbol(k) for k in ("Y", "W", "b"))
    n, d = Y.shape
    arg = rule.args[-1]  # the argument of the elementwise relu
    as_derived = Y - alpha * (Y * (W + W.T) / 2 + Y - s.ones(n, 1) * b.T)
    assert symbolic_zero((arg - as_derived).doit()), arg
    want = Y * ((1 - alpha) * Identity(d) - alpha * W) + alpha * s.ones(n, 1) * b.T
    assert symbolic_zero((arg.xreplace({W.T: W}) - want).doit()), (arg, want)
    return "update_rule() with symbolic α; symmetric W substituted; difference expands to the zero matrix"


def prove() -> dict[str, str]:
    return {
        "rho_tangent": _rho_tangent(),
        "majorizer_tangency": _majorizer_tangency(),
        "irls_weights_are_softmax": _irls_weights(),
        "mm_step_form": _mm_step_form(),
        "mm_rule_softmax": _mm_rule_softmax(),
        "equal_norm_bias_cancels": _equal_norm_bias(),
        "ffn_rule": _ffn_rule(),
    }


if __name__ == "__main__":
    main(prove)
