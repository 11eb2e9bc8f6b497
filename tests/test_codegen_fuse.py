"""The fusion pass (:mod:`unfold.codegen.fuse`): it fires on its patterns, not when a part it
would consume is used elsewhere, and the fused code equals an independent plain-torch reference
(float64, 1e-12).  Kernel calls are counted by patching the torch function, never read from the
source text."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import sympy as sp
import torch
import torch.nn.functional as F

import unfold as uf
from unfold.codegen.fuse import AffineLayerNorm, FusedAttention, fuse
from unfold.codegen.generate import Output, generate
from unfold.codegen.optimize import optimize
from unfold.symbolic.tidy import doit

DT = torch.float64


def _nodes(roots: list[Any], cls: type) -> list[Any]:
    return [x for r in fuse([optimize(r) for r in roots]) for x in sp.preorder_traversal(r) if isinstance(x, cls)]


class _Counted:
    """Patches ``torch.nn.functional.<name>`` with a wrapper counting its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        orig: Callable[..., Any] = getattr(F, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            self.calls += 1
            return orig(*a, **k)

        monkeypatch.setattr(F, name, wrapper)


@pytest.fixture
def attention_parts() -> Iterator[tuple[Any, ...]]:
    n, m, p, v = uf.dims("n m p v")
    Q, K, V = uf.state("Q", n, p), uf.param("K", m, p), uf.param("V", m, v)
    beta = uf.scalar("beta")
    yield Q, K, V, beta, doit(uf.softmax(beta * Q @ K.T, axis=1))


def _attention_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(3, 5, 4, generator=g, dtype=DT), torch.randn(7, 4, generator=g, dtype=DT),
            torch.randn(7, 4, generator=g, dtype=DT))  # value width = head width: SDPA's fused CPU kernel


def test_attention_is_fused_and_equals_softmax_times_values(attention_parts, monkeypatch):
    Q, K, V, beta, S = attention_parts
    out = doit(S @ V)
    assert len(_nodes([out], FusedAttention)) == 1
    fn = generate("f", [Q, K, V, beta], [Output("matrix", out)])
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    q, k, v = _attention_inputs()
    got = fn(q, k, v, 0.7)
    assert sdpa.calls == 1
    want = torch.softmax(0.7 * q @ k.mT, dim=-1) @ v
    assert float((got - want).abs().max()) < 1e-12


def test_attention_is_not_fused_when_the_softmax_is_used_elsewhere(attention_parts, monkeypatch):
    Q, K, V, beta, S = attention_parts
    outs = [doit(S @ V), S]
    assert not _nodes(outs, FusedAttention)
    fn = generate("f", [Q, K, V, beta], [Output("matrix", o) for o in outs])
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    q, k, v = _attention_inputs()
    got, probs = fn(q, k, v, 0.7)
    assert sdpa.calls == 0
    want = torch.softmax(0.7 * q @ k.mT, dim=-1)
    assert float((probs - want).abs().max()) < 1e-12
    assert float((got - want @ v).abs().max()) < 1e-12


@pytest.fixture
def layernorm_parts() -> Iterator[tuple[Any, ...]]:
    n, d = uf.dims("n d")
    X, B, g = uf.state("X", n, d), uf.param("B", 1, d), uf.scalar("g")
    ln = doit(uf.layernorm(X, 1e-5, axis=1))
    yield X, B, g, ln, doit(g * ln + uf.ones(n, 1) @ B)


def _layernorm_reference(x: torch.Tensor, g: float, b: torch.Tensor) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return g * (x - mu) / torch.sqrt(var + 1e-5) + b


def test_affine_layernorm_is_fused_and_equals_the_formula(layernorm_parts, monkeypatch):
    X, B, g, _ln, out = layernorm_parts
    assert len(_nodes([out], AffineLayerNorm)) == 1
    fn = generate("f", [X, B, g], [Output("matrix", out)])
    calls = _Counted(monkeypatch, "layer_norm")
    gen = torch.Generator().manual_seed(1)
    x, b = torch.randn(2, 5, 6, generator=gen, dtype=DT), torch.randn(1, 6, generator=gen, dtype=DT)
    got = fn(x, b, 1.7)
    assert calls.calls == 1
    assert float((got - _layernorm_reference(x, 1.7, b)).abs().max()) < 1e-12


