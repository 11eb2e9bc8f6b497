"""CRATE (Yu et al., arXiv 2306.01129) built from its energies: every layer is one generated
compression step on ``R^c`` followed by one generated ISTA step whose data is the step's own input.

Tokens are columns ``Z ∈ R^{d×n}``; head ``k`` has a basis ``U_k ∈ R^{d×p}``; ``γ = p/(nε²)``.  The bases
are one ``(K, d, p)`` parameter ``U`` over a head axis ``k`` (state dicts with the older per-head keys
``U1 … UK`` still load).

Layer ``ℓ`` (weights ``U_[K]^ℓ``, ``D^ℓ``, two layer norms)::

    Z^{ℓ+½} = Ẑ − κ ∇R^c(Ẑ; U_[K]),  Ẑ = LN(Z^ℓ),   R^c(Z) = Σ_k ½ logdet(I + γ (U_kᵀZ)ᵀ(U_kᵀZ))
    Z^{ℓ+1} = ReLU(Y + ηDᵀ(Y − DY) − ηλ),  Y = LN(Z^{ℓ+½}),  i.e. one proximal-gradient step on
              ½‖Y − DZ‖² + λ‖Z‖₁ + ι_{≥0}(Z) started at Z = Y (data Y: :class:`~unfold.steps.InputAsData`)

The compression step is the exact gradient step that CRATE's MSSA block approximates (the
catalogue entry ``crate`` measures the approximation); it descends ``R^c`` for ``κ < 2/L``.  The
ISTA step descends its LASSO energy for ``η ≤ 1/λ_max(DᵀD)`` (``D`` starts orthogonal, and
:meth:`CRATE.layer_statistics` reports ``λ_max(DᵀD)`` of the trained weights).  The classifier
reads the mean token after a final layer norm.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .. import symbolic as s
from ..steps import GradientStep, InputAsData, NonNegL1, ProximalGradientStep
from ..symbolic import Energy
from ..symbolic.axes import axis, sum_over
from ._heads import stack_legacy_heads
from .init import init_linears

__all__ = ["CRATE", "CRATELayer", "compression_energy", "head_compression_energy", "lasso_fit_energy"]

Tensor = torch.Tensor


def _rc_term(U: Any, Z: Any, gamma: Any, n: Any) -> Any:
    """``½ logdet(I_n + γ (UᵀZ)ᵀ(UᵀZ))``: one subspace's term of ``R^c``."""
    W = U.T * Z
    return s.logdet(s.identity(n) + gamma * W.T * W) / 2


@lru_cache(maxsize=None)
def head_compression_energy() -> Energy:
    """``R^c(Z) = Σ_k ½ logdet(I_n + γ (U_kᵀZ)ᵀ(U_kᵀZ))`` over a head axis ``k``: one term ``Rc``, bases
    ``U`` (one ``(K, d, p)`` tensor), scalar ``gamma`` (the model's form)."""
    d, n, p, K = s.dims("d n p K")
    Z, gamma = s.state("Z", d, n), s.scalar("gamma", positive=True)
    k = axis("k", K)
    return Energy(terms={"Rc": sum_over(k, _rc_term(s.param("U", d, p, over=k), Z, gamma, n))})


@lru_cache(maxsize=None)
def compression_energy(heads: int) -> Energy:
    """The same ``R^c`` with one term ``Rc<k>`` and one basis ``U<k>`` (d×p) per subspace, scalar
    ``gamma`` (the per-subspace form the ``crate`` catalogue entry states its claims in)."""
    d, n, p = s.dims("d n p")
    Z, gamma = s.state("Z", d, n), s.scalar("gamma", positive=True)
    return Energy(terms={f"Rc{k}": _rc_term(s.param(f"U{k}", d, p), Z, gamma, n) for k in range(1, heads + 1)})


@lru_cache(maxsize=None)
def lasso_fit_energy() -> Energy:
    """``½‖Y − D Z‖²`` (state ``Z``, data ``Y``, dictionary ``D``)."""
    d, n = s.dims("d n")
    Z, Y, D = s.state("Z", d, n), s.param("Y", d, n), s.param("D", d, d)
    return Energy(s.fro2(Y - D * Z) / 2, name="fit")


def _layer_norm(Z: Tensor, ln: nn.LayerNorm) -> Tensor:
    """Per-token layer norm of column tokens ``(…, d, n)``."""
    return ln(Z.mT).mT


