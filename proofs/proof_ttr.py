"""Exact symbolic proofs for the test-time-regression entry (``unfold.catalogue.ttr``).

Claims:

1. (general d_k, d_v; structural) unfold's generated unit gradient steps are the papers' updates:
   linear attention with decay ``αS + v kᵀ``; DeltaNet ``S(I − βkkᵀ) + βvkᵀ``; gated DeltaNet (the
   decay step, then the DeltaNet step at the decayed state) ``αS(I − βkkᵀ) + βvkᵀ``;
2. (general d_k, d_v; rank-one algebra) Longhorn: the generated step
   ``S − β(Sk − v)kᵀ(I + βkkᵀ)⁻¹`` is the paper's closed form ``S(I − εkkᵀ) + εvkᵀ``,
   ``ε = β/(1 + β‖k‖²)``, and satisfies the implicit (proximal) equation ``S⁺ − S + β(S⁺k − v)kᵀ = 0``;
   residual laws ``S⁺k − v = (1 − β‖k‖²)(Sk − v)`` (DeltaNet) and ``= (Sk − v)/(1 + β‖k‖²)`` (Longhorn).
   The proof works in the algebra of non-commuting symbols ``S, k, v, kᵀ`` with the single relation
   ``kᵀk = n`` (a scalar), which holds at every size;
3. (general d_k, d_v, n) the mesa layer: the generated step is ``S − ∇E·(KKᵀ + λI)⁻¹`` with
   ``∇E = S(KKᵀ + λI) − VKᵀ`` (structural), hence ``= VKᵀ(KKᵀ + λI)⁻¹``, the ridge minimiser, from any ``S``;
4. softmax attention as Nadaraya–Watson regression:

   * (general n, any d_v; independent of the engine) for weights with ``Σ_i a_i = 1``, the directional
     derivative of ``½Σ_{i≤n} a_i‖v_i − m‖²`` along ``u`` is ``⟨m − Σ_i a_i v_i, u⟩`` and its second
     derivative is ``‖u‖²`` (Hessian ``I``): one unit gradient step from any ``m`` lands on the weighted
     mean, the unique argmin (sympy ``Sum`` over a symbolic bound; ``v_iᵀm``, ``v_iᵀu``, ``mᵀu``, ``‖u‖²``
     as scalars); softmax weights sum to 1 over the keys (``Σ_i e^{z_i}/Σ_l e^{z_l} = 1``, symbolic n);
   * (symbolic sizes; structural) unfold's gradient of the catalogue energy is
     ``∇_M E_NW = M ⊙ (1A) − VA`` with ``A = softmax(βKᵀQ)`` (plain and causal), so with ``1ᵀA = 1ᵀ``
     the generated step is ``VA`` from any ``M``;
   * (explicit d_v = 2, n = 3, T = 2) the same from the energy expanded into scalars and
     differentiated entrywise with plain ``sp.diff``, and the generated step expanded (``cancel``).

Not proved symbolically (checked numerically in the catalogue): the chunkwise WY forms.
"""

from __future__ import annotations

import sympy as sp

from proofs._common import main, scalars_out_of_hadamard
from unfold.catalogue import ttr
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.masks import causal
from unfold.symbolic.tidy import canonical


def _is_zero(e: sp.Basic) -> bool:
    z = sp.expand(e)
    return z == 0 or isinstance(z, sp.ZeroMatrix)


