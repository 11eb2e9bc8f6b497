"""Gradient certificates: which generated gradients passed both legs of the gradient check.

A certificate is keyed by ``(energy expression, variable)``, so an equal energy built twice (two
``GradientStep(check=True)`` layers on the same energy, an entry and its test) is checked once per
process.  Only :func:`unfold.verify.check_gradient` with both legs issues one.
"""

from __future__ import annotations

from typing import Any, Union

from sympy import Basic

__all__ = ["certify", "is_certified", "checked_grad_fn", "clear"]

_CERTIFIED: set[tuple[Basic, Basic]] = set()


def _key(energy: Any, wrt: Union[Basic, str]) -> tuple[Basic, Basic]:
    return energy.expr, energy._resolve(wrt)


def certify(energy: Any, wrt: Union[Basic, str]) -> None:
    """Record that ``energy``'s generated gradient in ``wrt`` passed both legs."""
    _CERTIFIED.add(_key(energy, wrt))


def is_certified(energy: Any, wrt: Union[Basic, str]) -> bool:
    """Whether an energy equal to ``energy`` has a certified gradient in ``wrt``."""
    return _key(energy, wrt) in _CERTIFIED


def clear() -> None:
    """Forget every certificate (tests that time or exercise the check itself)."""
    _CERTIFIED.clear()


def checked_grad_fn(energy: Any, wrt: Union[Basic, str]) -> Any:
    """The generated gradient of ``energy`` in ``wrt``, after both legs of the gradient check passed
    (run here unless an equal energy was certified before; raises :class:`GradientCheckError`)."""
    if not is_certified(energy, wrt):
        from .gradient import check_gradient

        check_gradient(energy, wrt=[wrt], raise_on_failure=True)
    return energy.compile().grad_fn(wrt)
