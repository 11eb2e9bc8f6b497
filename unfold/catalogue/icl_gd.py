"""In-context learning by gradient descent (von Oswald et al., arXiv 2212.07677).

Energy (in-context least squares; the regression weights ``W`` are the state)::

    L(W) = (1/2N) Σᵢ ‖W xᵢ − yᵢ‖² = (1/2N) ‖W X − Y‖²,    X ∈ R^{N_x×N}, Y ∈ R^{N_y×N}

Generated layer: :class:`~unfold.steps.GradientStep` on ``L`` in ``W`` with step ``η``::

    W₁ = W₀ − η ∇L(W₀) = W₀ − (η/N)(W₀X − Y)Xᵀ,      ΔW = W₁ − W₀

(descent when ``η λ_max(XXᵀ/N) ≤ 2``).

Reference (``_icl_refs``, from the paper): one linear self-attention layer over the tokens
``e_j = (x_j, y_j)`` and the query ``(x_q, 0)`` with ``W_K = W_Q = [[I, 0], [0, 0]]``,
``W_V = [[0, 0], [W₀, −I]]``, ``P = (η/N) I``.  Since ``W_V eᵢ = (0, W₀xᵢ − yᵢ)`` and
``(W_K eᵢ)ᵀ(W_Q e_j) = xᵢᵀx_j``, the layer maps every token to ``(x_j, y_j − ΔW x_j)``: the y-slot
update of the transformer is the GD step on ``W`` applied to ``x_j`` (for the query, ``−ΔW x_q``;
with ``W₀ = 0`` the read-out ``ŷ = −(y-slot)`` is the one-step GD prediction ``W₁x_q``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from ..energies import least_squares_icl
from ..steps import GradientStep
from ..symbolic import Energy
from ._icl_refs import gd_construction, lsa_layer, tokens
from .base import Entry, RunConfig
from ._claim import Claim, Control, Descent, Inputs, Predicate
from ._proof import Proof

__all__ = ["ENTRY", "energy", "gd_step", "sample_task", "ETA", "TOL"]

TOL = 1e-12  # exact claims, float64 scaled error; RunConfig.tol scales it (≈4504 ulps of the working precision)
ETA = 0.7


@lru_cache(maxsize=1)
def energy() -> Energy:
    """``L(W) = (1/2N)‖WX − Y‖²`` (the built-in ``least_squares_icl``): state ``W`` (N_y×N_x)."""
    return least_squares_icl()


def gd_step(eta: float = ETA) -> GradientStep:
    """The generated layer ``W ← W − η∇L(W)``."""
    return GradientStep(energy(), wrt="W", step=eta)


def sample_task(config: RunConfig, nx: int = 10, ny: int = 1, N: int = 10, batch: int = 4,
                w0_zero: bool = True) -> dict[str, torch.Tensor]:
    """Regression tasks as in the paper's code: ``w ~ N(0, I)``, ``x ~ U(−1/2, 1/2)^{N_x}``
    (input range 1), ``y = w x``; ``W₀`` zero or ``N(0, 0.5²)``."""
    g = config.generator(11 if w0_zero else 12)
    dt = config.dtype
    Wt = torch.randn(batch, ny, nx, generator=g, dtype=torch.float64)
    X = torch.rand(batch, nx, N, generator=g, dtype=torch.float64) - 0.5
    xq = torch.rand(batch, nx, 1, generator=g, dtype=torch.float64) - 0.5
    W0 = torch.zeros(batch, ny, nx, dtype=torch.float64)
    if not w0_zero:
        W0 = 0.5 * torch.randn(batch, ny, nx, generator=g, dtype=torch.float64)
    return {"X": X.to(dt), "Y": (Wt @ X).to(dt), "xq": xq.to(dt), "W0": W0.to(dt)}


def _draw(w0_zero: bool) -> Callable[[RunConfig], dict[str, Any]]:
    """Inputs of the exact claims: tasks with ``W₀ = 0`` (N_y = 1) or ``W₀ ≠ 0`` (N_y = 2)."""
    return lambda config: sample_task(config, ny=1 if w0_zero else 2, w0_zero=w0_zero)


def _gd_prediction(w0_zero: bool) -> Callable[[Inputs], dict[str, torch.Tensor]]:
    """The generated GD step, as the token updates it predicts: context y-slots ``y_j − ΔW x_j``,
    query y-slot ``−ΔW x_q``, x-slots unchanged (and, with ``W₀ = 0``, the read-out ``W₁x_q``)."""
    def layer(t: Inputs) -> dict[str, torch.Tensor]:
        X, Y, xq, W0 = t["X"], t["Y"], t["xq"], t["W0"]
        W1 = gd_step()(W0, X=X, Y=Y)
        dW = W1 - W0
        out = {"context": Y - dW @ X, "query": -dW @ xq, "x_slots": torch.cat([X, xq], dim=-1)}
        return out | ({"prediction": W1 @ xq} if w0_zero else {})
    return layer


def _lsa(w0_zero: bool, value_block: float = -1.0) -> Callable[[Inputs], dict[str, torch.Tensor]]:
    """The paper's linear self-attention layer under the construction (``value_block`` is the
    lower-right block of ``W_V``: ``−1`` in the paper, ``0`` for the control)."""
    def reference(t: Inputs) -> dict[str, torch.Tensor]:
        X, Y, xq, W0 = t["X"], t["Y"], t["xq"], t["W0"]
        nx, N, ny = X.shape[-2], X.shape[-1], Y.shape[-2]
        WK, WQ, WV, P = gd_construction(nx, ny, W0, ETA, N)
        WV[..., nx:, nx:] = value_block * torch.eye(ny, dtype=WV.dtype)
        E = lsa_layer(tokens(X, Y, xq), WK, WQ, WV, P, n_context=N)
        out = {"context": E[..., nx:, :N], "query": E[..., nx:, N:], "x_slots": E[..., :nx, :]}
        return out | ({"prediction": -E[..., nx:, N:]} if w0_zero else {})
    return reference


def _w0(w0_zero: bool) -> Predicate:
    def test(t: Inputs, config: RunConfig) -> tuple[bool, str]:
        w0_norm = float(t["W0"].abs().max())
        return (w0_norm == 0.0) == w0_zero, f"max|W₀| = {w0_norm:.3g}"
    return Predicate("W₀ = 0" if w0_zero else "W₀ ≠ 0", test)


def _query_slot_zero(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    nx, N = t["X"].shape[-2], t["X"].shape[-1]
    q = tokens(t["X"], t["Y"], t["xq"])[..., nx:, N:]
    return bool((q == 0).all()), f"max|e_q y-slot| = {float(q.abs().max()):.1e}"


def _context_only(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    """Context outputs do not change when the query's x changes (keys/values from context only)."""
    moved = dict(t, xq=2 * t["xq"] + 1)
    a, b = _lsa(False)(t)["context"], _lsa(False)(moved)["context"]
    return bool(torch.equal(a, b)), f"context y-slots moved by {float((a - b).abs().max()):.1e} with x_q"