class CRATELayer(nn.Module):
    """One CRATE layer (see the module docstring): ``compress`` then ``ista``."""

    def __init__(self, width: int, tokens: int, heads: int, kappa: float, eta: float, lam: float,
                 eps: float, generator: torch.Generator) -> None:
        super().__init__()
        p = width // heads
        Q, _ = torch.linalg.qr(torch.randn(width, width, generator=generator))
        bases = {"U": Q[:, :heads * p].reshape(width, heads, p).permute(1, 0, 2).contiguous()}  # U[k] = Q[:, kp:(k+1)p]
        self.heads, self.p = heads, p
        self.ln_compress = nn.LayerNorm(width)
        self.ln_ista = nn.LayerNorm(width)
        self.compress = GradientStep(head_compression_energy(), wrt="Z", step=kappa, params=bases,
                                     buffers={"gamma": p / (tokens * eps ** 2)})
        Dq, _ = torch.linalg.qr(torch.randn(width, width, generator=generator))
        self.ista = InputAsData(ProximalGradientStep(lasso_fit_energy(), NonNegL1(lam), wrt="Z", step=eta,
                                                     params={"D": Dq}), data="Y")
        self.register_load_state_dict_pre_hook(
            lambda module, state_dict, prefix, *rest: stack_legacy_heads(state_dict, prefix + "compress.", ("U",)))

    def forward(self, Z: Tensor, record: dict[str, list[Tensor]] | None = None) -> Tensor:
        Zn = _layer_norm(Z, self.ln_compress)
        Zh = self.compress(Zn)
        Y = _layer_norm(Zh, self.ln_ista)
        out = self.ista(Y)
        if record is not None:
            with torch.no_grad():
                record["Rc_in"].append(self.compress.energy(Zn))
                record["Rc_half"].append(self.compress.energy(Zh))
                record["lasso_out"].append(self.ista.energy(out, Y=Y))
                record["sparsity"].append((out == 0).to(out.dtype).mean((-2, -1)))
                record["Zn"].append(Zn)
                record["Zh"].append(Zh)
                record["Y"].append(Y)
                record["Z_out"].append(out)
        return out


class CRATE(nn.Module):
    """A CRATE classifier on patch tokens ``(B, n, patch_dim)`` or images ``(B, H, W)``.

    ``model(x)`` gives logits; ``model.trace(x)`` the per-layer statistics of Yu et al.'s Fig. 3:
    ``R^c`` at each layer's input and after its compression step, the LASSO energy after the ISTA
    step, and the fraction of zero entries after it.
    """

    def __init__(self, patch_dim: int = 4, tokens: int = 16, width: int = 32, heads: int = 4,
                 depth: int = 4, classes: int = 10, kappa: float = 0.5, eta: float = 0.1,
                 lam: float = 0.1, eps: float = 1.0, patch: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.patch, self.tokens, self.width = patch, tokens, width
        self.embed = nn.Linear(patch_dim, width)
        self.position = nn.Parameter(0.02 * torch.randn(width, tokens, generator=g))
        self.layers = nn.ModuleList(
            CRATELayer(width, tokens, heads, kappa, eta, lam, eps, g) for _ in range(depth))
        self.ln_out = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)
        init_linears(self, g)

    def tokens_of(self, x: Tensor) -> Tensor:
        """Embedded column tokens ``(B, d, n)`` from images or patch tokens."""
        if x.dim() == 3 and x.shape[-1] != self.embed.in_features:
            from .data import patches

            x = patches(x, self.patch)
        return self.embed(x).mT + self.position

    def forward(self, x: Tensor) -> Tensor:
        Z = self.tokens_of(x)
        for layer in self.layers:
            Z = layer(Z)
        return self.head(F.layer_norm(Z.mean(-1), (self.width,), self.ln_out.weight, self.ln_out.bias))

    @torch.no_grad()
    def trace(self, x: Tensor) -> dict[str, Any]:
        """Per layer (lists over layers): ``Rc_in``, ``Rc_half``, ``lasso_out`` (the LASSO energy after
        the ISTA step; before it the energy is +∞ whenever ``Y`` has a negative entry, since the step
        starts at the infeasible ``Z = Y``),
        ``sparsity`` (each ``(B,)``) and the token tensors ``Zn``, ``Zh``, ``Y``, ``Z_out``."""
        keys = ("Rc_in", "Rc_half", "lasso_out", "sparsity", "Zn", "Zh", "Y", "Z_out")
        record: dict[str, list[Tensor]] = {k: [] for k in keys}
        Z = self.tokens_of(x)
        for layer in self.layers:
            Z = layer(Z, record)
        return record

    def layer_statistics(self) -> list[dict[str, float]]:
        """Per layer: ``λ_max(DᵀD)`` (ISTA descends for ``η ≤ 1/λ_max``), ``max|DᵀD − I|``, the
        bases' ``max|U_kᵀU_k − I|``."""
        out = []
        for layer in cast(list[CRATELayer], list(self.layers)):
            ista = cast(ProximalGradientStep, layer.ista.step)
            D = cast(Tensor, ista.D).detach().double()
            G = D.T @ D
            eye = torch.eye(G.shape[0], dtype=G.dtype)
            Us = layer.compress.get_parameter("U").detach().double().unbind(0)
            out.append({
                "lambda_max_DtD": float(torch.linalg.eigvalsh(G).max()),
                "eta": float(ista.policy.fixed_value),
                "D_orthogonality_gap": float((G - eye).abs().max()),
                "U_orthonormality_gap": max(float((U.T @ U - torch.eye(U.shape[1], dtype=U.dtype)).abs().max()) for U in Us),
            })
        return out
