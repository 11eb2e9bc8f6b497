"""Exact symbolic proof: the constructed linear self-attention layer is one GD step on L(W).

Claim (``unfold.catalogue.icl_gd``): with ``W_K = W_Q = [[I, 0], [0, 0]]``, ``W_V = [[0, 0], [W₀, −I]]``
and ``P = (η/N) I``, the layer ``e_j ← e_j + P Σ_{i≤N} (W_V e_i)(W_K e_i)ᵀ(W_Q e_j)`` maps every token
``(x_j, y_j)`` (context) and the query ``(x_q, 0)`` to ``(x_j, y_j − ΔW x_j)`` with
``ΔW = −η ∇L(W₀)``, ``L(W) = (1/2N)‖WX − Y‖²``.  ``∇L`` is unfold's derived gradient expanded at
explicit size (N_x = 2, N_y = 2, N = 3) with symbolic entries, ``W₀`` symbolic (the case ``W₀ = 0``
by substitution, where the query read-out ``−(y-slot)`` is ``W₁x_q``); differences expand to 0.
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.icl_gd import energy
from unfold.symbolic.explicit import expand_explicit, explicit_env


def _zero(M: sp.Matrix) -> bool:
    return all(sp.expand(e) == 0 for e in M)


def prove() -> dict[str, str]:
    E = energy()
    dims = {str(x): x for x in E.dims}
    nx, ny, N = 2, 2, 3
    env = explicit_env(E.inputs, {dims["dx"]: nx, dims["dy"]: ny, dims["N"]: N})
    W0, X, Y = (env[E.symbol(k)] for k in ("W", "X", "Y"))
    eta = sp.Symbol("eta", positive=True)
    xq = sp.Matrix(nx, 1, lambda i, j: sp.Symbol(f"xq_{i}", real=True))
    grad = expand_explicit(E.grad("W"), env)  # unfold's derived ∇L(W₀)
    dW = -eta * grad

    Dm = nx + ny
    WK = sp.zeros(Dm, Dm)
    WK[:nx, :nx] = sp.eye(nx)
    WQ = WK
    WV = sp.zeros(Dm, Dm)
    WV[nx:, :nx] = W0
    WV[nx:, nx:] = -sp.eye(ny)
    P = eta / N * sp.eye(Dm)
    tokens = (X.col_join(Y)).row_join(xq.col_join(sp.zeros(ny, 1)))
    C = tokens[:, :N]
    out = tokens + P * (WV * C) * (WK * C).T * (WQ * tokens)

    proven: dict[str, str] = {}
    assert _zero(out[nx:, :N] - (Y - dW * X)), "context y-slots ≠ y_j − ΔW x_j"
    proven["context tokens: y_j ↦ y_j − ΔW x_j, ΔW = −η∇L(W₀)"] = f"N_x={nx}, N_y={ny}, N={N}, symbolic W₀, η"
    assert _zero(out[nx:, N:] - (-dW * xq)), "query y-slot ≠ −ΔW x_q"
    proven["query token: 0 ↦ −ΔW x_q"] = "expanded"
    assert _zero(out[:nx, :] - tokens[:nx, :]), "x-slots changed"
    proven["x-slots unchanged"] = "expanded"
    zero = {s: 0 for s in W0}
    W1 = (W0 - eta * grad).subs(zero)
    assert _zero(-out[nx:, N:].subs(zero) - W1 * xq), "W₀ = 0: read-out ≠ W₁x_q"
    proven["W₀ = 0: read-out −(query y-slot) = W₁x_q"] = "substituted W₀ = 0, expanded"
    return proven
