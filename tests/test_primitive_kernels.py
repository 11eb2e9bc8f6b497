"""Torch kernels resolved through the primitive registry (``unfold.codegen.kernels``).

A primitive's record names the kernels its lowering calls; code generation puts exactly the
declared ones into the generated module's namespace.  Checked here: every declared name resolves,
every kernel is declared by some primitive, an undeclared name is refused naming it, and the
generated energy of each primitive with kernels runs with *only its own record's kernels* in the
namespace and equals a plain-torch reference written from the definition (float64, rel 1e-12).
"""

from __future__ import annotations

from typing import Any, Callable

import entmax
import pytest
import sympy as sp
import torch
from sympy import Identity

import unfold as uf
from unfold.codegen import kernels
from unfold.errors import UnsupportedNodeError
from unfold.symbolic.primitives import primitives, scalar_functions
from unfold.symbolic.primitives.adjugate import Adjugate
from unfold.symbolic.primitives.entmax import Entmax, EntmaxLSE, EntmaxWeights
from unfold.symbolic.primitives.layernorm import LayerNorm, LNInvStd
from unfold.symbolic.primitives.reductions import LogDet
from unfold.symbolic.primitives.softmax import LSE, Softmax

WITH_KERNELS = {node: p for node, p in primitives().items() if p.kernels}
N = 5
T = torch.Tensor


def _masked_cols(x: T, keep: T) -> T:
    return x.masked_fill(~keep, float("-inf"))


CAUSAL = torch.ones(N, N, dtype=torch.bool).triu()  # key (row) ≤ query (column)
PAD = torch.rand(N, N, generator=torch.Generator().manual_seed(3)) > 0.4
PAD[0] = True  # every query keeps at least one key

# node type → (energy of X, C, mask M; the same energy in plain torch from the definition)
Case = tuple[Callable[[Any, Any, Any], Any], Callable[[T, T, T], T]]
CASES: dict[type, Case] = {
    Adjugate: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, Adjugate(X))),
               lambda x, c, m: (c * torch.linalg.det(x) * torch.linalg.inv(x)).sum()),
    Entmax: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, Entmax(X, sp.Rational(3, 2)))),
             lambda x, c, m: (c * entmax.entmax15(x, dim=0)).sum()),
    EntmaxWeights: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, EntmaxWeights(X, sp.Rational(3, 2)))),
                    lambda x, c, m: (c * entmax.entmax15(x, dim=0).sqrt()).sum()),  # g = p^(2−α)
    # Ω*₂ per column = ⟨p, θ⟩ + (1 − Σp²)/2 with p = sparsemax(θ), weighted by C's row sums
    EntmaxLSE: (lambda X, C, M: uf.sum_entries(EntmaxLSE(X, 2) * C),
                lambda x, c, m: (c.sum(1) * ((p := entmax.sparsemax(x, dim=0)) * x + (1 / N - p ** 2) / 2).sum(0)).sum()),
    LogDet: (lambda X, C, M: LogDet(X.T * X + Identity(X.rows)),
             lambda x, c, m: torch.logdet(x.T @ x + torch.eye(N, dtype=x.dtype))),
    LayerNorm: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, LayerNorm(X, sp.S.One / 10))),
                lambda x, c, m: (c * torch.nn.functional.layer_norm(x.T, (N,), eps=0.1).T).sum()),
    LNInvStd: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, LNInvStd(X, sp.S.One / 10))),
               lambda x, c, m: (c * torch.rsqrt(x.var(0, correction=0, keepdim=True) + 0.1)).sum()),
    LSE: (lambda X, C, M: uf.lse(X, mask=uf.causal),
          lambda x, c, m: _masked_cols(x, CAUSAL).logsumexp(0).sum()),
    Softmax: (lambda X, C, M: uf.sum_entries(uf.hadamard(C, uf.softmax(X, mask=M))),
              lambda x, c, m: (c * torch.softmax(_masked_cols(x, m), dim=0)).sum()),
}


def test_every_declared_kernel_resolves() -> None:
    declared = kernels.declared()
    for node, p in WITH_KERNELS.items():
        for name in p.kernels:
            assert callable(declared[name]), (node.__name__, name)
    for name, f in scalar_functions().items():
        assert set(f.kernels) <= set(declared), name
    # and no kernel module defines a kernel that no primitive calls
    assert set(kernels.kernels()) == set(declared)


def test_an_unknown_kernel_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedNodeError, match=r"Stray declares torch kernel\(s\) \['_no_such_kernel'\]"):
        kernels.resolve(("_adjugate", "_no_such_kernel"), "Stray")


def test_every_primitive_with_kernels_has_a_case() -> None:
    assert set(WITH_KERNELS) <= set(CASES), sorted(c.__name__ for c in set(WITH_KERNELS) - set(CASES))


def _value(node: type, monkeypatch: pytest.MonkeyPatch, own: tuple[str, ...]) -> tuple[float, float]:
    """The generated energy (namespace: the runtime helpers + the kernels ``own``) and the reference."""
    monkeypatch.setattr(kernels, "declared", lambda: kernels.resolve(own))
    d = uf.dims("d")[0]
    X, C = uf.state("X", d, d), uf.state("C", d, d)
    M = uf.mask("M", d, d)
    build, reference = CASES[node]
    E = uf.Energy(build(X, C, M))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, N, generator=g, dtype=torch.float64) + 2 * torch.eye(N, dtype=torch.float64)
    c = torch.randn(N, N, generator=g, dtype=torch.float64)
    inputs = {"X": x, "C": c, "M": PAD}
    cm = E.compile()
    got = cm(**{str(s): inputs[str(s)] for s in E.inputs})
    return float(got), float(reference(x, c, PAD))


@pytest.mark.parametrize("node", sorted(WITH_KERNELS, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_generated_code_runs_with_its_own_kernels(node: type, monkeypatch: pytest.MonkeyPatch) -> None:
    got, want = _value(node, monkeypatch, WITH_KERNELS[node].kernels)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_without_its_kernels_generated_code_fails() -> None:
    """Control: the namespace is really restricted to the declared kernels (code naming an
    undeclared kernel is refused when it is compiled)."""
    with pytest.MonkeyPatch.context() as mp, pytest.raises(UnsupportedNodeError, match="_adjugate"):
        _value(Adjugate, mp, ())
