"""The local-convergence experiment of Tarzanagh et al. (``local_converge``), as one function.

For ``B`` random datasets (``n = 6``, ``T = 8``, ``d = 10`` by default): train by normalized GD
(``η = 0.1``) in the ``W`` or ``(K, Q)`` parameterization, read the tokens ``α_i`` selected at the
last iterate, solve the Frobenius and nuclear Att-SVMs for those tokens (with their KKT check), and
measure ``corr(W(k), W^mm)`` along the run, the largest softmax probability, whether the selected
tokens are the globally optimal ones (``argmax_t γ_it``) and when the softmax saturates
numerically.  The catalogue entry, the notebook and the tests all call :func:`run_experiment`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..verify.convergence import DirectionalConvergenceResult, check_directional_convergence
from .data import AttDataset, random_datasets
from .svm import KKTReport, Norm, constraint_matrices, kkt_report, solve_att_svm
from .train import Param, TrainRun, train

__all__ = ["Experiment", "run_experiment", "solve_targets"]


@dataclass
class Experiment:
    """Everything measured in one run of the experiment (shapes: ``R`` recorded iterates, ``B`` datasets)."""

    data: AttDataset
    run: TrainRun
    selected: torch.Tensor           # (B, n) tokens selected at the last iterate
    optimal: torch.Tensor            # (B, n) globally optimal tokens argmax_t γ_it
    W_fro: torch.Tensor              # (B, d, d) Frobenius Att-SVM for the selected tokens
    W_nuc: torch.Tensor              # (B, d, d) nuclear-norm Att-SVM for the selected tokens
    corr_fro: DirectionalConvergenceResult
    corr_nuc: DirectionalConvergenceResult
    kkt_fro: list[KKTReport]
    kkt_nuc: list[KKTReport]
    max_prob: torch.Tensor           # (R, B)
    resolved: torch.Tensor           # (B,) last iteration whose loss gradient is above rounding level
    select_at: str                   # "last" or "resolved": where the selected tokens were read
    selection_stable: bool           # the selection at the resolved iterate equals the final one
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def is_global(self) -> torch.Tensor:
        """Per dataset: every sequence selected its globally optimal token (``(B,)`` bool)."""
        return (self.selected == self.optimal).all(dim=-1)

    @property
    def locally_selected(self) -> torch.Tensor:
        """Per dataset, the number of sequences whose selected token is not the optimal one."""
        return (self.selected != self.optimal).sum(dim=-1)

    @property
    def target(self) -> DirectionalConvergenceResult:
        """The SVM the parameterization's theory predicts: Frobenius for ``W``, nuclear for ``(K, Q)``."""
        return self.corr_fro if self.run.param == "W" else self.corr_nuc

    def at_resolved(self, corr: DirectionalConvergenceResult) -> torch.Tensor:
        """The correlation at the last iterate whose gradient is resolved (see ``resolved``), ``(B,)``."""
        idx = torch.searchsorted(self.run.iterations, self.resolved)
        return corr.correlations.gather(0, idx[None])[0]

    def summary(self) -> dict[str, Any]:
        it = self.run.iterations
        return {
            "param": self.run.param,
            "datasets": int(self.selected.shape[0]),
            "iterations": int(it[-1]),
            "final_corr_fro": [round(float(c), 6) for c in self.corr_fro.final],
            "final_corr_nuc": [round(float(c), 6) for c in self.corr_nuc.final],
            "peak_corr_nuc": [round(float(c), 6) for c in self.corr_nuc.correlations.amax(0)],
            "select_at": self.select_at,
            "selection_same_at_resolved_and_last": self.selection_stable,
            "global_selection": [bool(g) for g in self.is_global],
            "sequences_not_optimal": [int(c) for c in self.locally_selected],
            "gradient_resolved_until": [int(s) for s in self.resolved],
            "corr_fro_at_resolved": [round(float(c), 6) for c in self.at_resolved(self.corr_fro)],
            "corr_nuc_at_resolved": [round(float(c), 6) for c in self.at_resolved(self.corr_nuc)],
            "max_kkt_fro": max(r.worst for r in self.kkt_fro),
            "max_kkt_nuc": max(r.worst for r in self.kkt_nuc),
            "loss_descent_violations": [int(v) for v in self.run.descent_violations()],
            "largest_loss_increase": [float(v) for v in self.run.loss_increases()],
            "seconds": dict(self.seconds),
        }


