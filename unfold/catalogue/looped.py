"""Looped linear transformer = multi-step preconditioned gradient descent (Gatmiry et al., 2410.08292).

Energy (in-context least squares over the regression weights ``w``)::

    L(w) = (1/2n) ‖Xᵀw − y‖²,      X ∈ R^{d×n} (context inputs as columns), y ∈ R^{n×1}

Generated layer: the preconditioned gradient step ``w ← w − A ∇L(w) = w − (1/n) A X (Xᵀw − y)``
(:class:`~unfold.steps.GradientStep` with step 1 and left preconditioner ``A``), unrolled ``t`` times
from ``w_0 = 0`` with tied weights.  Descent holds when ``A`` is symmetric positive definite and
``λ_max(A^{1/2} (XXᵀ/n) A^{1/2}) ≤ 2``.

Reference (``_looped_refs``, from the paper): one weight-shared linear self-attention layer applied
``t`` times, ``Z_{t+1} = Z_t − (1/n) P Z_t M Z_tᵀ Q Z_t`` with ``Z_0 = [[X, x_q], [yᵀ, 0]]``,
``M = diag(1,…,1,0)``, ``P = [[0,0],[0,1]]``, ``Q = [[A,0],[0,0]]``.

The map from the transformer iteration to the GD step: by induction on ``t``,

    Z_t = [[X, x_q], [(y − Xᵀw_t)ᵀ, −x_qᵀ w_t]]

i.e. the first ``d`` rows never change (``P`` only writes the last row), the context slots of the
last row hold the residuals ``r_t = y − Xᵀw_t`` and the query slot holds ``−x_qᵀw_t``.  Indeed
``P Z_t M Z_tᵀ`` keeps only the last row ``[Σᵢ rᵢ xᵢᵀ, Σᵢ rᵢ²]`` of the context Gram matrix and
``Q Z_t = [[A X, A x_q], [0, 0]]``, so the last row moves by ``−(1/n) r_tᵀ Xᵀ A [X, x_q]``, which is
``−Xᵀ(w_{t+1} − w_t)`` on the context slots and ``−x_qᵀ(w_{t+1} − w_t)`` on the query slot exactly
when ``Aᵀ = A`` (for a general ``A`` the loop runs GD preconditioned by ``Aᵀ``; the check shows
both).  The read-out ``ŷ_t = −[Z_t]_{d+1,n+1} = x_qᵀ w_t`` is the GD prediction, and the energy is
readable from the transformer state: ``L(w_t) = (1/2n) ‖[Z_t]_{d+1,1:n}‖²``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from .. import symbolic as s
from ..steps import GradientStep, Unrolled
from ..symbolic import Energy
from ..verify.descent import check_descent
from ._looped_refs import looped_construction, looped_lsa
from ._measure import positive_definite, scaled_error, spd_matrix, symmetric
from .base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from ._claim import Claim, Control, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "gd_model", "sample_task", "TOL"]

#: exact claims: scaled max error at float64; RunConfig.tol scales it (≈4504 ulps of the working precision)
TOL = 1e-12


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``L(w) = (1/2n)‖Xᵀw − y‖²`` with state ``w`` (d×1) and parameters ``X`` (d×n), ``y`` (n×1)."""
    d, n = s.dims("d n")
    w, X, y = s.state("w", d, 1), s.param("X", d, n), s.param("y", n, 1)
    return Energy(s.fro2(X.T * w - y) / (2 * n), name="L")


def gd_model(A: torch.Tensor, loops: int) -> Unrolled:
    """``loops`` tied layers of the generated step ``w ← w − A ∇L(w)``."""
    return Unrolled(GradientStep(energy(), wrt="w", step=1.0, left=A), depth=loops, tied=True)


