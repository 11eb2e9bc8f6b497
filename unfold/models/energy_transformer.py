"""An Energy Transformer (Hoover et al., arXiv 2302.07253) masked-token model, built from its energy.

Tokens are rows ``x ∈ R^{N×D}``; ``g = γ·LN(x) + 1δᵀ`` is the energy layer norm (scalar gain γ, so
that its Jacobian is symmetric positive semi-definite).  Energy of ``g`` with ``H`` heads and a
ReLU² memory ``Ξ ∈ R^{D×M}``::

    E(g) = Σ_h −(1/β) Σ_C lse_B(β (g W_Qhᵀ)_C · (g W_Khᵀ)_B) − ½ Σ relu(g Ξ)²

(``W_Q``, ``W_K``: one ``(H, K, D)`` parameter each over a head axis ``h``; state dicts with the older
per-head keys ``WQ1 … WQH``, ``WK1 … WKH`` still load).

The block (one set of weights, applied ``T`` times) is

    x_{t+1} = x_t − α ∂E/∂g |_{g = LN(x_t)}

with ``∂E/∂g`` the gradient unfold generates (:meth:`GradientStep.gradient` of the energy in
``g``).  Because ``∂g/∂x`` is symmetric PSD, ``dE(g(x))/dt = −∇_gEᵀ J ∇_gE ≤ 0`` along the flow, so
``E(LN(x_t))`` decreases for a small enough ``α``; :meth:`EnergyTransformer.trajectory` records it.
The masked-token model embeds 2×2 patches, replaces the masked ones with a learned mask token, runs
the block ``T`` times and decodes each layer-normed token ``g`` back to its patch.

:meth:`EnergyTransformer.paper_configuration` builds the block at the authors' image configuration
(``D = 768``, ``H = 12`` heads of ``K = 64``, ``β = 1/√K``, ``M = 4D`` memories, ``α = 0.1``, 12 steps):
the same single generated layer, the heads one ``(12, 64, 768)`` parameter over the head axis.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .. import symbolic as s
from ..steps import GradientStep
from ..symbolic import Energy
from ..symbolic.axes import axis, sum_over
from ._heads import stack_legacy_heads
from .init import init_linears

__all__ = ["EnergyTransformer", "et_energy"]

Tensor = torch.Tensor


@lru_cache(maxsize=None)
def et_energy() -> Energy:
    """``E_ATT + E_HN`` of ``g`` (N×D): terms ``attention`` (summed over the head axis ``h``) and
    ``memory``; parameters ``WQ, WK`` (``(H, K, D)``), ``Xi`` (D×M), scalar ``beta``."""
    N, D, K, M, H = s.dims("N D K M H")
    h = axis("h", H)
    g, Xi, beta = s.state("g", N, D), s.param("Xi", D, M), s.scalar("beta", positive=True)
    WQ, WK = s.param("WQ", K, D, over=h), s.param("WK", K, D, over=h)
    return Energy(terms={
        "attention": -sum_over(h, s.lse(beta * (g * WQ.T) * (g * WK.T).T, axis=1)) / beta,
        "memory": -s.sum_entries(s.hpow(s.relu(g * Xi), 2)) / 2,
    })


class EnergyTransformer(nn.Module):
    """Masked-patch model (see the module docstring).  ``model(patches, mask)`` returns the
    reconstructed patches ``(B, N, P)``; ``mask`` is a boolean ``(B, N)`` (True = hidden)."""

    def __init__(self, patch_dim: int = 4, tokens: int = 16, width: int = 32, heads: int = 2,
                 head_dim: int = 16, memories: int = 64, steps: int = 8, alpha: float = 0.1,
                 beta: float = 1.0, seed: int = 0, init_std: float = 0.3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.steps, self.alpha, self.width = steps, float(alpha), width
        self.embed = nn.Linear(patch_dim, width)
        self.decode = nn.Linear(width, patch_dim)
        self.position = nn.Parameter(torch.randn(tokens, width, generator=g))
        self.mask_token = nn.Parameter(torch.randn(width, generator=g))
        self.gamma = nn.Parameter(torch.ones(()))
        self.delta = nn.Parameter(torch.zeros(width))
        params: dict[str, Tensor] = {"Xi": init_std * torch.randn(width, memories, generator=g)}
        wq, wk = [], []
        for _ in range(heads):  # drawn head by head, query then key (the order of the per-head layout)
            wq.append(init_std * torch.randn(head_dim, width, generator=g))
            wk.append(init_std * torch.randn(head_dim, width, generator=g))
        params["WQ"], params["WK"] = torch.stack(wq), torch.stack(wk)
        self.block = GradientStep(et_energy(), wrt="g", step=self.alpha, params=params,
                                  buffers={"beta": float(beta)})
        self.register_load_state_dict_pre_hook(
            lambda module, state_dict, prefix, *rest: stack_legacy_heads(state_dict, prefix + "block.", ("WQ", "WK")))
        init_linears(self, g)

    @classmethod
    def paper_configuration(cls, patch_dim: int, tokens: int, seed: int = 0) -> "EnergyTransformer":
        """Hoover et al.'s image configuration: ``D = 768``, 12 heads of ``K = 64``, ``β = 1/√64``,
        ``M = 4D = 3072`` ReLU² memories, ``α = 0.1``, 12 steps of the one shared block; weights drawn
        ``N(0, 1/D)`` (so that ``g W_Qᵀ`` has entries of order one)."""
        width, head_dim = 768, 64
        return cls(patch_dim=patch_dim, tokens=tokens, width=width, heads=12, head_dim=head_dim,
                   memories=4 * width, steps=12, alpha=0.1, beta=head_dim ** -0.5, seed=seed,
                   init_std=width ** -0.5)

    def layer_norm(self, x: Tensor) -> Tensor:
        """``g = γ (x − mean)/√(var + 1e-5) + δ`` per token (scalar γ)."""
        xc = x - x.mean(-1, keepdim=True)
        return self.gamma * xc / torch.sqrt(xc.pow(2).mean(-1, keepdim=True) + 1e-5) + self.delta

    def energy(self, x: Tensor) -> Tensor:
        """``E(LN(x))``, shape ``(B,)``."""
        return self.block.energy(self.layer_norm(x))

    def update(self, x: Tensor) -> Tensor:
        """One block: ``x − α ∂E/∂g`` at ``g = LN(x)``."""
        return x - self.alpha * self.block.gradient(self.layer_norm(x))

    def tokens_of(self, patches: Tensor, mask: Tensor) -> Tensor:
        e = self.embed(patches)
        e = torch.where(mask[..., None], self.mask_token.expand_as(e), e)
        return e + self.position

    def forward(self, patches: Tensor, mask: Tensor) -> Tensor:
        x = self.tokens_of(patches, mask)
        for _ in range(self.steps):
            x = self.update(x)
        return self.decode(self.layer_norm(x))

    @torch.no_grad()
    def trajectory(self, patches: Tensor, mask: Tensor, steps: int | None = None) -> Tensor:
        """``E(LN(x_t))`` for ``t = 0..steps``, shape ``(steps + 1, B)``."""
        x = self.tokens_of(patches, mask)
        out = [self.energy(x)]
        for _ in range(steps if steps is not None else self.steps):
            x = self.update(x)
            out.append(self.energy(x))
        return torch.stack(out)


def random_mask(batch: int, tokens: int, hidden: int, generator: torch.Generator) -> Tensor:
    """A boolean ``(batch, tokens)`` mask with exactly ``hidden`` True entries per row."""
    order = torch.argsort(torch.rand(batch, tokens, generator=generator), dim=1)
    return order < hidden
