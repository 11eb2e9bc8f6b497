"""Exact symbolic proofs for the ToST entry (``unfold.catalogue.tost``).

Claims:

1. (general N, p, any f) the directional derivative of one head's term
   ``R_k(Z) = ½ (N_k/N) Σ_{i≤p} f(m_i)``, ``m_i = Σ_{j≤N} π_j (u_iᵀz_j)² / N_k``, along ``E`` is
   ``(1/N) Σ_j π_j Σ_i f'(m_i)(u_iᵀz_j)(u_iᵀe_j) = ⟨(1/N) U_k D_k U_kᵀ Z Diag(π_k), E⟩``: so
   ``∇_Z R^var = (1/N) Σ_k U_k D_k U_kᵀ Z Diag(π_k)`` and the TSSA update ``Z − τ∇R^var`` is one gradient
   step with Π and U frozen (sympy ``Sum`` over symbolic bounds, ``a_j = u_iᵀz_j``, ``b_j = u_iᵀe_j``);
2. (general N, any concave nondecreasing f) the second directional derivative of the same term along
   ``E`` is ``(1/N)[f'(m)Σ_j π_j b_j² + (2/N_k) f''(m)(Σ_j π_j a_j b_j)²]``; with ``f'' ≤ 0`` and
   ``0 ≤ f'(m) ≤ f'(0)`` (``m ≥ 0``) it is at most ``(f'(0)/N) max_j π_j Σ_j b_j²``; for ``f = log(1 + cx)``,
   ``f' = c/(1 + cx) ≤ c`` and ``f'' = −c²/(1 + cx)² ≤ 0`` for ``x ≥ 0`` (sympy signs).  Summing over the
   heads' coordinates, ``Σ_{k,i} ‖Eᵀu_{k,i}‖² = tr(Eᵀ(Σ_k U_kU_kᵀ)E) ≤ ‖Σ_k U_kU_kᵀ‖₂‖E‖²``, so
   ``∇²R^var ⪯ L·I`` with ``L = c·max π·‖Σ_k U_kU_kᵀ‖₂/N`` and the descent lemma gives
   ``R^var(Z − τ∇R^var) ≤ R^var(Z) − τ(1 − Lτ/2)‖∇R^var‖²``: descent for ``τ < 2/L``;
3. (explicit d = 2, N = 2, p = 1, three heads) unfold's derived gradient of the catalogue energy equals
   the closed form ``(1/N) Σ_k U_k D_k U_kᵀ Z Diag(π_k)`` with ``f = log(1 + c x)``, entry by entry
   (``cancel``), with ``π_k = exp(lpi_k)``.
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.tost import HEADS, energy
from unfold.symbolic.explicit import expand_explicit, explicit_env
from proofs._common import main


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    # 1. general sizes: one head, one coordinate i of the head (the sum over i and k is linear)
    N, Nk, t = sp.symbols("N N_k t", positive=True)
    j = sp.Symbol("j", integer=True, positive=True)
    pi, a, b = sp.IndexedBase("pi"), sp.IndexedBase("a"), sp.IndexedBase("b")
    f = sp.Function("f")
    m_t = sp.Sum(pi[j] * (a[j] + t * b[j]) ** 2, (j, 1, N)) / Nk
    term_t = sp.Rational(1, 2) * (Nk / N) * f(m_t)
    d_term = sp.diff(term_t, t).subs(t, 0).doit()
    m0 = sp.Sum(pi[j] * a[j] ** 2, (j, 1, N)) / Nk
    claimed = sp.Subs(sp.Derivative(f(sp.Symbol("x")), sp.Symbol("x")), sp.Symbol("x"), m0).doit() \
        * sp.Sum(pi[j] * a[j] * b[j], (j, 1, N)) / N
    diff = sp.simplify((d_term - claimed).doit())
    assert diff == 0, diff
    proven["gradient_general"] = "sympy Sum over symbolic bounds, scalar diff in t"

    # 2. curvature: the second derivative along E, and the signs of f', f'' for f = log(1 + c x)
    d2_term = sp.diff(term_t, t, 2).subs(t, 0).doit()                  # scalar
    x = sp.Symbol("x")
    fp = sp.Subs(sp.Derivative(f(x), x), x, m0).doit()
    fpp = sp.Subs(sp.Derivative(f(x), x, 2), x, m0).doit()
    claimed2 = (fp * sp.Sum(pi[j] * b[j] ** 2, (j, 1, N))
                + 2 * fpp * sp.Sum(pi[j] * a[j] * b[j], (j, 1, N)) ** 2 / Nk) / N
    diff2 = sp.simplify(sp.expand((d2_term - claimed2).doit()))
    assert diff2 == 0, diff2
    c, xn = sp.Symbol("c", positive=True), sp.Symbol("x", nonnegative=True)
    flog = sp.log(1 + c * xn)
    d1, d2 = sp.diff(flog, xn), sp.diff(flog, xn, 2)                     # scalar
    assert sp.simplify(d1 - c / (1 + c * xn)) == 0
    assert sp.simplify(c - d1 - c ** 2 * xn / (1 + c * xn)) == 0       # c − f'(x) = c²x/(1 + cx) ≥ 0
    assert (c ** 2 * xn / (1 + c * xn)).is_nonnegative and (-d2).is_nonnegative
    proven["descent_step_bound"] = "second directional derivative with sympy Sum over symbolic bounds; signs of f', f''"

    # 3. the engine at explicit size
    E = energy()
    sizes = {d: {"d": 2, "N": 2, "p": 1}[str(d)] for d in E.dims}
    env = explicit_env(E.inputs, sizes)
    Z, c = env[E.symbol("Z")], E.symbol("c")
    engine = expand_explicit(E.grad("Z"), env)
    closed = sp.zeros(*Z.shape)
    for k in range(1, HEADS + 1):
        U = env[E.symbol(f"U{k}")]
        p_vec = env[E.symbol(f"lpi{k}")].applyfunc(sp.exp)
        n_k = sum(p_vec)
        W = U.T * Z
        m = sp.Matrix(W.rows, 1, lambda i, _: sum(p_vec[jj] * W[i, jj] ** 2 for jj in range(Z.cols)) / n_k)
        D = sp.diag(*[c / (1 + c * m[i]) for i in range(m.rows)])
        closed += U * D * U.T * Z * sp.diag(*p_vec) / Z.cols
    assert all(sp.cancel(sp.expand(e)) == 0 for e in (engine - closed))
    proven["engine_entrywise"] = "cancel"
    return proven


if __name__ == "__main__":
    main(prove)
