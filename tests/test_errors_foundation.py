"""Bad input to the foundation raises a subclass of UnfoldError naming the offending term."""

import pytest
import sympy as sp
import torch

import unfold as uf


@pytest.fixture
def syms():
    d, n = uf.dims("d n")
    return d, n, uf.state("Y", d, n), uf.param("W", d, d), uf.param("X", d, n)


def test_non_scalar_energy(syms):
    d, n, Y, W, X = syms
    with pytest.raises(uf.NotScalarError, match=r"d×n matrix \(W\*Y\), not a scalar"):
        uf.Energy(W * Y)


def test_shape_mismatch_in_product_names_factors(syms):
    d, n, Y, W, X = syms
    uf.Energy(uf.trace(X * Y.T * X * X.T))  # well-shaped: accepted
    with pytest.raises(uf.ShapeMismatchError, match=r"X is d×n but Y is d×n \(n ≠ d\)"):
        uf.Energy(uf.fro2(X * Y))


def test_shape_mismatch_in_product(syms):
    d, n, Y, W, X = syms
    with pytest.raises(uf.ShapeMismatchError, match=r"product Y @ X"):
        uf.Energy(uf.sum_entries(W * Y * X))


def test_shape_mismatch_in_sum(syms):
    d, n, Y, W, X = syms
    with pytest.raises(uf.ShapeMismatchError, match=r"sum of .*shapes differ"):
        uf.Energy(uf.sum_entries(Y + W))


def test_undeclared_scalar_symbol(syms):
    d, n, Y, W, X = syms
    with pytest.raises(uf.UndeclaredSymbolError, match=r"'gamma'.*uf.scalar"):
        uf.Energy(sp.Symbol("gamma") * uf.fro2(Y))


def test_undeclared_matrix(syms):
    d, n, Y, W, X = syms
    M = sp.MatrixSymbol("M", d, n)
    with pytest.raises(uf.UndeclaredSymbolError, match=r"'M'.*uf.state"):
        uf.Energy(uf.sum_entries(M + Y))


def test_unsupported_function(syms):
    d, n, Y, W, X = syms
    with pytest.raises(uf.UnsupportedNodeError, match="gamma"):
        uf.Energy(sp.gamma(uf.fro2(Y)))


def test_string_is_not_an_energy():
    with pytest.raises(uf.NotScalarError, match="uf.parse"):
        uf.Energy("x**2")


def test_runtime_dims_disagree(syms):
    d, n, Y, W, X = syms
    E = uf.Energy(uf.trace(Y.T * W * Y))
    with pytest.raises(uf.DimMismatchError, match=r"'d'.*'Y'.*'W'"):
        E.compile().energy_fn(torch.ones(3, 4, dtype=torch.float64), torch.eye(5, dtype=torch.float64))


def test_rank_one_tensor_is_refused(syms):
    d, n, Y, W, X = syms
    E = uf.Energy(uf.fro2(Y))
    with pytest.raises(uf.InputError, match=r"\(\.\.\., rows, cols\)"):
        E.compile().energy_fn(torch.ones(3, dtype=torch.float64))


def test_all_errors_share_one_base():
    for name in uf.errors.__all__:
        assert issubclass(getattr(uf, name), uf.UnfoldError)


def test_gradient_check_failure_names_worst_entry(monkeypatch):
    from unfold.energies import hopfield

    E = hopfield()
    cm = E.compile()
    good = cm.grad_fn("xi")
    broken = type(good)(good.name, good.inputs, good.outputs, good.source, lambda *a: good.fn(*a) * 1.001)
    monkeypatch.setitem(cm._grad_fns, E.symbol("xi"), broken)
    with pytest.raises(uf.GradientCheckError, match=r"worst entry: xi"):
        uf.check_gradient(E, wrt=["xi"])


def test_dimension_in_no_matrix_cannot_be_bound():
    d, n = uf.dims("d n")
    N = uf.dim("N")
    E = uf.Energy(uf.fro2(uf.state("Y", d, n)) + uf.log(N))
    with pytest.raises(uf.ShapeMismatchError, match=r"\['N'\].*no input matrix"):
        E.compile()
