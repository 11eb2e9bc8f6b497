"""Named axes (heads, layers): energies over families of matrices, checked against plain torch.

References are written directly in torch with an explicit head dimension (einsum) and
differentiated by ``torch.func.grad``; nothing here compares unfold's code with itself.
"""

from __future__ import annotations


import pytest
import sympy as sp
import torch

import unfold as uf
from unfold.errors import DimMismatchError, InputError, NotScalarError, ShapeMismatchError, UndeclaredSymbolError

DT = torch.float64


def _mh_energy(H: object):
    d, n, p = uf.dims("d n p")
    h = uf.axis("h", H)
    WQ = uf.param("WQ", p, d, over=h)
    WK = uf.param("WK", p, d, over=h)
    X = uf.state("X", d, n)
    beta = uf.scalar("beta", positive=True)
    E = uf.Energy(-uf.sum_over(h, uf.lse(beta * (WK * X).T * (WQ * X))) / beta + uf.fro2(X) / 2)
    return E, h, (X, WQ, WK, beta)


def _mh_reference(X: torch.Tensor, WQ: torch.Tensor, WK: torch.Tensor, beta: float) -> torch.Tensor:
    """−(1/β) Σ_h Σ_q log Σ_k exp(β (W_K^h x_k)·(W_Q^h x_q)) + ½‖X‖², per batch element."""
    Q = torch.einsum("hpd,...dn->...hpn", WQ, X)
    K = torch.einsum("hpd,...dn->...hpn", WK, X)
    A = beta * torch.einsum("...hpk,...hpq->...hkq", K, Q)
    return -torch.logsumexp(A, dim=-2).sum((-2, -1)) / beta + 0.5 * (X * X).sum((-2, -1))


def _inputs(B: int = 3, H: int = 4, d: int = 6, n: int = 5, p: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, d, n, generator=g, dtype=DT)
    WQ = torch.randn(H, p, d, generator=g, dtype=DT) / d ** 0.5
    WK = torch.randn(H, p, d, generator=g, dtype=DT) / d ** 0.5
    return X, WQ, WK, 0.7


@pytest.mark.parametrize("H", [4, "symbolic"])
def test_multi_head_energy_and_gradients_match_torch_reference(H: object) -> None:
    E, h, _ = _mh_energy(4 if H == 4 else uf.dim("H"))
    X, WQ, WK, beta = _inputs(H=4)
    cm = E.compile()
    ref = _mh_reference(X, WQ, WK, beta)
    assert torch.allclose(cm(X=X, WQ=WQ, WK=WK, beta=beta), ref, atol=1e-12, rtol=0)
    gX = torch.func.grad(lambda x: _mh_reference(x, WQ, WK, beta).sum())(X)
    gQ = torch.func.grad(lambda w: _mh_reference(X, w, WK, beta).sum())(WQ)
    gK = torch.func.grad(lambda w: _mh_reference(X, WQ, w, beta).sum())(WK)
    gb = torch.func.grad(lambda b: _mh_reference(X, WQ, WK, b).sum())(torch.tensor(beta, dtype=DT))
    assert torch.allclose(cm.grad("X", X=X, WQ=WQ, WK=WK, beta=beta), gX, atol=1e-12, rtol=0)
    gq = cm.grad("WQ", X=X, WQ=WQ, WK=WK, beta=beta)
    assert gq.shape == (4, 2, 6) and torch.allclose(gq, gQ, atol=1e-12, rtol=0)
    assert torch.allclose(cm.grad("WK", X=X, WQ=WQ, WK=WK, beta=beta), gK, atol=1e-12, rtol=0)
    assert torch.allclose(cm.grad("beta", X=X, WQ=WQ, WK=WK, beta=beta), gb, atol=1e-12, rtol=0)


def test_two_leg_check_passes_and_leg2_sees_the_axis() -> None:
    E, h, (X, WQ, WK, beta) = _mh_energy(12)
    res = uf.check_gradient(E)
    assert res.passed, str(res)
    assert all(v.leg2_run for v in res.variables)


