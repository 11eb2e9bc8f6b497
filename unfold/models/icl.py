"""In-context linear regression: a trainable linear self-attention transformer and the generated
preconditioned gradient-descent model it is compared with (von Oswald et al., arXiv 2212.07677;
Ahn et al., arXiv 2306.00297).

Tasks (:func:`unfold.models.data.icl_regression`): context ``X ∈ R^{d×n}`` (columns ``x_i``),
``y ∈ R^{1×n}``, a query ``x_q``.  The transformer reads the matrix of tokens
``Z₀ = [[X, x_q], [y, 0]] ∈ R^{(d+1)×(n+1)}`` and applies ``L`` linear self-attention layers

    Z_{ℓ+1} = Z_ℓ + (1/n) W_PV^ℓ Z_ℓ M Z_ℓᵀ W_KQ^ℓ Z_ℓ,      M = diag(1, …, 1, 0)

(the query is not a key); its prediction is ``ŷ = −[Z_L]_{d+1, n+1}``.  ``sparse=True`` restricts every
layer to Ahn et al.'s parameterisation ``W_PV = [[0, 0], [0, 1]]`` (fixed), ``W_KQ = [[A_ℓ, 0], [0, 0]]``
(``A_ℓ`` trained): the ``x`` rows then never change, the label row holds the residuals
``y_i − w_ℓᵀx_i`` and ``−w_ℓᵀx_q``, and the stack is exactly ``L`` preconditioned GD steps with
``Γ_ℓ = −A_ℓ`` (:meth:`LinearTransformer.preconditioners`).  The model it is measured
against is generated from the in-context least-squares energy ``L(W) = (1/2n)‖WX − y‖²`` (the
built-in ``least_squares_icl``): ``L`` untied :class:`~unfold.steps.GradientStep` layers
``W ← W − ∇L(W) Γ_ℓ`` with learned right preconditioners ``Γ_ℓ`` (``d×d``), from ``W₀ = 0``,
predicting ``ŷ = W_L x_q``.  With ``L = 1`` and ``Γ = ηI`` it is one GD step, the construction
that a trained one-layer linear self-attention layer converges to (von Oswald et al.); Ahn et al.
show ``L`` trained layers implement ``L`` steps of preconditioned GD.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..energies import least_squares_icl
from ..errors import InputError
from ..steps import GradientStep, Unrolled

__all__ = ["LinearTransformer", "PreconditionedGD", "icl_tokens"]

Tensor = torch.Tensor


def icl_tokens(task: dict[str, Tensor]) -> Tensor:
    """``Z₀ = [[X, x_q], [y, 0]]``, shape ``(B, d+1, n+1)``."""
    top = torch.cat([task["X"], task["xq"]], dim=-1)
    bottom = torch.cat([task["y"], torch.zeros_like(task["yq"])], dim=-1)
    return torch.cat([top, bottom], dim=-2)


class LinearTransformer(nn.Module):
    """``layers`` linear self-attention layers on ``Z₀`` (see the module docstring); ``sparse``:
    Ahn et al.'s parameterisation, one trained ``d×d`` block ``A_ℓ`` per layer."""

    def __init__(self, d: int, layers: int = 1, init_scale: float = 0.01, seed: int = 0,
                 sparse: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.d, self.sparse = d, sparse
        if sparse:
            self.A = nn.ParameterList(nn.Parameter(init_scale * torch.randn(d, d, generator=g))
                                      for _ in range(layers))
            label = torch.zeros(d + 1, d + 1)
            label[d, d] = 1.0
            self.register_buffer("label_readout", label)          # W_PV = [[0, 0], [0, 1]], not trained
            return
        self.W_KQ = nn.ParameterList(nn.Parameter(init_scale * torch.randn(d + 1, d + 1, generator=g))
                                     for _ in range(layers))
        self.W_PV = nn.ParameterList(nn.Parameter(init_scale * torch.randn(d + 1, d + 1, generator=g))
                                     for _ in range(layers))

    def weights(self) -> list[tuple[Tensor, Tensor]]:
        """``(W_KQ^ℓ, W_PV^ℓ)`` per layer, ``(d+1)×(d+1)`` (the sparse blocks assembled)."""
        if not self.sparse:
            return list(zip(self.W_KQ, self.W_PV))
        readout = cast(Tensor, self.label_readout)
        return [(F.pad(A, (0, 1, 0, 1)), readout) for A in self.A]

    def preconditioners(self) -> list[Tensor]:
        """``Γ_ℓ = −A_ℓ``: the right preconditioners of the GD steps a sparse stack computes exactly."""
        if not self.sparse:
            raise InputError("LinearTransformer.preconditioners: only the sparse parameterisation is "
                             "preconditioned GD for every weight (build with sparse=True)")
        return [-A.detach() for A in self.A]

    def forward(self, task: dict[str, Tensor]) -> Tensor:
        """The prediction ``ŷ``, shape ``(B,)``."""
        Z = icl_tokens(task)
        n = Z.shape[-1] - 1
        keys = torch.ones(n + 1, dtype=Z.dtype)
        keys[-1] = 0
        for Wkq, Wpv in self.weights():
            Z = Z + (Wpv @ (Z * keys) @ Z.mT @ Wkq @ Z) / n
        return -Z[..., self.d, n]


class PreconditionedGD(nn.Module):
    """``steps`` generated preconditioned GD steps on ``(1/2n)‖WX − y‖²`` from ``W = 0`` (see the
    module docstring); ``eta`` initialises every ``Γ_ℓ = η I``."""

    def __init__(self, d: int, steps: int = 1, eta: float = 0.1) -> None:
        super().__init__()
        step = GradientStep(least_squares_icl(), wrt="W", step=1.0,
                            right=nn.Parameter(eta * torch.eye(d)))
        self.model = Unrolled(step, depth=steps, tied=False)

    def preconditioners(self) -> list[Tensor]:
        """``Γ_1 … Γ_L`` (the right preconditioner parameter of each generated step)."""
        return [next(iter(cast(GradientStep, layer)._pre.values())) for layer in self.model.layers]

    def weights(self, task: dict[str, Tensor]) -> Tensor:
        """``W_L``, shape ``(B, 1, d)``."""
        X = task["X"]
        W0 = X.new_zeros(*X.shape[:-2], 1, X.shape[-2])
        return self.model(W0, X=task["X"], Y=task["y"])

    def forward(self, task: dict[str, Tensor]) -> Tensor:
        return (self.weights(task) @ task["xq"])[..., 0, 0]
