"""Symbolic proofs for the in-context-GD entry (``unfold.catalogue.icl_gd``); statements and scopes
are the entry's ``proofs`` (``unfold list icl_gd`` shows them).

The claim: with ``W_K = W_Q = [[I, 0], [0, 0]]``, ``W_V = [[0, 0], [W₀, −I]]`` and ``P = (η/N) I``, the
linear self-attention layer ``E ← E + P (W_V C)(W_K C)ᵀ(W_Q E)`` (``C = [[X],[Y]]`` the context
tokens, ``E = [[X, x_q],[Y, 0]]`` all tokens) maps every token ``(x_j, y_j)`` to ``(x_j, y_j − ΔW x_j)``
and the query ``(x_q, 0)`` to ``(x_q, −ΔW x_q)``, ``ΔW = −η∇L(W₀)``, ``L(W) = (1/2N)‖WX − Y‖²``.

* ``lsa_block_identity`` (general): the layer as a product of 2×2 block matrices with blocks of
  symbolic sizes ``N_x, N_y, N`` (sympy ``block_collapse``), compared block by block with the
  GD step written from the closed form ``∇L = (1/N)(WX − Y)Xᵀ``.  No derivative is taken, so this
  does not use unfold's engine.
* ``gradient_golden`` (engine-golden): unfold's derived ``∇L`` is that closed form, structurally.
* ``gradient_entrywise`` (fixed-size): the closed form is the derivative, entry by entry, by scalar
  ``sp.diff`` of ``L`` expanded at two explicit sizes.  A general-size derivative proof would need
  sympy's matrix calculus, which is unreliable (see the README), so the gradient itself is proved
  at fixed sizes only.
* ``gd_descent`` (general): ``L(W − ηG) = L(W) − η‖G‖² + (η²/2N)‖GX‖²`` at symbolic ``N_x, N_y, N``, entrywise
  with sympy ``Sum`` over symbolic bounds (the cross term by swapping sums and ``G``'s definition);
  cross-checked as a polynomial identity at ``N_x = 2, N_y = 2, N = 3``.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import BlockMatrix, Identity, MatrixSymbol, ZeroMatrix

from proofs._common import blocks_equal, explicit_zero, main, symbolic_zero
from unfold.catalogue.icl_gd import energy
from unfold.symbolic.explicit import expand_explicit, explicit_env


def _closed_gradient(W: sp.Expr, X: sp.Expr, Y: sp.Expr, N: sp.Expr) -> sp.Expr:
    """``∇L(W) = (1/N)(WX − Y)Xᵀ`` written from ``L = (1/2N)‖WX − Y‖²``."""
    return (W * X - Y) * X.T / N


def _layer_blocks(at_zero: bool) -> str:
    E = energy()
    W0, X, Y = (E.symbol(k) for k in ("W", "X", "Y"))
    dy, dx = W0.shape
    N = X.shape[1]
    eta = sp.Symbol("eta", positive=True)
    xq = MatrixSymbol("x_q", dx, 1)
    W_start = ZeroMatrix(dy, dx) if at_zero else W0
    WK = BlockMatrix([[Identity(dx), ZeroMatrix(dx, dy)], [ZeroMatrix(dy, dx), ZeroMatrix(dy, dy)]])
    WV = BlockMatrix([[ZeroMatrix(dx, dx), ZeroMatrix(dx, dy)], [W_start, -Identity(dy)]])
    C = BlockMatrix([[X], [Y]])
    tokens = BlockMatrix([[X, xq], [Y, ZeroMatrix(dy, 1)]])
    out = tokens + (eta / N) * (WV * C) * (WK * C).T * (WK * tokens)  # W_Q = W_K
    dW = -eta * _closed_gradient(W_start, X, Y, N)
    want = BlockMatrix([[X, xq], [Y - dW * X, -dW * xq]])
    assert blocks_equal(out, want), "LSA layer ≠ GD step on the y-slots"
    if at_zero:
        W1 = W_start + dW
        readout = -(want.blocks[1, 1])
        assert symbolic_zero(readout - W1 * xq), "read-out ≠ W₁x_q"
        assert symbolic_zero(W1 - eta * Y * X.T / N), "W₁ ≠ (η/N)YXᵀ"
        return "W₀ = 0 block identity: read-out −(y-slot) = W₁x_q, W₁ = (η/N)YXᵀ, symbolic sizes"
    return "2×2 block products at symbolic N_x, N_y, N; difference of every block expands to 0"


def _gradient_golden() -> str:
    E = energy()
    W, X, Y = (E.symbol(k) for k in ("W", "X", "Y"))
    assert E.grad("W") == _closed_gradient(W, X, Y, X.shape[1]), E.grad("W")
    return "E.grad('W') == (1/N)(WX − Y)Xᵀ structurally"


def _explicit(sizes: tuple[int, int, int]) -> tuple[dict, sp.Expr, sp.Matrix, sp.Matrix]:
    E = energy()
    dims = {str(x): x for x in E.dims}
    nx, ny, N = sizes
    env = explicit_env(E.inputs, {dims["dx"]: nx, dims["dy"]: ny, dims["N"]: N})
    return env, expand_explicit(E.expr, env), env[E.symbol("W")], _closed_gradient(
        env[E.symbol("W")], env[E.symbol("X")], env[E.symbol("Y")], N)


def _gradient_entrywise() -> str:
    done = []
    for sizes in ((2, 2, 3), (3, 1, 2)):
        _, L, W, closed = _explicit(sizes)
        dL = sp.Matrix(W.rows, W.cols, lambda a, b: sp.diff(L, W[a, b]))  # scalar derivatives
        assert explicit_zero(dL - closed), f"∂L/∂W ≠ closed form at {sizes}"
        done.append("×".join(map(str, sizes)))
    return f"scalar sp.diff of the expanded L at (N_x, N_y, N) ∈ {{{', '.join(done)}}}; cancel to 0"


def _gd_descent_general() -> str:
    """``L(W − ηG) = L(W) − η‖G‖² + (η²/2N)‖GX‖²`` at symbolic ``N_x, N_y, N`` with ``G = (1/N)RXᵀ``,
    ``R = WX − Y``: entrywise, with sympy ``Sum`` over symbolic bounds (sympy's ``Trace`` does not
    canonicalise cyclic products, so the trace form is avoided)."""
    Nx, Ny, N = sp.symbols("N_x N_y N", positive=True, integer=True)
    i, j, k, m = sp.symbols("i j k m", integer=True)
    eta = sp.Symbol("eta", positive=True)
    # 1. the residual after the step is linear in W: (W − ηG)X − Y = R − ηGX (matrix identity, symbolic sizes)
    Wm, Gm, Xm, Ym = (MatrixSymbol(nm, *sh) for nm, sh in (("W", (Ny, Nx)), ("G", (Ny, Nx)), ("X", (Nx, N)),
                                                              ("Y", (Ny, N))))
    assert symbolic_zero(((Wm - eta * Gm) * Xm - Ym) - ((Wm * Xm - Ym) - eta * Gm * Xm)), "residual not linear"
    # 2. entrywise square of R − ηGX, s_ij = (GX)_ij: a polynomial identity in R_ij, s_ij
    R, X, G = sp.IndexedBase("R"), sp.IndexedBase("X"), sp.IndexedBase("G")
    r, s_ = sp.symbols("r s", real=True)
    assert sp.expand((r - eta * s_) ** 2 - (r**2 - 2 * eta * r * s_ + eta**2 * s_**2)) == 0
    # 3. the cross term: Σ_ij R_ij (GX)_ij = Σ_i Σ_k G_ik Σ_j R_ij X_kj = N Σ_ik G_ik², since Σ_j R_ij X_kj = N G_ik
    cross = sp.Sum(R[i, j] * G[i, k] * X[k, j], (k, 1, Nx), (j, 1, N))      # inner sums of Σ_i, order (k, j)
    swapped = cross.reorder((0, 1))                                          # order (j, k)
    assert swapped == sp.Sum(R[i, j] * G[i, k] * X[k, j], (j, 1, N), (k, 1, Nx)), "sums not swapped"
    inner = sp.factor_terms(sp.Sum(R[i, j] * G[i, k] * X[k, j], (j, 1, N)))  # G_ik out of the j-sum
    assert inner == G[i, k] * sp.Sum(R[i, j] * X[k, j], (j, 1, N)), inner
    definition = {sp.Sum(R[i, j] * X[k, j], (j, 1, N)): N * G[i, k]}        # (RXᵀ)_ik = N G_ik
    assert sp.expand(inner.xreplace(definition) - N * G[i, k] ** 2) == 0
    # 4. assemble: L(W − ηG) = (1/2N)Σ(R² − 2ηRs + η²s²) = L(W) − (η/N)·N‖G‖² + (η²/2N)‖GX‖²
    sumR2, sumG2, sumS2 = sp.symbols("SR SG SS", nonnegative=True)
    assert sp.expand((sumR2 - 2 * eta * N * sumG2 + eta**2 * sumS2) / (2 * N)
                     - (sumR2 / (2 * N) - eta * sumG2 + eta**2 / (2 * N) * sumS2)) == 0
    return ("symbolic N_x, N_y, N: residual linear in W; entrywise square expanded; cross term "
            "Σ_ij R_ij(GX)_ij = NΣG_ik² by swapping Sums over symbolic bounds and G's definition")


def _gd_descent() -> str:
    env, L, W, G = _explicit((2, 2, 3))
    E = energy()
    X, N = env[E.symbol("X")], 3
    eta = sp.Symbol("eta", positive=True)
    L_after = L.xreplace(dict(zip(W, W - eta * G)))
    sq = lambda M: sum(e**2 for e in M)  # noqa: E731
    assert explicit_zero(L_after - (L - eta * sq(G) + eta**2 / (2 * N) * sq(G * X)))
    return (_gd_descent_general() + "; cross-checked: the polynomial identity expands to 0 at N_x = 2, N_y = 2, "
            "N = 3 with unfold's derived G")


def prove() -> dict[str, str]:
    return {
        "lsa_block_identity": _layer_blocks(at_zero=False),
        "readout_w0_zero": _layer_blocks(at_zero=True),
        "gradient_golden": _gradient_golden(),
        "gradient_entrywise": _gradient_entrywise(),
        "gd_descent": _gd_descent(),
    }


if __name__ == "__main__":
    main(prove)