def _describe(t: Inputs) -> str:
    X, Y = t["X"], t["Y"]
    return f"N_x={X.shape[-2]}, N_y={Y.shape[-2]}, N={X.shape[-1]}, η={ETA}, {X.shape[0]} tasks"


def _exact(w0_zero: bool) -> Claim:
    return Claim(
        name=f"lsa_equals_gd_step_{'w0_zero' if w0_zero else 'w0_nonzero'}", kind="exact",
        description=("W₀ = 0: context y-slots y_j − W₁x_j, query read-out W₁x_q" if w0_zero else
                     "W₀ ≠ 0 (N_y = 2): context y-slots y_j − ΔWx_j, query y-slot −ΔWx_q"),
        inputs=_draw(w0_zero), layer=_gd_prediction(w0_zero), reference=_lsa(w0_zero), tol64=TOL,
        assumptions=(_w0(w0_zero), Predicate("query target slot starts at 0", _query_slot_zero),
                     Predicate("keys and values from context tokens only", _context_only)),
        controls=(Control("W_V without its −I block", reference=_lsa(w0_zero, value_block=0.0)),),
        describe=_describe,
    )


def _step_bound(t: Inputs, config: RunConfig) -> tuple[bool, str]:
    lam = float(torch.linalg.eigvalsh(t["X"] @ t["X"].mT / t["X"].shape[-1]).max())
    return ETA * lam <= 2.0, f"η λ_max = {ETA * lam:.3f}"


