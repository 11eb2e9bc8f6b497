"""The exact rewrites applied before printing (unfold.codegen.optimize) and the printer's sharing.

Every rewrite is an identity, so code generated with and without it must agree on random inputs;
the structural tests pin down what each rewrite is for (a cancelled solve, a factored product, one
product computed once)."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

import unfold as uf
from unfold.codegen import runtime
from unfold.codegen.generate import Output, generate
from unfold.codegen.optimize import optimize
from unfold.energies import BUILTIN_ENERGIES
from unfold.errors import DimMismatchError, InputError
from unfold.symbolic import ops as s
from unfold.sampling import random_inputs
from unfold.verify.scaled import scaled_error

DT = torch.float64


def _both(name, inputs, expr, kind="matrix", wrt=None):
    out = [Output(kind, expr, wrt)]
    return generate(name, inputs, out, rewrite=True), generate(name, inputs, out, rewrite=False)


@pytest.mark.parametrize("name", sorted(BUILTIN_ENERGIES))
def test_rewritten_gradients_equal_unrewritten(name):
    """For every built-in energy and variable: ∇E printed after the rewrites equals ∇E printed
    from the engine's form, on random batched float64 inputs (sizes 4, 3, …)."""
    E = BUILTIN_ENERGIES[name]()
    sizes = {d: 4 - min(i, 1) for i, d in enumerate(E.dims)}
    vals = random_inputs(E, sizes, batch=(2,), seed=3)
    args = [vals[str(a)] for a in E.inputs]
    for v in E.variables:
        fast, plain = _both("g", E.inputs, E.grad(v), "grad", v)
        a, b = fast(*args), plain(*args)
        assert scaled_error(a, b) < 1e-12, (name, v, fast.source)


def test_yhw_preconditioners_cancel():
    """Y − α D(A)⁻¹ ∇_Y Q G⁻¹ becomes (1 − α) Y + α D⁻¹ Γ Y: G = WsᵀWs cancels against ∇Q's
    trailing WsᵀWs, D⁻¹ against the row scaling (Γ1) ∘ Y; equal to the unrewritten solve form."""
    from unfold.catalogue import yang_huang_wipf as yhw

    inner = yhw.attention_step(0.5).inner
    rule = inner.update_rule()
    inverses = [a for a in sp.preorder_traversal(optimize(rule)) if isinstance(a, sp.Inverse)]
    assert len(inverses) == 1 and isinstance(inverses[0].arg, sp.HadamardProduct)  # only diag(Γ1)⁻¹ left
    fast, plain = _both("step", inner.source_energy.inputs, rule)
    g = torch.Generator().manual_seed(0)
    n, d = 5, 3
    Yt = torch.randn(2, n, d, generator=g, dtype=DT)
    At = torch.randn(2, n, d, generator=g, dtype=DT)
    Ws = torch.eye(d, dtype=DT) + 0.3 * torch.randn(d, d, generator=g, dtype=DT)
    names = [str(a) for a in inner.source_energy.inputs]
    vals = {"Y": Yt, "A": At, "Ws": Ws}
    a, b = fast(*[vals[k] for k in names]), plain(*[vals[k] for k in names])
    assert "solve" in plain.source and "solve" not in fast.source
    assert float((a - b).abs().max()) < 1e-12
    # and the closed form written from the paper: (1 − α) Y + α softmax_j(−½‖Ws(a_i − a_j)‖²) Y
    V = At @ Ws.mT
    sq = -0.5 * ((V[..., :, None, :] - V[..., None, :, :]) ** 2).sum(-1)
    ref = 0.5 * Yt + 0.5 * torch.softmax(sq, dim=-1) @ Yt
    assert float((a - ref).abs().max()) < 1e-12


