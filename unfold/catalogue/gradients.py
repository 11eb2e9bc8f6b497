"""Built-in gradients: every energy of :mod:`unfold.energies` passes the two-leg gradient check.

This entry is what ``unfold verify`` always includes: for each built-in energy ``E`` and each of its
variables ``v``, the generated ``∂E/∂v`` agrees with (1) ``torch.func.grad`` of the generated
energy on a random batched point and (2) entrywise scalar ``sp.diff`` of ``E`` expanded at explicit
small sizes, in the scaled error ``max|a − b| / max(1, max|b|)``.

Tolerance: ``1e-10`` at float64.  With ``--dtype float32`` leg 1 runs on float32 inputs (the
explicit-size leg stays a 25-digit sympy reference against float64 code) and the tolerance is
the catalogue rule :meth:`~unfold.catalogue.base.RunConfig.tol` with the cap ``1e-4`` (the rule's
``1e-10·ε₃₂/ε₆₄ = 0.054`` is capped; ``1e-4`` is this entry's float32 tolerance since it was
written, and a cap may tighten the rule, never loosen it) — float32 round-off of a gradient is
~1e-7 relative, amplified by conditioning; measured ≤ 1.3e-6 over the 29 built-in energies.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..energies import BUILTIN_ENERGIES
from ..symbolic import Energy
from ..sampling import explicit_sizes, random_inputs
from ..verify.gradient import check_gradient
from .base import AssumptionResult, Check, CheckResult, Entry, RunConfig
from ._proof import Proof

__all__ = ["ENTRY", "TOL", "TOL64", "CAP", "tolerance"]

#: float64 tolerance of both legs, and the cap of the rule at lower precision
TOL64, CAP = 1e-10, 1e-4
TOL: dict[torch.dtype, float] = {dt: RunConfig(dtype=dt).tol(TOL64, CAP) for dt in (torch.float64, torch.float32)}

#: Energies checked in the ``--quick`` profile: one of each family, each well under a second.
QUICK = (
    "hopfield", "coding_rate", "quadratic_residual", "l1_norm", "trace_sum", "log_trace",
    "sqrt_trace", "determinant", "logdet_minus_trace", "lasso", "least_squares_icl", "yhw_ffn",
    "soft_threshold_energy",
)


def tolerance(dtype: torch.dtype) -> float:
    """The scaled-error tolerance of the gradient check at ``dtype``: ``RunConfig(dtype=dtype).tol(1e-10, cap=1e-4)``."""
    return RunConfig(dtype=dtype).tol(TOL64, CAP)


def _check(name: str, build: Callable[[], Energy]) -> Callable[[RunConfig], CheckResult]:
    def run(config: RunConfig) -> CheckResult:
        E = build()
        tol = config.tol(TOL64, CAP)
        inputs = None
        if config.dtype != torch.float64:
            sizes = {d: s + 1 for d, s in explicit_sizes(E.dims).items()}
            inputs = random_inputs(E, sizes, batch=(3,), seed=config.seed, dtype=config.dtype)
        r = check_gradient(E, inputs=inputs, seed=config.seed, tol=tol, raise_on_failure=False)
        worst = max(r.variables, key=lambda v: max(v.leg1_error, v.leg2_energy_error, v.leg2_grad_error))
        per_var = ", ".join(
            f"{v.name} {max(v.leg1_error, v.leg2_energy_error, v.leg2_grad_error):.1e}" for v in r.variables
        )
        detail = f"scaled error per variable: {per_var}" + config.tol_note(TOL64, CAP)
        if not r.passed:
            detail += f"; worst entry {worst.worst}"
        return CheckResult(
            entry="gradients",
            check=name,
            claim="gradient",
            passed=r.passed,
            error=r.max_error,
            tol=tol,
            detail=detail,
            assumptions=[AssumptionResult("finite at the check point", True, "energy value finite")],
            data={
                "energy": str(E),
                "sizes": r.sizes,
                "variables": {
                    v.name: {"autograd": v.leg1_error, "explicit_energy": v.leg2_energy_error,
                             "explicit_grad": v.leg2_grad_error}
                    for v in r.variables
                },
            },
        )

    return run


PROOFS = (
    Proof("hopfield_golden", "unfold's ∇_ξ(−lse(βXᵀξ)/β + ½‖ξ‖²) = ξ − X softmax(βXᵀξ)", "engine-golden",
          "structural equality at symbolic d, n", ("hopfield",)),
    Proof("coding_rate_golden", "unfold's ∇ ½logdet(I + αZZᵀ) = α(I + αZZᵀ)⁻¹Z", "engine-golden",
          "structural equality at symbolic d, n", ("coding_rate",)),
    Proof("coding_rate_entrywise", "∂/∂Z_ij ½logdet(I + αZZᵀ) = (α(I + αZZᵀ)⁻¹Z)_ij", "fixed-size",
          "plain scalar sp.diff of the expanded log-determinant at d×n ∈ {2×2, 2×3}", ("coding_rate",)),
    Proof("trace_sum_golden", "unfold's ∇_A(tr A + tr AW) = I + Wᵀ (sympy 1.14's .diff returns 0)", "engine-golden",
          "structural equality", ("trace_sum",)),
    Proof("quadratic_residual_golden", "unfold's ∇ ½‖Y − WY‖² = (I − W)ᵀ(I − W)Y", "engine-golden",
          "expanded structural equality", ("quadratic_residual",)),
    Proof("determinant_golden", "unfold's ∇ det A = adj(A)ᵀ (Jacobi; det(A)A⁻ᵀ where A is invertible)", "engine-golden", "structural equality",
          ("determinant",)),
    Proof("l1_norm_golden", "unfold's ∇ λ‖Z‖₁ = λ sign(Z) (away from 0)", "engine-golden", "structural equality",
          ("l1_norm",)),
)

ENTRY = Entry(
    name="gradients",
    title="Derived gradients of the built-in energies",
    source="unfold (two-leg check: torch.func autograd + explicit-size sympy)",
    summary=(
        "Every built-in energy's generated gradient equals autograd of the generated energy and the "
        "entrywise derivative of the energy expanded at explicit small sizes."
    ),
    energy=lambda: {name: build() for name, build in BUILTIN_ENERGIES.items()},
    checks=tuple(
        Check(
            name=name,
            claim="gradient",
            description=(build.__doc__ or name).strip().splitlines()[0],
            run=_check(name, build),
            quick=name in QUICK,
        )
        for name, build in BUILTIN_ENERGIES.items()
    ),
    assumptions=("energy finite at the random check point",),
    order=0,
    proofs=PROOFS,
)