GD_STEP_DESCENDS = Descent(
    "gd_step_descends_L", "L(W₁) ≤ L(W₀) under η λ_max(XXᵀ/N) ≤ 2",
    inputs=lambda config: sample_task(config, w0_zero=False),
    runs=lambda t: {"GD step": (gd_step(), t["W0"], {"depth": 1, "X": t["X"], "Y": t["Y"]})},
    assumptions=(Predicate("η λ_max(XXᵀ/N) ≤ 2", _step_bound),),
    curve=lambda E: E,                                  # L before and after, per task
)


_EXACT = ("lsa_equals_gd_step_w0_zero", "lsa_equals_gd_step_w0_nonzero")
PROOFS = (
    Proof("lsa_block_identity",
          "with W_K = W_Q = [[I,0],[0,0]], W_V = [[0,0],[W₀,−I]], P = (η/N)I the layer maps the token matrix "
          "[[X, x_q],[Y, 0]] to [[X, x_q],[Y − ΔW X, −ΔW x_q]], ΔW = −(η/N)(W₀X − Y)Xᵀ",
          "general", "block-matrix product at symbolic N_x, N_y, N (sympy block_collapse, expanded)", _EXACT),
    Proof("readout_w0_zero", "W₀ = 0: the query read-out −(y-slot) is W₁x_q, W₁ = (η/N)YXᵀ the GD step from 0",
          "general", "the block identity at W₀ = 0, symbolic sizes", _EXACT[:1]),
    Proof("gradient_golden", "unfold's derived ∇L(W) is (1/N)(WX − Y)Xᵀ",
          "engine-golden", "structural equality at symbolic N_x, N_y, N", _EXACT),
    Proof("gradient_entrywise", "∂L/∂W_ab = ((1/N)(WX − Y)Xᵀ)_ab for every entry",
          "fixed-size", "plain scalar sp.diff of L expanded at N_x = 2, N_y = 2, N = 3 and at N_x = 3, N_y = 1, N = 2",
          _EXACT),
    Proof("gd_descent", "L(W − ηG) = L(W) − η‖G‖² + (η²/2N)‖GX‖² ≤ L(W) when η λ_max(XXᵀ/N) ≤ 2 (G = ∇L(W))",
          "general", "entrywise at symbolic N_x, N_y, N with sympy Sums (the cross term Σ R(GX) = N‖G‖² by swapping "
          "sums and G's definition; sympy's Trace does not canonicalise cyclic products, so not in trace form); "
          "with ‖GX‖² ≤ Nλ_max(XXᵀ/N)‖G‖² the decrease follows",
          ("gd_step_descends_L",)),
)

ENTRY = Entry(
    name="icl_gd",
    title="In-context learning = one gradient-descent step (linear self-attention)",
    source="von Oswald et al., Transformers learn in-context by gradient descent, arXiv 2212.07677",
    summary=(
        "A linear self-attention layer with W_K = W_Q = [[I,0],[0,0]], W_V = [[0,0],[W₀,−I]], P = (η/N)I "
        "maps every token (x_j, y_j) to (x_j, y_j − ΔW x_j), ΔW the GD step on L(W) = (1/2N)Σ‖Wxᵢ − yᵢ‖²."
    ),
    energy=energy,
    checks=(
        _exact(True),
        _exact(False),
        GD_STEP_DESCENDS,
    ),
    assumptions=("query target slot initialised to 0", "keys/values from the context tokens only",
                 "η λ_max(XXᵀ/N) ≤ 2 for the descent claim"),
    mapping="W_K = W_Q = [[I_x,0],[0,0]], W_V = [[0,0],[W₀,−I_y]], P = (η/N)I;  y-slot update = −(W₁ − W₀)x_j",
    notes="Input range: x ~ U(−1/2, 1/2) as in the paper's notebook (input_range = 1).",
    order=60,
    proofs=PROOFS,
)
