"""In-context regression: trained linear self-attention against generated gradient descent.

* von Oswald et al. (arXiv 2212.07677), Fig. 2: a one-layer linear self-attention layer trained on
  regression tasks makes the same predictions, with the same sensitivities ``∂ŷ/∂x_q``, as one
  gradient-descent step on the in-context least squares (the generated
  :class:`~unfold.models.PreconditionedGD` with ``Γ = η*I``, ``η*`` fitted to the trained layer).
  Asserted: cosine of predictions and of sensitivities ≥ 0.99 on held-out tasks.
* Ahn et al. (arXiv 2306.00297): ``L`` trained layers against ``L`` generated preconditioned GD
  steps with trained preconditioners ``Γ_ℓ``.  Reported: both test losses per ``L`` and the cosine
  of their predictions.
"""

from __future__ import annotations

import time

import torch

from ..catalogue.base import Figure
from ..models import LinearTransformer, PreconditionedGD, fit, icl_regression
from .base import Criterion, ExperimentResult, Profile

__all__ = ["one_step", "multi_step"]

D, N = 5, 20


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(a @ b / (a.norm() * b.norm()))


def _loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    task = batch[0]
    return (model(task) - task["yq"][..., 0, 0]).pow(2).mean()


def _train(model: torch.nn.Module, profile: Profile, epochs: int, desc: str, offset: int,
           lr: float = 1e-2) -> list[float]:
    def batches(epoch: int):
        for i in range(10):
            yield (icl_regression(256, N, D, seed=profile.seed * 10**7 + offset * 10**5 + epoch * 10 + i),)

    return fit(model, _loss, batches, epochs=epochs, lr=lr, progress=profile.progress, desc=desc, clip=1.0).losses


def _sensitivity(model: torch.nn.Module, task: dict) -> torch.Tensor:
    xq = task["xq"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model({**task, "xq": xq}).sum(), xq)
    return g


def one_step(profile: Profile) -> ExperimentResult:
    t0 = time.perf_counter()
    torch.manual_seed(profile.seed)
    epochs = 60 if profile.quick else 300
    lsa = LinearTransformer(D, layers=1, seed=profile.seed)
    losses = _train(lsa, profile, epochs, "LSA, 1 layer", 1)
    test = icl_regression(2000, N, D, seed=10**9 + profile.seed)
    gd = PreconditionedGD(D, steps=1, eta=1.0)
    with torch.no_grad():
        unit = gd(test)                                   # ŷ_GD(η = 1); ŷ_GD(η) = η·unit
        pred = lsa(test)
        eta = float(pred @ unit / (unit @ unit))
        gd.preconditioners()[0].copy_(eta * torch.eye(D))
        pred_gd = gd(test)
    cos_pred = _cos(pred, pred_gd)
    cos_sens = _cos(_sensitivity(lsa, test), _sensitivity(gd, test))
    with torch.no_grad():
        y = test["yq"][..., 0, 0]
        loss_lsa, loss_gd = float((pred - y).pow(2).mean()), float((pred_gd - y).pow(2).mean())
    res = ExperimentResult(
        "icl_one_step", "A trained linear self-attention layer is one GD step",
        "von Oswald et al., arXiv 2212.07677 (Fig. 2)", seconds=time.perf_counter() - t0)
    res.criteria += [
        Criterion("cos(predictions, one GD step)", cos_pred, 0.99, "≥",
                  detail=f"held-out tasks d={D}, n={N}; GD step η* = {eta:.4f} fitted to the trained layer"),
        Criterion("cos(∂ŷ/∂x_q, GD's)", cos_sens, 0.99, "≥"),
        Criterion("test loss: trained layer / GD step", loss_lsa / loss_gd, 1.05, "≤",
                  detail=f"trained {loss_lsa:.4f}, GD step {loss_gd:.4f}"),
    ]
    res.figures.append(Figure("icl_training", "Training loss of the one-layer linear self-attention",
                              list(range(1, len(losses) + 1)), {"train loss": losses}, "epoch", "MSE"))
    return res


def multi_step(profile: Profile) -> ExperimentResult:
    t0 = time.perf_counter()
    depths = (1, 2) if profile.quick else (1, 2, 3, 4)
    epochs = 25 if profile.quick else 200
    test = icl_regression(2000, N, D, seed=10**9 + 1 + profile.seed)
    y = test["yq"][..., 0, 0]
    lsa_loss, gd_loss, cosines = [], [], []
    for L in depths:
        torch.manual_seed(profile.seed)
        lsa = LinearTransformer(D, layers=L, seed=profile.seed)
        gd = PreconditionedGD(D, steps=L, eta=0.1)
        lr = 1e-2 / L                                       # deeper LSA stacks (degree 3^L in Z) diverge at 1e-2
        _train(lsa, profile, epochs, f"LSA, {L} layers", 10 + L, lr)
        _train(gd, profile, epochs, f"preconditioned GD, {L} steps", 10 + L, lr)
        with torch.no_grad():
            a, b = lsa(test), gd(test)
        lsa_loss.append(float((a - y).pow(2).mean()))
        gd_loss.append(float((b - y).pow(2).mean()))
        cosines.append(_cos(a, b))
    res = ExperimentResult(
        "icl_multi_step", "L trained linear layers against L preconditioned GD steps",
        "Ahn et al., arXiv 2306.00297", seconds=time.perf_counter() - t0)
    for L, a, b, c in zip(depths, lsa_loss, gd_loss, cosines):
        res.criteria.append(Criterion(f"L={L}: cos(trained layers, preconditioned GD)", c, 0.99, "≥", asserted=False,
                                      detail=f"test MSE: trained layers {a:.4f}, generated preconditioned GD {b:.4f}"))
    res.criteria.append(Criterion("test MSE falls with depth (trained layers, last/first)", lsa_loss[-1] / lsa_loss[0],
                                  1.0, "≤"))
    res.criteria.append(Criterion("test MSE falls with depth (preconditioned GD, last/first)", gd_loss[-1] / gd_loss[0],
                                  1.0, "≤"))
    res.figures.append(Figure("icl_depth", "Test MSE by depth: trained linear self-attention vs generated "
                              "preconditioned GD", [float(L) for L in depths],
                              {"trained LSA layers": lsa_loss, "preconditioned GD steps": gd_loss},
                              "layers / steps", "test MSE", kind="semilogy"))
    return res
