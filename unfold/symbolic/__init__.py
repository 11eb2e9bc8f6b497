"""The energy language on sympy: declared symbols, primitives, gradient engine, display."""

from .primitives.adjugate import Adjugate, adj
from .axes import Axis, AxisSum, MatAxisSum, axis, sum_over
from .display import to_latex, to_str
from .masks import Causal, MaskMatrix, causal, mask
from .energy import Energy
from .primitives.entmax import Entmax, EntmaxLSE, entmax, entmax_lse, sparsemax
from .explicit import expand_explicit, explicit_env
from .primitives.layernorm import LayerNorm, LNInvStd
from .primitives.reductions import LogDet, SumAll
from .primitives.soft_threshold import SoftThreshold
from .primitives.softmax import LSE, Softmax
from .ops import (
    T, abs_, as_scalar, det, erf, exp, fro2, gelu, hadamard, hpow, identity, inv, l1, layernorm, log, logdet,
    lse, lse_cols, lse_rows, ones, power, relu, sigmoid, soft_threshold, softmax, sqrt, sum_entries,
    softplus, tanh, trace,
)
from .symbols import Dim, ParamMatrix, ScalarParam, StateMatrix, dim, dims, param, scalar, state
from .tidy import tidy
from .vjp import gradient

__all__ = [
    "Energy", "to_latex", "to_str", "expand_explicit", "explicit_env", "LSE", "LayerNorm",
    "LNInvStd", "LogDet", "Softmax", "SoftThreshold", "SumAll", "T", "abs_", "as_scalar", "det",
    "exp", "fro2", "hadamard", "hpow", "identity", "inv", "l1", "layernorm", "log", "logdet", "lse",
    "lse_cols", "lse_rows", "ones", "power", "relu", "sigmoid", "soft_threshold", "softmax", "sqrt",
    "sum_entries", "tanh", "trace", "Dim", "ParamMatrix", "ScalarParam", "StateMatrix", "dim",
    "dims", "param", "scalar", "state", "tidy", "gradient", "Axis", "AxisSum", "MatAxisSum", "axis",
    "sum_over", "erf", "gelu", "softplus", "Causal", "MaskMatrix", "causal", "mask", "Entmax", "EntmaxLSE", "entmax", "entmax_lse", "sparsemax",
    "Adjugate", "adj",
]
