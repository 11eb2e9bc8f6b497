"""Real-size multi-head benchmarks: ViT-B's shape and GPT-2-small causal, float32.

Two comparisons, each at ViT-B (batch 4, 197 tokens, width 768, 12 heads of 64) and GPT-2-small
causal (batch 4, 512 tokens, width 768, 12 heads):

* **energy step** — one step ``X − ∇E`` of ``E(X) = −(1/β) Σ_h Σ_q lse_k(β (W_K^h X)ᵀ(W_Q^h X)) + ½‖X‖²``
  (tokens as columns; causal: keys after the query excluded): the generated :class:`~unfold.GradientStep`
  against (a) the hand-written batched-head closed form (einsum projections, softmax, two einsums back)
  and (c) ``torch.func.grad`` of the energy written with a head axis (the autograd route);
* **attention layer** — :class:`unfold.models.MultiheadAttention` (generated) against (a) the
  hand-written batched-head layer (projections, per-head ``F.scaled_dot_product_attention``, output
  projection) and (b) ``nn.MultiheadAttention`` with the same weights; forward, and a depth-``D``
  training step (forward + backward through ``D`` layers).

Every ratio is of medians of interleaved repetitions in one run (``benchmarks.bench.interleaved``);
each route's output is compared with the hand-written one first (max abs error reported).
``python benchmarks/realsize.py [--reps R] [--depth D] [--threads T] [--quick]``, or
``unfold bench --only realsize`` (a section of the benchmark, run only when named).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

import unfold as uf
from unfold.models.attention import MultiheadAttention

try:
    from benchmarks.bench import interleaved
except ImportError:  # run as a script from elsewhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.bench import interleaved

Tensor = torch.Tensor

SHAPES = {"vit_b": (4, 197, 768, 12, False), "gpt2_causal": (4, 512, 768, 12, True)}
#: tiny shapes of the same structure (smoke runs; numbers not meaningful)
QUICK_SHAPES = {"vit_b": (2, 9, 16, 4, False), "gpt2_causal": (2, 12, 16, 4, True)}


def _report(name: str, ts: dict[str, list[float]], errs: dict[str, float], log: Callable[[str], None]) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in ts.items()}
    rec: dict[str, Any] = {"median_seconds": med, "max_abs_error_vs_hand": errs}
    for k in med:
        if k != "hand":
            rec[f"{k}_over_hand"] = med[k] / med["hand"]
    if "autograd" in med:
        rec["autograd_over_generated"] = med["autograd"] / med["generated"]
        rec["autograd_over_hand"] = med["autograd"] / med["hand"]
        # the share of the hand-written layer's speed-up over autograd that the generated one keeps
        rec["speedup_share"] = (med["autograd"] / med["generated"]) / (med["autograd"] / med["hand"])
    log(f"  {name:28s} " + "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in med.items())
        + "  " + "  ".join(f"{k} {v:.2f}" for k, v in rec.items() if k.endswith("_over_hand") or k == "speedup_share")
        + "  err " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    return rec


# ---- energy step --------------------------------------------------------------------------------
def energy_step_case(B: int, n: int, D: int, H: int, causal: bool, dtype: torch.dtype = torch.float32):
    d, nn_, p = uf.dims("d n p")
    h = uf.axis("h", H)
    WQs, WKs = uf.param("WQ", p, d, over=h), uf.param("WK", p, d, over=h)
    Xs, bs = uf.state("X", d, nn_), uf.scalar("beta", positive=True)
    mask = uf.causal if causal else None
    E = uf.Energy(-uf.sum_over(h, uf.lse(bs * (WKs * Xs).T * (WQs * Xs), mask=mask)) / bs + uf.fro2(Xs) / 2)
    step = uf.GradientStep(E, wrt=Xs, step=1.0)
    g = torch.Generator().manual_seed(0)
    P = D // H
    X = torch.randn(B, D, n, generator=g).to(dtype)
    WQ = (torch.randn(H, P, D, generator=g) / D ** 0.5).to(dtype)
    WK = (torch.randn(H, P, D, generator=g) / D ** 0.5).to(dtype)
    beta = 1 / math.sqrt(P)
    drop = torch.ones(n, n, dtype=torch.bool).tril(-1) if causal else None  # key index > query index

    def scores(X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        Q = torch.einsum("hpd,bdn->bhpn", WQ, X)
        K = torch.einsum("hpd,bdn->bhpn", WK, X)
        A = beta * K.mT @ Q  # (b, h, key, query)
        return Q, K, (A.masked_fill(drop, float("-inf")) if causal else A)

    def hand() -> Tensor:
        Q, K, A = scores(X)
        Pm = torch.softmax(A, dim=-2)
        return torch.einsum("hpd,bhpn->bdn", WK, Q @ Pm.mT) + torch.einsum("hpd,bhpn->bdn", WQ, K @ Pm)

    def energy(X: Tensor) -> Tensor:
        _, _, A = scores(X)
        return -torch.logsumexp(A, dim=-2).sum() / beta + 0.5 * (X * X).sum()

    def autograd() -> Tensor:
        return X - torch.func.grad(energy)(X)

    def generated() -> Tensor:
        return step(X, WQ=WQ, WK=WK, beta=beta)

    return {"generated": generated, "hand": hand, "autograd": autograd}


# ---- attention layer ----------------------------------------------------------------------------
class HandMHA(nn.Module):
    """The hand-written batched-head layer: projections, per-head SDPA, output projection."""

    def __init__(self, ref: nn.MultiheadAttention) -> None:
        super().__init__()
        self.ref, self.H = ref, ref.num_heads

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        B, n, E = x.shape
        q, k, v = F.linear(x, self.ref.in_proj_weight, self.ref.in_proj_bias).view(B, n, 3, self.H, E // self.H).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.ref.out_proj(o.transpose(1, 2).reshape(B, n, E))


def attention_cases(B: int, n: int, D: int, H: int, causal: bool, depth: int, dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    refs = [nn.MultiheadAttention(D, H, batch_first=True).to(dtype) for _ in range(depth)]
    for r in refs:
        with torch.no_grad():
            r.in_proj_bias.normal_(0, 0.02)
            r.out_proj.bias.normal_(0, 0.02)
    gens = [MultiheadAttention(D, H, batch_first=True).to(dtype) for _ in range(depth)]
    for g_, r in zip(gens, refs):
        g_.load_state_dict(r.state_dict())
    hands = [HandMHA(r) for r in refs]
    x = torch.randn(B, n, D, generator=torch.Generator().manual_seed(1)).to(dtype)
    cmask = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None

    def fwd(kind: str, layers: int) -> Callable[[], Tensor]:
        def run() -> Tensor:
            y = x
            for i in range(layers):
                if kind == "generated":
                    y = y + gens[i](y, y, y, is_causal=causal)[0]
                elif kind == "hand":
                    y = y + hands[i](y, causal)
                else:
                    y = y + refs[i](y, y, y, need_weights=False, attn_mask=cmask, is_causal=causal)[0]
            return y
        return run

    forward = {k: fwd(k, 1) for k in ("generated", "hand", "nn_mha")}

    def train(kind: str) -> Callable[[], Tensor]:
        f = fwd(kind, depth)
        params = [p for m in (gens if kind == "generated" else refs) for p in m.parameters()]

        def run() -> Tensor:
            loss = f().square().mean()
            torch.autograd.grad(loss, params)
            return loss
        return run

    training = {k: train(k) for k in ("generated", "hand", "nn_mha")}
    return forward, training


def run(reps: int = 5, depth: int = 12, shapes: Mapping[str, tuple[int, int, int, int, bool]] = SHAPES,
        train_reps: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "reps": reps, "depth": depth}
    for name, (B, n, D, H, causal) in shapes.items():
        log(f"[{name}] batch {B}, tokens {n}, width {D}, {H} heads{', causal' if causal else ''}, float32")
        fns = energy_step_case(B, n, D, H, causal)
        with torch.no_grad():
            ref = fns["hand"]()
            errs = {k: float((f() - ref).abs().max()) for k, f in fns.items() if k != "hand"}
        out[f"{name}/energy_step"] = _report("energy step", interleaved(fns, reps), errs, log)
        fwd, trn = attention_cases(B, n, D, H, causal, depth)
        with torch.no_grad():
            ref = fwd["hand"]()
            errs = {k: float((f() - ref).abs().max()) for k, f in fwd.items() if k != "hand"}
            out[f"{name}/attention_forward"] = _report("attention layer forward", interleaved(fwd, reps), errs, log)
        out[f"{name}/attention_train_depth{depth}"] = _report(
            f"train depth {depth} (fwd+bwd)", interleaved(trn, train_reps, warmup=1), {}, log)
    return out


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-reps", type=int, default=3)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run; numbers not meaningful)")
    ap.add_argument("--only", choices=list(SHAPES), default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    shapes = (QUICK_SHAPES if a.quick else
              {k: v for k, v in SHAPES.items() if a.only in (None, k)})
    res = run(a.reps, a.depth, shapes, a.train_reps)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
