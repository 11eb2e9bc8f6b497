"""Step-size policies: fixed, learnable, certified (Lipschitz estimate) and Armijo backtracking.

A policy turns a :class:`StepProblem` (closures of one step: energy, gradient, update for a given
step size, acceptance test) and the current state ``x`` into the next state.

* ``FixedStep(η)``: ``x⁺ = T_η(x)``; its η is substituted into the symbolic update rule.
* ``LearnableStep(η₀)``: η is an ``nn.Parameter`` (trained with the model).
* ``NormalizedGradient(η)``: ``η_k = η/(‖∇E(x_k)‖_F + eps)`` (normalized GD; no descent guarantee).
* ``CertifiedStep(safety)``: ``η = safety / L`` with ``L`` the spectral norm of ``∇²E`` estimated by
  power iteration on Hessian-vector products (``torch.func.jvp`` of the checked gradient), taken
  as the larger of the estimates at ``x`` and at the trial point ``T_η(x)``.  For an ``L``-smooth
  energy ``0 < η < 2/L`` guarantees descent; the estimate is local (it bounds the curvature on the
  segment when the Hessian varies slowly), so ``safety < 2`` is required and ``0.9`` is the default.
* ``ArmijoStep(η₀, c, shrink)``: η is halved (×``shrink``) per batch element until the sufficient
  decrease test of the step holds (gradient step: ``E(x⁺) ≤ E(x) + c⟨∇E(x), x⁺ − x⟩``;
  proximal step: ``f(x⁺) ≤ f(x) + ⟨∇f(x), x⁺ − x⟩ + ‖x⁺ − x‖²/(2η)``); where no η passes within
  ``max_halvings`` the state is kept, so the energy never increases.

Step sizes of the certified and Armijo policies are computed without autograd (constants for
backpropagation).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import sympy as sp
import torch
from torch import nn

from ..errors import StepSizeError

__all__ = [
    "StepProblem", "StepPolicy", "FixedStep", "LearnableStep", "CertifiedStep", "ArmijoStep", "NormalizedGradient",
    "as_policy", "exact_number", "lipschitz_estimate",
]

Tensor = torch.Tensor


@dataclass
class StepProblem:
    """Closures describing one step at fixed inputs.

    ``update(x, eta)`` applies the step with step size ``eta`` (a number or a tensor of batch
    shape); ``grad(x)`` is the gradient of the smooth part; ``accept(x, x_new, eta, c)`` is the
    sufficient-decrease test with constant ``c`` (a boolean tensor of batch shape).
    """

    update: Callable[[Tensor, Any], Tensor]
    grad: Callable[[Tensor], Tensor]
    accept: Callable[[Tensor, Tensor, Tensor, float], Tensor]


def exact_number(v: float) -> sp.Expr:
    """A float as an exact sympy number when it is a short binary fraction (1 → 1, 0.5 → 1/2);
    a non-finite value is refused (:class:`StepSizeError`: ``inf`` would print as ``η = oo``)."""
    if not math.isfinite(float(v)):
        raise StepSizeError(f"the step size must be finite, got {v!r}")
    if float(v).is_integer():
        return sp.Integer(int(v))
    r = sp.Rational(float(v))
    return r if r.q <= 1024 else sp.Float(float(v), 17)


def _batch(x: Tensor) -> torch.Size:
    return x.shape[:-2]


def _bdot(a: Tensor, b: Tensor) -> Tensor:
    """Per-batch-element inner product ``⟨a, b⟩``, shape ``(...)``."""
    return (a * b).sum(dim=(-2, -1))


def lipschitz_estimate(grad: Callable[[Tensor], Tensor], x: Tensor, iters: int = 30) -> Tensor:
    """``‖∇²E(x)‖₂`` per batch element by power iteration on Hessian-vector products.

    ``H v = d/dt ∇E(x + t v)`` is computed with ``torch.func.jvp``; the start vector is a fixed
    non-degenerate pattern (deterministic, so the estimate works under ``vmap`` and ``compile``).
    """
    x = x.detach()
    idx = torch.arange(x.shape[-2] * x.shape[-1], dtype=x.dtype, device=x.device)
    v = torch.cos(1.7 * idx + 0.3).reshape(x.shape[-2:]).expand_as(x).clone()
    v = v / _bdot(v, v).sqrt()[..., None, None]
    lam = torch.zeros(_batch(x), dtype=x.dtype, device=x.device)
    for _ in range(iters):
        hv = torch.func.jvp(grad, (x,), (v,))[1]
        nrm = _bdot(hv, hv).sqrt()
        lam = nrm
        v = hv / torch.clamp(nrm, min=torch.finfo(x.dtype).tiny)[..., None, None]
    return lam


class StepPolicy(nn.Module):
    """Base class of step-size policies."""

    #: the numeric step when it is a fixed number (substituted into the symbolic update), else None
    fixed_value: Optional[float] = None

    def step(self, problem: StepProblem, x: Tensor) -> Tensor:
        raise NotImplementedError  # pragma: no cover


class FixedStep(StepPolicy):
    """A fixed step size ``η > 0``."""

    def __init__(self, eta: float) -> None:
        super().__init__()
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 < eta < math.inf:
            raise StepSizeError(f"FixedStep: the step size must be a finite positive number, got {eta!r}")
        self.fixed_value = float(eta)

    def step(self, problem: StepProblem, x: Tensor) -> Tensor:
        return problem.update(x, self.fixed_value)

    def extra_repr(self) -> str:
        return f"eta={self.fixed_value}"


class LearnableStep(StepPolicy):
    """A trainable step size (an ``nn.Parameter`` initialised at ``init``, in ``dtype`` or torch's
    default dtype; ``module.to(dtype)`` converts it with the rest of the model)."""

    def __init__(self, init: float = 0.1, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not 0 < init < math.inf:
            raise StepSizeError(f"LearnableStep: the initial step must be a finite positive number, got {init!r}")
        self.eta = nn.Parameter(torch.tensor(float(init), dtype=dtype or torch.get_default_dtype()))

    def step(self, problem: StepProblem, x: Tensor) -> Tensor:
        return problem.update(x, self.eta.to(x.dtype))


class CertifiedStep(StepPolicy):
    """``η = safety / L̂`` with ``L̂`` a power-iteration estimate of ``‖∇²E‖`` (needs ``0 < safety < 2``)."""

    def __init__(self, safety: float = 0.9, iters: int = 30, max_step: float = 1e6) -> None:
        super().__init__()
        if not 0 < safety < 2:
            raise StepSizeError(
                f"CertifiedStep: safety must lie in (0, 2) so that η = safety/L < 2/L; got {safety!r}"
            )
        self.safety, self.iters, self.max_step = float(safety), int(iters), float(max_step)

    def eta(self, problem: StepProblem, x: Tensor) -> Tensor:
        with torch.no_grad():
            L = lipschitz_estimate(problem.grad, x, self.iters)
            eta = torch.clamp(self.safety / L, max=self.max_step)
            L2 = lipschitz_estimate(problem.grad, problem.update(x.detach(), eta), self.iters)
            return torch.clamp(self.safety / torch.maximum(L, L2), max=self.max_step)

    def step(self, problem: StepProblem, x: Tensor) -> Tensor:
        return problem.update(x, self.eta(problem, x))

    def extra_repr(self) -> str:
        return f"safety={self.safety}, iters={self.iters}"


class ArmijoStep(StepPolicy):
    """Backtracking from ``eta0``, multiplying by ``shrink`` until sufficient decrease holds."""

    def __init__(self, eta0: float = 1.0, c: float = 1e-4, shrink: float = 0.5, max_halvings: int = 30) -> None:
        super().__init__()
        if not eta0 > 0:
            raise StepSizeError(f"ArmijoStep: eta0 must be positive, got {eta0!r}")
        if not 0 < c < 1:
            raise StepSizeError(f"ArmijoStep: c must lie in (0, 1), got {c!r}")
        if not 0 < shrink < 1:
            raise StepSizeError(f"ArmijoStep: shrink must lie in (0, 1), got {shrink!r}")
        self.eta0, self.c, self.shrink, self.max_halvings = float(eta0), float(c), float(shrink), int(max_halvings)

    def step(self, problem: StepProblem, x: Tensor) -> Tensor:
        with torch.no_grad():
            eta = torch.full(_batch(x), self.eta0, dtype=x.dtype, device=x.device)
            ok = torch.zeros(_batch(x), dtype=torch.bool, device=x.device)
            for _ in range(self.max_halvings + 1):
                ok = problem.accept(x, problem.update(x, eta), eta, self.c)
                if bool(ok.all()):
                    break
                eta = torch.where(ok, eta, eta * self.shrink)
        x_new = problem.update(x, eta)
        return torch.where(ok[..., None, None], x_new, x)

    def extra_repr(self) -> str:
        return f"eta0={self.eta0}, c={self.c}, shrink={self.shrink}"


def as_policy(step: Union[StepPolicy, float, int]) -> StepPolicy:
    """A policy from a policy or a number (a number means :class:`FixedStep`)."""
    if isinstance(step, StepPolicy):
        return step
    if isinstance(step, (int, float)) and not isinstance(step, bool):
        return FixedStep(float(step))
    raise StepSizeError(
        f"step must be a positive number or a policy (FixedStep, LearnableStep, CertifiedStep, "
        f"ArmijoStep), got {step!r}"
    )


class NormalizedGradient(StepPolicy):
    """Step-size policy ``η_k = η / (‖∇E(x_k)‖_F + eps)`` per batch element (normalized GD).

    A :class:`~unfold.steps.StepPolicy`: ``GradientStep(E, wrt, step=NormalizedGradient(η))`` is
    normalized gradient descent on ``E``.  Every step moves the state by ``η`` in Frobenius norm
    (up to ``eps``, the paper code's guard against a zero gradient).  No descent guarantee: near a
    minimum a fixed step length overshoots; along the Att-SVM dynamics the loss is measured.
    """

    def __init__(self, eta: float, eps: float = float(torch.finfo(torch.float64).eps)) -> None:
        super().__init__()
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 0:
            raise StepSizeError(f"NormalizedGradient: the learning rate must be a positive number, got {eta!r}")
        self.eta, self.eps = float(eta), float(eps)

    def scale(self, grad: torch.Tensor) -> torch.Tensor:
        """``η / (‖grad‖_F + eps)`` per batch element, shape ``(...)``."""
        return self.eta / (torch.linalg.matrix_norm(grad) + self.eps)

    def step(self, problem: StepProblem, x: torch.Tensor) -> torch.Tensor:
        return problem.update(x, self.scale(problem.grad(x)))

    def apply_update(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``x − η grad/‖grad‖`` for a gradient already computed (the fused training loop)."""
        return x - self.scale(grad)[..., None, None] * grad

    def extra_repr(self) -> str:
        return f"eta={self.eta}"