def test_affine_layernorm_is_not_fused_when_the_layer_norm_is_used_elsewhere(layernorm_parts):
    X, B, g, ln, out = layernorm_parts
    assert not _nodes([out, ln], AffineLayerNorm)
    fn = generate("f", [X, B, g], [Output("matrix", out), Output("matrix", ln)])
    gen = torch.Generator().manual_seed(1)
    x, b = torch.randn(2, 5, 6, generator=gen, dtype=DT), torch.randn(1, 6, generator=gen, dtype=DT)
    got, plain = fn(x, b, 1.7)
    assert float((got - _layernorm_reference(x, 1.7, b)).abs().max()) < 1e-12
    assert float((plain - _layernorm_reference(x, 1.0, torch.zeros_like(b))).abs().max()) < 1e-12


def test_fused_nodes_have_the_shape_of_what_they_replace(attention_parts, layernorm_parts):
    *_, S = attention_parts
    V = attention_parts[2]
    (fa,) = _nodes([doit(S @ V)], FusedAttention)
    assert fa.shape == (S.rows, V.cols)
    *_, out = layernorm_parts
    (aln,) = _nodes([out], AffineLayerNorm)
    assert aln.shape == out.shape


# ---- the normalised exponential diag(exp(S) 1)⁻¹ exp(S) V (Yang–Huang–Wipf's attention step) ------
@pytest.fixture
def normalised_exp_parts() -> Iterator[tuple[Any, ...]]:
    """``S = β Q Kᵀ + r 1ᵀ + 1 bᵀ`` (queries × keys, Q ≠ K, a per-query bias r, a key bias b)."""
    n, m, p, v = uf.dims("n m p v")
    Q, K, V = uf.state("Q", n, p), uf.param("K", m, p), uf.param("V", m, v)
    r, b, beta = uf.param("r", n, 1), uf.param("b", 1, m), uf.scalar("beta")
    S = doit(beta * Q @ K.T + r @ uf.ones(1, m) + uf.ones(n, 1) @ b)

    def rule(num: Any, den: Any) -> Any:
        """diag(den 1)⁻¹ num V."""
        return doit(uf.inv(uf.hadamard(uf.identity(n), den @ uf.ones(m, n))) @ num @ V)

    yield (Q, K, V, r, b, beta), S, rule


def _normalised_exp_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 5, 3, generator=g, dtype=DT), torch.randn(7, 3, generator=g, dtype=DT)
    v = torch.randn(7, 3, generator=g, dtype=DT)
    r, b = 3.0 * torch.randn(5, 1, generator=g, dtype=DT), torch.randn(1, 7, generator=g, dtype=DT)
    return q, k, v, r, b, torch.tensor(0.8, dtype=DT)


