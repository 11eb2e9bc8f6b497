"""Exact symbolic proof: one loop of the looped linear transformer is one preconditioned GD step.

Claim (``unfold.catalogue.looped``): with ``Z(w) = [[X, x_q], [(y − Xᵀw)ᵀ, −x_qᵀw]]``,
``P = [[0,0],[0,1]]``, ``Q = [[A,0],[0,0]]``, ``M = diag(1,…,1,0)`` and ``A = Aᵀ``,

    Z(w) − (1/n) P Z(w) M Z(w)ᵀ Q Z(w) = Z(w − A ∇L(w)),     L(w) = (1/2n)‖Xᵀw − y‖²,

so by induction ``t`` loops from ``Z_0 = Z(0)`` give ``Z(w_t)`` with ``w_t`` the ``t``-th
preconditioned GD iterate, and the read-out ``−Z_t[d+1,n+1] = x_qᵀw_t``.  ``∇L`` is unfold's
derived gradient (expanded at explicit size); every entry is a polynomial in symbols, and the
difference of both sides is expanded to the zero polynomial.  The sizes are explicit (d = 2,
n = 3), the entries fully symbolic.  For a non-symmetric ``A`` the same identity holds with ``Aᵀ``
in the GD step and fails with ``A`` (also proved).
"""

from __future__ import annotations

import sympy as sp

from unfold.catalogue.looped import energy
from unfold.symbolic.explicit import expand_explicit, explicit_env


def _zero(M: sp.Matrix) -> bool:
    return all(sp.expand(e) == 0 for e in M)


def prove() -> dict[str, str]:
    E = energy()
    dims = {str(x): x for x in E.dims}
    d, n = 2, 3
    env = explicit_env(E.inputs, {dims["d"]: d, dims["n"]: n})
    w_sym, X_sym, y_sym = (E.symbol(k) for k in ("w", "X", "y"))
    X, y, w = env[X_sym], env[y_sym], env[w_sym]
    xq = sp.Matrix(d, 1, lambda i, j: sp.Symbol(f"xq_{i}", real=True))
    grad = expand_explicit(E.grad("w"), env)  # unfold's derived ∇L, expanded

    def Zof(wv: sp.Matrix) -> sp.Matrix:
        top = X.row_join(xq)
        bottom = (y - X.T * wv).T.row_join(-(xq.T * wv))
        return top.col_join(bottom)

    P = sp.zeros(d + 1, d + 1)
    P[d, d] = 1
    M = sp.eye(n + 1)
    M[n, n] = 0

    def loop(Z: sp.Matrix, A: sp.Matrix) -> sp.Matrix:
        Q = sp.zeros(d + 1, d + 1)
        Q[:d, :d] = A
        return Z - P * Z * M * Z.T * Q * Z / n

    a = sp.symbols("a0:%d" % (d * d), real=True)
    A_sym = sp.Matrix(d, d, lambda i, j: a[min(i, j) * d + max(i, j)])  # symmetric
    A_gen = sp.Matrix(d, d, lambda i, j: a[i * d + j])  # general
    proven: dict[str, str] = {}

    lhs = loop(Zof(w), A_sym)
    rhs = Zof(w - A_sym * grad)
    assert _zero(lhs - rhs), "one loop ≠ one preconditioned GD step for symmetric A"
    proven["loop(Z(w)) = Z(w − A∇L(w)) for symmetric A"] = (
        f"explicit size d={d}, n={n}, symbolic entries; unfold's ∇L expanded; difference expands to 0")

    assert sp.expand((-rhs[d, n]) - (xq.T * (w - A_sym * grad))[0, 0]) == 0
    proven["read-out −Z[d+1,n+1] = x_qᵀw (induction: Z_0 = Z(0))"] = "Z(w)[d+1,n+1] = −x_qᵀw by construction, expanded"

    lhs_g = loop(Zof(w), A_gen)
    assert _zero(lhs_g - Zof(w - A_gen.T * grad)), "general A: loop ≠ GD preconditioned by Aᵀ"
    assert not _zero(lhs_g - Zof(w - A_gen * grad)), "general A: loop unexpectedly equals GD with A"
    proven["general A: the loop is GD preconditioned by Aᵀ (not A)"] = "both differences expanded"
    return proven
