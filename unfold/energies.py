"""Built-in energies: a library of named energies that ``unfold derive`` shows and ``unfold verify``
gradient-checks.  Each builder returns a fresh :class:`~unfold.Energy`.
"""

from __future__ import annotations

from typing import Callable

from . import symbolic as s
from .symbolic import Energy

__all__ = ["BUILTIN_ENERGIES", "builtin_energy"]


def hopfield() -> Energy:
    """Modern Hopfield: ``−lse(β, Xᵀξ) + ½ξᵀξ`` (Ramsauer et al.)."""
    d, n = s.dims("d n")
    X, xi, beta = s.param("X", d, n), s.state("xi", d), s.scalar("beta", positive=True)
    return Energy(terms={"lse": -s.lse(beta * X.T * xi) / beta, "quadratic": s.fro2(xi) / 2})


def hopfield_tokens() -> Energy:
    """Hopfield energy of several query columns at once: ``Σ_j −lse(β, Xᵀξ_j) + ½‖Ξ‖²``."""
    d, n, m = s.dims("d n m")
    X, Xi, beta = s.param("X", d, n), s.state("Xi", d, m), s.scalar("beta", positive=True)
    return Energy(terms={"lse": -s.lse(beta * X.T * Xi) / beta, "quadratic": s.fro2(Xi) / 2})


def hopfield_rows() -> Energy:
    """Hopfield energy with tokens as rows: ``Σ_i −lse_row(β ξ_i Xᵀ) + ½‖Ξ‖²``."""
    d, n, m = s.dims("d n m")
    X, Xi, beta = s.param("X", n, d), s.state("Xi", m, d), s.scalar("beta", positive=True)
    return Energy(terms={"lse": -s.lse(beta * Xi * X.T, axis=1) / beta, "quadratic": s.fro2(Xi) / 2})


def coding_rate() -> Energy:
    """Coding rate ``½ log det(I + α Z Zᵀ)`` (MCR², CRATE)."""
    d, n = s.dims("d n")
    Z, alpha = s.state("Z", d, n), s.scalar("alpha", positive=True)
    return Energy(s.logdet(s.identity(d) + alpha * Z * Z.T) / 2, name="R")


def crate_compression() -> Energy:
    """CRATE compression ``Σₖ ½ log det(I + γ (UₖᵀZ)ᵀ(UₖᵀZ))`` with K = 2 subspaces."""
    d, n, p = s.dims("d n p")
    Z, gamma = s.state("Z", d, n), s.scalar("gamma", positive=True)
    terms = {}
    for k in (1, 2):
        U = s.param(f"U{k}", d, p)
        A = (U.T * Z).T * (U.T * Z)
        terms[f"Rc{k}"] = s.logdet(s.identity(n) + gamma * A) / 2
    return Energy(terms=terms)


def quadratic_residual() -> Energy:
    """``½‖Y − WY‖²``."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    return Energy(s.fro2(Y - W * Y) / 2)


def pairwise_gaussian() -> Energy:
    """``Σᵢⱼ exp(−½‖W(yᵢ − yⱼ)‖²)`` via the Gram matrix of ``WY`` (tokens as columns)."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    V = W * Y
    G = V.T * V
    sq = s.hadamard(V, V)
    norms = s.ones(n, d) * sq  # n×n: entry (i, j) = ‖v_j‖²
    D = norms + norms.T - 2 * G
    return Energy(s.sum_entries(s.exp(-D / 2)))


def l1_norm() -> Energy:
    """``λ‖Z‖₁``."""
    d, n = s.dims("d n")
    Z, lam = s.state("Z", d, n), s.scalar("lam", positive=True)
    return Energy(lam * s.l1(Z))


def softmax_attention() -> Energy:
    """A softmax-attention energy ``−tr(YᵀWY softmax(βYᵀY))``."""
    d, n = s.dims("d n")
    Y, W, beta = s.state("Y", d, n), s.param("W", d, d), s.scalar("beta", positive=True)
    return Energy(-s.trace(Y.T * W * Y * s.softmax(beta * Y.T * Y)))


