"""Checks usable from any test suite: gradients, descent, stationarity, equivalence, directional convergence."""

from .convergence import (
    DirectionalConvergenceResult, assert_directional_convergence, check_directional_convergence, correlation,
)
from .causality import CausalityResult, check_causality
from .descent import DescentResult, DescentViolation, assert_descent, check_descent
from .equivalence import EquivalenceResult, assert_equivalence, check_equivalence
from ..sampling import random_inputs
from .certificates import checked_grad_fn, is_certified
from .gradient import GradientCheckResult, VariableCheck, check_gradient
from .protocols import DescentStep, ProximalStep, StepStack, WrapsStep
from .stationarity import StationarityResult, assert_stationarity, check_stationarity

__all__ = [
    "GradientCheckResult", "VariableCheck", "check_gradient", "random_inputs", "checked_grad_fn", "is_certified",
    "DescentStep", "ProximalStep", "StepStack", "WrapsStep",
    "DescentResult", "DescentViolation", "check_descent", "assert_descent",
    "EquivalenceResult", "check_equivalence", "assert_equivalence",
    "StationarityResult", "check_stationarity", "assert_stationarity",
    "DirectionalConvergenceResult", "check_directional_convergence", "assert_directional_convergence",
    "correlation", "CausalityResult", "check_causality",
]