def test_leg2_catches_a_wrong_head_sum() -> None:
    """A gradient whose head sums are wrong (each Σ_h doubled) is refused by the explicit-size leg
    on its own: leg 2 expands the heads and is not blind to the axis."""
    from unfold.symbolic.axes import MatAxisSum

    E, h, (X, WQ, WK, beta) = _mh_energy(uf.dim("H"))
    g = E.grad(X)
    E._grads[("", X)] = g.xreplace({a: 2 * a for a in g.atoms(MatAxisSum)})
    res = uf.check_gradient(E, wrt=[X], raise_on_failure=False)
    assert not res.passed and res.variables[0].leg2_grad_error > 1e-3, str(res)


def test_derivation_does_not_grow_with_heads() -> None:
    """The derived gradient is one expression in the head index: the same tree for 2 and 12 heads."""
    trees = []
    for H in (2, 12):
        E, h, (X, *_rest) = _mh_energy(H)
        trees.append(sp.count_ops(E.grad(X), visual=False))
    assert trees[0] == trees[1]


def test_gradient_step_equals_closed_form_attention_update() -> None:
    """X − ∇E = Σ_h [W_Kᵀ Q P_hᵀ + W_Qᵀ K P_h] with P_h = softmax_k(β KᵀQ) (written by hand)."""
    E, h, (Xs, *_r) = _mh_energy(uf.dim("H"))
    step = uf.GradientStep(E, wrt=Xs, step=1.0)
    X, WQ, WK, beta = _inputs()
    Q = torch.einsum("hpd,bdn->bhpn", WQ, X)
    K = torch.einsum("hpd,bdn->bhpn", WK, X)
    P = torch.softmax(beta * K.mT @ Q, dim=-2)
    ref = torch.einsum("hpd,bhpn->bdn", WK, Q @ P.mT) + torch.einsum("hpd,bhpn->bdn", WQ, K @ P)
    out = step(X, WQ=WQ, WK=WK, beta=beta)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)


def test_two_axes_compose_in_any_declared_order() -> None:
    """Heads and layers: A over (l, h) (declared in that order), B over h, c over l; the energy
    Σ_l Σ_h ½‖A[l,h] X B[h]‖² + Σ_l tr(C[l] X) against an einsum reference."""
    d, n, m = uf.dims("d n m")
    h, l = uf.axis("h", 3), uf.axis("l", 2)
    A = uf.param("A", m, d, over=(l, h))
    Bm = uf.param("B", n, n, over=h)
    C = uf.param("C", n, d, over=l)
    X = uf.state("X", d, n)
    E = uf.Energy(uf.sum_over(l, uf.sum_over(h, uf.fro2(A * X * Bm) / 2) + uf.trace(C * X)))
    g = torch.Generator().manual_seed(1)
    At = torch.randn(2, 3, 4, 5, generator=g, dtype=DT)
    Bt = torch.randn(3, 6, 6, generator=g, dtype=DT)
    Ct = torch.randn(2, 6, 5, generator=g, dtype=DT)
    Xt = torch.randn(2, 5, 6, generator=g, dtype=DT)

    def ref(X: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        Y = torch.einsum("lhmd,bdn,hnk->blhmk", A, X, B)
        return 0.5 * (Y * Y).sum((1, 2, 3, 4)) + torch.einsum("lnd,bdn->b", C, X)

    cm = E.compile()
    assert torch.allclose(cm(X=Xt, A=At, B=Bt, C=Ct), ref(Xt, At, Bt, Ct), atol=1e-11, rtol=0)
    for i, name in enumerate(["X", "A", "B", "C"]):
        args = [Xt, At, Bt, Ct]

        def f(v: torch.Tensor, i: int = i) -> torch.Tensor:
            a = list(args)
            a[i] = v
            return ref(*a).sum()

        want = torch.func.grad(f)(args[i])
        got = cm.grad(name, X=Xt, A=At, B=Bt, C=Ct)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-10, rtol=0), name
    assert uf.check_gradient(E).passed


def test_display_shows_the_sum_over_the_axis() -> None:
    E, h, _ = _mh_energy(uf.dim("H"))
    assert "Σ_h" in str(E) and r"\sum_{h}" in E.latex()


