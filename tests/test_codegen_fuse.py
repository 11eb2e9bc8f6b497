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
            torch.randn(7, 6, generator=g, dtype=DT))


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