def _nadaraya_watson_general() -> None:
    """The weighted-mean argmin and the softmax column sums, at a symbolic number of keys."""
    n = sp.Symbol("n", integer=True, positive=True)
    i, l = sp.symbols("i l", integer=True, positive=True)
    z, a, vm, vu, vv = (sp.IndexedBase(x) for x in ("z", "a", "vm", "vu", "vv"))   # vm_i = v_iᵀm, vu_i = v_iᵀu
    t, mu, mm, uu = sp.symbols("t mu mm uu", real=True)                            # mᵀu, ‖m‖², ‖u‖²
    # ½ Σ_i a_i ‖v_i − (m + t u)‖², expanded into inner products
    f = sp.Sum(a[i] * (vv[i] - 2 * (vm[i] + t * vu[i]) + mm + 2 * t * mu + t ** 2 * uu), (i, 1, n)) / 2
    ones = sp.Sum(a[i], (i, 1, n))
    first = sp.diff(f, t).subs(t, 0).doit()                      # scalar
    assert sp.simplify(sp.expand(first - (mu * ones - sp.Sum(a[i] * vu[i], (i, 1, n))))) == 0, first
    second = sp.diff(f, t, 2).doit()                             # scalar
    assert sp.simplify(second - uu * ones) == 0, second
    col = sp.Sum(sp.exp(z[i]) / sp.Sum(sp.exp(z[l]), (l, 1, n)), (i, 1, n))
    assert sp.simplify(sp.factor_terms(col).xreplace({l: i})) == 1, col


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    E = ttr.delta_energy()
    S, k, v, beta = (E.symbol(x) for x in ("S", "k", "v", "beta"))
    dk = k.rows
    I = s.identity(dk)
    alpha = ttr.linear_energy().symbol("alpha")

    # 1. structural, general dims
    lin = ttr.linear_attention_step().update_rule()
    assert _is_zero(lin - (alpha * S + v * k.T)), lin
    proven["linear_attention_golden"] = "structural"
    delta = ttr.deltanet_step().update_rule()
    assert _is_zero(delta - (S * (I - beta * k * k.T) + beta * v * k.T)), delta
    proven["deltanet_golden"] = "structural"
    decay = ttr.decay_step().update_rule()
    assert _is_zero(decay - alpha * S), decay
    gated = delta.xreplace({S: decay})
    assert _is_zero(gated - (alpha * S * (I - beta * k * k.T) + beta * v * k.T)), gated
    proven["gated_deltanet_golden"] = "structural"

    # 2. Longhorn, rank-one algebra (general sizes)
    rule = ttr.longhorn_step().update_rule()
    Minv = s.inv(I + beta * k * k.T)
    assert _is_zero(rule - (S - beta * (S * k - v) * k.T * Minv)), rule
    proven["longhorn_golden"] = "structural"
    Sn, kn, vn, kT = sp.symbols("S k v kT", commutative=False)
    n, b = sp.Symbol("n", positive=True), sp.Symbol("beta", positive=True)
    eps = b / (1 + b * n)

    def red(e: sp.Expr) -> sp.Expr:
        return sp.expand(sp.expand(e).subs(kT * kn, n))

    # β kᵀ(I + βkkᵀ)⁻¹ = ε kᵀ  ⟸  ε kᵀ(I + βkkᵀ) = β kᵀ  (I + βkkᵀ is invertible for β > 0)
    assert sp.simplify(red(eps * kT * (1 + b * kn * kT)) - b * kT) == 0
    proven["longhorn_closed_form"] = \
        "non-commuting S, k, v, kᵀ with kᵀk = n (any size)"
    S_plus = Sn - eps * (Sn * kn - vn) * kT
    prox = red(S_plus - Sn + b * (S_plus * kn - vn) * kT)
    assert sp.simplify(prox) == 0, prox
    proven["longhorn_implicit_equation"] = "rank-one algebra"
    r_long = red(S_plus * kn - vn - (Sn * kn - vn) / (1 + b * n))
    assert sp.simplify(r_long) == 0, r_long
    proven["longhorn_residual"] = "rank-one algebra"
    D_plus = Sn - b * (Sn * kn - vn) * kT
    r_delta = red(D_plus * kn - vn - (1 - b * n) * (Sn * kn - vn))
    assert sp.simplify(r_delta) == 0, r_delta
    proven["deltanet_residual"] = "rank-one algebra"

    # 3. mesa: a Newton step on a quadratic lands on its minimiser
    Em = ttr.mesa_energy()
    Sm, Km, Vm, lam = (Em.symbol(x) for x in ("S", "K", "V", "lam"))
    Mm = Km * Km.T + lam * s.identity(Km.rows)
    g = Em.grad(Sm)
    assert _is_zero(g - (Sm * Mm - Vm * Km.T)), g
    assert _is_zero(ttr.mesa_step().update_rule() - (Sm - g * s.inv(Mm))), ttr.mesa_step().update_rule()
    proven["mesa_golden"] = "structural, then M M⁻¹ = I"

    # 4. Nadaraya–Watson: general lemma, the engine at symbolic sizes, then explicit size
    _nadaraya_watson_general()
    proven["nw_argmin_general"] = "scalar sp.diff along a direction, sympy Sum over a symbolic number of keys"
    for Enw in (ttr.nw_energy(), ttr.nw_causal_energy()):
        M, V, K, Q, bnw = (Enw.symbol(x) for x in ("M", "V", "K", "Q", "beta"))
        A = s.softmax(bnw * K.T * Q, mask=causal if Enw is ttr.nw_causal_energy() else None)
        claimed = s.hadamard(s.ones(M.rows, K.cols) * A, M) - V * A
        g = scalars_out_of_hadamard(Enw.grad(M))
        assert canonical(g) == canonical(claimed) or _is_zero(g - claimed), (g, claimed)
    proven["nw_golden"] = "structural at symbolic sizes, plain and causal"

    Enw = ttr.nw_energy()
    sizes = {d: {"dk": 2, "dv": 2, "n": 3, "T": 2}[str(d)] for d in Enw.dims}
    env = explicit_env(Enw.inputs, sizes)
    Ex = expand_explicit(Enw.expr, env)
    M, V, K, Q = (env[Enw.symbol(x)] for x in ("M", "V", "K", "Q"))
    bnw = Enw.symbol("beta")
    grad = M.applyfunc(lambda m: sp.diff(Ex, m))
    Z = (bnw * K.T * Q).applyfunc(sp.exp)
    A = sp.Matrix(Z.rows, Z.cols, lambda i, j: Z[i, j] / sum(Z[:, j]))
    assert all(sp.cancel(sp.expand(e)) == 0 for e in (M - grad - V * A))
    proven["nw_gradient_entrywise"] = "cancel"
    engine = expand_explicit(ttr.nw_step().update_rule(), env)
    assert all(sp.cancel(sp.expand(e)) == 0 for e in (engine - V * A))
    proven["nw_generated_step"] = "cancel"
    return proven


if __name__ == "__main__":
    main(prove)
