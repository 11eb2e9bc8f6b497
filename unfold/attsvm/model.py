"""The one-layer attention model of Tarzanagh et al. and its training loss as an unfold Energy.

Model (tokens as rows, ``X ∈ R^{T×d}``, query ``z ∈ R^d``, fixed value head ``v ∈ R^d``)::

    f_W(X, z) = vᵀ Xᵀ softmax(X W z),        ℓ(W) = log(1 + exp(−y f_W(X, z)))

and, in the ``(K, Q)`` parameterization, ``W = K Qᵀ``.  The energy of the weight dynamics is the
training loss of a dataset, ``L(W) = (1/n) Σ_i ℓ_i(W)``: the symbolic energy is the loss of ONE
sequence (reused from :func:`unfold.energies.logistic_attention`), evaluated on the batched layout
of :mod:`unfold.attsvm.data` (``W`` of shape ``(B, 1, d, d)``, data of shape ``(B, n, ...)``), so
the generated energy has shape ``(B, n)`` and the generated gradient, reduced to ``W``'s shape, is
already ``Σ_i ∇ℓ_i``; :func:`dataset_loss` takes the mean over the sequence axis.

Gradient (derived by unfold, stated here for reading; ``s = softmax(XWz)``, ``σ = 1/(1+e^{yf})``)::

    ∇_W ℓ = −y σ(−y f) · Xᵀ (diag(s) − s sᵀ) X v zᵀ
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..energies import logistic_attention
from ..symbolic import Energy, fro2, scalar, state
from ..symbolic.symbols import StateMatrix
from .data import AttDataset

__all__ = [
    "attention_loss", "attention_loss_kq", "dataset_loss", "reference_outputs", "reference_loss",
    "attention_probs", "batched_state",
]


@lru_cache(maxsize=1)
def attention_loss() -> Energy:
    """``ℓ(W) = log(1 + exp(−y vᵀXᵀ softmax(XWz)))`` as an energy in the state ``W`` (one sequence)."""
    return Energy(terms={"logistic": logistic_attention().expr})


@lru_cache(maxsize=2)
def attention_loss_kq(regularised: bool = False) -> Energy:
    """The same loss with ``W = K Qᵀ``, an energy in the two states ``K`` and ``Q`` (both ``d×d``).

    ``regularised=True`` adds the training regulariser ``reg_K‖K‖² + reg_Q‖Q‖²`` (scalar inputs
    ``reg_K``, ``reg_Q``; the same for every sequence, so the dataset mean adds it once).  The
    authors' notebooks write ``eps*||K||² + ||Q||²`` with ``eps`` the machine epsilon: by Python's
    precedence that is ``reg_K = eps``, ``reg_Q = 1``."""
    E = attention_loss()
    W = E.symbol("W")
    assert isinstance(W, StateMatrix)
    d = W.shape[0]
    K, Q = state("K", d, d), state("Q", d, d)
    terms = {"logistic": E.terms["logistic"].xreplace({W: K * Q.T})}
    if regularised:
        terms["reg"] = scalar("reg_K", positive=True) * fro2(K) + scalar("reg_Q", positive=True) * fro2(Q)
    return Energy(terms=terms)


def batched_state(W: torch.Tensor) -> torch.Tensor:
    """``W`` of shape ``(B, d, d)`` as ``(B, 1, d, d)`` so that it broadcasts over the sequence axis."""
    return W[:, None]


def dataset_loss(per_sequence: torch.Tensor) -> torch.Tensor:
    """``L = (1/n) Σ_i ℓ_i`` from per-sequence losses of shape ``(..., n)``."""
    return per_sequence.mean(dim=-1)


# ---- the model written directly from the paper with plain torch ops (independent reference) --------
def attention_probs(W: torch.Tensor, data: AttDataset) -> torch.Tensor:
    """``softmax(X_i W z_i)`` for ``W`` of shape ``(..., B, d, d)``; returns ``(..., B, n, T)``."""
    scores = torch.einsum("bntd,...bde,bne->...bnt", data.X, W, data.z[..., 0])
    return torch.softmax(scores, dim=-1)


def reference_outputs(W: torch.Tensor, data: AttDataset) -> torch.Tensor:
    """``f_W(X_i, z_i) = vᵀX_iᵀ softmax(X_i W z_i)`` for ``W (B, d, d)``; shape ``(B, n)``."""
    p = attention_probs(W, data)
    Xv = (data.X @ data.v)[..., 0]  # (B, n, T)
    return (p * Xv).sum(-1)


def reference_loss(W: torch.Tensor, data: AttDataset) -> torch.Tensor:
    """``L(W) = (1/n) Σ_i log(1 + exp(−y_i f_W(X_i, z_i)))`` for ``W (B, d, d)``; shape ``(B,)``."""
    return torch.nn.functional.softplus(-data.y * reference_outputs(W, data)).mean(-1)
