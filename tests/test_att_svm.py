"""Att-SVM entry: loss/gradient vs the paper's formula, SVM solvers and KKT, normalized GD through
unfold.steps, directional convergence (small sizes, few iterations; the notebook runs the full
experiment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unfold.attsvm.data import AttDataset, random_datasets
from unfold.attsvm.dynamics import dataset_energy, dataset_inputs, training_step, unrolled_training
from unfold.attsvm.experiment import run_experiment
from unfold.attsvm.model import attention_loss, attention_loss_kq, batched_state, dataset_loss
from unfold.attsvm.svm import constraint_matrices, kkt_report, solve_att_svm, solve_att_svm_slsqp
from unfold.attsvm.train import NormalizedGradient, loss_and_grad_fn, train
from unfold.errors import AssumptionError, CheckFailedError, InputError, StepSizeError
from unfold.verify.convergence import assert_directional_convergence, check_directional_convergence
from unfold.verify.descent import check_descent
from unfold.verify.certificates import checked_grad_fn

DT = torch.float64


def paper_loss(W: torch.Tensor, X: torch.Tensor, z: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L(W) written out per sequence with explicit loops (X (n,T,d), z (n,d), v (d,), y (n,))."""
    total = torch.zeros((), dtype=DT)
    for i in range(X.shape[0]):
        scores = X[i] @ W @ z[i]
        p = torch.exp(scores - scores.max())
        p = p / p.sum()
        f = v @ X[i].T @ p
        total = total + torch.log1p(torch.exp(-y[i] * f))
    return total / X.shape[0]


@pytest.fixture(scope="module")
def small() -> AttDataset:
    return random_datasets(2, n=3, T=4, d=5, seed=3)


def test_data_shapes_units_and_optimal_tokens(small: AttDataset) -> None:
    assert small.sizes == (2, 3, 4, 5)
    assert torch.allclose(small.X.norm(dim=-1), torch.ones(2, 3, 4, dtype=DT))
    assert torch.allclose(small.z.norm(dim=-2), torch.ones(2, 3, 1, dtype=DT))
    assert set(small.y.unique().tolist()) <= {-1.0, 1.0}
    opt = small.optimal_tokens()
    for b in range(2):
        for i in range(3):
            gam = [float(small.y[b, i] * small.v[b, 0, :, 0] @ small.X[b, i, t]) for t in range(4)]
            assert int(opt[b, i]) == int(np.argmax(gam))
    with pytest.raises(InputError):
        AttDataset(small.X, small.z[:, :2], small.v, small.y)


def test_generated_loss_and_gradients_match_paper_formula(small: AttDataset) -> None:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, 5, 5, generator=g, dtype=DT)
    cm = attention_loss().compile()
    vals = {**small.inputs(), "W": batched_state(W)}
    L = dataset_loss(cm.energy_fn(*cm.args(**vals)))
    G = checked_grad_fn(cm.energy, "W")(*cm.args(**vals))[:, 0] / 3
    for b in range(2):
        Wb = W[b].clone().requires_grad_(True)
        ref = paper_loss(Wb, small.X[b], small.z[b, :, :, 0], small.v[b, 0, :, 0], small.y[b])
        (gref,) = torch.autograd.grad(ref, Wb)
        assert abs(float(L[b] - ref.detach())) < 1e-14
        assert float((G[b] - gref).abs().max()) < 1e-14
    # (K, Q): generated gradients of the fused training function vs autograd through K Qᵀ
    K, Q = torch.randn(2, 5, 5, generator=g, dtype=DT), torch.randn(2, 5, 5, generator=g, dtype=DT)
    gen = loss_and_grad_fn("KQ")
    v2 = {**small.inputs(), "K": batched_state(K), "Q": batched_state(Q)}
    _, gK, gQ = gen.fn(*[v2[str(s)] for s in gen.inputs])
    for b in range(2):
        Kb, Qb = K[b].clone().requires_grad_(True), Q[b].clone().requires_grad_(True)
        ref = paper_loss(Kb @ Qb.T, small.X[b], small.z[b, :, :, 0], small.v[b, 0, :, 0], small.y[b])
        rK, rQ = torch.autograd.grad(ref, (Kb, Qb))
        assert float((gK[b, 0] / 3 - rK).abs().max()) < 1e-13
        assert float((gQ[b, 0] / 3 - rQ).abs().max()) < 1e-13
    assert {str(s) for s in attention_loss_kq().states} == {"K", "Q"}


