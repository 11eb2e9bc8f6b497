"""The energy language and the reverse-mode engine: structure of derived gradients."""

import sympy as sp
import pytest

import unfold as uf
from unfold.symbolic import Softmax, gradient
from unfold.symbolic.tidy import tidy


@pytest.fixture
def hop():
    d, n = uf.dims("d n")
    X, xi, beta = uf.param("X", d, n), uf.state("xi", d, 1), uf.scalar("beta", positive=True)
    E = uf.Energy(-uf.lse(beta * X.T @ xi) / beta + uf.fro2(xi) / 2)
    return E, X, xi, beta


def test_hopfield_gradient_display(hop):
    E, X, xi, beta = hop
    assert uf.to_str(E.grad(xi)) == "xi - X*Softmax(beta*X.T*xi)"


def test_hopfield_unit_step_is_attention_structurally(hop):
    E, X, xi, beta = hop
    assert E.update_rule(xi, 1) == X * Softmax(beta * X.T * xi)


def test_hopfield_general_step(hop):
    E, X, xi, beta = hop
    eta = uf.scalar("eta", positive=True)
    rule = E.update_rule(xi, eta)
    expected = tidy((eta * X * Softmax(beta * X.T * xi) + (1 - eta) * xi).expand())
    assert sp.expand(rule - expected).doit() == sp.ZeroMatrix(*xi.shape) or tidy((rule - expected).expand()) == sp.ZeroMatrix(*xi.shape)


def test_latex_of_gradient(hop):
    E, X, xi, beta = hop
    tex = uf.to_latex(E.grad(xi))
    assert r"\operatorname{softmax}" in tex and "xi" in tex


def test_named_terms_are_kept():
    d, n = uf.dims("d n")
    Y, W = uf.state("Y", d, n), uf.param("W", d, d)
    E1 = uf.Energy(uf.fro2(Y) / 2, name="quad")
    E2 = uf.Energy(-uf.trace(Y.T * W * Y), name="coupling")
    E = E1 + E2 + uf.Energy(uf.l1(Y), name="quad")
    assert list(E.terms) == ["quad", "coupling", "quad_2"]
    assert E.term("coupling").expr == -uf.trace(Y.T * W * Y)


def test_coding_rate_gradient_matrix_form():
    d, n = uf.dims("d n")
    Z, a = uf.state("Z", d, n), uf.scalar("alpha", positive=True)
    g = uf.Energy(uf.logdet(uf.identity(d) + a * Z * Z.T) / 2).grad(Z)
    assert g == a * sp.Inverse(a * Z * Z.T + sp.Identity(d)) * Z


def test_trace_sum_gradient_is_not_zero():
    """sympy 1.14's .diff returns 0 here; the engine returns I + W.T."""
    d = uf.dim("d")
    A, W = uf.state("A", d, d), uf.param("W", d, d)
    assert uf.Energy(uf.trace(A) + uf.trace(A * W)).grad(A) == sp.Identity(d) + W.T


def test_quadratic_gradient_expands_to_textbook_form():
    d, n = uf.dims("d n")
    Y, W = uf.state("Y", d, n), uf.param("W", d, d)
    g = uf.Energy(uf.fro2(Y - W * Y) / 2).grad(Y)
    I = sp.Identity(d)
    assert tidy(g.expand()) == tidy(((I - W).T * (I - W) * Y).expand())


def test_gradient_wrt_scalar_parameter():
    d, n = uf.dims("d n")
    Z, lam = uf.state("Z", d, n), uf.scalar("lam")
    g = uf.Energy(lam * uf.l1(Z)).grad(lam)
    assert g == uf.l1(Z)


def test_unknown_node_raises_never_zero():
    d = uf.dim("d")
    A = uf.state("A", d, d)

    class Mystery(sp.Function):
        pass

    with pytest.raises(uf.UnsupportedNodeError, match="no differentiation rule|cannot differentiate"):
        gradient(Mystery(uf.trace(A)), A)


def test_gradient_of_absent_variable_is_genuinely_zero():
    d = uf.dim("d")
    A, B = uf.state("A", d, d), uf.state("B", d, d)
    assert gradient(uf.trace(A), B) == sp.ZeroMatrix(d, d)
