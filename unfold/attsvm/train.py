"""Training the attention weights by normalized gradient descent on the derived loss gradient.

Normalized gradient descent with learning rate ``η`` (the paper's ``local_converge`` setup)::

    W(k+1) = W(k) − η ∇L(W(k)) / ‖∇L(W(k))‖_F                      (W-parameterization)
    K(k+1) = K(k) − η ∇_K L / ‖∇_K L‖_F,  Q(k+1) = Q(k) − η ∇_Q L / ‖∇_Q L‖_F   (W = K Qᵀ)

The step length is ``η`` whatever the gradient's size, so ``‖W(k)‖`` grows about linearly and the
loss need not decrease monotonically (no step-size condition holds near a minimum of a fixed-``η``
normalized scheme); :attr:`TrainRun.loss` records the energy ``L`` at every iterate so that its
descent is measured, not assumed.  The gradient is the one unfold derives from
:func:`~unfold.attsvm.model.attention_loss` (two-leg checked before first use), generated together
with the loss as one batched torch function: one call per iteration for all datasets at once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Literal, Optional

import torch

from ..codegen.generate import GeneratedFunction, Output, generate
from ..errors import InputError
from ..steps.policies import NormalizedGradient
from .data import AttDataset
from .model import attention_loss, attention_loss_kq, attention_probs
from ..verify.certificates import checked_grad_fn

__all__ = ["NormalizedGradient", "TrainRun", "train", "loss_and_grad_fn"]  # NormalizedGradient: unfold.steps

Param = Literal["W", "KQ"]


@lru_cache(maxsize=4)
def loss_and_grad_fn(param: Param = "W", regularised: bool = False) -> GeneratedFunction:
    """One generated function returning the per-sequence losses and ``Σ_i ∇ℓ_i`` for each state.

    The gradients are unfold's derived ones, each passing both legs of ``check_gradient`` first.
    ``regularised`` (``param="KQ"`` only): the loss with ``reg_K‖K‖² + reg_Q‖Q‖²``.
    """
    E = attention_loss() if param == "W" else attention_loss_kq(regularised)
    names = ["W"] if param == "W" else ["K", "Q"]
    cm = E.compile()
    outs = [Output("scalar", E.expr)]
    for nm in names:
        checked_grad_fn(cm.energy, nm)  # raises GradientCheckError unless both legs agree
        v = E.symbol(nm)
        outs.append(Output("grad", E.grad(v), v))
    return generate(f"attsvm_loss_grad_{param}", E.inputs, outs)


@dataclass
class TrainRun:
    """A training run over a batch of ``B`` datasets.

    ``W``: recorded iterates ``(R, B, d, d)`` (``K Qᵀ`` for the (K, Q) run) at ``iterations`` (R,);
    ``loss``: the dataset loss ``L(W(k))`` at every iterate, ``(iters + 1, B)``; ``K``, ``Q``: final
    factors for the (K, Q) run.
    """

    param: str
    eta: float
    W: torch.Tensor
    iterations: torch.Tensor
    loss: torch.Tensor
    seconds: float
    K: Optional[torch.Tensor] = None
    Q: Optional[torch.Tensor] = None

    @property
    def final(self) -> torch.Tensor:
        return self.W[-1]

    def probs(self, data: AttDataset) -> torch.Tensor:
        """Softmax probabilities ``(R, B, n, T)`` of every recorded iterate."""
        return attention_probs(self.W, data)

    def selected(self, data: AttDataset) -> torch.Tensor:
        """Tokens selected at the last iterate, ``argmax_t softmax(X_i W z_i)``: ``(B, n)``."""
        return attention_probs(self.final, data).argmax(dim=-1)

    def max_prob(self, data: AttDataset) -> torch.Tensor:
        """Largest softmax probability, averaged over the sequences, ``(R, B)`` (paper Fig. a)."""
        return self.probs(data).amax(dim=-1).mean(dim=-1)

    def loss_increases(self) -> torch.Tensor:
        """Per dataset, the largest increase ``L(W(k+1)) − L(W(k))`` along the run, ``(B,)``."""
        return (self.loss[1:] - self.loss[:-1]).amax(dim=0)

    def descent_violations(self, tol_factor: float = 64.0) -> torch.Tensor:
        """Per dataset, the number of steps with ``L(W(k+1)) − L(W(k)) > tol_factor·ε·max(1, L(W(k)))``
        (the rounding-aware tolerance of :func:`unfold.verify.descent.check_descent`; the loss is a
        sum of positive terms, so ``Σ|terms| = L``)."""
        eps = torch.finfo(self.loss.dtype).eps
        tol = tol_factor * eps * self.loss[:-1].clamp(min=1.0)
        return ((self.loss[1:] - self.loss[:-1]) > tol).sum(dim=0)

    def gradient_norms(self, data: AttDataset) -> torch.Tensor:
        """``‖∇_W L(W(k))‖_F`` at every recorded iterate, ``(R, B)`` (one batched generated call)."""
        gen = loss_and_grad_fn("W")
        vals = {**data.inputs(), "W": self.W[:, :, None]}
        _, g = gen.fn(*[vals[str(s)] for s in gen.inputs])
        return torch.linalg.matrix_norm(g[:, :, 0]) / data.sizes[1]

    def resolved_until(self, data: AttDataset, factor: float = 64.0) -> torch.Tensor:
        """Per dataset, the last recorded iteration before ``‖∇_W L‖_F`` first falls below
        ``factor·ε·s`` (``s = max|x_itᵀv|·max‖x_it‖·max‖z_i‖``, the size of one sequence's rounding
        error in the softmax gradient); ``iters`` when it never does.

        Past it, the computed gradient's relative rounding error exceeds about ``1/factor``: the
        softmax has saturated numerically, the entry of the selected token is cancellation noise,
        and normalized GD follows that noise (the step is rescaled to length ``η`` whatever the
        gradient's size).
        """
        eps = torch.finfo(self.W.dtype).eps
        s = float((data.X @ data.v).abs().max() * data.X.norm(dim=-1).max() * data.z.norm(dim=-2).max())
        low = self.gradient_norms(data) < factor * eps * s
        first = torch.where(low.any(0), low.to(torch.int64).argmax(0), torch.full(low.shape[1:], -1))
        last = torch.where(first > 0, first - 1, torch.full_like(first, len(self.iterations) - 1))
        return self.iterations[last.clamp(min=0)]

@contextmanager
def _one_thread() -> Iterator[None]:
    """Run with one intra-op thread (restored after): the tensors here have a few hundred
    entries, where thread hand-offs cost more than the arithmetic (measured ~5× per step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _init(B: int, d: int, init: str, g: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    if init == "zero":
        return torch.zeros(B, d, d, dtype=dtype)
    if init == "random":  # torch.nn.Linear's default: U(−1/√d, 1/√d)
        return (2 * torch.rand(B, d, d, generator=g, dtype=torch.float64) - 1).to(dtype) / d ** 0.5
    raise InputError(f"init must be 'random' or 'zero', got {init!r}")


def train(
    data: AttDataset,
    iters: int = 2000,
    eta: float = 0.1,
    param: Param = "W",
    init: str = "random",
    seed: int = 0,
    record_every: int = 1,
    pool: int = 0,
    reg: tuple[float, float] = (0.0, 0.0),
) -> TrainRun:
    """Normalized gradient descent on ``L`` for every dataset of the batch at once.

    ``reg = (reg_K, reg_Q)`` (``param="KQ"``): descend ``L + reg_K‖K‖² + reg_Q‖Q‖²`` (the authors
    train the (K, Q) model with a regulariser, :func:`~unfold.attsvm.model.attention_loss_kq`);
    ``loss`` then records that objective.

    ``W(0)`` (or ``K(0)``, ``Q(0)``) is drawn for a batch of ``max(B, pool)`` and the first ``B`` kept,
    so that a run on the first ``B`` datasets of a pool starts where the full run does.
    """
    if param not in ("W", "KQ"):
        raise InputError(f"param must be 'W' or 'KQ', got {param!r}")
    regularised = any(r != 0 for r in reg)
    if len(reg) != 2 or any(not r >= 0 for r in reg) or (regularised and param != "KQ"):
        raise InputError(f"reg must be two numbers ≥ 0 (reg_K, reg_Q), only for param='KQ'; got reg={reg!r}, "
                         f"param={param!r}")
    if iters < 1 or record_every < 1:
        raise InputError(f"iters and record_every must be ≥ 1, got {iters}, {record_every}")
    B, n, T, d = data.sizes
    dtype = data.X.dtype
    g = torch.Generator().manual_seed(seed)
    policy = NormalizedGradient(eta)
    gen = loss_and_grad_fn(param, regularised)
    fixed: dict[str, torch.Tensor | float] = dict(data.inputs())
    if regularised:
        fixed["reg_K"], fixed["reg_Q"] = reg
    names = [str(s) for s in gen.inputs]

    def fn(**states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return gen.fn(*[states[nm] if nm in states else fixed[nm] for nm in names])

    rec_idx = list(range(0, iters + 1, record_every))
    if rec_idx[-1] != iters:
        rec_idx.append(iters)
    recorded: list[torch.Tensor] = []
    losses = torch.empty(iters + 1, B, dtype=dtype)
    t0 = time.perf_counter()
    with torch.no_grad(), _one_thread():
        if param == "W":
            W = _init(max(B, pool), d, init, g, dtype)[:B, None]  # (B, 1, d, d): broadcast over sequences
            for k in range(iters + 1):
                if k % record_every == 0 or k == iters:
                    recorded.append(W[:, 0].clone())
                ell, gW = fn(W=W)
                losses[k] = ell.mean(-1)
                if k < iters:
                    W = policy.apply_update(W, gW / n)
            K = Q = None
        else:
            K = _init(max(B, pool), d, init, g, dtype)[:B, None]
            Q = _init(max(B, pool), d, init, g, dtype)[:B, None]
            for k in range(iters + 1):
                if k % record_every == 0 or k == iters:
                    recorded.append((K @ Q.mT)[:, 0])
                ell, gK, gQ = fn(K=K, Q=Q)
                losses[k] = ell.mean(-1)
                if k < iters:
                    K, Q = policy.apply_update(K, gK / n), policy.apply_update(Q, gQ / n)
            K, Q = K[:, 0], Q[:, 0]
    seconds = time.perf_counter() - t0
    return TrainRun(param, eta, torch.stack(recorded), torch.tensor(rec_idx), losses, seconds, K, Q)
