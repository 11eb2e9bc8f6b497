"""Symbolic proofs for the LISTA entry (``unfold.catalogue.lista``); statements and scopes are the
entry's ``proofs`` (``unfold list lista`` shows them).

* ``soft_threshold_is_prox`` (general): ``h_t = prox_{t|·|}`` by a one-dimensional case analysis.
* ``ista_affine_map`` (engine-golden): ``Bx + Sz = z − (1/L)∇f(z)`` with unfold's derived ``∇f``,
  ``f = ½‖x − Az‖²``, at symbolic sizes; ``gradient_entrywise`` (fixed-size) checks that derived
  gradient's closed form ``Aᵀ(Az − x)`` by scalar ``sp.diff`` at two explicit sizes (a derivative
  at symbolic sizes would need sympy's unreliable matrix calculus).
* ``generated_rule`` (engine-golden): the generated step's own rule with a symbolic step ``η``
  (a learnable step) and a symbolic ``λ`` is ``SoftThreshold(z − η∇f, ηλ)``; at ``η = 1/L`` the
  threshold is the exact rational function ``λ/L``.
* ``fixed_threshold`` (numeric): the catalogue's fixed-step layer carries a float threshold; it is
  the float64 product ``λ·(1/L)`` bit for bit.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import ZeroMatrix

import unfold as uf
from proofs._common import explicit_zero, main
from unfold.catalogue.lista import energy, ista_step, lista_energy
from unfold.steps import L1, LearnableStep, ProximalGradientStep
from unfold.symbolic.explicit import expand_explicit, explicit_env
from unfold.symbolic.primitives.soft_threshold import SoftThreshold


def _prox_abs() -> str:
    x, v = sp.symbols("x v", real=True)
    t = sp.Symbol("t", positive=True)
    # x > 0: φ = ½(x − v)² + t x, stationary at v − t (a minimiser, φ'' = 1), admissible iff v > t
    assert sp.solve(sp.diff((x - v) ** 2 / 2 + t * x, x), x) == [v - t]  # scalar
    # x < 0: φ = ½(x − v)² − t x, stationary at v + t, admissible iff v < −t
    assert sp.solve(sp.diff((x - v) ** 2 / 2 - t * x, x), x) == [v + t]  # scalar
    # x = 0 is optimal iff 0 ∈ −v + t[−1, 1], i.e. |v| ≤ t; the three cases are h_t(v)
    vs = sp.Symbol("vs", real=True)
    h = sp.sign(vs) * sp.Max(sp.Abs(vs) - t, 0)
    pos, neg = sp.Symbol("pos", positive=True), sp.Symbol("neg", negative=True)
    assert sp.simplify(h.subs(vs, t + pos) - pos) == 0  # v > t: v − t
    assert sp.simplify(h.subs(vs, -t + neg) - neg) == 0  # v < −t: v + t
    # |v| ≤ t: write |v| = t − u with u ≥ 0; then max(|v| − t, 0) = max(−u, 0) = 0
    u = sp.Symbol("u", nonnegative=True)
    assert h.subs(sp.Abs(vs), t - u) == 0
    return "1-D case analysis: stationary points on x > 0, x < 0, subgradient at 0"


def _fit():  # type: ignore[no-untyped-def]
    f = energy().term("fit")
    return f, f.symbol("z"), f.symbol("A"), f.symbol("x")


def _closed_gradient(z: sp.Expr, A: sp.Expr, x: sp.Expr) -> sp.Expr:
    """``∇_z ½‖x − Az‖² = Aᵀ(Az − x)``."""
    return A.T * (A * z - x)


def _affine_map() -> str:
    f, z, A, x = _fit()
    L = sp.Symbol("L", positive=True)
    B, S = A.T / L, sp.Identity(z.shape[0]) - A.T * A / L
    assert (B * x + S * z - (z - f.grad("z") / L)).expand() == ZeroMatrix(*z.shape)
    assert (f.grad("z") - _closed_gradient(z, A, x)).expand() == ZeroMatrix(*z.shape)
    return "unfold's derived gradient: Bx + Sz − (z − ∇f/L) and ∇f − Aᵀ(Az − x) expand to the zero matrix"


def _gradient_entrywise() -> str:
    f, z, A, x = _fit()
    dims = {str(d): d for d in f.dims}
    for m, k in ((2, 3), (3, 2)):
        env = explicit_env(f.inputs, {dims["m"]: m, dims["k"]: k})
        F = expand_explicit(f.expr, env)
        ze = env[z]
        dF = sp.Matrix(k, 1, lambda i, _: sp.diff(F, ze[i]))  # scalar derivatives
        assert explicit_zero(dF - _closed_gradient(ze, env[A], env[x])), (m, k)
    return "scalar sp.diff at (m, k) ∈ {(2, 3), (3, 2)}; cancel to 0"


def _generated_rule() -> str:
    f, z, A, x = _fit()
    lam = uf.scalar("lam", positive=True)
    rule = ProximalGradientStep(f, L1(lam), wrt="z", step=LearnableStep(0.25)).update_rule()
    assert isinstance(rule, SoftThreshold), rule
    arg, thr = rule.args
    (eta,) = [e for e in thr.free_symbols if e != lam]
    assert thr == eta * lam, thr
    assert (arg - (z - eta * _closed_gradient(z, A, x))).expand() == ZeroMatrix(*z.shape), arg
    L = sp.Symbol("L", positive=True)
    assert thr.xreplace({eta: 1 / L}) == lam / L
    B, S = A.T / L, sp.Identity(z.shape[0]) - A.T * A / L
    assert (arg.xreplace({eta: 1 / L}) - (B * x + S * z)).expand() == ZeroMatrix(*z.shape)
    return "update_rule() = SoftThreshold(z − η Aᵀ(Az − x), ηλ); η = 1/L: SoftThreshold(Bx + Sz, λ/L) exactly"


def _fixed_threshold() -> str:
    rule = ista_step(4.0, lam=0.1).update_rule()
    thr = rule.args[1]
    assert float(thr) == 0.1 * (1.0 / 4.0), thr
    return f"threshold {float(thr)!r} == 0.1 * 0.25 in float64"


def _untrained_lista() -> str:
    f, z, A, x = _fit()
    g = lista_energy()
    zg, G, W, xg = (g.symbol(n) for n in ("z", "G", "W", "x"))
    init = g.grad("z").xreplace({G: A.T * A, W: A.T}).xreplace({zg: z, xg: x})
    assert (init - f.grad("z")).expand() == ZeroMatrix(*z.shape)
    return "unfold's derived gradient of ½zᵀGz − zᵀWx at G = AᵀA, W = Aᵀ equals the LASSO fit gradient"


def prove() -> dict[str, str]:
    return {
        "soft_threshold_is_prox": _prox_abs(),
        "ista_affine_map": _affine_map(),
        "gradient_entrywise": _gradient_entrywise(),
        "generated_rule": _generated_rule(),
        "fixed_threshold": _fixed_threshold(),
        "untrained_lista_is_ista": _untrained_lista(),
    }


if __name__ == "__main__":
    main(prove)