def sample_task(config: RunConfig, d: int, n: int, batch: int, offset: int = 0) -> dict[str, torch.Tensor]:
    """Linear-regression tasks ``x ~ N(0, Σ)``, ``y = Xᵀw* + 0.1·noise``, and ``A = Σ⁻¹/2``."""
    g = config.generator(offset)
    dt = config.dtype
    Sigma = spd_matrix(d, g, torch.float64, cond=4.0)
    C = torch.linalg.cholesky(Sigma)
    X = (C @ torch.randn(batch, d, n, generator=g, dtype=torch.float64)).to(dt)
    xq = (C @ torch.randn(batch, d, 1, generator=g, dtype=torch.float64)).to(dt)
    w_star = torch.randn(batch, d, 1, generator=g, dtype=torch.float64).to(dt)
    y = X.mT @ w_star + 0.1 * torch.randn(batch, n, 1, generator=g, dtype=torch.float64).to(dt)
    A = (torch.linalg.inv(Sigma) / 2).to(dt)
    A = (A + A.T) / 2
    return {"X": X, "y": y, "xq": xq, "A": A, "Sigma": Sigma.to(dt)}


def _sizes(config: RunConfig) -> tuple[int, int, int, int]:
    """``(d, n, batch, loops)``."""
    return (5, 20, 4, 8)


def _loop_inputs(config: RunConfig) -> dict[str, Any]:
    d, n, batch, loops = _sizes(config)
    task = sample_task(config, d, n, batch)
    g = config.generator(7)        # a non-symmetric A for the control and the Aᵀ statement
    B = task["A"] + 0.2 * torch.randn(d, d, generator=g, dtype=torch.float64).to(task["A"].dtype)
    return {**task, "B": B, "loops": loops}


def _gd_prediction(precond: str, transpose: bool = False) -> Callable[[Inputs], dict[str, torch.Tensor]]:
    """What t steps of GD preconditioned by ``t[precond]`` (or its transpose) predict for the loop's
    state: query read-out ``x_qᵀw_t``, residual slots ``y − Xᵀw_t``, x rows unchanged."""
    def layer(t: Inputs) -> dict[str, torch.Tensor]:
        X, y, xq = t["X"], t["y"], t["xq"]
        A = t[precond].mT if transpose else t[precond]
        _, traj = gd_model(A, t["loops"])(torch.zeros_like(xq), X=X, y=y, return_trajectory=True)
        out: dict[str, torch.Tensor] = {}
        for k in range(1, t["loops"] + 1):
            w = traj.states[k]
            out |= {f"query t={k}": (xq.mT @ w)[..., 0, 0], f"residual t={k}": (y - X.mT @ w)[..., 0],
                    f"x rows t={k}": torch.cat([X, xq], dim=-1)}
        return out
    return layer


def _loop(precond: str) -> Callable[[Inputs], dict[str, torch.Tensor]]:
    """The looped linear transformer (the paper's construction with ``t[precond]``), plain torch."""
    def reference(t: Inputs) -> dict[str, torch.Tensor]:
        X, y, xq = t["X"], t["y"], t["xq"]
        d = X.shape[-2]
        Zs = looped_lsa(*looped_construction(X, y, xq, t[precond]), loops=t["loops"])
        out: dict[str, torch.Tensor] = {}
        for k in range(1, t["loops"] + 1):
            out |= {f"query t={k}": -Zs[k][..., d, -1], f"residual t={k}": Zs[k][..., d, :-1],
                    f"x rows t={k}": Zs[k][..., :d, :]}
        return out
    return reference


