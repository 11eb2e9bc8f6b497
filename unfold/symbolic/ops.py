"""The primitives of the energy language (what users call to write energies).

Every function checks its arguments' shapes eagerly and raises
:class:`~unfold.errors.ShapeMismatchError` naming the offending term.  Elementwise functions act on
matrices entry by entry and on scalars as the ordinary function.  ``axis=0`` means "per column"
(tokens as columns: reduce/normalise over the rows of each column); ``axis=1`` means "per row"
(tokens as rows).
"""

from __future__ import annotations

from typing import Any, Union

import sympy as sp
from sympy.matrices.expressions import (
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
from .primitives.det import det
from .primitives.layernorm import layernorm
from .primitives.reductions import l1, logdet, sum_entries
from .primitives.soft_threshold import soft_threshold
from .primitives.softmax import lse, lse_cols, lse_rows, softmax
from .primitives.elementary import abs_, exp, log, relu, sigmoid, sqrt, tanh
from .primitives.erf import erf
from .primitives.gelu import gelu
from .primitives.softplus import softplus
from .primitives._common import axis_arg, matrix_arg
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
def fro2(M: MatrixExpr) -> sp.Expr:
    """Squared Frobenius norm ``‖M‖²_F = tr(MᵀM)``."""
    M = _mat(M, "fro2")
    return Trace(cached_doit(MatMul(Transpose(M), M)))  # = Mᵀ*M (sympy's deep doit, once per node)


def trace(M: MatrixExpr) -> sp.Expr:
    """Trace of a square matrix."""
    return Trace(_square(_mat(M, "trace"), "trace"))


def inv(M: MatrixExpr) -> MatrixExpr:
    """Matrix inverse (printed as ``torch.linalg.solve`` where it multiplies something)."""
    return Inverse(_square(_mat(M, "inv"), "inv"))


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


def identity(n: Any) -> MatrixExpr:
    """The ``n × n`` identity."""
    return Identity(_as_dim(n, "identity"))


def ones(rows: Any, cols: Any = 1) -> MatrixExpr:
    """The all-ones ``rows × cols`` matrix."""
    return OneMatrix(_as_dim(rows, "ones"), _as_dim(cols, "ones"))
