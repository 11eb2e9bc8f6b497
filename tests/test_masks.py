"""Masks on lse/softmax (causal, boolean, additive, key padding) against F.scaled_dot_product_attention,
and causality of gradient steps measured from the Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unfold as uf
from unfold.errors import DimMismatchError, InputError, ShapeMismatchError, UnsupportedNodeError

DT = torch.float64


def _retrieval(mask: object, layout: str):
    """E(Ξ) = −(1/β) Σ_q lse_k(β ⟨ξ_q, y_k⟩; mask) + ½‖Ξ‖²: its unit gradient step is attention of the
    queries Ξ over the keys/values Y (tokens as rows: scores Ξ Yᵀ, per row; as columns: Yᵀ Ξ, per column)."""
    d, n, m = uf.dims("d n m")
    beta = uf.scalar("beta", positive=True)
    if layout == "rows":
        Xi, Y = uf.state("Xi", n, d), uf.param("Y", m, d)
        E = uf.Energy(-uf.lse(beta * Xi * Y.T, axis=1, mask=mask) / beta + uf.fro2(Xi) / 2)
    else:
        Xi, Y = uf.state("Xi", d, n), uf.param("Y", d, m)
        E = uf.Energy(-uf.lse(beta * Y.T * Xi, axis=0, mask=mask) / beta + uf.fro2(Xi) / 2)
    return E, Xi


def _data(n: int = 5, m: int = 5, d: int = 3, B: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, d, generator=g, dtype=DT), torch.randn(m, d, generator=g, dtype=DT), 0.8


def _step(E: uf.Energy, state: object, **inputs: object) -> torch.Tensor:
    x = inputs.pop(str(state))
    return uf.GradientStep(E, wrt=state, step=1.0)(x, **inputs)


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_causal_mask_step_is_sdpa_is_causal(layout: str) -> None:
    E, Xi = _retrieval(uf.causal, layout)
    Q, Y, beta = _data()
    ref = F.scaled_dot_product_attention(Q, Y.expand(2, 5, 3), Y.expand(2, 5, 3), is_causal=True, scale=beta)
    if layout == "rows":
        out = _step(E, Xi, Xi=Q, Y=Y, beta=beta)
    else:
        out = _step(E, Xi, Xi=Q.mT, Y=Y.mT, beta=beta).mT
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    assert uf.check_gradient(E).passed


@pytest.mark.parametrize("kind", ["bool", "additive", "key_padding"])
def test_declared_masks_match_sdpa_attn_mask(kind: str) -> None:
    n, = uf.dims("n")
    m = uf.dim("m")
    Q, Y, beta = _data(n=4, m=6)
    g = torch.Generator().manual_seed(3)
    if kind == "key_padding":
        keep = torch.tensor([[True, True, False, True, False, True]])  # 1 × keys
        M = uf.mask("M", 1, m)
        ref_mask, given = keep, keep
    else:
        keep = torch.rand(4, 6, generator=g) > 0.5
        keep[:, 0] = True
        M = uf.mask("M", n, m)
        ref_mask = keep
        given = keep if kind == "bool" else torch.where(keep, 0.0, float("-inf")).to(DT)
    d = uf.dim("d")
    beta_s = uf.scalar("beta", positive=True)
    Xi, Ys = uf.state("Xi", n, d), uf.param("Y", m, d)
    E = uf.Energy(-uf.lse(beta_s * Xi * Ys.T, axis=1, mask=M) / beta_s + uf.fro2(Xi) / 2)
    with uf.finite_checks():  # −inf in an additive mask is accepted
        out = _step(E, Xi, Xi=Q, Y=Y, M=given, beta=beta)
    ref = F.scaled_dot_product_attention(Q, Y.expand(2, 6, 3), Y.expand(2, 6, 3), attn_mask=ref_mask, scale=beta)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    res = uf.check_gradient(E)
    assert res.passed and all(v.leg2_run for v in res.variables), str(res)


def test_masked_softmax_matches_reference_and_has_zero_weight_on_excluded() -> None:
    n, = uf.dims("n")
    S = uf.state("S", n, n)
    W = uf.param("W", n, n)
    E = uf.Energy(uf.sum_entries(uf.hadamard(W, uf.softmax(S, axis=1, mask=uf.causal))))
    g = torch.Generator().manual_seed(1)
    St, Wt = torch.randn(2, 4, 4, generator=g, dtype=DT), torch.randn(4, 4, generator=g, dtype=DT)
    ref = lambda s: (Wt * torch.softmax(s.masked_fill(torch.ones(4, 4, dtype=torch.bool).triu(1), float("-inf")), -1)).sum((-2, -1))
    assert torch.allclose(E.compile()(S=St, W=Wt), ref(St), atol=1e-13, rtol=0)
    gS = E.compile().grad("S", S=St, W=Wt)
    assert torch.allclose(gS, torch.func.grad(lambda s: ref(s).sum())(St), atol=1e-13, rtol=0)
    assert bool((gS[..., torch.ones(4, 4, dtype=torch.bool).triu(1)] == 0).all())


def test_gradient_step_of_masked_self_attention_is_not_causal_but_query_side_is() -> None:
    """The full step of E(X) = −(1/β) lse_rows(β X W Xᵀ; causal) + ½‖X‖² moves earlier tokens with
    later ones (key-side term); the query-side update softmax(β X W Yᵀ; causal) Y Wᵀ with Y held fixed
    at X is causal."""
    d, n = uf.dims("d n")
    X, W, Y = uf.state("X", n, d), uf.param("W", d, d), uf.param("Y", n, d)
    beta = uf.scalar("beta", positive=True)
    full = uf.GradientStep(uf.Energy(-uf.lse(beta * X * W * X.T, axis=1, mask=uf.causal) / beta + uf.fro2(X) / 2),
                           wrt=X, step=1.0)
    query = uf.GradientStep(uf.Energy(-uf.lse(beta * X * W * Y.T, axis=1, mask=uf.causal) / beta + uf.fro2(X) / 2),
                            wrt=X, step=1.0)
    g = torch.Generator().manual_seed(0)
    Xt, Wt = torch.randn(6, 3, generator=g, dtype=DT), torch.randn(3, 3, generator=g, dtype=DT)
    r_full = uf.check_causality(lambda x: full(x, W=Wt, beta=1.0), Xt)
    r_query = uf.check_causality(lambda x: query(x, W=Wt, Y=Xt.detach(), beta=1.0), Xt)
    assert not r_full.causal and r_full.leak > 1e-3, str(r_full)
    assert r_query.causal, str(r_query)
    # the query-side update is masked attention: queries X W, keys Y = X, values Y Wᵀ (SDPA is_causal)
    ref = F.scaled_dot_product_attention(Xt @ Wt, Xt, Xt @ Wt.T, is_causal=True, scale=1.0)
    assert torch.allclose(query(Xt, W=Wt, Y=Xt, beta=1.0), ref, atol=1e-12, rtol=0)


def test_bad_masks_get_specific_errors() -> None:
    d, n, m = uf.dims("d n m")
    Xi, Y = uf.state("Xi", n, d), uf.param("Y", m, d)
    with pytest.raises(ShapeMismatchError, match="mask M is 3×3 but the scores"):
        uf.lse(Xi * Y.T, axis=1, mask=uf.mask("M", 3, 3))
    with pytest.raises(ShapeMismatchError, match="mask must be uf.causal or a mask declared"):
        uf.softmax(Xi * Y.T, mask=uf.param("P", n, m))
    M = uf.mask("M", n, m)
    E = uf.Energy(-uf.lse(Xi * Y.T, axis=1, mask=M) + uf.fro2(Xi) / 2)
    Q, Yt, _ = _data(n=4, m=6)
    with pytest.raises(InputError, match="mask 'M' has dtype torch.int64"):
        E.compile()(Xi=Q, Y=Yt, M=torch.ones(4, 6, dtype=torch.long))
    with pytest.raises(DimMismatchError, match="dimension 'm' disagrees"):
        E.compile()(Xi=Q, Y=Yt, M=torch.ones(4, 5, dtype=torch.bool))
    with uf.finite_checks(), pytest.raises(InputError, match="mask 'M' holds NaN"):
        E.compile()(Xi=Q, Y=Yt, M=torch.full((4, 6), float("nan"), dtype=DT))
    with pytest.raises(UnsupportedNodeError, match="is a mask"):
        E.grad(M)


def test_parse_reads_masks() -> None:
    Q, Y, beta = _data(n=4, m=6)
    E = uf.parse("-lse(beta * Xi @ Y.T, axis=1, mask=M)/beta + fro2(Xi)/2", dims="d n m",
                 states={"Xi": "n,d"}, params={"Y": "m,d"}, scalars=["beta:positive"], masks=["M:1,m"])
    keep = torch.tensor([[True, False, True, True, False, True]])
    xi = E.symbol("Xi")
    out = uf.GradientStep(E, wrt=xi, step=1.0)(Q, Y=Y, M=keep, beta=beta)
    ref = F.scaled_dot_product_attention(Q, Y.expand(2, 6, 3), Y.expand(2, 6, 3), attn_mask=keep, scale=beta)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    Ec = uf.parse("-lse(Xi @ Y.T, axis=1, mask=causal) + fro2(Xi)/2", dims="d n",
                  states={"Xi": "n,d"}, params={"Y": "n,d"})
    out = uf.GradientStep(Ec, wrt=Ec.symbol("Xi"), step=1.0)(Q, Y=Y[:4])
    ref = F.scaled_dot_product_attention(Q, Y[:4].expand(2, 4, 3), Y[:4].expand(2, 4, 3), is_causal=True, scale=1.0)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    from unfold.errors import UndeclaredSymbolError

    with pytest.raises(UndeclaredSymbolError, match="mask= takes causal or a declared mask"):
        uf.parse("-lse(Xi @ Y.T, axis=1, mask=Z) + fro2(Xi)/2", dims="d n", states={"Xi": "n,d"}, params={"Y": "n,d"})


def test_display_names_the_mask_in_the_orientation_written() -> None:
    d, n = uf.dims("d n")
    X, W, M = uf.state("X", n, d), uf.param("W", d, d), uf.mask("M", n, n)
    assert "lse_rows(X*W*X.T, mask=causal)" in str(uf.Energy(-uf.lse(X * W * X.T, axis=1, mask=uf.causal)))
    assert "lse_rows(X*W*X.T, mask=M)" in str(uf.Energy(-uf.lse(X * W * X.T, axis=1, mask=M)))
