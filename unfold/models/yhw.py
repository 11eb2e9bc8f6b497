"""The Yang–Huang–Wipf transformer layer (arXiv 2205.13891) as generated steps, and a trainable stack.

Tokens are rows ``Y ∈ R^{n×d}``; ``G = W_sᵀW_s``.  Energies (derivations in
:mod:`unfold.catalogue.yang_huang_wipf`)::

    E₁(Y) = Σ_{i<j} −exp(−½‖W_s(yᵢ − yⱼ)‖²)                         (attention)
    E₂(Y) = ½ tr(Y W Yᵀ) + ½‖Y − 1bᵀ‖² + ι_{≥0}(Y)                   (FFN, W symmetric)

Attention is one :class:`~unfold.steps.MMStep` on ``E₁`` (tangent-line majorizer, preconditioned
inner gradient step): ``Y⁺ = (1 − α)Y + α softmax(Y G Yᵀ − ½ 1 diag(Y G Yᵀ)ᵀ) Y``, descending
``E₁`` for ``α ∈ (0, 1]``; the FFN one proximal-gradient step, ``Y⁺ = ReLU(Y((1 − α)I − αW) + α1bᵀ)``,
descending ``E₂`` for ``α < 2/(1 + λ_max(W))``.  :class:`YHWStack` is a trainable, weight-tied
stack of such layers with a classifier head; ``W = ½(M + Mᵀ)`` is symmetric by construction, and
the step bound on ``λ_max(W)`` is measured on the trained weights, not enforced.

Several heads (:func:`attention_heads`): ``W_s ∈ R^{d×d}`` split by rows into ``H`` heads
``W_s^h ∈ R^{p×d}`` (``Hp = d``), ``E₁(Y) = Σ_h Σ_{i<j} ρ(½‖W_s^h(yᵢ − yⱼ)‖²)``.  In the head
coordinates ``Z_h = Y W_s^hᵀ`` (``Z = Y W_sᵀ``) the energy splits into one single-head ``E₁`` per head
with ``W_s = I_p``; the MM step is taken there (per head: tangent-line majorizer, inner gradient step
preconditioned by the anchor's ``D_h⁻¹``), ``Z_h⁺ = (1 − α)Z_h + α D_h⁻¹Γ_h Z_h``, and mapped back,
``Y⁺ = Z⁺ W_s⁻ᵀ = Σ_h Z_h⁺ U_h`` (``U_h`` the rows ``h`` of ``W_s⁻ᵀ``).  In ``Y`` this is the
preconditioned gradient step ``Y⁺ = Y − α Σ_h D_h⁻¹ ∇_Y Q(Y|Y) W_s⁻¹ E_h W_s⁻ᵀ`` (``E_h`` the
coordinate projector of head ``h``; the preconditioner is symmetric positive definite), i.e.
multi-head attention with ``W_Q^h = W_K^h = W_V^h = W_s^h``, per-key bias ``−½‖W_s^h yⱼ‖²``,
residual ``1 − α`` and output projection ``W_s⁻¹``.  Descent of ``E₁`` for ``α ∈ (0, 1]`` by MM,
head by head.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Union

import torch
from torch import nn

from ..codegen.generate import GeneratedFunction, Output, generate
from ..errors import ShapeMismatchError
from ..steps import GradientStep, MMStep, NonNegative, ProximalGradientStep, StepPolicy
from ..symbolic import ops as s
from ..symbolic.axes import axis, sum_over
from ..symbolic.energy import Energy
from ..symbolic.symbols import dims, param, state
from .init import init_linears

__all__ = ["attention_energy", "majorizer", "ffn_energy", "attention_step", "attention_rule", "ffn_step",
           "layer_stack", "YHWStack", "head_attention_step", "attention_heads_function", "attention_heads"]


# ---- energies in unfold's language ---------------------------------------------------------------
def _syms() -> tuple[Any, ...]:
    n, d = dims("n d")
    return n, d, state("Y", n, d), param("Ws", d, d)


def _sqdist(Z: Any, Ws: Any, n: Any, d: Any) -> Any:
    """``[‖W_s(zᵢ − zⱼ)‖²]ᵢⱼ`` through the Gram matrix of ``Z W_sᵀ`` (n×n)."""
    V = Z * Ws.T
    sq = s.hadamard(V, V) * s.ones(d, 1)
    return sq * s.ones(1, n) + s.ones(n, 1) * sq.T - 2 * V * V.T


def _pair_expr(Z: Any) -> Any:
    n, d, _, Ws = _syms()
    # Σ_{i<j} ρ(½ Dᵢⱼ) = ½ Σ_{i,j} −exp(−½ Dᵢⱼ) + n/2   (the n diagonal terms are ρ(0) = −1)
    return -s.sum_entries(s.exp(-_sqdist(Z, Ws, n, d) / 2)) / 2 + n / 2


@lru_cache(maxsize=None)
def attention_energy() -> Energy:
    """``E₁(Y) = Σ_{i<j} −exp(−½‖W_s(yᵢ − yⱼ)‖²)``."""
    _, _, Y, _ = _syms()
    return Energy(terms={"attention": _pair_expr(Y)})


@lru_cache(maxsize=None)
def majorizer() -> Energy:
    """``Q(Y | A)``: the tangent-line majorizer of ``E₁`` at the anchor ``A`` (a parameter)."""
    n, d, Y, Ws = _syms()
    A = param("A", n, d)
    gam = s.exp(-_sqdist(A, Ws, n, d) / 2)
    return Energy(terms={
        "anchor": _pair_expr(A),
        "linearised": s.sum_entries(s.hadamard(gam, _sqdist(Y, Ws, n, d) - _sqdist(A, Ws, n, d))) / 4,
    })


@lru_cache(maxsize=None)
def ffn_energy() -> Energy:
    """The smooth part ``½ tr(Y W Yᵀ) + ½‖Y − 1bᵀ‖²`` (the indicator ``ι_{≥0}`` is the prox's)."""
    n, d, Y, _ = _syms()
    W, b = param("W", d, d), param("b", d, 1)
    return Energy(terms={"quadratic": s.trace(Y * W * Y.T) / 2, "bias": s.fro2(Y - s.ones(n, 1) * b.T) / 2})


# ---- the unfolded layers -------------------------------------------------------------------------
@lru_cache(maxsize=None)
def attention_step(alpha: Union[float, StepPolicy] = 1.0) -> MMStep:
    """The attention layer: :class:`unfold.steps.MMStep` on ``E₁`` with majorizer ``Q(Y|A)``, whose
    inner step is the :class:`unfold.steps.GradientStep` on ``Q`` preconditioned by the anchor's
    ``D(A)⁻¹`` (left) and ``G⁻¹`` (right): ``Y⁺ = Y − α D(A)⁻¹ ∇_Y Q(Y|A) G⁻¹``.  The code generator
    cancels ``G⁻¹`` and ``D⁻¹`` exactly, so the layer runs as ``(1 − α) Y + α D⁻¹ Γ Y``.  ``alpha`` is a
    number or a step policy (a :class:`~unfold.steps.LearnableStep` makes ``α`` the symbol ``eta``
    in the update rule)."""
    n, d, Y, Ws = _syms()
    A = param("A", n, d)
    gam = s.exp(-_sqdist(A, Ws, n, d) / 2)
    Dmat = s.hadamard(s.identity(n), gam * s.ones(n, 1) * s.ones(1, n))    # diag(Γ1)
    # check=False: the two-leg check of this pairwise majorizer takes ≈ 14 s; the entry checks the
    # generated rule against the closed form D⁻¹ΓY and SDPA on every run instead
    inner = GradientStep(majorizer(), "Y", step=alpha, left=s.inv(Dmat), right=s.inv(Ws.T * Ws), check=False)
    return MMStep(attention_energy(), majorizer(), wrt="Y", anchor="A", inner=inner)


# ---- several heads --------------------------------------------------------------------------------
def _head_syms() -> tuple[Any, ...]:
    n, p, H = dims("n p H")
    h = axis("h", H)
    return n, p, h, state("Z", n, p, over=h), param("A", n, p, over=h)


def _head_sqdist(Z: Any, n: Any, p: Any) -> Any:
    """``[‖zᵢ − zⱼ‖²]ᵢⱼ`` for the rows of ``Z`` (n×p)."""
    sq = s.hadamard(Z, Z) * s.ones(p, 1)
    return sq * s.ones(1, n) + s.ones(n, 1) * sq.T - 2 * Z * Z.T


@lru_cache(maxsize=None)
def head_attention_step(alpha: float = 1.0) -> MMStep:
    """The MM step of ``Σ_h E₁`` in head coordinates ``Z`` (``(H, n, p)``, ``W_s^h = I`` there): majorizer
    ``Σ_h Q_h(Z_h|A_h)``, inner :class:`~unfold.steps.GradientStep` preconditioned per head by the anchor's
    ``D_h(A)⁻¹``: ``Z_h⁺ = Z_h − α D_h⁻¹ ∇_{Z_h} Q = (1 − α)Z_h + α D_h⁻¹Γ_h Z_h`` at ``A = Z``."""
    n, p, h, Z, A = _head_syms()

    def pairs(V: Any) -> Any:
        return -s.sum_entries(s.exp(-_head_sqdist(V, n, p) / 2)) / 2 + n / 2

    gam = s.exp(-_head_sqdist(A, n, p) / 2)
    energy = Energy(terms={"attention": sum_over(h, pairs(Z))})
    Q = Energy(terms={
        "anchor": sum_over(h, pairs(A)),
        "linearised": sum_over(h, s.sum_entries(s.hadamard(gam, _head_sqdist(Z, n, p) - _head_sqdist(A, n, p))) / 4),
    })
    Dmat = s.hadamard(s.identity(n), gam * s.ones(n, 1) * s.ones(1, n))
    inner = GradientStep(Q, "Z", step=alpha, left=s.inv(Dmat), check=False)  # checked against the paper's form
    return MMStep(energy, Q, wrt="Z", anchor="A", inner=inner)


@lru_cache(maxsize=None)
def attention_heads_function(alpha: float = 1.0) -> GeneratedFunction:
    """The generated multi-head layer ``(Y, Ws, U) ↦ Σ_h Z_h⁺ U_h`` with ``Z_h = Y W_s^hᵀ`` substituted into
    the MM rule of :func:`head_attention_step`; shapes ``Y: (…, n, d)``, ``Ws, U: (H, p, d)``."""
    step = head_attention_step(alpha)
    inner: Any = step.inner
    n, p, h, Z, A = _head_syms()
    d = dims("d")[0]
    Y, Ws, U = param("Y", n, d), param("Ws", p, d, over=h), param("U", p, d, over=h)
    rule = inner.update_rule().xreplace({A: Z}).xreplace({Z: Y * Ws.T})
    return generate("yhw_attention_heads", [Y, Ws, U], [Output("matrix", sum_over(h, rule * U))])


def attention_heads(Y: torch.Tensor, Ws: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """One multi-head YHW attention MM step: ``Ws`` is ``(H, p, d)`` with ``Hp = d`` (the rows of one
    invertible ``d×d`` ``W_s``); the read-out ``U`` (rows of ``W_s⁻ᵀ``) is computed here."""
    if Ws.dim() != 3 or Ws.shape[0] * Ws.shape[1] != Ws.shape[2]:
        raise ShapeMismatchError(f"Ws must be (H, p, d) with H·p = d (the rows of one square W_s), got {tuple(Ws.shape)}")
    H, p, d = Ws.shape
    U = torch.linalg.inv(Ws.reshape(d, d)).mT.reshape(H, p, d)
    return attention_heads_function(float(alpha))(Y, Ws, U)


def attention_rule(alpha: Union[float, StepPolicy] = 1.0) -> Any:
    """The attention step as one symbolic expression of ``Y`` (the anchor replaced by ``Y``)."""
    step = attention_step(alpha)
    inner: Any = step.inner
    return inner.update_rule().xreplace({step.anchor: step.wrt})


@lru_cache(maxsize=None)
def ffn_step(alpha: Union[float, StepPolicy] = 1.0) -> ProximalGradientStep:
    """The FFN layer: the proximal-gradient step on ``E₂`` (prox of ``ι_{≥0}`` = ReLU),
    ``Y ← ReLU(Y − α(½Y(W + Wᵀ) + Y − 1bᵀ))`` (``α`` a number or a step policy)."""
    return ProximalGradientStep(ffn_energy(), NonNegative(), wrt="Y", step=alpha)


def layer_stack(alpha_att: float, alpha_ffn: float) -> tuple[MMStep, ProximalGradientStep]:
    """One weight-tied layer: attention MM step, then FFN proximal step."""
    return attention_step(alpha_att), ffn_step(alpha_ffn)


class YHWStack(nn.Module):
    """A weight-tied stack of ``depth`` Yang–Huang–Wipf layers on digit patch tokens (rows), with a
    classifier head on the mean token.  Each layer: the generated attention MM step (``α_att``) on
    ``E₁`` with ``W_s``, then the generated FFN proximal step (``α_ffn``) on ``E₂`` with
    ``W = ½(M + Mᵀ)`` and ``b``; tied weights make ``E₁ + E₂`` one energy across layers."""

    def __init__(self, patch_dim: int = 4, tokens: int = 16, width: int = 16, depth: int = 4,
                 classes: int = 10, alpha_att: float = 0.2, alpha_ffn: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.depth = depth
        self.embed = nn.Linear(patch_dim, width)
        self.position = nn.Parameter(0.1 * torch.randn(tokens, width, generator=g))
        self.Ws = nn.Parameter(torch.eye(width) + 0.1 * torch.randn(width, width, generator=g) / width ** 0.5)
        self.M = nn.Parameter(0.1 * torch.randn(width, width, generator=g) / width ** 0.5)
        self.b = nn.Parameter(torch.zeros(width, 1))
        self.attention = attention_step(alpha_att)
        self.ffn = ffn_step(alpha_ffn)
        self.head = nn.Linear(width, classes)
        init_linears(self, g)

    @property
    def W(self) -> torch.Tensor:
        """The FFN's symmetric ``W = ½(M + Mᵀ)``."""
        return (self.M + self.M.T) / 2

    def tokens_of(self, images: torch.Tensor) -> torch.Tensor:
        from .data import patches

        return self.embed(patches(images)) + self.position

    def layers(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(Y after attention, Y after FFN)]`` per layer, after the input ``Y₀``."""
        Y = self.tokens_of(images)
        out = []
        for _ in range(self.depth):
            Yh = self.attention(Y, Ws=self.Ws)
            Y = self.ffn(Yh, W=self.W, b=self.b)
            out.append((Yh, Y))
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(images)[-1][1].mean(-2))

    @torch.no_grad()
    def energy_curve(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """``E₁`` and the smooth part of ``E₂`` at ``Y₀`` and after every sub-step (each ``(B,)``)."""
        Y0 = self.tokens_of(images)
        states = [Y0] + [y for pair in self.layers(images) for y in pair]
        e1 = [self.attention.energy(Y, Ws=self.Ws) for Y in states]
        e2 = []
        for Y in states:
            terms = self.ffn.energy_terms(Y, W=self.W, b=self.b)
            e2.append(terms["quadratic"] + terms["bias"])
        return {"E1": e1, "E2": e2}
