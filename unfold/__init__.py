"""unfold: derive transformer layers as descent steps on symbolic energies, and check them.

Write an energy once with the primitives below; unfold differentiates it with its own reverse-mode
engine, generates batched PyTorch code, builds descent-step modules, and verifies numerically and
symbolically that a forward pass is energy minimisation.
"""

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .symbolic import (
    Energy, T, abs_, as_scalar, det, dims, dim, exp, fro2, hadamard, hpow, identity, inv, l1,
    layernorm, log, logdet, lse, lse_cols, lse_rows, ones, param, power, relu, scalar, sigmoid,
    soft_threshold, softmax, sqrt, state, sum_entries, tanh, to_latex, to_str, trace,
)
from .symbolic import abs_ as abs  # noqa: A001 - uf.abs reads naturally
from .verify import GradientCheckResult, check_gradient

__version__ = "0.1.0"

__all__ = list(_errors_all) + [
    "Energy", "T", "abs", "abs_", "as_scalar", "det", "dims", "dim", "exp", "fro2", "hadamard",
    "hpow", "identity", "inv", "l1", "layernorm", "log", "logdet", "lse", "lse_cols", "lse_rows",
    "ones", "param", "power", "relu", "scalar", "sigmoid", "soft_threshold", "softmax", "sqrt",
    "state", "sum_entries", "tanh", "to_latex", "to_str", "trace", "GradientCheckResult",
    "check_gradient", "__version__",
]
