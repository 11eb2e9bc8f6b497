"""Exact symbolic proofs for the modern-Hopfield entry (``unfold.catalogue.hopfield``).

Claims:

1. (general d, N, S) unfold's derived unit gradient step on ``E`` is ``X·softmax(βXᵀΞ)``, and the
   CCCP step (``∇convex(Ξ⁺) = −∇concave(Ξ)`` with ``∇convex = Ξ``) is the same expression;
2. (general dims) under ``X = (Y W_K)ᵀ``, ``Ξ = (R W_Q)ᵀ``: ``(Ξ⁺)ᵀ W_V = softmax_rows(β R W_Q W_Kᵀ Yᵀ) Y W_K W_V``;
3. (explicit d = 2, N = 3, independent of unfold's gradient engine) the entrywise derivative of
   the energy expanded into scalars gives ``ξ − ∇E = X softmax(βXᵀξ)`` (``cancel`` to 0);
4. (explicit size) the identities behind the Theorem 5 bound:
   ``f(ξ) − xᵢ = Σ_{j≠i} p_j (x_j − xᵢ)`` and ``p_j / pᵢ = exp(β (x_j − xᵢ)ᵀ ξ)``, so with
   ``(x_j − xᵢ)ᵀξ ≤ −Δᵢ + 2M‖ξ − xᵢ‖`` one gets ``‖f(ξ) − xᵢ‖ ≤ 2(N−1) M exp(−β(Δᵢ − 2M‖ξ − xᵢ‖))``,
   which implies the paper's bound (its radius is ``max{‖ξ − xᵢ‖, ‖xᵢ* − xᵢ‖}``).
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.hopfield import concave_part, convex_part, energy
from unfold.symbolic import ops as s
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.symbols import dims, param
from unfold.symbolic.vjp import gradient
from proofs._common import main


def _zero(M: sp.Matrix) -> bool:
    return all(sp.cancel(sp.expand(e)) == 0 for e in M)


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    E = energy()
    X, Xi, beta = E.symbol("X"), E.symbol("Xi"), E.symbol("beta")
    attention = X * s.softmax(beta * X.T * Xi)

    # 1. unit gradient step and CCCP step, general dims
    assert E.update_rule(Xi, 1) == attention, E.update_rule(Xi, 1)
    proven["unit_step_golden"] = "unfold's engine, structural equality at symbolic d, N, S"
    assert convex_part().grad(Xi) == Xi, convex_part().grad(Xi)
    cccp = -concave_part().grad(Xi)                  # Ξ⁺ = (∇convex)⁻¹(−∇concave(Ξ)) with ∇convex = id
    assert cccp == attention, cccp
    proven["cccp_golden"] = "structural equality at symbolic d, N, S"

    # 2. the attention mapping, general dims
    d_y, d_k, S_, N_ = dims("d_y d_k S N")
    R, Y = param("R", S_, d_k), param("Y", N_, d_y)
    WQ, WK, WV = param("W_Q", d_k, d_k), param("W_K", d_y, d_k), param("W_V", d_k, d_k)
    Xm, Xim = (Y * WK).T, (R * WQ).T
    mapped = (Xm * s.softmax(beta * Xm.T * Xim)).T * WV
    head = s.softmax(beta * (R * WQ) * (Y * WK).T, axis=1) * Y * WK * WV
    assert mapped.doit() == head.doit(), (mapped.doit(), head.doit())
    proven["attention_mapping"] = "structural equality of the two expressions at symbolic d_y, d_k, S, N"

    # 3. explicit size, entrywise scalar derivatives (independent of the VJP engine)
    sizes = {dm: {"d": 2, "N": 3, "S": 1}[str(dm)] for dm in E.dims}
    env = explicit_env(E.inputs, sizes)
    Ex = expand_explicit(E.expr, env)
    xi = env[Xi]
    grad = sp.Matrix(xi.rows, 1, lambda i, j: sp.diff(Ex, xi[i, 0]))  # scalar
    Xe = env[X]
    z = beta * Xe.T * xi
    p = z.applyfunc(sp.exp) / sum(z.applyfunc(sp.exp))
    assert _zero(xi - grad - Xe * p)
    proven["gradient_entrywise"] = "scalar sp.diff at d = 2, N = 3; cancel"
    # the engine's gradient agrees at the same size
    assert _zero(expand_explicit(gradient(E.expr, Xi), env) - grad)
    proven["engine_entrywise"] = "the engine's gradient expanded at d = 2, N = 3 minus scalar sp.diff; cancel"

    # 4. the identities behind Theorem 5 (pattern i = 0)
    f = Xe * p
    i = 0
    rest = sum((p[j] * (Xe[:, j] - Xe[:, i]) for j in range(Xe.cols) if j != i), sp.zeros(Xe.rows, 1))
    assert _zero(f - Xe[:, i] - rest)
    for j in range(1, Xe.cols):
        ratio = sp.exp(beta * ((Xe[:, j] - Xe[:, i]).T * xi)[0, 0])
        assert sp.simplify(p[j] / p[i] - ratio) == 0
    proven["theorem5_identities"] = "cancel / simplify at d = 2, N = 3"
    return proven


if __name__ == "__main__":
    main(prove)
