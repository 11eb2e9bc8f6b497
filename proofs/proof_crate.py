"""Exact symbolic proofs of the CRATE entry's exact claims (``unfold.catalogue.crate``).

1. The prox of ``t(|x| + ι_{≥0}(x))`` (``t = ηλ > 0``) is ``max(v − t, 0)``: the one-dimensional
   problem ``min_{x≥0} ½(x − v)² + t x`` solved by case analysis with sympy (stationary point and
   second derivative when ``v > t``; a non-negative derivative on ``x ≥ 0`` when ``v ≤ t``).
   Entrywise, ``prox`` of ``η(λ‖·‖₁ + ι_{≥0})`` is ``ReLU(· − ηλ)``.
2. The gradient step of the ISTA block's smooth part ``½‖Ẑ − DZ‖²`` (unfold's derived gradient),
   started at ``Z = Ẑ``, is ``Ẑ + ηDᵀ(Ẑ − DẐ)`` — with 1., the ISTA block (eq. 17) is one
   proximal-gradient step.  Matrix-level identity at symbolic sizes.
3. unfold's derived ``∇R^c`` is, structurally, the paper's eq. 9 ``γ Σ_k U_kU_kᵀZ(I + γA_k)⁻¹`` (the
   energy sums over a head axis ``k``: the summand is compared, at any number of heads ``K``), and
   ``∇R = α(I + αZZᵀ)⁻¹Z`` (symbolic sizes d, n, p; sympy's canonical form).
4. unfold's derived ``∇(−ΔR)`` of MCR² with symmetric memberships ``Π_k`` is ``−(EZ − Σ_k γ_k C_k Z Π_k)``
   with ReduNet's ``E = α(I + αZZᵀ)⁻¹``, ``C_k = α_k(I + α_k ZΠ_kZᵀ)⁻¹``, ``γ_k = tr Π_k / n``: the
   ReduNet layer is a (projected) gradient-ascent step on ΔR.
5. The first-order Neumann approximation behind MSSA has the exact remainder
   ``(I + γA)⁻¹ = I − γA + γ²A²(I + γA)⁻¹`` (so for PSD ``A`` its error is at most ``‖γA‖²``, and the
   series ``Σ(−γA)ʲ`` diverges once ``‖γA‖ ≥ 1``).
"""

from __future__ import annotations

import sympy as sp
from sympy import S
from sympy.matrices.expressions import Identity, Inverse, Transpose, ZeroMatrix

from unfold.catalogue.crate import coding_rate_energy, compression_energy, ista_energy, ista_step, mcr2_energy
from unfold.symbolic.axes import MatAxisSum
from proofs._common import main


def _prox_nonneg_l1() -> None:
    x, v = sp.symbols("x v", real=True)
    t, s = sp.symbols("t s", positive=True)
    phi = (x - v) ** 2 / 2 + t * x
    dphi = sp.diff(phi, x)  # scalar
    assert sp.solve(dphi, x) == [v - t]
    assert sp.diff(phi, x, 2) == 1  # scalar: strictly convex, so the stationary point is the minimiser
    # v ≤ t: write v = t − s with s ≥ 0; on x ≥ 0 the derivative x + s is ≥ 0, so x = 0 minimises
    xn = sp.Symbol("xn", nonnegative=True)
    sn = sp.Symbol("sn", nonnegative=True)
    assert sp.simplify(dphi.subs({x: xn, v: t - sn}) - (xn + sn)) == 0
    assert (xn + sn).is_nonnegative


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    _prox_nonneg_l1()
    proven["prox_nonneg_l1"] = "1-D case analysis: stationary point v − t when v > t; φ' ≥ 0 on x ≥ 0 when v ≤ t"

    Ei = ista_energy()
    Z, Zh, D = (Ei.symbol(k) for k in ("Z", "Zh", "D"))
    eta = sp.Symbol("eta", positive=True)
    step = (Z - eta * Ei.grad("Z")).subs(Z, Zh)
    assert (step - (Zh + eta * D.T * (Zh - D * Zh))).expand() == ZeroMatrix(*Zh.shape)
    proven["ista_gradient_step"] = (
        "unfold's derived gradient, matrix identity at symbolic sizes")

    # the generated layer's own symbolic rule (η = 1/8, λ = 1/4: exact binary numbers)
    rule = ista_step(eta=0.125, lam=0.25).update_rule()
    u, x = rule.function.variables[0], sp.Symbol("x", real=True)
    assert rule.function.expr.subs(u, x) == sp.Max(0, x - sp.Float(0.03125))
    block_arg = Zh + sp.Rational(1, 8) * D.T * (Zh - D * Zh)
    assert (rule.expr.subs(Z, Zh) - block_arg).expand() == ZeroMatrix(*Zh.shape)
    proven["ista_generated_rule"] = (
        "the generated rule: elementwise max(0, u − ηλ) applied to an argument equal to the block's, η = 1/8, λ = 1/4")

    Ec = compression_energy()
    Zc, U = Ec.symbol("Z"), Ec.symbol("U")  # U ranges over the head axis k (U[k] = U_k)
    d, n, p = (next(x for x in Ec.dims if str(x) == k) for k in ("d", "n", "p"))
    eps = Ec.symbol("eps")
    gam = p / (n * eps**2)
    # the derived gradient is c·Σ_k B_k; Σ_k is linear, so c·B_k = eq. 9's summand proves it at every K
    g = Ec.grad("Z")
    coeff, summed = (S.One, [g]) if isinstance(g, MatAxisSum) else g.as_coeff_matrices()
    assert len(summed) == 1 and isinstance(summed[0], MatAxisSum) and summed[0].axis == U.axes[0], Ec.grad("Z")
    summand = gam * U * U.T * Zc * Inverse(Identity(n) + gam * (U.T * Zc).T * (U.T * Zc))
    assert coeff * summed[0].body == summand, f"{coeff}·{summed[0].body} ≠ {summand}"
    proven["compression_gradient_golden"] = "structural equality of the summand over the head axis, symbolic d, n, p, K"

    Er = coding_rate_energy()
    Zr, er = Er.symbol("Z"), Er.symbol("eps")
    alpha = d / (n * er**2)
    assert Er.grad("Z") == alpha * Inverse(Identity(d) + alpha * Zr * Zr.T) * Zr
    proven["coding_rate_gradient_golden"] = "structural equality, symbolic d, n"

    Em = mcr2_energy(2)
    Zm, em = Em.symbol("Z"), Em.symbol("eps")
    Pis = [Em.symbol(f"Pi{k}") for k in (1, 2)]
    g = Em.grad("Z").xreplace({Transpose(P): P for P in Pis})  # memberships are symmetric (diagonal)
    a = d / (n * em**2)
    redunet = a * Inverse(Identity(d) + a * Zm * Zm.T) * Zm
    for P in Pis:
        nk = sp.Trace(P)
        ak = d / (nk * em**2)
        redunet = redunet - (nk / n) * ak * Inverse(Identity(d) + ak * Zm * P * Zm.T) * Zm * P
    assert (g + redunet).expand() == ZeroMatrix(d, n), f"{g} ≠ −({redunet})"
    proven["redunet_golden"] = "matrix identity, symbolic sizes"

    A = sp.MatrixSymbol("A", n, n)
    gm = sp.Symbol("gamma", positive=True)
    I = Identity(n)
    assert ((I - gm * A) * (I + gm * A) + gm**2 * A * A).expand() == I
    proven["neumann_remainder"] = "(I − γA)(I + γA) + γ²A² = I, expanded"
    return proven


if __name__ == "__main__":
    main(prove)
