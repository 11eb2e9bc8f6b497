"""Checks usable from any test suite: gradients, descent, stationarity, equivalence."""

from .descent import DescentResult, DescentViolation, assert_descent, check_descent
from .gradient import GradientCheckResult, VariableCheck, check_gradient, random_inputs

__all__ = [
    "GradientCheckResult", "VariableCheck", "check_gradient", "random_inputs",
    "DescentResult", "DescentViolation", "check_descent", "assert_descent",
]
