"""Exact symbolic proofs for the causal-attention entry (``unfold.catalogue.causal_attention``).

Claims (general T, D, d; structural equality of unfold's derived gradients with forms written
independently in unfold's language):

1. the query-slot gradient of ``E_q(U; X)`` is ``−Σ_h softmax_rows(β(UW_Q,hᵀ)(XW_K,hᵀ)ᵀ; causal) (XW_K,hᵀ) W_Q,h``:
   causal attention with queries ``UW_Qᵀ``, keys = values ``XW_Kᵀ``, output projection ``W_Q``;
2. the gradient of ``E(X)`` is that query side at ``U = X`` plus the key side
   ``−Σ_h P_hᵀ (XW_Q,hᵀ) W_K,h`` (``P_h`` the causal softmax): the key side carries ``P_hᵀ``, whose row ``m``
   collects the later queries ``i ≥ m`` (the step is not causal);
3. NRGPT: the query-slot gradient of ``−Σ_i lse_{j≤i}(u_iᵀ H k_j)`` is ``−softmax_rows(U H Kᵀ; causal) K Hᵀ``,
   row ``i`` being ``−Σ_j a_ij H k_j`` — the head's output;
4. (general n) each token's energy ``E_i(u) = −lse_j(uᵀ H k_j)`` is concave in ``u``: its Hessian is
   ``−H K̃ᵀ(Diag(a) − aaᵀ)K̃ Hᵀ`` and ``vᵀ(Diag(a) − aaᵀ)v = Σ_j a_j (v_j − Σ_l a_l v_l)² ≥ 0`` when
   ``Σ_j a_j = 1``, ``a ≥ 0`` (sympy ``Sum`` over a symbolic bound); so a per-token gradient step lowers
   ``E_i`` for every step size (a concave function lies below its tangents).
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue import causal_attention as ca
from unfold.symbolic import ops as s
from unfold.symbolic.masks import causal
from unfold.symbolic.tidy import tidy
from proofs._common import main


def _same(a: sp.Basic, b: sp.Basic) -> bool:
    return tidy(a) == tidy(b) or sp.expand(tidy(a) - tidy(b)) in (0, sp.ZeroMatrix(*a.shape))


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    Eq = ca.query_energy()
    U, X, beta = Eq.symbol("U"), Eq.symbol("X"), Eq.symbol("beta")
    heads = [(Eq.symbol(f"WQ{h}"), Eq.symbol(f"WK{h}")) for h in range(1, ca.HEADS + 1)]

    def P(A, B, q, k):
        return s.softmax(beta * (A * q.T) * (B * k.T).T, axis=1, mask=causal)

    query = sum((-P(U, X, q, k) * (X * k.T) * q for q, k in heads), sp.ZeroMatrix(*U.shape))
    assert _same(Eq.grad(U), query), (Eq.grad(U), query)
    proven["query_gradient_golden"] = "structural"

    E = ca.energy()
    Xs = E.symbol("X")
    heads = [(E.symbol(f"WQ{h}"), E.symbol(f"WK{h}")) for h in range(1, ca.HEADS + 1)]
    q_side = sum((-P(Xs, Xs, q, k) * (Xs * k.T) * q for q, k in heads), sp.ZeroMatrix(*Xs.shape))
    k_side = sum((-P(Xs, Xs, q, k).T * (Xs * q.T) * k for q, k in heads), sp.ZeroMatrix(*Xs.shape))
    assert _same(E.grad(Xs), q_side + k_side), (E.grad(Xs), q_side + k_side)
    proven["full_gradient_golden"] = "structural"

    En = ca.nrgpt_energy()
    Un, K, H = En.symbol("U"), En.symbol("K"), En.symbol("H")
    head = -s.softmax(Un * H * K.T, axis=1, mask=causal) * K * H.T
    assert _same(En.grad(Un), head), (En.grad(Un), head)
    proven["nrgpt_gradient_golden"] = \
        "structural"

    n = sp.Symbol("n", integer=True, positive=True)
    j = sp.Symbol("j", integer=True, positive=True)
    a, v = sp.IndexedBase("a"), sp.IndexedBase("v")
    M = sp.Symbol("M", real=True)                                       # the weighted mean Σ_l a_l v_l
    S1, S2, S3 = sp.symbols("S1 S2 S3", real=True)                       # Σa, Σav, Σav²
    named = {sp.S.One: S1, v[j]: S2, v[j] ** 2: S3}
    total = sp.S.Zero
    for term in sp.Add.make_args(sp.Sum(a[j] * (v[j] - M) ** 2, (j, 1, n)).expand()):
        coeff, rest = term.function.as_independent(a[j], v[j], as_Add=False)   # constants out of the sum
        total += coeff * named[sp.simplify(rest / a[j])]
    quad = S3 - S2 ** 2                                                     # vᵀ(Diag(a) − aaᵀ)v with Σa = 1
    assert sp.expand(total.subs({M: S2, S1: 1}) - quad) == 0, total
    proven["token_energy_concave"] = "linearity of Σ_{j≤n} (symbolic n), Σ_j a_j = 1"
    return proven


if __name__ == "__main__":
    main(prove)
