"""Exact proofs for the ``gradients`` catalogue entry: derived gradients equal textbook forms.

At general (symbolic) dimensions the engine's gradients are compared structurally with closed forms
written by hand; at explicit small sizes the closed form is compared entry by entry, exactly
(``cancel``), with plain scalar ``sp.diff`` of the expanded energy.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import Identity, Inverse

import unfold as uf
from unfold.energies import coding_rate, determinant, hopfield, l1_norm, quadratic_residual, trace_sum
from unfold.symbolic import Adjugate, Softmax, explicit_env, expand_explicit
from unfold.symbolic.tidy import tidy
from proofs._common import main


def _structural() -> dict[str, str]:
    out = {}
    E = hopfield()
    X, xi, beta = E.symbol("X"), E.symbol("xi"), E.symbol("beta")
    assert E.grad(xi) == xi - X * Softmax(beta * X.T * xi)
    out["hopfield_golden"] = "structural equality, symbolic d, n"

    E = coding_rate()
    Z, a = E.symbol("Z"), E.symbol("alpha")
    d = Z.rows
    assert E.grad(Z) == a * Inverse(Identity(d) + a * Z * Z.T) * Z
    out["coding_rate_golden"] = "structural equality, symbolic d, n"

    E = trace_sum()
    A, W = E.symbol("A"), E.symbol("W")
    assert E.grad(A) == Identity(A.rows) + W.T
    out["trace_sum_golden"] = "structural equality"

    E = quadratic_residual()
    Y, W = E.symbol("Y"), E.symbol("W")
    I = Identity(Y.rows)
    assert tidy(E.grad(Y).expand()) == tidy(((I - W).T * (I - W) * Y).expand())
    out["quadratic_residual_golden"] = "expanded structural equality"

    E = determinant()
    A = E.symbol("A")
    assert E.grad(A) == Adjugate(A).T  # Jacobi's formula: adj(A)ᵀ (= det(A)·A⁻ᵀ where A is invertible)
    out["determinant_golden"] = "structural equality"

    E = l1_norm()
    Z = E.symbol("Z")
    assert uf.to_str(E.grad(Z)) == "lam*sign(Z)"
    out["l1_norm_golden"] = "structural equality"
    return out


def _explicit() -> dict[str, str]:
    """Coding rate at d×n ∈ {2×2, 2×3}: entrywise sp.diff of log det equals α(I + αZZᵀ)⁻¹Z exactly."""
    E = coding_rate()
    Z, a = E.symbol("Z"), E.symbol("alpha")
    d, n = Z.shape
    for dv, nv in ((2, 2), (2, 3)):
        env = explicit_env([Z], {d: dv, n: nv})
        env[a] = a
        energy = expand_explicit(E.expr, env)
        Zm = env[Z]
        closed = expand_explicit(E.grad(Z), env)
        for i in range(dv):
            for j in range(nv):
                diff = sp.diff(energy, Zm[i, j]) - closed[i, j]  # scalar
                assert sp.cancel(sp.together(diff)) == 0, (dv, nv, i, j)
    return {"coding_rate_entrywise": "cancel of scalar sp.diff minus closed form at 2×2 and 2×3"}


def prove() -> dict[str, str]:
    return {**_structural(), **_explicit()}


if __name__ == "__main__":
    main(prove)
