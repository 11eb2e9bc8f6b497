"""Generated torch code: batching, unbatched-parameter reduction, dtype/device, dims checks,
torch.func.vmap and torch.compile."""

import math

import pytest
import torch

import unfold as uf
from unfold.energies import coding_rate, hopfield, quadratic_residual


def _hop_inputs(B=(2, 3), d=4, n=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(*B, d, 1, generator=g, dtype=dtype), torch.randn(d, n, generator=g, dtype=dtype), 0.7)


def test_hopfield_energy_matches_formula_written_from_paper():
    E = hopfield()
    xi, X, beta = _hop_inputs()
    got = E.compile().energy_fn(xi, X, beta)
    s = beta * torch.einsum("dn,abdo->abn", X, xi)
    ref = -torch.logsumexp(s, dim=-1) / beta + 0.5 * (xi ** 2).sum(dim=(-2, -1))
    assert got.shape == (2, 3)
    assert torch.allclose(got, ref, atol=1e-13, rtol=0)


def test_hopfield_gradient_matches_closed_form():
    E = hopfield()
    xi, X, beta = _hop_inputs()
    g = E.compile().grad("xi", xi, X, beta)
    p = torch.softmax(beta * (X.T @ xi), dim=-2)
    assert torch.allclose(g, xi - X @ p, atol=1e-13, rtol=0)


def test_unbatched_parameter_gradient_is_batch_summed():
    E = quadratic_residual()
    g = torch.Generator().manual_seed(1)
    Y, W = torch.randn(6, 4, 5, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)
    gen = E.compile().grad("W", Y, W)
    auto = torch.func.grad(lambda w: E.compile().energy_fn(Y, w).sum())(W)
    assert gen.shape == (4, 4)
    assert torch.allclose(gen, auto, atol=1e-12, rtol=0)


def test_scalar_parameter_gradient_shape_follows_input():
    E = hopfield()
    xi, X, _ = _hop_inputs()
    assert E.compile().grad("beta", xi, X, 0.7).shape == ()
    beta = torch.full((2, 3), 0.7, dtype=torch.float64)
    assert E.compile().grad("beta", xi, X, beta).shape == (2, 3)


def test_float32_follows_inputs_and_agrees_with_float64():
    E = coding_rate()
    g = torch.Generator().manual_seed(2)
    Z = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    g64 = E.compile().grad("Z", Z, 0.5)
    g32 = E.compile().grad("Z", Z.float(), 0.5)
    assert g32.dtype == torch.float32
    assert torch.allclose(g32.double(), g64, atol=1e-5, rtol=0)


def test_runtime_dim_mismatch_names_dim_and_both_tensors():
    E = hopfield()
    xi, X, beta = _hop_inputs()
    with pytest.raises(uf.DimMismatchError, match=r"dimension 'd'.*'xi'.*'X'"):
        E.compile().energy_fn(xi, X[:3], beta)


def test_runtime_dtype_mismatch_is_an_input_error():
    E = hopfield()
    xi, X, beta = _hop_inputs()
    with pytest.raises(uf.InputError, match="dtype"):
        E.compile().energy_fn(xi, X.float(), beta)


def test_vmap_over_batch_matches_batched_call():
    E = hopfield()
    xi, X, beta = _hop_inputs(B=(5,))
    f = E.compile().grad_fn("xi").fn
    v = torch.func.vmap(lambda x: f(x, X, beta))(xi)
    assert torch.allclose(v, f(xi, X, beta), atol=1e-14, rtol=0)
    per_sample = torch.func.vmap(torch.func.grad(lambda x: E.compile().energy_fn(x, X, beta)))(xi)
    assert torch.allclose(per_sample, v, atol=1e-13, rtol=0)


def test_torch_compile_of_generated_gradient():
    E = hopfield()
    xi, X, beta = _hop_inputs(B=(4,))
    f = E.compile().grad_fn("xi").fn
    compiled = torch.compile(f, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(xi, X, beta), f(xi, X, beta), atol=1e-14, rtol=0)


def test_generated_source_is_inspectable_and_runs_batched():
    """The shown source is the code that runs: executed afresh (with the runtime helpers only) it
    defines ``grad_xi(xi, X, beta)``, which equals ``xi − X softmax(βXᵀxi)`` on a batch of queries."""
    E = hopfield()
    fn = E.compile().grad_fn("xi")
    ns = {k: v for k, v in fn.fn.__globals__.items() if k != "grad_xi"}
    exec(compile(fn.source, "<generated grad_xi>", "exec"), ns)  # safe: our own generated code
    xi, X, beta = _hop_inputs(B=(4, 2))
    want = xi - X @ torch.softmax(beta * X.mT @ xi, dim=-2)
    got = ns["grad_xi"](xi, X, beta) if "grad_xi" in ns else None
    assert got is not None and torch.allclose(got, want, atol=1e-13, rtol=0)


def test_inverse_times_prints_as_solve():
    assert "torch.linalg.solve" in coding_rate().compile().grad_fn("Z").source


def test_constants_of_dims_are_python_scalars():
    d, n = uf.dims("d n")
    Y = uf.state("Y", d, n)
    E = uf.Energy(uf.fro2(Y) / n + uf.log(n))
    Yt = torch.ones(2, 3, 4, dtype=torch.float64)
    assert torch.allclose(E.compile().energy_fn(Yt), torch.full((2,), 12 / 4 + math.log(4), dtype=torch.float64))