def layernorm_hopfield() -> Energy:
    """``−½ tr(LN(Y)ᵀ W LN(Y))`` with per-token layer norm (eps = 1e-5)."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    g = s.layernorm(Y, 1e-5)
    return Energy(-s.trace(g.T * W * g) / 2)


def layernorm_gain() -> Energy:
    """``½‖γ LN(Y) − B‖²`` with a scalar gain γ (gradient with respect to γ too)."""
    d, n = s.dims("d n")
    Y, B, gamma = s.state("Y", d, n), s.param("B", d, n), s.scalar("gamma", positive=True)
    return Energy(s.fro2(s.layernorm(Y, 1e-5, gain=gamma) - B) / 2)


def et_memory() -> Energy:
    """Energy-Transformer memory ``−½ Σ relu(Ξᵀ g)²`` on ``g = LN(x)``."""
    d, n, m = s.dims("d n m")
    x, Xi = s.state("x", d, n), s.param("Xi", d, m)
    g = s.layernorm(x, 1e-5)
    return Energy(-s.sum_entries(s.hpow(s.relu(Xi.T * g), 2)) / 2, name="E_HN")


def relu_hopfield() -> Energy:
    """``−½ Σ relu(WY)² + ½‖Y‖²``."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    return Energy(-s.sum_entries(s.hpow(s.relu(W * Y), 2)) / 2 + s.fro2(Y) / 2)


def trace_sum() -> Energy:
    """``tr(A) + tr(AW)`` (sympy 1.14's ``.diff`` returns 0 for it)."""
    d = s.dim("d")
    A, W = s.state("A", d, d), s.param("W", d, d)
    return Energy(s.trace(A) + s.trace(A * W))


def log_trace() -> Energy:
    """``log tr(AᵀA)``."""
    d = s.dim("d")
    A = s.state("A", d, d)
    return Energy(s.log(s.fro2(A)))


def sqrt_trace() -> Energy:
    """``sqrt tr(AᵀA)`` (sympy 1.14's ``.diff`` crashes on it)."""
    d = s.dim("d")
    A = s.state("A", d, d)
    return Energy(s.sqrt(s.fro2(A)))


def determinant() -> Energy:
    """``det A``."""
    d = s.dim("d")
    return Energy(s.det(s.state("A", d, d)))


def logdet_minus_trace() -> Energy:
    """``log det A − tr A``."""
    d = s.dim("d")
    A = s.state("A", d, d)
    return Energy(s.logdet(A) - s.trace(A))


def trace_inverse() -> Energy:
    """``tr((I + αZZᵀ)⁻¹)``."""
    d, n = s.dims("d n")
    Z, alpha = s.state("Z", d, n), s.scalar("alpha", positive=True)
    return Energy(s.trace(s.inv(s.identity(d) + alpha * Z * Z.T)))


