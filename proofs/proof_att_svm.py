"""Exact symbolic proofs for the Att-SVM entry (``unfold.catalogue.att_svm``).

1. Gradient of the logistic attention loss ``ℓ = log(1 + exp(−y f))``, ``f = vᵀXᵀ softmax(XWz)``:
   the softmax Jacobian ``∂(uᵀs)/∂a = s∘(u − uᵀs)`` for symbolic scores ``a`` and values ``u``
   (T = 3); and at T = 2, d = 2 with ``W`` symbolic (rational data) unfold's derived ``∇_W ℓ`` and the
   entrywise scalar ``sp.diff`` of ``ℓ`` both equal ``−y σ(−y f) Xᵀ(diag(s) − s sᵀ) X v zᵀ``.
   Exponentials are replaced by positive symbols after differentiation so that ``cancel`` decides
   equality of rational functions.
2. KKT system of the Frobenius Att-SVM ``min ½‖W‖² s.t. ⟨A_k, W⟩ ≥ 1`` (d = 2, two symbolic
   constraints): the Lagrangian is stationary at ``W = Σ λ_k A_k``; the dual function is
   ``Σ λ_k − ½‖Σ λ_k A_k‖²``; with both constraints active ``λ = G⁻¹1`` (``G`` the symbolic Gram
   matrix of the ``A_k``) and ``‖W‖² = Σ λ_k`` (zero duality gap).
3. A rational instance (n = 2, T = 3, d = 2): the exact optimum found by active-set enumeration of
   the KKT system satisfies every KKT condition in exact arithmetic, and the cvxpy (CLARABEL)
   solution of :func:`unfold.attsvm.svm.solve_att_svm` agrees with it to 1e-6.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch

from unfold.attsvm.data import AttDataset
from unfold.attsvm.model import attention_loss
from unfold.attsvm.svm import solve_att_svm
from unfold.symbolic.explicit import expand_explicit, explicit_env
from proofs._common import main


def _exp_to_symbols(e: sp.Expr, table: dict[sp.Expr, sp.Symbol]) -> sp.Expr:
    """Replace every ``exp(g)`` by a positive symbol, innermost first: ``exp(c·h)`` (``c`` rational;
    sympy writes ``exp(h)^c`` that way) becomes ``e_h^c``; a new argument gets a new symbol."""
    memo: dict[sp.Expr, sp.Expr] = {}

    def rep(x: sp.Expr) -> sp.Expr:
        if x in memo:
            return memo[x]
        g = sp.cancel(x.args[0])
        out = None
        for h, sym in table.items():
            if g == h:
                out = sym
                break
        if out is None:
            for h, sym in table.items():
                c = sp.cancel(g / h)
                if c.is_Rational:
                    out = sym ** c
                    break
        if out is None:
            table[g] = out = sp.Symbol(f"e{len(table)}", positive=True)
        memo[x] = out
        return out

    while e.has(sp.exp):
        e = e.replace(lambda x: isinstance(x, sp.exp) and not x.args[0].has(sp.exp), rep)
    return e


def _gradient_proof() -> str:
    # (a) softmax Jacobian in the scores: ∂/∂a_k Σ_t u_t softmax(a)_t = s_k (u_k − f)
    T = 3
    a = sp.symbols(f"a0:{T}", real=True)
    u = sp.symbols(f"u0:{T}", real=True)
    ex = [sp.exp(x) for x in a]
    s = [x / sum(ex) for x in ex]
    f = sum(ut * st for ut, st in zip(u, s))
    table: dict[sp.Expr, sp.Symbol] = {}
    for k in range(T):
        lhs = sp.diff(f, a[k])  # scalar
        assert sp.cancel(_exp_to_symbols(lhs - s[k] * (u[k] - f), table)) == 0, f"softmax Jacobian, k={k}"
    # (b) unfold's derived gradient vs −yσ(−yf) Xᵀ(diag(s) − ssᵀ)Xvzᵀ, all entries symbolic
    E = attention_loss()
    dims = {str(x): x for x in E.dims}
    Tn, d = 2, 2
    env = explicit_env(E.inputs, {dims["T"]: Tn, dims["d"]: d})
    R = sp.Rational
    data = {E.symbol("X"): sp.Matrix([[R(1), R(-1, 2)], [R(1, 3), R(2)]]), E.symbol("z"): sp.Matrix([R(1, 2), R(-1)]),
            E.symbol("v"): sp.Matrix([R(2, 3), R(1, 5)]), E.symbol("y"): sp.Integer(-1)}
    env.update(data)
    W = env[E.symbol("W")]
    X, z, v, y = (data[E.symbol(k)] for k in ("X", "z", "v", "y"))
    sc = X * W * z
    exs = [sp.exp(sc[t]) for t in range(Tn)]
    sv = sp.Matrix(Tn, 1, lambda t, _: exs[t] / sum(exs))
    fv = (v.T * X.T * sv)[0, 0]
    closed = -y / (1 + sp.exp(y * fv)) * X.T * (sp.diag(*sv) - sv * sv.T) * X * v * z.T
    engine = expand_explicit(E.grad(E.symbol("W")), env)
    ell = sp.log(1 + sp.exp(-y * fv))
    table = {}
    for i in range(d):
        for j in range(d):
            assert sp.cancel(_exp_to_symbols(engine[i, j] - closed[i, j], table)) == 0, f"unfold ∇ℓ[{i},{j}]"
            ref = sp.diff(ell, W[i, j])  # scalar
            assert sp.cancel(_exp_to_symbols(ref - closed[i, j], table)) == 0, f"sp.diff ℓ [{i},{j}]"
    return (f"softmax Jacobian ∂(uᵀs)/∂a = s∘(u − f) exactly (T={T}, symbolic scores and values); at T={Tn}, "
            f"d={d} with W symbolic and rational X, z, v, y: unfold's derived ∇_W ℓ and entrywise sp.diff of ℓ both equal −yσ(−yf)Xᵀ(diag(s) − ssᵀ)Xvzᵀ "
            "(cancel after exp → positive symbols)")


def _kkt_proof() -> str:
    d, m = 2, 2
    Wm = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"W_{i}_{j}", real=True))
    A = [sp.Matrix(d, d, lambda i, j, k=k: sp.Symbol(f"A{k}_{i}_{j}", real=True)) for k in range(m)]
    lam = sp.symbols(f"lam0:{m}", nonnegative=True)
    inner = lambda P, Q: sum(P[i, j] * Q[i, j] for i in range(d) for j in range(d))  # noqa: E731
    Lag = sum(w ** 2 for w in Wm) / 2 - sum(lam[k] * (inner(A[k], Wm) - 1) for k in range(m))
    G_sum = sum((lam[k] * A[k] for k in range(m)), sp.zeros(d, d))
    at = dict(zip(list(Wm), list(G_sum)))
    for w in Wm:  # the Lagrangian is strictly convex in W: its stationary point is unique
        assert sp.expand(sp.diff(Lag, w).xreplace(at)) == 0, "stationarity: W = Σ λ_k A_k"  # scalar
    assert sp.expand(Lag.xreplace(at) - (sum(lam) - inner(G_sum, G_sum) / 2)) == 0, "dual function"
    g = sp.symbols("g00 g01 g11", real=True)
    G = sp.Matrix([[g[0], g[1]], [g[1], g[2]]])
    lam_active = G.LUsolve(sp.ones(m, 1))
    assert sp.simplify(G * lam_active - sp.ones(m, 1)) == sp.zeros(m, 1), "active constraints tight"
    assert sp.cancel((lam_active.T * G * lam_active)[0, 0] - sum(lam_active)) == 0, "zero gap"
    return ("Lagrangian of min ½‖W‖² s.t. ⟨A_k,W⟩ ≥ 1 (d=2, 2 symbolic constraints): stationary at W = Σλ_k A_k, "
            "dual Σλ − ½‖Σλ_k A_k‖²; both active with Gram matrix G: λ = G⁻¹1 and ‖W‖² = λᵀGλ = Σλ (exact)")


def _instance_proof() -> str:
    R = sp.Rational
    Xs = [[[R(1), R(0)], [R(0), R(1)], [R(-1), R(1, 2)]], [[R(1, 2), R(1)], [R(-1), R(0)], [R(1, 3), R(-1)]]]
    zs = [[R(1), R(1, 2)], [R(-1, 2), R(1)]]
    sel = [0, 0]
    n, T, d = 2, 3, 2
    cons = []
    for i in range(n):
        for t in range(T):
            if t != sel[i]:
                diff = sp.Matrix(Xs[i][sel[i]]) - sp.Matrix(Xs[i][t])
                cons.append(diff * sp.Matrix(zs[i]).T)
    inner = lambda P, Q: sum(P[a, b] * Q[a, b] for a in range(d) for b in range(d))  # noqa: E731
    best = None
    for r in range(1, len(cons) + 1):
        for S in itertools.combinations(range(len(cons)), r):
            G = sp.Matrix(r, r, lambda k, l: inner(cons[S[k]], cons[S[l]]))
            if G.det() == 0:
                continue
            lamS = G.LUsolve(sp.ones(r, 1))
            if any(x < 0 for x in lamS):
                continue
            Wc = sum((lamS[k] * cons[S[k]] for k in range(r)), sp.zeros(d, d))
            if all(inner(c, Wc) >= 1 for c in cons):
                lam = [0] * len(cons)
                for k, idx in enumerate(S):
                    lam[idx] = lamS[k]
                best = (Wc, lam)
                break
        if best:
            break
    assert best is not None, "no KKT point found"
    Wc, lam = best
    margins = [inner(c, Wc) for c in cons]
    assert all(mg >= 1 for mg in margins), "primal feasibility"
    assert all(x >= 0 for x in lam), "dual feasibility"
    assert all(x * (mg - 1) == 0 for x, mg in zip(lam, margins)), "complementary slackness"
    assert Wc == sum((x * c for x, c in zip(lam, cons)), sp.zeros(d, d)), "stationarity"
    X = torch.tensor([[[float(e) for e in row] for row in Xi] for Xi in Xs], dtype=torch.float64)[None]
    z = torch.tensor([[float(e) for e in zi] for zi in zs], dtype=torch.float64)[None, :, :, None]
    data = AttDataset(X, z, torch.ones(1, 1, d, 1, dtype=torch.float64), torch.ones(1, n, dtype=torch.float64))
    sol = solve_att_svm(data, torch.tensor(sel), "fro")
    err = float(np.abs(sol.W - np.array(Wc.tolist(), dtype=float)).max())
    assert err < 1e-6, f"cvxpy solution differs from the exact KKT point by {err}"
    return (f"rational instance n=2, T=3, d=2: exact KKT point W = {Wc.tolist()} (all four conditions exact); "
            f"cvxpy/CLARABEL agrees to {err:.1e}")


def prove() -> dict[str, str]:
    return {
        "loss_gradient": _gradient_proof(),
        "kkt_system": _kkt_proof(),
        "rational_instance": _instance_proof(),
    }


if __name__ == "__main__":
    main(prove)