def test_svm_kkt_slsqp_and_norm_optimality(small: AttDataset) -> None:
    d = small[0]
    sel = d.optimal_tokens()[0]
    A, mask = constraint_matrices(d, sel)
    fro, nuc = solve_att_svm(d, sel, "fro"), solve_att_svm(d, sel, "nuc")
    for sol in (fro, nuc):
        rep = kkt_report(sol, A, mask, 1e-6)
        assert rep.passed, str(rep)
        assert float(np.min(sol.margins[mask])) > 1 - 1e-7
    ws = solve_att_svm_slsqp(d, sel)
    assert np.linalg.norm(ws - fro.W) / np.linalg.norm(fro.W) < 1e-6
    # each solution is optimal for its own norm among the two (independent consequence of optimality)
    nucnorm = lambda M: float(np.linalg.svd(M, compute_uv=False).sum())  # noqa: E731
    assert np.linalg.norm(fro.W) <= np.linalg.norm(nuc.W) + 1e-7
    assert nucnorm(nuc.W) <= nucnorm(fro.W) + 1e-7
    # the Frobenius solution lies in span{(x_iα − x_it) z_iᵀ}: rank ≤ n
    assert np.linalg.matrix_rank(fro.W, 1e-8) <= 3
    # random feasible points never beat the solution: W + t(direction), projected to feasibility by scaling
    g = np.random.default_rng(0)
    for _ in range(20):
        Wp = fro.W + 0.1 * g.standard_normal(fro.W.shape)
        m = np.einsum("ntij,ij->nt", A, Wp)[mask].min()
        if m > 0:
            assert np.linalg.norm(Wp / m) >= np.linalg.norm(fro.W) - 1e-9


def test_kkt_report_rejects_a_perturbed_solution(small: AttDataset) -> None:
    d = small[1]
    sel = d.optimal_tokens()[0]
    A, mask = constraint_matrices(d, sel)
    sol = solve_att_svm(d, sel, "fro")
    sol.W = sol.W * 1.01  # still feasible, no longer stationary nor complementary
    rep = kkt_report(sol, A, mask, 1e-6)
    assert not rep.passed and rep.stationarity > 1e-3 and rep.slackness > 1e-4


def test_infeasible_svm_raises() -> None:
    X = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=DT)[None]
    z = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=DT)[None, :, :, None]
    data = AttDataset(X, z, torch.ones(1, 1, 2, 1, dtype=DT), torch.ones(1, 2, dtype=DT))
    with pytest.raises(AssumptionError, match="infeasible"):
        solve_att_svm(data, torch.tensor([0, 1]), "fro")  # same sequence, opposite selections
    with pytest.raises(InputError):
        solve_att_svm(data, torch.tensor([0, 5]), "fro")
    with pytest.raises(InputError):
        solve_att_svm(data, torch.tensor([0, 0]), "l1")


