"""Checks usable from any test suite: gradients, descent, stationarity, equivalence, directional convergence."""

from .convergence import (
    DirectionalConvergenceResult, assert_directional_convergence, check_directional_convergence, correlation,
)
from .causality import CausalityResult, check_causality
from .descent import DescentResult, DescentViolation, assert_descent, check_descent
from .equivalence import EquivalenceResult, assert_equivalence, check_equivalence
from .gradient import GradientCheckResult, VariableCheck, check_gradient, random_inputs
from .stationarity import StationarityResult, assert_stationarity, check_stationarity

__all__ = [
    "GradientCheckResult", "VariableCheck", "check_gradient", "random_inputs",
    "DescentResult", "DescentViolation", "check_descent", "assert_descent",
    "EquivalenceResult", "check_equivalence", "assert_equivalence",
    "StationarityResult", "check_stationarity", "assert_stationarity",
    "DirectionalConvergenceResult", "check_directional_convergence", "assert_directional_convergence",
    "correlation", "CausalityResult", "check_causality",
]
