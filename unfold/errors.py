"""The one error hierarchy of unfold.

Every problem a user can cause raises a subclass of :class:`UnfoldError` whose message names the
offending term, symbol, tensor or dimension and says how to fix it.
"""

from __future__ import annotations

__all__ = [
    "UnfoldError",
    "NotScalarError",
    "ShapeMismatchError",
    "UndeclaredSymbolError",
    "UnsupportedNodeError",
    "DimMismatchError",
    "InputError",
    "GradientCheckError",
    "AssumptionError",
    "StepSizeError",
    "ParseError",
    "CheckFailedError",
    "ConstantError",
]


class UnfoldError(Exception):
    """Base class of every error unfold raises on purpose."""


class NotScalarError(UnfoldError, TypeError):
    """An energy (or a term of one) is not a scalar."""


class ShapeMismatchError(UnfoldError, ValueError):
    """Symbolic shapes do not fit (a product, a sum, a function argument)."""


class UndeclaredSymbolError(UnfoldError, NameError):
    """A symbol was used that was not declared with ``uf.state``/``uf.param``/``uf.scalar``."""


class UnsupportedNodeError(UnfoldError, NotImplementedError):
    """An expression node has no differentiation, printing or expansion rule.

    Raised instead of ever returning a silent zero derivative.
    """


class DimMismatchError(UnfoldError, ValueError):
    """Runtime tensors disagree on a symbolic dimension."""


class InputError(UnfoldError, ValueError):
    """A runtime input is malformed (wrong rank, dtype, device, non-finite values, missing)."""


class GradientCheckError(UnfoldError, AssertionError):
    """The symbolic gradient disagrees with autograd or with the explicit-size reference."""


class AssumptionError(UnfoldError, ValueError):
    """A predicate a claim depends on (symmetry, PSD, step-size bound, ...) does not hold."""


class StepSizeError(AssumptionError):
    """A step size violates its certified bound."""


class ParseError(UnfoldError, ValueError):
    """Text given to :func:`unfold.parse` is not a valid, whitelisted energy expression."""


class CheckFailedError(UnfoldError, AssertionError):
    """A verification check (descent, equivalence, stationarity, ...) failed."""


class ConstantError(UnfoldError, ValueError):
    """A constant in an expression (or a step size) is not a finite real number in float64:
    infinite, NaN, complex, or too large to represent."""
