"""``GradientStep``: the (preconditioned) gradient-descent layer generated from an energy.

Update rule, with ``P``/``Q`` optional left/right preconditioners (identity when absent):

    x⁺ = x − η · P ∇E(x) Q

The rule is built symbolically from the derived gradient (the numeric η substituted when the step
is fixed, a scalar symbol ``eta`` otherwise) and compiled by :func:`unfold.codegen.generate`; the
gradient passes both legs of :func:`unfold.check_gradient` before the step is built.  Descent
holds for an ``L``-smooth ``E`` and ``0 < η < 2/L`` (``P = Q = I``); :class:`CertifiedStep` and
:class:`ArmijoStep` choose such an η.  The energy must be continuously differentiable in ``x``
(non-smooth terms belong in :class:`~unfold.steps.ProximalGradientStep`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import torch
from sympy import Basic
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol
from torch import nn

from ..errors import InputError, ShapeMismatchError, UndeclaredSymbolError
from ..symbolic.energy import Energy
from ..symbolic.symbols import ParamMatrix, ScalarParam
from ..symbolic.tidy import canonical
from .base import EnergyStep, GeneratedUpdateMixin, compile_update
from .policies import StepPolicy, StepProblem
from .smoothness import require_smooth
from ..symbolic.energy import unique_name

__all__ = ["GradientStep"]

Tensor = torch.Tensor


class GradientStep(GeneratedUpdateMixin, EnergyStep):
    """``x⁺ = x − η P ∇E(x) Q`` as an ``nn.Module`` (see the module docstring).

    Parameters: ``energy``; ``wrt`` (the state, name or symbol); ``step`` (a number or a policy);
    ``params``/``buffers`` (energy inputs held by the module); ``left``/``right`` (preconditioner
    tensors, names of parameter matrices of the energy, or matrix expressions in the energy's
    inputs, e.g. a per-token step ``diag(1/(2 d_i))`` computed from an MM anchor); ``check`` (run the two-leg gradient
    check before building, default True).
    """

    def __init__(
        self,
        energy: Energy,
        wrt: Union[str, Basic],
        step: Union[StepPolicy, float] = 1.0,
        params: Optional[Mapping[str, Any]] = None,
        buffers: Optional[Mapping[str, Any]] = None,
        left: Union[Tensor, str, MatrixExpr, None] = None,
        right: Union[Tensor, str, MatrixExpr, None] = None,
        check: bool = True,
    ) -> None:
        super().__init__(energy, wrt, params, buffers)
        v = self.wrt
        require_smooth(energy, v, "GradientStep")
        taken = {str(s) for s in energy.inputs}
        self._pre: dict[str, Tensor] = {}
        P = self._preconditioner(left, "left", v.rows, taken)
        Q = self._preconditioner(right, "right", v.cols, taken)
        g = energy.grad(v)
        eta = self._step_size(step, check, taken)
        direction = g
        if P is not None:
            direction = P * direction
        if Q is not None:
            direction = direction * Q
        if P is None and Q is None:
            self._rule = energy.update_rule(v, eta)
        else:
            self._rule = canonical(v - eta * direction)
        inputs = list(energy.inputs) + [s for s in (P, Q) if isinstance(s, MatrixSymbol) and s not in energy.inputs
                                        and str(s) in self._pre]
        if self._eta_symbol is not None:
            inputs.append(self._eta_symbol)
        self._update = compile_update("gradient_step", inputs, self._rule)
        self._left, self._right = P, Q

    def _preconditioner(self, M: Any, side: str, size: Any, taken: set[str]) -> Optional[MatrixSymbol]:
        if M is None:
            return None
        if isinstance(M, str):
            try:
                s = self.source_energy.symbol(M)
            except UndeclaredSymbolError:
                raise UndeclaredSymbolError(
                    f"GradientStep: {side} preconditioner {M!r} is not a parameter of the energy"
                ) from None
            if not isinstance(s, ParamMatrix) or s.shape != (size, size):
                raise ShapeMismatchError(
                    f"GradientStep: {side} preconditioner {M!r} must be a {size}×{size} parameter matrix"
                )
            return s
        if isinstance(M, MatrixExpr):  # a symbolic preconditioner, e.g. built from an MM anchor
            if M.shape != (size, size):
                raise ShapeMismatchError(
                    f"GradientStep: the {side} preconditioner {M} is {M.rows}×{M.cols}, needs {size}×{size}"
                )
            names = {str(s) for s in self.source_energy.inputs}
            missing = sorted(str(s) for s in M.atoms(MatrixSymbol, ScalarParam) if str(s) not in names)
            if missing:
                raise UndeclaredSymbolError(
                    f"GradientStep: the {side} preconditioner uses {missing}, which are not inputs of the energy"
                )
            return M
        if not isinstance(M, Tensor) or M.dim() != 2 or M.shape[0] != M.shape[1]:
            raise InputError(
                f"GradientStep: the {side} preconditioner must be a square 2-D tensor (or the name of "
                f"a parameter matrix), got {type(M).__name__} of shape {getattr(M, 'shape', None)}"
            )
        name = unique_name("P" if side == "left" else "Q", taken | set(self._pre))
        sym = ParamMatrix(name, size, size)
        if isinstance(M, nn.Parameter):
            self.register_parameter(name, M)
        else:
            self.register_buffer(name, M)
        self._pre[name] = M
        return sym

    # ---- the step ------------------------------------------------------------------------------
    def _update_values(self, x: Tensor, inputs: Mapping[str, Any]) -> dict[str, Any]:
        vals = self.inputs_for(self.source_energy, x, inputs)
        for name in self._pre:
            vals[name] = getattr(self, name)
        return vals

    def problem(self, **inputs: Any) -> StepProblem:
        """The closures the step-size policy works with, at the given inputs."""
        update, grad = self._update_and_grad(inputs)

        def accept(x: Tensor, x_new: Tensor, eta: Tensor, c: float) -> Tensor:
            e0, e1 = self.energy(x, **inputs), self.energy(x_new, **inputs)
            slope = (grad(x) * (x_new - x)).sum(dim=(-2, -1))
            return e1 <= e0 + c * slope

        return StepProblem(update=update, grad=grad, accept=accept)

    def gradient(self, x: Tensor, /, **inputs: Any) -> Tensor:
        """The checked generated gradient ``∇E(x)``."""
        return self.problem(**inputs).grad(x)

