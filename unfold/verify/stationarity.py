"""Stationarity check at the limit of a forward pass.

For every batch element of ``x`` (the limit of a model) it reports

* ``‖∇E(x)‖`` (autograd of the generated energy; for a proximal-gradient step the norm of the
  gradient mapping ``(x − prox_{ηg}(x − η∇f(x)))/η``, which vanishes exactly at stationary points
  of ``f + g``);
* the smallest and largest eigenvalue of ``∇²E(x)`` by Lanczos iteration (full
  re-orthogonalisation) on Hessian-vector products (``torch.func.jvp`` of ``torch.func.grad``): a
  negative smallest eigenvalue means a saddle or maximum, not a minimum;
* the distance to an independent minimiser: scipy's L-BFGS-B on the same energy (value and
  autograd gradient in float64) started from ``start`` (default: ``x`` perturbed by Gaussian noise
  of size ``perturb``).

Passes when ``‖∇E‖ ≤ grad_tol``, ``λ_min ≥ −hess_tol`` and, if the minimiser was computed,
the distance is ``≤ dist_tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..errors import CheckFailedError, InputError
from .protocols import ProximalStep, StateStep, StepStack, WrapsStep

__all__ = ["StationarityResult", "check_stationarity", "assert_stationarity", "lanczos_extremes"]

Tensor = torch.Tensor


@dataclass
class StationarityResult:
    passed: bool
    grad_norm: float
    min_eigenvalue: float
    max_eigenvalue: float
    distance: Optional[float]
    grad_tol: float
    hess_tol: float
    dist_tol: float
    kind: str = "gradient"
    detail: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.detail


def lanczos_extremes(hvp: Callable[[Tensor], Tensor], n: int, dtype: torch.dtype, iters: Optional[int] = None,
                     seed: int = 0) -> tuple[float, float]:
    """Smallest and largest eigenvalue of a symmetric operator on ``R^n`` given by ``hvp`` (Lanczos
    with full re-orthogonalisation; exact in exact arithmetic after ``n`` steps)."""
    k = min(n, iters or n)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g, dtype=dtype)
    q = q / q.norm()
    Q = [q]
    alphas, betas = [], []
    for j in range(k):
        w = hvp(Q[j])
        a = float(w @ Q[j])
        alphas.append(a)
        for qi in Q:  # full re-orthogonalisation (twice is enough)
            w = w - (w @ qi) * qi
        for qi in Q:
            w = w - (w @ qi) * qi
        b = float(w.norm())
        if j == k - 1 or b < 1e-12 * max(1.0, abs(a)):
            break
        betas.append(b)
        Q.append(w / b)
    T = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    ev = np.linalg.eigvalsh(T)
    return float(ev[0]), float(ev[-1])


def _resolve(obj: Any, wrt: Optional[str]) -> tuple[Any, Callable[..., Tensor], str, Any]:
    """(step or None, energy function e(x, **inputs) of the smooth part, state name, prox step)."""
    from ..symbolic.energy import Energy

    if isinstance(obj, StepStack) and not isinstance(obj, StateStep):
        obj = obj.layer(0)
    elif isinstance(obj, WrapsStep) and isinstance(obj.step, StateStep):
        obj = obj.step
    if isinstance(obj, ProximalStep):
        return obj, obj.smooth_energy, obj.wrt_name, obj
    if isinstance(obj, StateStep):
        return obj, obj.energy, obj.wrt_name, None
    if isinstance(obj, Energy):
        states = [str(s) for s in obj.states]
        name = wrt if wrt is not None else (states[0] if len(states) == 1 else None)
        if name is None or name not in states:
            raise InputError(f"check_stationarity: give wrt= one of the states {states}")
        cm = obj.compile()

        def e(x: Tensor, **inputs: Any) -> Tensor:
            return cm.energy_fn(*cm.args(**{name: x, **inputs}))

        return None, e, name, None
    raise InputError(
        f"check_stationarity needs an Energy, a descent step or a model of one, got {type(obj).__name__}"
    )


def check_stationarity(obj: Any, x: Tensor, /, *, wrt: Optional[str] = None, start: Optional[Tensor] = None,
                       minimizer: bool = True, perturb: float = 0.1, grad_tol: float = 1e-8,
                       hess_tol: float = 1e-8, dist_tol: float = 1e-6, eta: Optional[float] = None,
                       **inputs: Any) -> StationarityResult:
    """Check that ``x`` is a (local) minimiser of the energy of ``obj`` (see the module docstring)."""
    step, e, name, prox_step = _resolve(obj, wrt)
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise InputError("check_stationarity: x must be a tensor of shape (..., rows, cols)")
    x = x.detach().to(torch.float64) if x.dtype != torch.float64 else x.detach()
    xs = x.reshape(-1, *x.shape[-2:])
    B, shape = xs.shape[0], tuple(x.shape[-2:])
    n = shape[0] * shape[1]

    def energy_at(b: int, y: Tensor) -> Tensor:
        z = torch.cat([xs[:b], y.reshape(1, *shape), xs[b + 1:]]).reshape(x.shape)
        return e(z, **inputs).reshape(-1)[b]

    grad_norm, lo, hi = 0.0, float("inf"), float("-inf")
    kind = "gradient"
    for b in range(B):
        f = lambda y, b=b: energy_at(b, y)  # noqa: E731
        gfun = torch.func.grad(f)
        yb = xs[b]
        if prox_step is not None:
            kind = "gradient mapping"
            step_size = eta if eta is not None else 1.0
            gm = prox_step.gradient_mapping(x, step_size, **inputs).reshape(B, -1)[b]
            grad_norm = max(grad_norm, float(gm.norm()))
        else:
            grad_norm = max(grad_norm, float(gfun(yb).norm()))
        hvp = lambda v, g=gfun, yb=yb: torch.func.jvp(g, (yb,), (v.reshape(shape),))[1].reshape(-1)  # noqa: E731
        l, h = lanczos_extremes(hvp, n, torch.float64)
        lo, hi = min(lo, l), max(hi, h)
    dist: Optional[float] = None
    if minimizer and prox_step is None:
        from scipy.optimize import minimize

        g = torch.Generator().manual_seed(0)
        x_start = start.detach().to(torch.float64) if start is not None else \
            x + perturb * torch.randn(x.shape, generator=g, dtype=torch.float64)
        starts = x_start.reshape(B, n)
        dist = 0.0
        for b in range(B):
            def fun(v: np.ndarray, b: int = b) -> tuple[float, np.ndarray]:
                y = torch.tensor(v, dtype=torch.float64).reshape(shape).requires_grad_()
                val = energy_at(b, y)
                (gr,) = torch.autograd.grad(val, y)
                return float(val.detach()), gr.reshape(-1).numpy().astype(np.float64)

            r = minimize(fun, starts[b].numpy(), jac=True, method="L-BFGS-B",
                         options={"maxiter": 20000, "gtol": 1e-13, "ftol": 0.0, "maxcor": 30})
            dist = max(dist, float(np.abs(r.x - xs[b].reshape(-1).numpy()).max()))
    passed = grad_norm <= grad_tol and lo >= -hess_tol and (dist is None or dist <= dist_tol)
    detail = (f"{'stationary' if passed else 'NOT a verified minimiser'}: ‖{kind}‖ = {grad_norm:.3e} "
              f"(tol {grad_tol:.0e}), Hessian eigenvalues in [{lo:.4g}, {hi:.4g}]"
              + (f", distance to L-BFGS minimiser {dist:.3e} (tol {dist_tol:.0e})" if dist is not None else ""))
    return StationarityResult(passed, grad_norm, lo, hi, dist, grad_tol, hess_tol, dist_tol, kind, detail)


def assert_stationarity(obj: Any, x: Tensor, /, **kwargs: Any) -> StationarityResult:
    """:func:`check_stationarity`, raising :class:`~unfold.errors.CheckFailedError` when it fails."""
    res = check_stationarity(obj, x, **kwargs)
    if not res.passed:
        raise CheckFailedError(res.detail)
    return res