def test_common_factor_is_factored():
    """∇ of ½‖Z₀ − DZ‖² prints as Dᵀ(DZ − Z₀) (two batched products, no DᵀD)."""
    d, n = uf.dims("d n")
    Z, Z0, D = uf.state("Z", d, n), uf.param("Z0", d, n), uf.param("D", d, d)
    E = uf.Energy(s.fro2(Z0 - D * Z) / 2)
    src = E.compile().grad_fn(Z).source
    assert "D.mT @ (D @ Z - Z0)" in src, src


def test_relu_times_step_merges_to_relu():
    """∇ of −½‖relu(gΞ)‖² = −relu(gΞ)Ξᵀ: (2 relu(z)) ∘ H(z) merges into one relu (exact at 0).
    (The engine's VJP already drops the step after relu^∘k; the product is built here by hand.)"""
    from sympy.matrices.expressions import HadamardProduct

    from unfold.symbolic.nodes import U, ew

    N, D, M = uf.dims("N D M")
    g, Xi = uf.state("g", N, D), uf.param("Xi", D, M)
    z = g * Xi
    grad = -sp.Rational(1, 2) * HadamardProduct(2 * s.relu(z), ew(sp.Heaviside(U), z)) * Xi.T
    fast, plain = _both("g", (g, Xi), grad, "grad", g)
    assert "> 0" not in fast.source and "> 0" in plain.source
    gt = torch.tensor([[[1.0, 0.0], [-1.0, 2.0]]], dtype=DT)
    Xt = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]], dtype=DT)   # z has exact zeros
    assert torch.equal(fast(gt, Xt), plain(gt, Xt))
    assert torch.allclose(fast(gt, Xt), -torch.relu(gt @ Xt) @ Xt.mT, atol=0, rtol=0)


def test_constant_merged_elementwise_keeps_its_shape():
    """√u · 1/(2√u) = 1/2 is a constant map: it stays a matrix (regression: printed as a float)."""
    n, = uf.dims("n")
    beta = uf.scalar("beta")
    W = uf.state("W", n, n)
    M = s.hpow(beta * s.ones(1, n).T, 2) + s.ones(n, 1)
    E = uf.Energy(s.fro2(s.sqrt(M)) * s.det(W))
    res = uf.check_gradient(E)
    assert res.passed, str(res)


def test_shared_products_are_computed_once():
    """ET's query and key projections g W_Qᵀ, g W_Kᵀ are computed once per head (the Yang–Huang–Wipf
    step's A Wsᵀ: tests/test_codegen_fuse.py, counted matrix products)."""
    from unfold.catalogue import energy_transformer as et

    E = et.energy(2, mask=False)
    gsrc = E.compile().grad_fn("g").source
    for h in (1, 2):
        assert gsrc.count(f"g @ WQ{h}.mT") + gsrc.count(f"WQ{h} @ g.mT") == 1, gsrc
        assert gsrc.count(f"g @ WK{h}.mT") + gsrc.count(f"WK{h} @ g.mT") == 1, gsrc


def test_softmax_runs_along_the_contiguous_axis():
    """Row-wise attention runs fused (``F.scaled_dot_product_attention``), never as a softmax over
    dim=-2 of materialised scores; it equals the closed form ``Ξ − softmax_rows(β Ξ Xᵀ) X``."""
    E = BUILTIN_ENERGIES["hopfield_rows"]()
    fn = E.compile().grad_fn("Xi")
    assert "_attention(" in fn.source and "dim=-2" not in fn.source, fn.source
    g = torch.Generator().manual_seed(0)
    Xi, X = torch.randn(2, 5, 4, generator=g, dtype=torch.float64), torch.randn(2, 7, 4, generator=g, dtype=torch.float64)
    want = Xi - torch.softmax(0.7 * Xi @ X.mT, dim=-1) @ X
    assert torch.allclose(fn(Xi, X, 0.7), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shapes,c", [
    (((3, 4), (4, 5)), 0.5),
    (((2, 3, 4), (4, 50)), 2.0),
    (((40, 3), (2, 3, 40)), -1.5),
    (((3, 4), (4, 2), (2, 6)), 3.0),
    (((2, 3, 4), (4, 5)), "batched"),
])
def test_scaled_product_equals_scaling_the_result(shapes, c):
    g = torch.Generator().manual_seed(1)
    ts = [torch.randn(*sh, generator=g, dtype=DT) for sh in shapes]
    if c == "batched":
        c = torch.tensor([2.0, -3.0], dtype=DT)[:, None, None]
    ref = ts[0]
    for t in ts[1:]:
        ref = ref @ t
    assert torch.allclose(runtime.smm(c, *ts), c * ref, rtol=1e-13, atol=1e-13)


