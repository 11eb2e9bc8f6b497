"""Checks usable from any test suite: gradients, descent, stationarity, equivalence."""

from .gradient import GradientCheckResult, VariableCheck, check_gradient, random_inputs

__all__ = ["GradientCheckResult", "VariableCheck", "check_gradient", "random_inputs"]
