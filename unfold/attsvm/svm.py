"""The attention SVM (Att-SVM) of Tarzanagh et al., solved by convex solvers, with its KKT check.

For selected tokens ``α_i`` (one per sequence), write ``A_it = (x_{iα_i} − x_it) z_iᵀ`` so that the
margin of token ``t`` is ``(x_{iα_i} − x_it)ᵀ W z_i = ⟨A_it, W⟩``.  Then::

    W^mm   = argmin ½‖W‖_F²  s.t. ⟨A_it, W⟩ ≥ 1  for all i and t ≠ α_i        (Frobenius)
    W^mm_* = argmin  ‖W‖_*   s.t. ⟨A_it, W⟩ ≥ 1  for all i and t ≠ α_i        (nuclear)

KKT conditions, with multipliers ``λ_it ≥ 0`` and ``G = Σ λ_it A_it``:

* primal feasibility ``⟨A_it, W⟩ ≥ 1``; dual feasibility ``λ_it ≥ 0``;
* complementary slackness ``λ_it (⟨A_it, W⟩ − 1) = 0``;
* stationarity: Frobenius ``W = G``; nuclear ``G ∈ ∂‖W‖_*``, i.e. ``‖G‖_2 ≤ 1`` and
  ``⟨G, W⟩ = ‖W‖_*`` (then also ``‖W‖_* = Σ λ_it``: zero duality gap).

Both problems are convex, so KKT ⇔ optimal.  The multipliers are read from the solver (cvxpy with
CLARABEL) and the residuals recomputed here with numpy; :func:`solve_att_svm_slsqp` solves the
Frobenius problem again with scipy's SLSQP as an independent check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..errors import AssumptionError, InputError
from .data import AttDataset

__all__ = ["SVMSolution", "KKTReport", "constraint_matrices", "solve_att_svm", "solve_att_svm_slsqp", "kkt_report"]

Norm = Literal["fro", "nuc"]


@dataclass
class KKTReport:
    """KKT residuals of an Att-SVM solution (absolute, in the units of the margins / of ``W``)."""

    primal: float          # max(0, 1 − min margin)
    dual: float            # max(0, −min λ)
    slackness: float       # max |λ_it (margin_it − 1)|
    stationarity: float    # Frobenius: ‖W − G‖_F / ‖W‖_F; nuclear: max(‖G‖₂ − 1, 0) + |⟨G,W⟩ − ‖W‖_*| / ‖W‖_*
    gap: float             # |objective − dual objective| / objective
    tol: float

    @property
    def passed(self) -> bool:
        return max(self.primal, self.dual, self.slackness, self.stationarity, self.gap) <= self.tol

    @property
    def worst(self) -> float:
        return max(self.primal, self.dual, self.slackness, self.stationarity, self.gap)

    def __str__(self) -> str:
        return (
            f"KKT ({'PASS' if self.passed else 'FAIL'}, tol {self.tol:.0e}): primal {self.primal:.1e}, "
            f"dual {self.dual:.1e}, slackness {self.slackness:.1e}, stationarity {self.stationarity:.1e}, "
            f"gap {self.gap:.1e}"
        )


@dataclass
class SVMSolution:
    """``W`` (d×d), multipliers ``lam`` (n×T, zero at the selected tokens), margins, the norm used."""

    W: np.ndarray
    lam: np.ndarray
    margins: np.ndarray  # (n, T), +inf at the selected tokens
    selected: np.ndarray  # (n,)
    norm: str
    objective: float
    support: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # (n, T) λ > 0

    def tensor(self, like: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.from_numpy(self.W.copy())
        return t if like is None else t.to(like)


def _one(data: AttDataset) -> tuple[np.ndarray, np.ndarray]:
    if data.sizes[0] != 1:
        raise InputError(f"the SVM is solved per dataset; pass data[b] (got a batch of {data.sizes[0]})")
    X = data.X[0].detach().cpu().double().numpy()
    z = data.z[0, :, :, 0].detach().cpu().double().numpy()
    return X, z


def constraint_matrices(data: AttDataset, selected: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` of shape ``(n, T, d, d)`` with ``A_it = (x_{iα_i} − x_it) z_iᵀ`` (zero at ``t = α_i``) and
    the boolean mask ``(n, T)`` of the constraints (``t ≠ α_i``)."""
    X, z = _one(data)
    sel = np.asarray(torch.as_tensor(selected).reshape(-1).cpu().numpy(), dtype=int)
    n, T, d = X.shape
    if sel.shape != (n,) or sel.min() < 0 or sel.max() >= T:
        raise InputError(f"selected must hold one token index in [0, {T}) per sequence (n={n}), got {sel}")
    diff = X[np.arange(n), sel][:, None, :] - X  # (n, T, d)
    A = diff[:, :, :, None] * z[:, None, None, :]
    mask = np.ones((n, T), dtype=bool)
    mask[np.arange(n), sel] = False
    return A, mask


def kkt_report(sol: SVMSolution, A: np.ndarray, mask: np.ndarray, tol: float = 1e-6) -> KKTReport:
    """Recompute the KKT residuals of ``sol`` (see the module docstring) with numpy."""
    W, lam = sol.W, np.where(mask, sol.lam, 0.0)
    m = np.einsum("ntij,ij->nt", A, W)[mask]
    primal = max(0.0, 1.0 - float(m.min()))
    dual = max(0.0, -float(lam[mask].min()))
    slack = float(np.abs(lam[mask] * (m - 1.0)).max())
    G = np.einsum("nt,ntij->ij", lam, A)
    if sol.norm == "fro":
        stat = float(np.linalg.norm(W - G) / np.linalg.norm(W))
        obj, dual_obj = 0.5 * float(np.sum(W * W)), float(lam.sum()) - 0.5 * float(np.sum(G * G))
    else:
        nuc = float(np.linalg.svd(W, compute_uv=False).sum())
        spec = float(np.linalg.norm(G, 2))
        stat = max(spec - 1.0, 0.0) + abs(float(np.sum(G * W)) - nuc) / nuc
        obj, dual_obj = nuc, float(lam.sum())
    gap = abs(obj - dual_obj) / abs(obj)
    return KKTReport(primal, dual, slack, stat, gap, tol)