def solve_targets(data: AttDataset, selected: torch.Tensor, kkt_tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, list[KKTReport], list[KKTReport]]:
    """Frobenius and nuclear Att-SVM solutions for every dataset of the batch, with KKT reports."""
    fro: list[torch.Tensor] = []
    nuc: list[torch.Tensor] = []
    kf: list[KKTReport] = []
    kn: list[KKTReport] = []
    norms: tuple[tuple[Norm, list[torch.Tensor], list[KKTReport]], ...] = (("fro", fro, kf), ("nuc", nuc, kn))
    for b in range(data.sizes[0]):
        A, mask = constraint_matrices(data[b], selected[b])
        for norm, sols, reps in norms:
            sol = solve_att_svm(data[b], selected[b], norm)
            sols.append(sol.tensor(data.X))
            reps.append(kkt_report(sol, A, mask, kkt_tol))
    return torch.stack(fro), torch.stack(nuc), kf, kn


def run_experiment(
    datasets: int = 20, n: int = 6, T: int = 8, d: int = 10, iters: int = 2000, eta: float = 0.1,
    param: Param = "W", seed: int = 0, init: str = "random", record_every: int = 1, threshold: float = 0.99,
    select_at: str = "last", dtype: torch.dtype = torch.float64, pool: int = 0, reg: tuple[float, float] = (0.0, 0.0),
) -> Experiment:
    """Train on ``datasets`` random datasets at once and measure (see the module docstring).

    ``select_at="last"`` (the paper's rule) solves the SVMs for the tokens selected at the last
    iterate; ``"resolved"`` for those selected at the last iterate whose loss gradient is still above
    rounding level (:meth:`TrainRun.resolved_until`), for runs that saturate the softmax early.
    ``pool``: the datasets (and initial weights) are the first ``datasets`` of a draw of ``pool``, so a
    reduced run repeats part of the full one exactly.
    """
    if select_at not in ("last", "resolved"):
        raise InputError(f"select_at must be 'last' or 'resolved', got {select_at!r}")
    t0 = time.perf_counter()
    data = random_datasets(max(datasets, pool), n, T, d, seed=seed, dtype=dtype)[:datasets]
    run = train(data, iters=iters, eta=eta, param=param, init=init, seed=seed + 1, record_every=record_every,
                pool=pool, reg=reg)
    t1 = time.perf_counter()
    resolved = run.resolved_until(data)
    at = torch.searchsorted(run.iterations, resolved)
    probs = run.probs(data)  # (R, B, n, T)
    sel_resolved = probs.gather(0, at[None, :, None, None].expand(1, *probs.shape[1:]))[0].argmax(-1)
    selected = run.selected(data) if select_at == "last" else sel_resolved
    W_fro, W_nuc, kf, kn = solve_targets(data, selected)
    t2 = time.perf_counter()
    cf = check_directional_convergence(run.W, W_fro, threshold, iterations=run.iterations)
    cn = check_directional_convergence(run.W, W_nuc, threshold, iterations=run.iterations)
    exp = Experiment(
        data, run, selected, data.optimal_tokens(), W_fro, W_nuc, cf, cn, kf, kn,
        probs.amax(dim=-1).mean(dim=-1), resolved, select_at,
        bool((sel_resolved == run.selected(data)).all()),
    )
    exp.seconds = {"train": run.seconds, "setup_and_train": t1 - t0, "svm": t2 - t1,
                   "total": time.perf_counter() - t0}
    return exp
