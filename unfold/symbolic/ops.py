"""The primitives of the energy language (what users call to write energies).

Every function checks its arguments' shapes eagerly and raises
:class:`~unfold.errors.ShapeMismatchError` naming the offending term.  Elementwise functions act on
matrices entry by entry and on scalars as the ordinary function.  ``axis=0`` means "per column"
(tokens as columns: reduce/normalise over the rows of each column); ``axis=1`` means "per row"
(tokens as rows).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import sympy as sp
from sympy.matrices.expressions import (
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatMul,
    MatrixExpr,
    OneMatrix,
    Trace,
    Transpose,
)

from ..errors import ShapeMismatchError
from .nodes import LSE, LayerNorm, LogDet, Softmax, SoftThreshold, SumAll
from .primitives.elementary import abs_, exp, log, relu, sigmoid, sqrt, tanh
from .primitives.erf import erf
from .primitives.gelu import gelu
from .primitives.softplus import softplus
from .primitives._common import axis_arg, matrix_arg
from .masks import check_mask, transpose_mask
from .symbols import _as_dim
from .tidy import doit as cached_doit

Scalar = Union[sp.Expr, int, float]
Expr = Union[sp.Expr, MatrixExpr]

__all__ = [
    "lse", "lse_cols", "lse_rows", "softmax", "layernorm", "fro2", "sum_entries", "l1", "trace",
    "inv", "det", "logdet", "T", "hadamard", "hpow", "exp", "log", "tanh", "sigmoid", "relu",
    "abs_", "sqrt", "erf", "gelu", "softplus", "power", "soft_threshold", "identity", "ones", "as_scalar",
]


_mat = matrix_arg


def _square(M: MatrixExpr, who: str) -> MatrixExpr:
    if M.rows != M.cols:
        raise ShapeMismatchError(f"{who}() needs a square matrix, {M} is {M.rows}×{M.cols}")
    return M


_axis = axis_arg


def as_scalar(M: Expr) -> sp.Expr:
    """A 1×1 matrix expression as a scalar (its trace); scalars pass through."""
    if isinstance(M, MatrixExpr):
        if M.shape != (1, 1):
            raise ShapeMismatchError(f"{M} is {M.rows}×{M.cols}, not a scalar (1×1)")
        return Trace(M)
    return sp.sympify(M)  # safe: internal sympy objects or numbers only


# ---- reductions and scalar functions of matrices -------------------------------------------------
def _masked_args(M: MatrixExpr, mask: Any, who: str) -> tuple[Any, ...]:
    m = check_mask(mask, M, who)
    return (M,) if m is None else (M, m)


def lse_cols(M: MatrixExpr, mask: Any = None) -> MatrixExpr:
    """Column-wise log-sum-exp, a ``1 × cols`` row: ``log Σᵢ exp Mᵢⱼ`` (over allowed ``i``)."""
    M = _mat(M, "lse_cols")
    return LSE(*_masked_args(M, mask, "lse_cols"))


def lse_rows(M: MatrixExpr, mask: Any = None) -> MatrixExpr:
    """Row-wise log-sum-exp, a ``rows × 1`` column: ``log Σⱼ exp Mᵢⱼ`` (over allowed ``j``)."""
    M = _mat(M, "lse_rows")
    m = check_mask(mask, M, "lse_rows")
    inner = (Transpose(M),) if m is None else (Transpose(M), transpose_mask(m))
    return Transpose(LSE(*inner))


def lse(M: MatrixExpr, axis: int = 0, mask: Any = None) -> sp.Expr:
    """Sum over columns (``axis=0``) or rows (``axis=1``) of the log-sum-exp: a scalar.

    ``mask``: ``uf.causal`` (key ≤ query, the key being the reduced index) or a mask declared with
    ``uf.mask`` (boolean or additive at run time), oriented like ``M``; see
    :mod:`unfold.symbolic.masks`."""
    M = _mat(M, "lse")
    return SumAll(lse_cols(M, mask) if _axis(axis, "lse") == 0 else lse_rows(M, mask))


def softmax(M: MatrixExpr, axis: int = 0, mask: Any = None) -> MatrixExpr:
    """Softmax of each column (``axis=0``) or each row (``axis=1``), 0 on masked entries
    (``mask`` as for :func:`lse`)."""
    M = _mat(M, "softmax")
    m = check_mask(mask, M, "softmax")
    if _axis(axis, "softmax") == 0:
        return Softmax(M) if m is None else Softmax(M, m)
    inner = (Transpose(M),) if m is None else (Transpose(M), transpose_mask(m))
    return Transpose(Softmax(*inner))


def layernorm(M: MatrixExpr, eps: Scalar, gain: Optional[Scalar] = None, axis: int = 0) -> MatrixExpr:
    """Per-token layer norm ``gain·(x − mean x)/sqrt(var x + eps)`` (biased variance).

    Tokens are columns for ``axis=0`` and rows for ``axis=1``.  ``eps`` must be given explicitly
    and be positive; ``gain`` is a scalar or ``None`` (a per-feature gain would make the layer-norm
    Jacobian non-symmetric, which the Energy-Transformer argument forbids: add it outside).
    """
    M = _mat(M, "layernorm")
    eps_s = sp.sympify(eps) if isinstance(eps, (int, float, sp.Expr)) else None  # safe: numbers
    if eps_s is None or isinstance(eps_s, MatrixExpr):
        raise ShapeMismatchError(f"layernorm(): eps must be a positive scalar, got {eps!r}")
    if eps_s.is_positive is not True:
        raise ShapeMismatchError(
            f"layernorm(): eps must be positive (got {eps!r}); eps = 0 makes the Jacobian blow up "
            "for constant tokens. Use e.g. eps=1e-5"
        )
    ax = _axis(axis, "layernorm")
    out = LayerNorm(M, eps_s) if ax == 0 else Transpose(LayerNorm(Transpose(M), eps_s))
    if gain is None:
        return out
    if isinstance(gain, MatrixExpr):
        raise ShapeMismatchError(
            "layernorm(): gain must be a scalar; a per-feature gain breaks the symmetry of the "
            "layer-norm Jacobian. Multiply by a diagonal parameter outside layernorm if you need it"
        )
    return sp.sympify(gain) * out  # safe: scalar sympy expression or number


def fro2(M: MatrixExpr) -> sp.Expr:
    """Squared Frobenius norm ``‖M‖²_F = tr(MᵀM)``."""
    M = _mat(M, "fro2")
    return Trace(cached_doit(MatMul(Transpose(M), M)))  # = Mᵀ*M (sympy's deep doit, once per node)


def sum_entries(M: MatrixExpr) -> sp.Expr:
    """Sum of all entries ``1ᵀ M 1``."""
    return SumAll(_mat(M, "sum_entries"))


def l1(M: MatrixExpr) -> sp.Expr:
    """Entrywise l1 norm ``Σ|Mᵢⱼ|``."""
    return SumAll(abs_(_mat(M, "l1")))


def trace(M: MatrixExpr) -> sp.Expr:
    """Trace of a square matrix."""
    return Trace(_square(_mat(M, "trace"), "trace"))


def inv(M: MatrixExpr) -> MatrixExpr:
    """Matrix inverse (printed as ``torch.linalg.solve`` where it multiplies something)."""
    return Inverse(_square(_mat(M, "inv"), "inv"))


def det(M: MatrixExpr) -> sp.Expr:
    """Determinant."""
    return Determinant(_square(_mat(M, "det"), "det"))


def logdet(M: MatrixExpr) -> sp.Expr:
    """``log det M`` for a matrix with det M > 0 (e.g. positive definite); evaluated with ``slogdet``,
    and a clear InputError when det M ≤ 0."""
    return LogDet(_square(_mat(M, "logdet"), "logdet"))


def T(M: MatrixExpr) -> MatrixExpr:
    """Transpose."""
    return Transpose(_mat(M, "T"))


def hadamard(*Ms: MatrixExpr) -> MatrixExpr:
    """Entrywise product."""
    mats = [_mat(M, "hadamard") for M in Ms]
    for M in mats[1:]:
        if M.shape != mats[0].shape:
            raise ShapeMismatchError(
                f"hadamard(): {mats[0]} is {mats[0].rows}×{mats[0].cols} but {M} is {M.rows}×{M.cols}"
            )
    return HadamardProduct(*mats)


def hpow(M: MatrixExpr, p: Scalar) -> MatrixExpr:
    """Entrywise power ``M^∘p`` (``p`` a scalar)."""
    if isinstance(p, MatrixExpr):
        raise ShapeMismatchError(f"hpow(): the exponent must be a scalar, got the {p.rows}×{p.cols} matrix {p}")
    return HadamardPower(_mat(M, "hpow"), sp.sympify(p))  # safe: number or sympy scalar


# ---- elementwise functions: each in its module of unfold.symbolic.primitives -----------------------
# (exp, log, tanh, sigmoid, relu, abs_, sqrt, erf, gelu, softplus are imported above)


def power(x: Expr, p: Scalar) -> Expr:
    """Entrywise power on matrices, ordinary power on scalars."""
    if isinstance(x, MatrixExpr):
        return hpow(x, p)
    if isinstance(p, MatrixExpr):
        raise ShapeMismatchError(f"power(): the exponent must be a scalar, got the {p.rows}×{p.cols} matrix {p}")
    return sp.sympify(x) ** sp.sympify(p)  # safe: numbers or sympy scalars


def soft_threshold(M: MatrixExpr, t: Scalar) -> MatrixExpr:
    """Soft-threshold ``sign(M)∘max(|M| − t, 0)``, the prox of ``t‖·‖₁`` (``t`` a scalar)."""
    if isinstance(t, MatrixExpr) or isinstance(t, str) or not isinstance(t, (sp.Expr, int, float)):
        raise ShapeMismatchError(
            f"soft_threshold(): the threshold must be a scalar (a number or uf.scalar), got {t!r}"
            + (f" ({t.rows}×{t.cols})" if isinstance(t, MatrixExpr) else "")
        )
    return SoftThreshold(_mat(M, "soft_threshold"), sp.sympify(t))  # safe: a number or sympy scalar


def identity(n: Any) -> MatrixExpr:
    """The ``n × n`` identity."""
    return Identity(_as_dim(n, "identity"))


def ones(rows: Any, cols: Any = 1) -> MatrixExpr:
    """The all-ones ``rows × cols`` matrix."""
    return OneMatrix(_as_dim(rows, "ones"), _as_dim(cols, "ones"))