def test_bind_dims_cache_keeps_every_check():
    """After a successful (cached) binding, other shapes, dtypes and non-finite inputs still fail."""
    d, n = uf.dims("d n")
    X, xi = uf.param("X", d, n), uf.state("xi", d, 1)
    fn = generate("f", [xi, X], [Output("matrix", X.T * xi)])
    x, Xt = torch.randn(3, 1, dtype=DT), torch.randn(3, 4, dtype=DT)
    for _ in range(2):
        assert fn(x, Xt).shape == (4, 1)
    with pytest.raises(DimMismatchError):
        fn(torch.randn(2, 1, dtype=DT), Xt)
    with pytest.raises(InputError):
        fn(x, Xt.float())
    with pytest.raises(InputError):
        fn(x.numpy(), Xt)
    bad = Xt.clone()
    bad[0, 0] = math.nan
    with runtime.finite_checks():
        with pytest.raises(InputError):
            fn(x, bad)
    assert fn(x, Xt).shape == (4, 1)


def test_cached_float_scalars_follow_dtype():
    a = runtime.as_scalar(0.25, torch.float32, torch.device("cpu"), "a")
    b = runtime.as_scalar(0.25, torch.float64, torch.device("cpu"), "a")
    assert a.dtype == torch.float32 and b.dtype == torch.float64 and a.shape == b.shape == (1, 1)
    assert float(a) == float(b) == 0.25


@pytest.mark.parametrize("gamma", [1.7, "batched"])
def test_affine_layernorm_is_one_call_and_exact(gamma):
    """γ LN_row(x) + 1δᵀ prints as one F.layer_norm with weight and bias; equal to the formula
    (x − mean)/√(var + ε) written out, for a scalar and for a batched γ (the unfused fallback)."""
    from unfold.catalogue import energy_transformer as et

    fn = et._layernorm_fn(False)
    assert "_ln_rows(" in fn.source and "_repeat_rows" not in fn.source, fn.source
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 4, generator=g, dtype=DT)
    delta = torch.randn(4, 1, generator=g, dtype=DT)
    gam = torch.tensor([1.7, 0.5, 2.0], dtype=DT) if gamma == "batched" else gamma
    out = et.layernorm(x, gamma=gam, delta=delta)
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    gcol = gam[:, None, None] if gamma == "batched" else gam
    ref = gcol * (x - mu) / torch.sqrt(var + et.EPS) + delta.mT
    assert float((out - ref).abs().max()) < 1e-12


def test_sum_is_accumulated_head_by_head_and_temporaries_are_released():
    """ET's gradient: each head's softmax feeds both of its products before the next head's is
    computed, and every temporary is deleted after its last use."""
    from unfold.catalogue import energy_transformer as et

    src = et.energy(2, mask=False).compile().grad_fn("g").source
    lines = [ln.strip() for ln in src.splitlines()]
    soft = [i for i, ln in enumerate(lines) if "torch.softmax" in ln]
    acc = [i for i, ln in enumerate(lines) if ln.startswith("_r0 = _r0 -")]
    assert len(soft) == 2 and len(acc) == 4, src
    assert soft[0] < acc[0] < acc[1] < soft[1] < acc[2] < acc[3], src
    defined = {ln.split(" = ")[0] for ln in lines if ln.startswith("_t")}
    deleted = {n.strip() for ln in lines if ln.startswith("del ") for n in ln[4:].split(",")}
    assert defined and defined == deleted, (defined, deleted)
