"""unfold: derive transformer layers as descent steps on symbolic energies, and check them.

Write an energy once with the primitives below; unfold differentiates it with its own reverse-mode
engine, generates batched PyTorch code, builds descent-step modules, and verifies numerically and
symbolically that a forward pass is energy minimisation.
"""

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .symbolic import (
    Energy, T, abs_, adj, as_scalar, det, dims, dim, entmax, entmax_lse, erf, exp, fro2, gelu, hadamard, hpow, identity, inv, l1,
    layernorm, log, logdet, lse, lse_cols, lse_rows, ones, param, power, relu, scalar, sigmoid,
    soft_threshold, softmax, softplus, sparsemax, sqrt, state, sum_entries, tanh, to_latex, to_str, trace, Axis, axis,
    sum_over, causal, mask,
)
from .symbolic import abs_ as abs  # noqa: A001 - uf.abs reads naturally
from .steps import (
    Alternating, ArmijoStep, Box, CCCPStep, CertifiedStep, FixedPoint, FixedStep, GradientStep, L1,
    InputAsData, LearnableStep, MMStep, NonNegative, NonNegL1, ProximalGradientStep, Sphere, Trajectory, Unrolled,
)
from .verify import (
    GradientCheckResult, assert_descent, assert_directional_convergence, assert_equivalence,
    assert_stationarity, check_causality, check_descent, check_directional_convergence, check_equivalence,
    check_gradient, check_stationarity,
)
from .parse import parse, parse_energy_spec, parse_expression
from .codegen.runtime import finite_checks
from .catalogue import RunConfig, entries, get_entry, run_entry
from .energies import BUILTIN_ENERGIES, builtin_energy
from . import models

from ._version import __version__

__all__ = list(_errors_all) + [
    # the energy language
    "Energy", "T", "abs", "abs_", "adj", "as_scalar", "det", "dims", "dim", "entmax", "entmax_lse", "erf", "exp", "fro2",
    "gelu", "hadamard",
    "hpow", "identity", "inv", "l1", "layernorm", "log", "logdet", "lse", "lse_cols", "lse_rows",
    "Axis", "axis", "sum_over", "causal", "mask", "ones", "param", "power", "relu", "scalar", "sigmoid",
    "soft_threshold", "softmax", "softplus", "sparsemax", "sqrt",
    "state", "sum_entries", "tanh", "to_latex", "to_str", "trace", "parse", "parse_energy_spec", "parse_expression", "finite_checks",
    # steps and models
    "GradientStep", "ProximalGradientStep", "MMStep", "CCCPStep", "Alternating", "FixedStep",
    "LearnableStep", "InputAsData", "CertifiedStep", "ArmijoStep", "Unrolled", "FixedPoint", "Trajectory", "L1",
    "NonNegative", "NonNegL1", "Box", "Sphere",
    # checks
    "GradientCheckResult", "check_gradient", "check_causality", "check_descent", "assert_descent", "check_stationarity",
    "assert_stationarity", "check_equivalence", "assert_equivalence",
    "check_directional_convergence", "assert_directional_convergence",
    # catalogue
    "RunConfig", "entries", "get_entry", "run_entry", "BUILTIN_ENERGIES", "builtin_energy",
    # trainable models (unfold.models)
    "models",
    "__version__",
]
