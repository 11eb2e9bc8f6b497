"""Exact symbolic proofs of the LISTA entry's exact claims (``unfold.catalogue.lista``).

1. The soft threshold ``h_t(v) = sign(v) max(|v| − t, 0)`` is ``prox_{t|·|}(v)``: the one-dimensional
   problem ``min_x ½(x − v)² + t|x|`` by case analysis (stationary points on ``x > 0`` and ``x < 0``,
   and the subgradient condition ``|v| ≤ t`` at ``x = 0``).
2. ISTA's affine map with ``B = Aᵀ/L``, ``S = I − AᵀA/L`` is the gradient step of unfold's derived
   ``∇½‖x − Az‖²`` with step ``1/L``: ``Bx + Sz = z − (1/L)∇f(z)`` (matrix identity, symbolic sizes).
3. The generated layer's own rule (``ProximalGradientStep.update_rule()`` at ``L = 4``, ``λ = 1/10``)
   is ``SoftThreshold(z − (1/L)∇f(z), λ/L)``, i.e. ``h_θ(Bx + Sz)`` with ``θ = λ/L``.
4. The learned LISTA layer's energy ``½zᵀGz − zᵀWx`` at ``G = AᵀA``, ``W = Aᵀ`` has unfold's derived
   gradient ``Aᵀ(Az − x)``: the untrained LISTA is ISTA.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import ZeroMatrix

from unfold.catalogue.lista import energy, ista_step, lista_energy
from unfold.symbolic.nodes import SoftThreshold


def _prox_abs() -> None:
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


def prove() -> dict[str, str]:
    proven: dict[str, str] = {}
    _prox_abs()
    proven["h_t = prox_{t|·|} (soft threshold)"] = "1-D case analysis: stationary points on x > 0, x < 0, subgradient at 0"

    f = energy().term("fit")
    z, A, x = (f.symbol(k) for k in ("z", "A", "x"))
    k = z.shape[0]
    L = sp.Symbol("L", positive=True)
    grad = f.grad("z")
    B, S = A.T / L, sp.Identity(k) - A.T * A / L
    assert (B * x + S * z - (z - grad / L)).expand() == ZeroMatrix(*z.shape)
    proven["Bx + Sz = z − (1/L)∇½‖x − Az‖² (B = Aᵀ/L, S = I − AᵀA/L)"] = "unfold's derived gradient, matrix identity"

    rule = ista_step(4.0, lam=0.1).update_rule()
    assert isinstance(rule, SoftThreshold)
    arg, thr = rule.args
    assert (arg - (z - grad / 4)).expand() == ZeroMatrix(*z.shape)
    assert abs(float(thr) - 0.1 / 4) < 1e-15
    proven["generated layer = SoftThreshold(z − ∇f/L, λ/L) = h_θ(Bx + Sz)"] = "the step's update_rule(), L = 4, λ = 1/10"

    g = lista_energy()
    zg, G, W, xg = (g.symbol(n) for n in ("z", "G", "W", "x"))
    init = g.grad("z").xreplace({G: A.T * A, W: A.T}).xreplace({zg: z, xg: x})
    assert (init - grad).expand() == ZeroMatrix(*z.shape)
    proven["learned LISTA energy at G = AᵀA, W = Aᵀ has the LASSO gradient (untrained LISTA = ISTA)"] = (
        "unfold's derived gradient of ½zᵀGz − zᵀWx, substituted, matrix identity")
    return proven
