"""Symbolic proofs for the looped-transformer entry (``unfold.catalogue.looped``); statements and
scopes are the entry's ``proofs`` (``unfold list looped`` shows them).

The claim: with ``Z(w) = [[X, x_q], [(y − Xᵀw)ᵀ, −x_qᵀw]]``, ``P = [[0,0],[0,1]]``,
``Q = [[A,0],[0,0]]``, ``M = diag(I_n, 0)``,

    Z(w) − (1/n) P Z(w) M Z(w)ᵀ Q Z(w) = Z(w − Aᵀ ∇L(w)),     L(w) = (1/2n)‖Xᵀw − y‖²,

so for ``A = Aᵀ`` one loop is one preconditioned GD step and, by induction from ``Z_0 = Z(0)``, ``t``
loops are ``t`` steps with read-out ``−Z_t[d+1,n+1] = x_qᵀw_t``.

* ``one_loop_is_gd_step`` (general): 2×2 block matrices with blocks of symbolic sizes ``d, n``
  (``A`` a general ``d×d`` symbol, ``∇L`` the closed form ``(1/n)X(Xᵀw − y)``), multiplied by
  ``block_collapse``; the only rewrite is that a 1×1 block equals its own transpose.  No derivative
  is taken: independent of unfold's engine.
* ``gradient_golden`` (engine-golden) / ``gradient_entrywise`` (fixed-size): the closed form is
  unfold's derived gradient, and the scalar derivative at two explicit sizes (a general-size
  derivative proof would need sympy's unreliable matrix calculus).
* ``nonsymmetric_A`` (fixed-size): a non-identity cannot be shown by failing to simplify at symbolic
  sizes, so the counterexample is an explicit size with symbolic entries.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import BlockMatrix, Identity, MatrixSymbol, Trace, ZeroMatrix

from proofs._common import blocks_equal, explicit_zero, main, symbolic_zero
from unfold.catalogue.looped import energy
from unfold.symbolic.explicit import expand_explicit, explicit_env


def _closed_gradient(w: sp.Expr, X: sp.Expr, y: sp.Expr, n: sp.Expr) -> sp.Expr:
    """``∇L(w) = (1/n)X(Xᵀw − y)`` written from ``L = (1/2n)‖Xᵀw − y‖²``."""
    return X * (X.T * w - y) / n


def _Z(X, xq, y, w):  # type: ignore[no-untyped-def]
    return BlockMatrix([[X, xq], [(y - X.T * w).T, -xq.T * w]])


def _one_loop() -> str:
    E = energy()
    w, X, y = (E.symbol(k) for k in ("w", "X", "y"))
    d, n = X.shape
    xq, A = MatrixSymbol("x_q", d, 1), MatrixSymbol("A", d, d)
    P = BlockMatrix([[ZeroMatrix(d, d), ZeroMatrix(d, 1)], [ZeroMatrix(1, d), Identity(1)]])
    M = BlockMatrix([[Identity(n), ZeroMatrix(n, 1)], [ZeroMatrix(1, n), ZeroMatrix(1, 1)]])
    Q = BlockMatrix([[A, ZeroMatrix(d, 1)], [ZeroMatrix(1, d), ZeroMatrix(1, 1)]])
    Zw = _Z(X, xq, y, w)
    loop = Zw - (P * Zw * M * Zw.T * Q * Zw) / n
    assert blocks_equal(loop, _Z(X, xq, y, w - A.T * _closed_gradient(w, X, y, n))), "loop ≠ GD step (Aᵀ)"
    return "block products at symbolic d, n, general A: loop(Z(w)) = Z(w − Aᵀ∇L(w)) block by block"


def _readout() -> str:
    E = energy()
    w, X, y = (E.symbol(k) for k in ("w", "X", "y"))
    xq = MatrixSymbol("x_q", X.shape[0], 1)
    assert symbolic_zero(-_Z(X, xq, y, w).blocks[1, 1] - xq.T * w)
    return "−(−x_qᵀw) = x_qᵀw, symbolic d"


def _gradient_golden() -> str:
    E = energy()
    w, X, y = (E.symbol(k) for k in ("w", "X", "y"))
    assert E.grad("w") == _closed_gradient(w, X, y, X.shape[1]), E.grad("w")
    return "E.grad('w') == (1/n)X(Xᵀw − y) structurally"


def _explicit(d: int, n: int) -> tuple[sp.Expr, sp.Matrix, sp.Matrix, sp.Matrix]:
    E = energy()
    dims = {str(x): x for x in E.dims}
    env = explicit_env(E.inputs, {dims["d"]: d, dims["n"]: n})
    return expand_explicit(E.expr, env), env[E.symbol("w")], env[E.symbol("X")], env[E.symbol("y")]


def _gradient_entrywise() -> str:
    for d, n in ((2, 3), (3, 2)):
        L, w, X, y = _explicit(d, n)
        dL = sp.Matrix(d, 1, lambda i, _: sp.diff(L, w[i]))  # scalar derivatives
        assert explicit_zero(dL - _closed_gradient(w, X, y, n)), f"∂L/∂w ≠ closed form at d={d}, n={n}"
    return "scalar sp.diff of the expanded L at (d, n) ∈ {(2, 3), (3, 2)}; cancel to 0"


def _nonsymmetric() -> str:
    d, n = 2, 3
    L, w, X, y = _explicit(d, n)
    xq = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"xq_{i}", real=True))
    A = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"a_{i}{j}", real=True))

    def Z(v: sp.Matrix) -> sp.Matrix:
        return X.row_join(xq).col_join((y - X.T * v).T.row_join(-(xq.T * v)))

    P = sp.zeros(d + 1, d + 1)
    P[d, d] = 1
    M = sp.eye(n + 1)
    M[n, n] = 0
    Q = sp.zeros(d + 1, d + 1)
    Q[:d, :d] = A
    loop = Z(w) - P * Z(w) * M * Z(w).T * Q * Z(w) / n
    g = _closed_gradient(w, X, y, n)
    assert explicit_zero(loop - Z(w - A.T * g)), "explicit size: loop ≠ GD step with Aᵀ"
    assert not explicit_zero(loop - Z(w - A * g)), "explicit size: loop unexpectedly = GD step with A"
    return "d = 2, n = 3, symbolic entries: = step with Aᵀ (expands to 0), ≠ step with A (nonzero polynomial)"


def _energy_readable() -> str:
    E = energy()
    w, X, y = (E.symbol(k) for k in ("w", "X", "y"))
    n = X.shape[1]
    slots = (y - X.T * w).T  # the residual slots of Z(w)'s last row
    assert sp.expand(E.expr - Trace(slots * slots.T) / (2 * n)) == 0, E.expr
    return "L(w) − (1/2n)tr(r rᵀ) expands to 0, r = (y − Xᵀw)ᵀ"


def prove() -> dict[str, str]:
    return {
        "one_loop_is_gd_step": _one_loop(),
        "readout": _readout(),
        "gradient_golden": _gradient_golden(),
        "gradient_entrywise": _gradient_entrywise(),
        "nonsymmetric_A": _nonsymmetric(),
        "energy_readable": _energy_readable(),
    }


if __name__ == "__main__":
    main(prove)