def _transpose_statement(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    got, want = _gd_prediction("B", transpose=True)(t), _loop("B")(t)
    err = max(scaled_error(got[k], want[k]) for k in want)
    return err <= config.tol(TOL), f"loop with a non-symmetric A vs GD preconditioned by Aᵀ: {err:.1e}"


def _construction(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    Z0, _, _, M = looped_construction(t["X"], t["y"], t["xq"], t["A"])
    d, n = t["X"].shape[-2], t["X"].shape[-1]
    mask = torch.diag(torch.tensor([1.0] * n + [0.0], dtype=M.dtype))
    ok = bool((Z0[..., d, -1] == 0).all()) and bool(torch.equal(M, mask))
    return ok, f"Z_0[d+1, n+1] = {float(Z0[..., d, -1].abs().max()):g}, M = diag(1,…,1,0): {torch.equal(M, mask)}"


def _per_loop_figure(t: Inputs, errs: dict[str, float], config: RunConfig) -> list[Figure]:
    ks = range(1, t["loops"] + 1)
    return [Figure(
        name="looped_error", title=f"looped LSA vs preconditioned GD ({config.dtype_name})", x=[float(k) for k in ks],
        series={"|−Z_t[d+1,n+1] − x_qᵀw_t|": [max(errs[f"query t={k}"], 1e-18) for k in ks],
                "residual slots": [max(errs[f"residual t={k}"], 1e-18) for k in ks]},
        xlabel="loop t", ylabel="scaled error", kind="semilogy")]


LOOPS_EQUAL_PRECONDITIONED_GD = Claim(
    "loops_equal_preconditioned_gd", "exact",
    "−Z_t[d+1,n+1] = x_qᵀw_t and residual slots = y − Xᵀw_t for t = 1..8 (to rounding)",
    inputs=_loop_inputs, layer=_gd_prediction("A"), reference=_loop("A"), tol64=TOL,
    assumptions=(Predicate.of("A symmetric", lambda t, c: symmetric("A", t["A"], c.tol(TOL))),
                 Predicate.of("A positive definite", lambda t, c: positive_definite("A", t["A"])),
                 Predicate("query target slot starts at 0; M = diag(1,…,1,0): the query is not a key", _construction)),
    # the symmetry assumption, shown by violating it: a non-symmetric A runs GD preconditioned by Aᵀ, not by A
    conditions=(Predicate("non-symmetric A: the loop is GD preconditioned by Aᵀ", _transpose_statement),),
    controls=(Control("non-symmetric A: loop vs GD preconditioned by A", layer=_gd_prediction("B"), reference=_loop("B"),
                      at_least=1e-6),),
    describe=lambda t: f"t = 1..{t['loops']} loops, d={t['X'].shape[-2]}, n={t['X'].shape[-1]}, {t['X'].shape[0]} tasks",
    figures=_per_loop_figure,
)


def _check_energy(config: RunConfig) -> CheckResult:
    d, n, batch, loops = _sizes(config)
    task = sample_task(config, d, n, batch)
    X, y, xq, A = task["X"], task["y"], task["xq"], task["A"]
    model = gd_model(A, loops)
    w0 = torch.zeros_like(xq)
    res = check_descent(model, w0, X=X, y=y)
    Zs = looped_lsa(*looped_construction(X, y, xq, A), loops=loops)
    read = torch.stack([(Z[..., d, :-1] ** 2).sum(-1) / (2 * n) for Z in Zs])  # (loops+1, batch)
    read_err, tol = scaled_error(read, res.energies), config.tol(TOL)
    Ah = torch.linalg.cholesky(A)  # A = Ah Ahᵀ; spectrum of Ahᵀ (XXᵀ/n) Ah = that of A^{1/2}(XXᵀ/n)A^{1/2}
    lam = float(torch.linalg.eigvalsh(Ah.mT @ (X @ X.mT / n) @ Ah).max())
    assumptions = [
        symmetric("A", A, tol), positive_definite("A", A),
        AssumptionResult("step bound λ_max(A^{1/2} XXᵀ/n A^{1/2}) ≤ 2", lam <= 2.0, f"λ_max = {lam:.3f}"),
    ]
    passed = res.passed and read_err <= tol
    return CheckResult(
        entry="looped", check="loop_energy_descends", claim="descent",
        passed=passed, error=read_err, tol=tol,
        detail=(f"{res.detail}; L(w_t) read from the transformer's residual slots (1/2n)‖Z_t[d+1,1:n]‖² "
                f"equals the generated energy to {read_err:.1e}" + config.tol_note(TOL)),
        assumptions=assumptions,
        data={"energies": res.energies.mean(-1).tolist(), "readout_error": read_err, "lambda_max": lam},
        figures=[Figure(
            name="looped_energy", title="L(w_t) along the loop (mean over tasks)",
            x=[float(t) for t in range(loops + 1)],
            series={"L(w_t) (generated)": res.energies.mean(-1).tolist(),
                    "(1/2n)‖residual slots‖²": read.mean(-1).tolist()},
            xlabel="loop t", ylabel="L", kind="semilogy")],
    )


PROOFS = (
    Proof("one_loop_is_gd_step",
          "Z(w) − (1/n) P Z(w) M Z(w)ᵀ Q Z(w) = Z(w − Aᵀ∇L(w)), Z(w) = [[X, x_q],[(y − Xᵀw)ᵀ, −x_qᵀw]]; "
          "for A = Aᵀ this is one preconditioned GD step, and by induction t loops are t steps",
          "general", "block-matrix product at symbolic d, n (block_collapse; a 1×1 block equals its transpose)",
          ("loops_equal_preconditioned_gd",)),
    Proof("readout", "the read-out −Z(w)[d+1,n+1] is x_qᵀw", "general", "by construction of Z(w), symbolic d",
          ("loops_equal_preconditioned_gd",)),
    Proof("gradient_golden", "unfold's derived ∇L(w) is (1/n)X(Xᵀw − y)", "engine-golden",
          "structural equality at symbolic d, n", ("loops_equal_preconditioned_gd",)),
    Proof("gradient_entrywise", "∂L/∂w_i = ((1/n)X(Xᵀw − y))_i for every i", "fixed-size",
          "scalar sp.diff of L expanded at (d, n) ∈ {(2, 3), (3, 2)}", ("loops_equal_preconditioned_gd",)),
    Proof("nonsymmetric_A", "for a non-symmetric A the loop is not the step preconditioned by A", "fixed-size",
          "d = 2, n = 3, symbolic entries: the difference does not expand to 0", ()),
    Proof("energy_readable", "L(w) = (1/2n)‖[Z(w)]_{d+1,1:n}‖² (the residual slots)", "general",
          "the residual slots are (y − Xᵀw)ᵀ by construction; structural", ("loop_energy_descends",)),
)

ENTRY = Entry(
    name="looped",
    title="Looped linear transformer = multi-step preconditioned gradient descent",
    source="Gatmiry, Saunshi, Reddi, Jegelka, Kumar, arXiv 2410.08292 (construction: papers.md §7)",
    summary=(
        "t loops of one weight-shared linear self-attention layer Z ← Z − (1/n) P Z M Zᵀ Q Z compute t "
        "steps of GD on (1/2n)‖Xᵀw − y‖² preconditioned by A; the query read-out −Z_t[d+1,n+1] is x_qᵀw_t."
    ),
    energy=energy,
    checks=(
        LOOPS_EQUAL_PRECONDITIONED_GD,
        Check("loop_energy_descends", "descent",
              "L(w_t) non-increasing under the step bound; readable from the transformer state", _check_energy),
    ),
    assumptions=("A symmetric (else the loop is GD preconditioned by Aᵀ)", "A positive definite",
                 "λ_max(A^{1/2} XXᵀ/n A^{1/2}) ≤ 2 for descent"),
    mapping=("Z_t = [[X, x_q], [(y − Xᵀw_t)ᵀ, −x_qᵀw_t]];  P = [[0,0],[0,1]], Q = [[A,0],[0,0]], "
             "M = diag(1,…,1,0);  w_{t+1} = w_t − A∇L(w_t)"),
    notes="The construction is the one of papers.md §7; the paper's learned A (≈ Σ⁻¹ up to scaling) is not reproduced.",
    order=70,
    proofs=PROOFS,
)