def _problem(m: int, d: int, norm: str) -> tuple[Any, Any, Any, Any]:
    """The cvxpy problem with the constraint matrix as a parameter (DPP).  Built afresh for every
    solve: a problem object shared between solves keeps solver state from the previous one, so the
    answer (to solver tolerance) would depend on which dataset was solved before it in the same
    process, and ``unfold verify -j 1`` and ``-j 2`` would write different results."""
    import cvxpy as cp

    rows = cp.Parameter((m, d * d))
    W = cp.Variable((d, d))
    cons = [rows @ cp.reshape(W, (d * d,), order="C") >= 1]
    obj = 0.5 * cp.sum_squares(W) if norm == "fro" else cp.normNuc(W)
    return cp.Problem(cp.Minimize(obj), cons), rows, W, cons


def solve_att_svm(
    data: AttDataset, selected: torch.Tensor | np.ndarray, norm: Norm = "fro", solver: str = "CLARABEL"
) -> SVMSolution:
    """Solve the Att-SVM of one dataset (``data[b]``) for the ``selected`` tokens with cvxpy.

    Raises :class:`AssumptionError` when the constraints are infeasible (no ``W`` separates the
    selected tokens: the SVM, and the directional-convergence claim, need e.g. ``d`` large enough).
    """
    if norm not in ("fro", "nuc"):
        raise InputError(f"norm must be 'fro' or 'nuc', got {norm!r}")
    A, mask = constraint_matrices(data, selected)
    n, T, d, _ = A.shape
    rows = A[mask].reshape(-1, d * d)  # row-major vec(A_it)
    prob, param, W, cons = _problem(rows.shape[0], d, norm)
    param.value = rows
    prob.solve(solver=solver)
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        raise AssumptionError(
            f"Att-SVM infeasible: no W gives margin ≥ 1 to the selected tokens {np.asarray(selected).tolist()} "
            f"(n={n}, T={T}, d={d}); increase d or check the selected tokens"
        )
    if prob.status != "optimal":
        raise AssumptionError(f"Att-SVM solver {solver} ended with status {prob.status!r}")
    lam = np.zeros((n, T))
    lam[mask] = np.asarray(cons[0].dual_value).reshape(-1)
    Wv = np.array(W.value, dtype=float)  # a copy: the cached problem is reused
    margins = np.full((n, T), np.inf)
    margins[mask] = rows @ Wv.reshape(-1)
    sel = np.asarray(torch.as_tensor(selected).reshape(-1).cpu().numpy(), dtype=int)
    return SVMSolution(Wv, lam, margins, sel, norm, float(prob.value), support=lam > 1e-7 * max(1.0, lam.max()))


def solve_att_svm_slsqp(data: AttDataset, selected: torch.Tensor | np.ndarray) -> np.ndarray:
    """The Frobenius Att-SVM solved independently by scipy's SLSQP (``½‖w‖²`` s.t. ``A w ≥ 1``)."""
    from scipy.optimize import minimize

    A, mask = constraint_matrices(data, selected)
    d = A.shape[-1]
    rows = A[mask].reshape(-1, d * d)
    # start from the least-norm solution of A w = 1 (feasible with equality when rows are independent)
    w0 = np.linalg.lstsq(rows, np.ones(rows.shape[0]), rcond=None)[0]
    res = minimize(
        lambda w: 0.5 * float(w @ w), w0, jac=lambda w: w, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda w: rows @ w - 1.0, "jac": lambda w: rows}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    if not res.success:
        residual = _frobenius_kkt_residual(rows, res.x)
        if residual > SLSQP_KKT_TOL:
            raise AssumptionError(
                f"SLSQP did not solve the Att-SVM: {res.message} (its last point has KKT residual "
                f"{residual:.1e} > {SLSQP_KKT_TOL:.0e})"
            )
        # SLSQP's line search stalls at machine precision ("Positive directional derivative for
        # linesearch") at points that are optimal: accepted on its own KKT certificate, not on success
    return res.x.reshape(d, d)


#: KKT residual below which an SLSQP point that reports a failure is accepted as optimal.
SLSQP_KKT_TOL = 1e-7


def _frobenius_kkt_residual(rows: np.ndarray, w: np.ndarray, active: float = 1e-6) -> float:
    """KKT residual of ``w`` for ``min ½‖w‖²`` s.t. ``rows·w ≥ 1``, independent of any other
    solver: ``max(infeasibility, ‖w − rowsₐᵀλ‖/‖w‖)`` with ``λ ≥ 0`` the non-negative least-squares
    multipliers of the (nearly) active constraints ``a`` (margins within ``active`` of 1)."""
    from scipy.optimize import nnls

    margins = rows @ w
    infeasible = max(0.0, 1.0 - float(margins.min()))
    act = margins <= 1.0 + active
    if not act.any():
        return max(infeasible, 1.0)  # no active constraint: w ≠ 0 cannot be optimal
    lam, _ = nnls(rows[act].T, w)
    stationarity = float(np.linalg.norm(w - rows[act].T @ lam) / max(np.linalg.norm(w), 1e-300))
    return max(infeasible, stationarity)
