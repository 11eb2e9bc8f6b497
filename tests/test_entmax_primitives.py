"""The entmax primitives (unfold.symbolic.primitives.entmax, unfold.codegen.kernels.entmax) against the `entmax`
package (PyPI 1.3), closed forms, finite differences and the gradient check."""

import entmax as pkg
import mpmath
import pytest
import sympy as sp
import torch

torch.set_num_threads(1)

import unfold as uf
from unfold import symbolic as s
from unfold.codegen.kernels.entmax import _entmax_bisect, entmax_conj_cols, entmax_cols, entmax_weights
from unfold.errors import GradientCheckError, ShapeMismatchError
from unfold.symbolic.primitives.entmax import Entmax, mp_conjugate, mp_entmax

F64 = torch.float64


def _theta(seed: int, shape=(5, 7, 4), scale: float = 3.0) -> torch.Tensor:
    """Columns (dim −2) spread widely enough that the maps are sparse."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_the_test_points_are_sparse():
    p = entmax_cols(_theta(0), 2)
    assert bool((p == 0).any()) and bool((p > 0).sum(-2).min() >= 1)


def test_sparsemax_sort_equals_package_and_bisection():
    th = _theta(1)
    own = entmax_cols(th, 2)
    ref = pkg.sparsemax(th.mT, dim=-1).mT
    bis = _entmax_bisect(th, 2.0)
    assert torch.allclose(own, ref, rtol=0, atol=1e-14) and torch.allclose(own, bis, rtol=0, atol=1e-12)
    assert torch.allclose(own.sum(-2), torch.ones(5, 4, dtype=F64), atol=1e-14) and bool((own >= 0).all())


@pytest.mark.parametrize("alpha", [1.25, 1.5, 3.0])
def test_entmax_bisection_equals_package(alpha):
    th = _theta(2)
    own = entmax_cols(th, alpha)
    ref = pkg.entmax_bisect(th.mT, alpha=alpha, dim=-1, n_iter=100).mT
    assert torch.allclose(own, ref, rtol=0, atol=1e-12)
    if alpha == 1.5:
        assert torch.allclose(own, pkg.entmax15(th.mT, dim=-1).mT, rtol=0, atol=1e-12)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0])
def test_backward_is_the_implicit_jacobian(alpha):
    """Our Jacobian (implicit differentiation) against autograd through the package's functions and
    against central finite differences; symmetric PSD."""
    th = _theta(3, shape=(6, 1))[:, 0]
    J = torch.autograd.functional.jacobian(lambda x: entmax_cols(x[:, None], alpha)[:, 0], th)
    ref_fn = (lambda x: pkg.sparsemax(x, dim=-1)) if alpha == 2 else (lambda x: pkg.entmax_bisect(x, alpha=alpha, n_iter=100))
    J_pkg = torch.autograd.functional.jacobian(ref_fn, th)
    assert torch.allclose(J, J_pkg, rtol=0, atol=1e-10)
    h = 1e-6
    fd = torch.stack([(entmax_cols((th + h * e)[:, None], alpha) - entmax_cols((th - h * e)[:, None], alpha))[:, 0] / (2 * h)
                      for e in torch.eye(6, dtype=F64)], dim=1)
    assert torch.allclose(J, fd, rtol=0, atol=1e-7)
    assert torch.allclose(J, J.mT, atol=1e-14) and float(torch.linalg.eigvalsh(J).min()) > -1e-14


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0])
def test_conjugate_against_package_loss_and_closed_form(alpha):
    """Ω*(θ) = L_FY(θ; e_y) + θ_y (the package's Fenchel–Young loss); for α = 2 also
    ½‖θ‖² − ½‖θ − sparsemax(θ)‖² + ½."""
    th = _theta(4, shape=(4, 6))                      # 6 columns of length 4
    own = entmax_conj_cols(th, alpha)[0]
    y = torch.zeros(6, dtype=torch.long)
    loss = pkg.sparsemax_loss(th.mT, y) if alpha == 2 else pkg.entmax_bisect_loss(th.mT, y, alpha=alpha, n_iter=100)
    assert torch.allclose(own, loss + th[0], rtol=0, atol=1e-12)
    if alpha == 2:
        p = entmax_cols(th, 2)
        closed = 0.5 * (th * th).sum(0) - 0.5 * ((th - p) ** 2).sum(0) + 0.5
        assert torch.allclose(own, closed, rtol=0, atol=1e-13)
    # its gradient is entmax (envelope theorem)
    g = torch.func.grad(lambda x: entmax_conj_cols(x, alpha).sum())(th)
    assert torch.allclose(g, entmax_cols(th, alpha), rtol=0, atol=1e-13)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0])
def test_explicit_size_evaluator_matches_package(alpha):
    """The mpmath evaluator of leg 2 (sorting / bisection at 30+ digits) against the package."""
    th = _theta(5, shape=(6,))
    with mpmath.workdps(40):
        p = mp_entmax([mpmath.mpf(float(t)) for t in th], alpha)
        conj = mp_conjugate([mpmath.mpf(float(t)) for t in th], alpha)
    ref = pkg.sparsemax(th, dim=-1) if alpha == 2 else pkg.entmax_bisect(th, alpha=alpha, n_iter=100)
    assert max(abs(float(a) - float(b)) for a, b in zip(p, ref)) < 1e-13
    assert abs(float(conj) - float(entmax_conj_cols(th[:, None], alpha))) < 1e-13


def test_explicit_expansion_differentiates_to_the_jacobian():
    """Leg 2's scalar functions: ∂p_i/∂θ_j from sympy's fdiff equals the autograd Jacobian."""
    d, = s.dims("d")
    M = s.param("M", d, 1)
    env = s.explicit_env([M], {d: 4})
    col = s.expand_explicit(Entmax(M, 2), env)
    th = _theta(6, shape=(4,))
    sub = {env[M][i, 0]: sp.Float(float(th[i]), 30) for i in range(4)}
    J = torch.autograd.functional.jacobian(lambda x: entmax_cols(x[:, None], 2)[:, 0], th)
    for i in range(4):
        for j in range(4):
            v = sp.diff(col[i, 0], env[M][j, 0]).xreplace(sub).evalf(30)
            assert abs(float(v) - float(J[i, j])) < 1e-14


def _hopfield(alpha):
    d, n, m = s.dims("d n m")
    X, xi, beta = s.param("X", d, n), s.state("xi", d, m), s.scalar("beta", positive=True)
    return uf.Energy(terms={"conj": -s.entmax_lse(beta * X.T * xi, alpha) / beta, "quadratic": s.fro2(xi) / 2})


@pytest.mark.parametrize("alpha", [1.5, 2, 3])
def test_gradient_check_at_a_sparse_point(alpha):
    E = _hopfield(alpha)
    assert uf.to_str(E.grad("xi")).startswith("xi - X*Entmax(beta*X.T*xi")
    g = torch.Generator().manual_seed(7)
    inputs = {"X": 2 * torch.randn(4, 6, generator=g, dtype=F64), "xi": 2 * torch.randn(3, 4, 2, generator=g, dtype=F64),
              "beta": 1.5}
    assert bool((entmax_cols(1.5 * inputs["X"].T @ inputs["xi"], alpha) == 0).any())
    assert uf.check_gradient(E, inputs=inputs).passed


def test_a_wrong_vjp_is_caught(monkeypatch):
    """Mutation: the softmax-style rule g = p (instead of p^{2−α} on the support) fails the check."""
    from sympy.matrices.expressions import HadamardProduct, OneMatrix

    from unfold.symbolic.nodes import lazy_add, lazy_mul

    def wrong(self, G):
        SG = HadamardProduct(self, G)
        return [(self.arg, lazy_add(SG, lazy_mul(-1, HadamardProduct(self, lazy_mul(OneMatrix(self.rows, self.rows), SG)))))]

    from dataclasses import replace

    from unfold.symbolic.primitives import registry

    monkeypatch.setitem(registry._PRIMITIVES, Entmax, replace(registry.primitives()[Entmax], vjp=wrong))
    d, n = s.dims("d n")
    X, Y = s.param("X", d, n), s.state("Y", n, 2)
    E = uf.Energy(s.fro2(X * s.sparsemax(3 * Y)) / 2)
    with pytest.raises(GradientCheckError):
        uf.check_gradient(E)


def test_margin_gives_exact_one_hot():
    """α-entmax(θ) = e_i iff θ_i − max_{j≠i} θ_j ≥ 1/(α−1)."""
    for alpha in (1.5, 2.0, 3.0):
        margin = 1 / (alpha - 1)
        at = torch.tensor([[margin], [0.0], [-0.3]], dtype=F64)
        below = torch.tensor([[0.97 * margin], [0.0], [-0.3]], dtype=F64)
        assert torch.equal(entmax_cols(at, alpha)[:, 0], torch.tensor([1.0, 0.0, 0.0], dtype=F64)) or \
            float((entmax_cols(at, alpha)[:, 0] - torch.tensor([1.0, 0, 0], dtype=F64)).abs().max()) < 1e-12
        assert float(entmax_cols(below, alpha)[1, 0]) > 1e-4


@pytest.mark.parametrize("bad", [1, 1.0, 0.5, "2", True])
def test_alpha_must_be_a_number_above_one(bad):
    d, = s.dims("d")
    with pytest.raises(ShapeMismatchError):
        s.entmax(s.param("M", d, 2), bad)


def test_weights_are_the_support_indicator_for_sparsemax():
    th = _theta(8)
    assert torch.equal(entmax_weights(th, 2), (entmax_cols(th, 2) > 0).to(F64))


def test_parser_knows_the_primitives_and_refuses_a_symbolic_alpha():
    E = uf.parse("-entmax_lse(beta * X.T @ xi, 1.5) / beta + fro2(xi) / 2", dims="d n", states={"xi": "d"},
                 params={"X": "d,n"}, scalars=["beta:positive"])
    assert uf.to_str(E.grad("xi")) == "xi - X*Entmax(beta*X.T*xi, 1.5)"
    with pytest.raises(ShapeMismatchError, match="alpha must be a number"):
        uf.parse("fro2(X @ sparsemax(xi)) + entmax_lse(xi, beta)", dims="d n", states={"xi": "n"},
                 params={"X": "d,n"}, scalars=["beta"])


def test_forward_mode_jacobian_equals_reverse_mode():
    th = _theta(9, shape=(6, 1))[:, 0]
    f = lambda x: entmax_cols(x[:, None], 1.5)[:, 0]  # noqa: E731
    assert torch.allclose(torch.func.jacfwd(f)(th), torch.func.jacrev(f)(th), rtol=0, atol=1e-15)