def test_parse_and_cli_read_axes() -> None:
    E = uf.parse("-sum_over(h, lse(beta * (WK @ X).T @ (WQ @ X)))/beta + fro2(X)/2", dims="d n p H",
                 states={"X": "d,n"}, params={"WQ": "p,d@h", "WK": "p,d@h"}, scalars=["beta:positive"],
                 axes=["h:H"])
    X, WQ, WK, beta = _inputs()
    assert torch.allclose(E.compile()(X=X, WQ=WQ, WK=WK, beta=beta), _mh_reference(X, WQ, WK, beta),
                          atol=1e-12, rtol=0)
    from unfold.parse import parse_energy_spec

    E2 = parse_energy_spec("-sum_over(h, lse((WK @ X).T @ (WQ @ X))) + fro2(X)/2", "d n p",
                           ["X:d,n"], ["WQ:p,d@h", "WK:p,d@h"], axes=["h:4"])
    assert torch.allclose(E2.compile()(X=X, WQ=WQ, WK=WK), _mh_reference(X, WQ, WK, 1.0), atol=1e-12, rtol=0)
    with pytest.raises(UndeclaredSymbolError, match="axis 'g' is not declared"):
        parse_energy_spec("fro2(W @ X)", "d n", ["X:d,n"], ["W:d,d@g"], axes=["h:4"])
    with pytest.raises(UndeclaredSymbolError, match="sum_over\\(\\) takes a declared axis"):
        parse_energy_spec("sum_over(X, fro2(X))", "d n", ["X:d,n"], axes=["h:4"])


# ---- bad input ------------------------------------------------------------------------------------
def test_axis_size_mismatch_is_named() -> None:
    E, h, _ = _mh_energy(4)
    X, WQ, WK, beta = _inputs(H=3)
    with pytest.raises(DimMismatchError, match="'WK' must have size 4 on axis -3 \\(named axis 'h'\\)"):
        E.compile()(X=X, WQ=WQ, WK=WK, beta=beta)
    E2, h2, _ = _mh_energy(uf.dim("H"))
    X, WQ, WK, beta = _inputs(H=3)
    with pytest.raises(DimMismatchError, match="dimension 'H' disagrees.*named axis 'h'"):
        E2.compile()(X=X, WQ=WQ, WK=WK[:2], beta=beta)
    with pytest.raises(InputError, match="'WQ' must have shape \\(\\.\\.\\., H \\(axis h\\), rows, cols\\)"):
        E2.compile()(X=X, WQ=WQ[0, 0], WK=WK, beta=beta)


def test_bad_axis_declarations_are_refused() -> None:
    d, n = uf.dims("d n")
    h = uf.axis("h", 3)
    X = uf.state("X", d, n)
    W = uf.param("W", d, d, over=h)
    with pytest.raises(ShapeMismatchError, match="does not range over axis 'h'"):
        uf.sum_over(h, uf.fro2(X))
    with pytest.raises(NotScalarError, match="ranges over the axis/axes \\['h'\\]"):
        uf.Energy(uf.fro2(W * X))
    with pytest.raises(ShapeMismatchError, match="over= takes axes"):
        uf.param("V", d, d, over="h")
    with pytest.raises(ShapeMismatchError, match="name 'W' is used for two different things"):
        uf.Energy(uf.sum_over(h, uf.fro2(W * X)) + uf.fro2(uf.param("W", d, d) * X))
    with pytest.raises(ShapeMismatchError, match="name 'h' is used for two different things"):
        W4 = uf.param("W4", d, d, over=uf.axis("h", 4))
        uf.Energy(uf.sum_over(h, uf.fro2(W * X)) + uf.sum_over(W4.axes[0], uf.fro2(W4 * X)))
    with pytest.raises(ShapeMismatchError, match="sum_over: the first argument must be an axis"):
        uf.sum_over("h", uf.fro2(X))


def test_parameters_without_the_axis_get_head_summed_gradients() -> None:
    """A parameter shared by all heads (the value map V) gets Σ_h of its per-head cotangents."""
    d, n = uf.dims("d n")
    h = uf.axis("h", 3)
    W = uf.param("W", d, d, over=h)
    V = uf.param("V", d, d)
    X = uf.state("X", d, n)
    E = uf.Energy(uf.sum_over(h, uf.sum_entries(uf.tanh(W * V * X))))
    g = torch.Generator().manual_seed(2)
    Wt, Vt, Xt = (torch.randn(*s, generator=g, dtype=DT) for s in ((3, 4, 4), (4, 4), (2, 4, 5)))
    want = torch.func.grad(lambda v: torch.tanh(Wt @ v @ Xt[:, None]).sum())(Vt)
    assert torch.allclose(E.compile().grad("V", X=Xt, W=Wt, V=Vt), want, atol=1e-12, rtol=0)