def _softmax_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, r: torch.Tensor,
                       b: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``softmax_rows(β Q Kᵀ + r 1ᵀ + 1 bᵀ) V`` written out (exp over the row sums)."""
    e = torch.exp(beta * q @ k.mT + r + b)
    return e / e.sum(-1, keepdim=True) @ v


def test_normalised_exponential_is_attention_with_a_key_bias(normalised_exp_parts, monkeypatch):
    inputs, S, rule = normalised_exp_parts
    out = rule(uf.exp(S), uf.exp(S))
    (fa,) = _nodes([out], FusedAttention)
    assert fa.mask is not None and fa.mask.shape == (1, S.cols)  # the key bias, one row
    fn = generate("f", list(inputs), [Output("matrix", out)])
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    args = _normalised_exp_inputs()
    got = fn(*args)
    assert sdpa.calls == 1
    assert float((got - _softmax_reference(*args)).abs().max()) < 1e-12
    q, k, v, _r, b, beta = args  # the per-query bias cancels: plain softmax(β Q Kᵀ + 1 bᵀ) V
    plain = torch.softmax(beta * q @ k.mT + b, dim=-1) @ v
    assert float((got - plain).abs().max()) < 1e-12


def test_normaliser_of_another_exponential_is_not_fused(normalised_exp_parts, monkeypatch):
    """diag(exp(2S) 1)⁻¹ exp(S) V is no softmax: printed as written, exact, no SDPA call."""
    inputs, S, rule = normalised_exp_parts
    out = rule(uf.exp(S), uf.exp(2 * S))
    assert not _nodes([out], FusedAttention)
    fn = generate("f", list(inputs), [Output("matrix", out)])
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    q, k, v, r, b, beta = _normalised_exp_inputs()
    got = fn(q, k, v, r, b, beta)
    assert sdpa.calls == 0
    s = beta * q @ k.mT + r + b
    want = torch.exp(s) / torch.exp(2 * s).sum(-1, keepdim=True) @ v
    assert float(((got - want) / want.abs().max()).abs().max()) < 1e-12


def test_normalised_exponential_is_not_fused_when_exp_is_used_elsewhere(normalised_exp_parts, monkeypatch):
    inputs, S, rule = normalised_exp_parts
    gamma = uf.exp(S)
    outs = [rule(gamma, gamma), doit(gamma)]
    assert not _nodes(outs, FusedAttention)
    fn = generate("f", list(inputs), [Output("matrix", o) for o in outs])
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    args = _normalised_exp_inputs()
    got, g = fn(*args)
    assert sdpa.calls == 0
    q, k, _v, r, b, beta = args
    want = torch.exp(beta * q @ k.mT + r + b)  # entries up to e⁶: relative to the largest
    assert float((g - want).abs().max() / want.abs().max()) < 1e-12
    assert float((got - _softmax_reference(*args)).abs().max()) < 1e-12


def test_gradients_through_the_fused_step(normalised_exp_parts):
    """Autograd through the fused step against central differences (gradcheck): through SDPA's
    backward (queries only), and with the key bias requiring grad too (then :func:`runtime.attention`
    writes the softmax out); the path under ``torch.func.jacrev`` against jacrev of the plain formula."""
    inputs, S, rule = normalised_exp_parts
    fn = generate("f", list(inputs), [Output("matrix", rule(uf.exp(S), uf.exp(S)))])
    q, k, v, r, b, beta = _normalised_exp_inputs()
    q = q[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q_: fn(q_, k, v, r, b, beta), (q,), eps=1e-6, atol=1e-8)
    bg = b.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q_, b_: fn(q_, k, v, r, b_, beta), (q, bg), eps=1e-6, atol=1e-8)
    jq = torch.func.jacrev(lambda q_: fn(q_, k, v, r, b, beta))(q.detach())
    want = torch.func.jacrev(lambda q_: _softmax_reference(q_, k, v, r, b, beta))(q.detach())
    assert float((jq - want).abs().max()) < 1e-12


def test_yang_huang_wipf_step_is_one_attention_call(monkeypatch):
    """The attention MM step (α = 1): one SDPA call, Y Wsᵀ computed once (one matrix product), equal
    to the closed form D⁻¹ Γ Y with Γ = exp(−½‖Ws(yᵢ − yⱼ)‖²), D = diag(Γ 1)."""
    from unfold.catalogue import yang_huang_wipf as yhw

    step = yhw.attention_step(1.0)
    g = torch.Generator().manual_seed(4)
    Y = torch.randn(2, 6, 3, generator=g, dtype=DT)
    Ws = torch.eye(3, dtype=DT) + 0.3 * torch.randn(3, 3, generator=g, dtype=DT)
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    with CallCount() as mm:
        got = step(Y, Ws=Ws)  # the anchor A is Y
    assert sdpa.calls == 1 and mm.calls == 1
    Z = Y @ Ws.mT
    gam = torch.exp(-0.5 * torch.cdist(Z, Z) ** 2)
    want = gam / gam.sum(-1, keepdim=True) @ Y
    assert float((got - want).abs().max()) < 1e-12


class CallCount(torch.overrides.TorchFunctionMode):
    """Counts the torch calls named in ``names`` whose arguments satisfy ``which`` (default: all);
    matrix products by default (``@``, matmul, mm, bmm)."""

    def __init__(self, names: frozenset[str] = frozenset({"matmul", "__matmul__", "__rmatmul__", "mm", "bmm"}),
                 which: Callable[..., bool] = lambda *a: True) -> None:
        super().__init__()
        self.names, self.which, self.calls = names, which, 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in self.names and self.which(*args):
            self.calls += 1
        return func(*args, **(kwargs or {}))


# ---- tokens as columns: X softmax_col(β Xᵀ ξ) -----------------------------------------------------
@pytest.fixture
def column_parts() -> Iterator[tuple[Any, ...]]:
    """Hopfield retrieval with tokens as columns (Ramsauer et al.'s layout): stored patterns
    ``X`` (d × n), queries ``ξ`` (d × m), a keys × queries mask (n × m)."""
    d, n, m = uf.dims("d n m")
    X, Xi, M = uf.param("X", d, n), uf.state("Xi", d, m), uf.mask("M", n, m)
    yield X, Xi, M, uf.scalar("beta")


def _column_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(2, 4, 7, generator=g, dtype=DT), torch.randn(2, 4, 3, generator=g, dtype=DT)


def _column_reference(X: torch.Tensor, Xi: torch.Tensor, beta: float, mask: Any = None) -> torch.Tensor:
    """``X softmax_col(β Xᵀ ξ)``, the mask applied to the n × m scores, written out in plain torch."""
    s = beta * X.mT @ Xi
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return X @ torch.softmax(s, dim=-2)


def test_hopfield_columns_step_is_one_attention_call(monkeypatch):
    """The catalogue's tokens-as-columns Hopfield step (η = 1) is fused: one SDPA call, equal to
    ``X softmax(β Xᵀ ξ, dim=-2)``; autograd through the fused kernel (keys and values one copy of
    ``Xᵀ``) equals autograd through the formula, for ``X`` and ``ξ``."""
    from unfold.energies import hopfield_tokens
    from unfold.steps import GradientStep

    step = GradientStep(hopfield_tokens(), wrt="Xi", step=1.0)
    X, Xi = _column_inputs()
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    got = step(Xi, X=X, beta=0.6)
    assert sdpa.calls == 1
    assert float((got - _column_reference(X, Xi, 0.6)).abs().max()) < 1e-12
    Xg, Xig = X.clone().requires_grad_(), Xi.clone().requires_grad_()
    w = torch.randn(got.shape, generator=torch.Generator().manual_seed(6), dtype=DT)
    gx, gxi = torch.autograd.grad((step(Xig, X=Xg, beta=0.6) * w).sum(), (Xg, Xig))
    wx, wxi = torch.autograd.grad((_column_reference(Xg, Xig, 0.6) * w).sum(), (Xg, Xig))
    assert float((gx - wx).abs().max()) < 1e-12 and float((gxi - wxi).abs().max()) < 1e-12


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_column_attention_with_a_mask_is_fused(column_parts, monkeypatch, kind):
    """``X softmax_col(β Xᵀ ξ; M)`` with a keys × queries mask (boolean or additive): fused (the mask
    transposed to queries × keys for SDPA) and equal to the formula with the mask on the scores."""
    X, Xi, M, beta = column_parts
    out = doit(X @ uf.softmax(beta * X.T @ Xi, axis=0, mask=M))
    assert len(_nodes([out], FusedAttention)) == 1
    fn = generate("f", [X, Xi, M, beta], [Output("matrix", out)])
    x, xi = _column_inputs()
    g = torch.Generator().manual_seed(7)
    if kind == "bool":
        mask = torch.rand(7, 3, generator=g) < 0.6
        mask[0] = True  # every query keeps a key (else the formula's softmax is 0/0)
    else:
        mask = torch.randn(7, 3, generator=g, dtype=DT)
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    got = fn(x, xi, mask, 0.6)
    assert sdpa.calls == 1
    assert float((got - _column_reference(x, xi, 0.6, mask)).abs().max()) < 1e-12


def test_column_attention_is_not_fused_when_the_softmax_is_used_elsewhere(column_parts, monkeypatch):
    X, Xi, _M, beta = column_parts
    S = doit(uf.softmax(beta * X.T @ Xi, axis=0))
    outs = [doit(X @ S), S]
    assert not _nodes(outs, FusedAttention)
    fn = generate("f", [X, Xi, beta], [Output("matrix", o) for o in outs])
    x, xi = _column_inputs()
    sdpa = _Counted(monkeypatch, "scaled_dot_product_attention")
    got, probs = fn(x, xi, 0.6)
    assert sdpa.calls == 0
    want = torch.softmax(0.6 * x.mT @ xi, dim=-2)
    assert float((probs - want).abs().max()) < 1e-12
    assert float((got - x @ want).abs().max()) < 1e-12


def test_transforms_through_the_fused_column_step():
    """``torch.func.grad`` and ``jacrev`` through the fused tokens-as-columns step against the same
    transforms of the plain formula (float64, 1e-12)."""
    from unfold.energies import hopfield_tokens
    from unfold.steps import GradientStep

    step = GradientStep(hopfield_tokens(), wrt="Xi", step=1.0)
    X, Xi = _column_inputs()
    X, Xi = X[0], Xi[0]
    j = torch.func.jacrev(lambda xi: step(xi, X=X, beta=0.6))(Xi)
    jw = torch.func.jacrev(lambda xi: _column_reference(X, xi, 0.6))(Xi)
    assert float((j - jw).abs().max()) < 1e-12
    g = torch.func.grad(lambda x: step(Xi, X=x, beta=0.6).square().sum())(X)
    gw = torch.func.grad(lambda x: _column_reference(x, Xi, 0.6).square().sum())(X)
    assert float((g - gw).abs().max()) < 1e-12