def test_normalized_gd_through_steps_matches_fused_loop_and_descends() -> None:
    data = random_datasets(2, n=2, T=3, d=3, seed=5)
    run = train(data, iters=6, eta=0.1, seed=2)
    W_end, traj = unrolled_training(data, run.W[0], iters=6, eta=0.1)
    states = torch.stack(traj.states)
    assert float((states - run.W).abs().max()) < 1e-13
    assert float((traj.energies - run.loss).abs().max()) < 1e-14
    steps = torch.linalg.matrix_norm(states[1:] - states[:-1])
    assert torch.allclose(steps, torch.full_like(steps, 0.1), atol=1e-12)  # normalized: length η
    assert set(traj.terms) == {"seq1", "seq2"}
    assert torch.allclose(sum(traj.terms.values()), traj.energies, atol=1e-15)
    step = training_step(data, 0.1)
    res = check_descent(step, run.W[0], depth=6)
    assert res.passed, res.detail
    with pytest.raises(StepSizeError):
        NormalizedGradient(0.0)


def test_directional_convergence_small_experiment() -> None:
    exp = run_experiment(3, n=2, T=3, d=4, iters=300, seed=11)
    assert exp.corr_fro.passed, exp.corr_fro.detail
    assert bool((exp.corr_fro.final > exp.corr_fro.correlations[0]).all())
    assert max(r.worst for r in exp.kkt_fro + exp.kkt_nuc) <= 1e-6
    # selected tokens are where the final softmax puts its largest mass, and it concentrates
    assert bool((exp.max_prob[-1] > exp.max_prob[0]).all()) and float(exp.max_prob[-1].min()) > 0.9
    s = exp.summary()
    assert len(s["global_selection"]) == 3 and all(v == 0 for v in s["loss_descent_violations"])


def test_check_directional_convergence_on_known_trajectory() -> None:
    g = torch.Generator().manual_seed(1)
    A, B = torch.randn(3, 3, generator=g, dtype=DT), torch.randn(3, 3, generator=g, dtype=DT)
    ks = torch.arange(0, 101, dtype=DT)
    traj = ks[:, None, None] * A + B  # direction → A
    r = check_directional_convergence(traj, A, threshold=0.99)
    expect = ((traj * A).sum((-2, -1)) / (traj.norm(dim=(-2, -1)) * A.norm()))
    assert torch.allclose(r.correlations, expect)
    assert r.passed and int(r.first_above) > 0 and float(r.correlations[int(r.first_above) - 1]) <= 0.99
    assert not check_directional_convergence(traj, B - A * 5, threshold=0.99).passed
    assert check_directional_convergence(list(traj), A).passed  # a list of iterates
    with pytest.raises(CheckFailedError):
        assert_directional_convergence(traj, -A)
    with pytest.raises(InputError):
        check_directional_convergence(traj, torch.zeros(3, 3, dtype=DT))
    with pytest.raises(InputError):
        check_directional_convergence("not a trajectory", A)


def test_dataset_energy_terms_and_inputs() -> None:
    E = dataset_energy(3)
    assert list(E.terms) == ["seq1", "seq2", "seq3"]
    data = random_datasets(1, n=3, T=4, d=5, seed=0)
    W = torch.randn(1, 5, 5, dtype=DT, generator=torch.Generator().manual_seed(4))
    cm = E.compile()
    L = cm.energy_fn(*cm.args(W=W, **dataset_inputs(data)))
    ref = paper_loss(W[0], data.X[0], data.z[0, :, :, 0], data.v[0, 0, :, 0], data.y[0])
    assert abs(float(L[0] - ref)) < 1e-14
    with pytest.raises(InputError):
        dataset_energy(0)


def test_catalogue_entry_registered_and_central_claim_passes() -> None:
    from unfold.catalogue import RunConfig, run_entry
    from unfold.catalogue.registry import get_entry

    entry = get_entry("att_svm")
    assert entry.order == 80 and set(entry.claims) == {"gradient", "approximate", "asymptotic", "descent"}
    rep = run_entry(entry, RunConfig(quick=True), only=["directional_convergence_W", "training_loss_descent"])
    assert len(rep.results) == 2 and rep.passed, [r.detail for r in rep.results]
    w = rep.results[0]
    assert w.error is not None and w.error < 0.01 and len(w.data["global_selection"]) == 2
    assert all(a.holds for a in w.assumptions)