def tanh_energy() -> Energy:
    """``Σ tanh(WY) + ½‖Y‖²``."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    return Energy(s.sum_entries(s.tanh(W * Y)) + s.fro2(Y) / 2)


def sigmoid_energy() -> Energy:
    """``Σ log σ(WY)`` (a logistic log-likelihood)."""
    d, n = s.dims("d n")
    Y, W = s.state("Y", d, n), s.param("W", d, d)
    return Energy(s.sum_entries(s.log(s.sigmoid(W * Y))))


def crate_sparse_rate() -> Energy:
    """Sparse rate reduction ``R^c(Z) + λ‖Z‖₁ − R(Z)`` with one subspace."""
    d, n, p = s.dims("d n p")
    Z, U = s.state("Z", d, n), s.param("U", d, p)
    gamma, alpha, lam = s.scalar("gamma", positive=True), s.scalar("alpha", positive=True), s.scalar("lam", positive=True)
    A = (U.T * Z).T * (U.T * Z)
    return Energy(terms={
        "Rc": s.logdet(s.identity(n) + gamma * A) / 2,
        "l1": lam * s.l1(Z),
        "minus_R": -s.logdet(s.identity(d) + alpha * Z * Z.T) / 2,
    })


def lasso() -> Energy:
    """LASSO ``½‖x − Az‖² + λ‖z‖₁``."""
    m, k = s.dims("m k")
    z, A, x, lam = s.state("z", k), s.param("A", m, k), s.param("x", m), s.scalar("lam", positive=True)
    return Energy(terms={"fit": s.fro2(x - A * z) / 2, "l1": lam * s.l1(z)})


def least_squares_icl() -> Energy:
    """In-context least squares ``(1/2N) ‖W X − Y‖²`` over the weights W (von Oswald et al.)."""
    dx, dy, N = s.dims("dx dy N")
    W, X, Y = s.state("W", dy, dx), s.param("X", dx, N), s.param("Y", dy, N)
    return Energy(s.fro2(W * X - Y) / (2 * N))


def yhw_ffn() -> Energy:
    """Yang–Huang–Wipf FFN energy ``½ tr(YWYᵀ) + ½‖Y − 1bᵀ‖²`` (tokens as rows)."""
    n, d = s.dims("n d")
    Y, W, b = s.state("Y", n, d), s.param("W", d, d), s.param("b", d)
    return Energy(terms={"quad": s.trace(Y * W * Y.T) / 2, "bias": s.fro2(Y - s.ones(n, 1) * b.T) / 2})


def et_attention() -> Energy:
    """Energy-Transformer attention ``−(1/β) Σ_C log Σ_B exp(β (W_K g_B)ᵀ(W_Q g_C))`` (one head)."""
    d, n, k = s.dims("d n k")
    g, WQ, WK, beta = s.state("g", d, n), s.param("WQ", k, d), s.param("WK", k, d), s.scalar("beta", positive=True)
    return Energy(-s.lse(beta * (WK * g).T * (WQ * g)) / beta, name="E_ATT")


def logistic_attention() -> Energy:
    """Att-SVM loss of one sequence ``log(1 + exp(−y vᵀXᵀ softmax(XWz)))`` (tokens as rows)."""
    T_, d = s.dims("T d")
    W, X, z, v, y = s.state("W", d, d), s.param("X", T_, d), s.param("z", d), s.param("v", d), s.scalar("y")
    f = s.as_scalar(v.T * X.T * s.softmax(X * W * z))
    return Energy(s.log(1 + s.exp(-y * f)))


def soft_threshold_energy() -> Energy:
    """``½‖S_t(Z) − B‖²``: differentiates through the soft-threshold, with respect to Z and t."""
    d, n = s.dims("d n")
    Z, B, t = s.state("Z", d, n), s.param("B", d, n), s.scalar("t", positive=True)
    return Energy(s.fro2(s.soft_threshold(Z, t) - B) / 2)


def matrix_power() -> Energy:
    """``tr(A³) + tr(A⁻²)``."""
    d = s.dim("d")
    A = s.state("A", d, d)
    return Energy(s.trace(A * A * A) + s.trace(s.inv(A) * s.inv(A)))


BUILTIN_ENERGIES: dict[str, Callable[[], Energy]] = {
    f.__name__: f
    for f in (
        hopfield, hopfield_tokens, hopfield_rows, coding_rate, crate_compression, quadratic_residual,
        pairwise_gaussian, l1_norm, softmax_attention, layernorm_hopfield, layernorm_gain, et_memory,
        relu_hopfield, trace_sum, log_trace, sqrt_trace, determinant, logdet_minus_trace,
        trace_inverse, tanh_energy, sigmoid_energy, crate_sparse_rate, lasso, least_squares_icl,
        yhw_ffn, et_attention, logistic_attention, soft_threshold_energy, matrix_power,
    )
}


def builtin_energy(name: str) -> Energy:
    """A built-in energy by name."""
    from .errors import UndeclaredSymbolError

    if name not in BUILTIN_ENERGIES:
        raise UndeclaredSymbolError(f"no built-in energy {name!r}; available: {sorted(BUILTIN_ENERGIES)}")
    return BUILTIN_ENERGIES[name]()
