"""det's gradient through the adjugate: finite and exact at singular matrices (issue 13).

Independent references (float64): the cofactor matrix written directly from its definition (plain loops
over minors, ``C_ij = (−1)^{i+j} det(minor_ij)``, ∂det/∂A = C), ``torch.func.grad`` of plain
``torch.linalg.det`` at invertible points, and central finite differences.  Tolerances: 1e-12 relative
for closed forms, 1e-6 for central differences (h = 1e-6, error O(h²) on polynomials of degree ≤ 4).
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch

import unfold as uf
from unfold import symbolic as s
from unfold.codegen.kernels.adjugate import adjugate

DT = torch.float64


def cofactors(A: torch.Tensor) -> torch.Tensor:
    """``C_ij = (−1)^{i+j} det(A without row i and column j)`` for one square matrix."""
    n = A.shape[-1]
    C = torch.empty(n, n, dtype=A.dtype)
    for i in range(n):
        for j in range(n):
            rows = [r for r in range(n) if r != i]
            cols = [c for c in range(n) if c != j]
            C[i, j] = (-1) ** (i + j) * (torch.linalg.det(A[rows][:, cols]) if n > 1 else torch.tensor(1.0, dtype=DT))
    return C


def of_rank(n: int, r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, r, dtype=DT, generator=g) @ torch.randn(r, n, dtype=DT, generator=g)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / max(float(b.abs().max()), 1.0))


POINTS = [("invertible", 4, 4), ("rank n-1", 4, 3), ("rank n-2", 4, 2), ("zero", 3, 0)]


@pytest.fixture(scope="module")
def det_grad():
    d = s.dim("d")
    A = s.state("A", d, d)
    return uf.Energy(s.det(A)).compile()


@pytest.mark.parametrize("what,n,r", POINTS)
def test_det_gradient_is_the_cofactor_matrix(det_grad, what, n, r):
    A = of_rank(n, r, seed=n + r)
    g = det_grad.grad("A", A=A)
    assert torch.isfinite(g).all(), what
    assert rel(g, cofactors(A)) < 1e-12, what
    if r == n:
        assert rel(g, torch.func.grad(torch.linalg.det)(A)) < 1e-12


def test_det_gradient_batched_mixed_ranks(det_grad):
    As = torch.stack([of_rank(4, r, seed=10 + r) for r in (4, 3, 2, 1)])
    g = det_grad.grad("A", A=As)
    assert g.shape == As.shape and torch.isfinite(g).all()
    for k in range(4):
        assert rel(g[k], cofactors(As[k])) < 1e-12


def test_det_gradient_displays_the_adjugate():
    d = s.dim("d")
    A = s.state("A", d, d)
    g = uf.Energy(s.det(A)).grad(A)
    assert uf.to_str(g) == "adj(A.T)"
    assert r"\operatorname{adj}" in uf.to_latex(g)


def test_det_squared_and_det_of_product_at_singular_points():
    """``det(A)²`` (gradient 2 det(A) C, 0 at singular A) and ``det(WY)`` with ``W`` d×k, ``Y`` k×d
    (k = d: sympy splits it into det W · det Y; k > d: one determinant of the product), ``W`` of rank
    d, d − 1, d − 2: gradient ``C(WY) Yᵀ``, nonzero at rank d − 1 although det(WY) = 0."""
    d, k = s.dims("d k")
    A = s.state("A", d, d)
    sq = uf.Energy(s.det(A) ** 2).compile()
    for r in (4, 3, 2):
        X = of_rank(4, r, seed=20 + r)
        expect = 2 * torch.linalg.det(X) * cofactors(X) if r == 4 else torch.zeros(4, 4, dtype=DT)
        got = sq.grad("A", A=X)
        assert torch.isfinite(got).all()
        assert float((got - expect).abs().max()) <= 1e-12 * max(float(expect.abs().max()), 1.0)
        if r == 4:
            assert rel(got, torch.func.grad(lambda M: torch.linalg.det(M) ** 2)(X)) < 1e-12
    W, Y = s.state("W", d, k), s.param("Y", k, d)
    prod = uf.Energy(s.det(W * Y)).compile()
    for kv, rank in ((4, 4), (5, 4), (5, 3), (5, 2), (4, 3)):
        g = torch.Generator().manual_seed(10 * kv + rank)
        Wv = torch.randn(4, rank, dtype=DT, generator=g) @ torch.randn(rank, kv, dtype=DT, generator=g)
        Yv = torch.randn(kv, 4, dtype=DT, generator=g)
        got = prod.grad("W", W=Wv, Y=Yv)
        expect = cofactors(Wv @ Yv) @ Yv.T
        assert torch.isfinite(got).all() and rel(got, expect) < 1e-12, (kv, rank)
        if rank == 4:
            assert rel(got, torch.func.grad(lambda Z: torch.linalg.det(Z @ Yv))(Wv)) < 1e-12
        if rank == 3:  # det(WY) = 0 here, its gradient is not (finite differences along W)
            assert float(expect.abs().max()) > 1e-2
            assert rel(got, _central(lambda Z: torch.linalg.det(Z @ Yv), Wv)) < 1e-6


def _central(f, X: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    out = torch.empty_like(X)
    for idx in range(X.numel()):
        E = torch.zeros_like(X).view(-1)
        E[idx] = h
        E = E.view_as(X)
        out.view(-1)[idx] = (f(X + E) - f(X - E)) / (2 * h)
    return out


def _repeated_singular() -> torch.Tensor:
    """``Q diag(2, 2, 0) Qᵀ``: singular with a repeated singular value."""
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=DT, generator=torch.Generator().manual_seed(3)))
    return Q @ torch.diag(torch.tensor([2.0, 2.0, 0.0], dtype=DT)) @ Q.T


@pytest.mark.parametrize("what,n,r", POINTS + [("1x1", 1, 1), ("identity", 3, 3), ("repeated σ, singular", 3, 2)])
def test_runtime_adjugate_value_and_derivatives(what, n, r):
    """The SVD-based ``adjugate`` equals Cᵀ; its VJP and JVP equal central differences of the
    cofactor reference, at every rank and at repeated singular values (where autograd through
    ``torch.linalg.svd`` gives NaN: it divides by σᵢ² − σⱼ²)."""
    A = {"identity": lambda: torch.eye(n, dtype=DT), "repeated σ, singular": _repeated_singular}.get(
        what, lambda: of_rank(n, r, seed=30 + n + r))()
    assert rel(adjugate(A), cofactors(A).T) < 1e-12
    g = torch.Generator().manual_seed(7)
    G, H = torch.randn(n, n, dtype=DT, generator=g), torch.randn(n, n, dtype=DT, generator=g)
    vjp = torch.func.grad(lambda M: (G * adjugate(M)).sum())(A)
    fd_vjp = _central(lambda M: (G * cofactors(M).T).sum(), A)
    assert torch.isfinite(vjp).all() and rel(vjp, fd_vjp) < 1e-6, what
    jvp = torch.func.jvp(adjugate, (A,), (H,))[1]
    h = 1e-6
    fd_jvp = (cofactors(A + h * H).T - cofactors(A - h * H).T) / (2 * h)
    assert torch.isfinite(jvp).all() and rel(jvp, fd_jvp) < 1e-6, what


def test_runtime_adjugate_under_vmap_and_batch():
    As = torch.stack([of_rank(3, r, seed=40 + r) for r in (3, 2, 1)])
    batched, mapped = adjugate(As), torch.func.vmap(adjugate)(As)
    for k in range(3):
        assert rel(batched[k], cofactors(As[k]).T) < 1e-12
        assert torch.equal(batched[k], adjugate(As[k]))  # per matrix: the rest of the batch does not matter
    assert rel(mapped, batched) < 1e-12  # under vmap: the SVD formula for all (eager: LU where well balanced)


def test_lu_and_svd_values_agree_where_both_apply():
    """The LU shortcut (``det(A)·A⁻¹``) and the SVD formula on well-conditioned matrices, and the
    switch to the SVD formula as a matrix approaches singularity (``A + t·e₁e₁ᵀ`` through ``det = 0``)."""
    from unfold.codegen.kernels.adjugate import _svd_value

    g = torch.Generator().manual_seed(70)
    As = torch.randn(50, 5, 5, dtype=DT, generator=g)
    assert rel(adjugate(As), _svd_value(As)) < 1e-12
    S = of_rank(4, 3, seed=71)
    E = torch.zeros(4, 4, dtype=DT)
    E[0, 0] = 1.0
    for t in (1e-1, 1e-3, 1e-6, 1e-9, 0.0):
        A = S + t * E
        assert rel(adjugate(A), cofactors(A).T) < 1e-11, t


def test_adj_primitive_second_order_and_explicit_leg():
    """``fro2(adj(A))`` differentiates through the adjugate's own VJP (exact where A is invertible;
    compared with autograd of the cofactor reference); the two-leg check (leg 2 expands
    ``Matrix.adjugate``) passes; at singular A the second-order formula refuses with an InputError."""
    d = s.dim("d")
    A = s.state("A", d, d)
    E = uf.Energy(s.fro2(s.adj(A)))
    assert uf.check_gradient(E).passed
    X = of_rank(3, 3, seed=50)
    got = E.compile().grad("A", A=X)
    ref = torch.func.grad(lambda M: (cofactors(M) ** 2).sum())(X)
    assert rel(got, ref) < 1e-12
    with pytest.raises(uf.InputError, match="non-singular"):
        E.compile().grad("A", A=of_rank(3, 2, seed=51))


def test_adj_parses_and_explicit_expansion_is_the_cofactor_transpose():
    E = uf.parse("fro2(adj(A)) + det(A)", dims="d", states={"A": "d,d"})
    assert "adj(A)" in uf.to_str(E.expr)
    d = s.dim("d")
    A = s.state("A", d, d)
    env = s.explicit_env([A], {d: 3})
    M = env[A]
    out = s.expand_explicit(s.adj(A), env)
    assert sp.expand(out * M - M.det() * sp.eye(3)) == sp.zeros(3, 3)  # A·adj(A) = det(A)·I
    assert sp.expand(out[0, 1] + (M[0, 1] * M[2, 2] - M[0, 2] * M[2, 1])) == 0  # −det of minor (1, 0)


def test_adj_refuses_a_non_square_matrix():
    d, n = s.dims("d n")
    with pytest.raises(uf.ShapeMismatchError, match="adj"):
        s.adj(s.state("Y", d, n))


@pytest.mark.parametrize("r", [4, 3, 2])
def test_hessian_vector_product_of_det_gradient_at_singular_points(det_grad, r):
    """``torch.func.jvp`` of the generated gradient (what step-size policies do) at rank r: finite and
    equal to central differences of the cofactor reference."""
    A = of_rank(4, r, seed=60 + r)
    H = torch.randn(4, 4, dtype=DT, generator=torch.Generator().manual_seed(61))
    hv = torch.func.jvp(lambda M: det_grad.grad("A", A=M), (A,), (H,))[1]
    h = 1e-6
    fd = (cofactors(A + h * H) - cofactors(A - h * H)) / (2 * h)
    assert torch.isfinite(hv).all() and rel(hv, fd) < 1e-6
