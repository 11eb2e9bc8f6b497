"""``unfold bench`` (``benchmarks/bench.py``, outside the package): how fast the generated layers are, against the layers users already have.

Five measurements, each reported as min / median / max over interleaved repetitions after
warm-up (the implementations of one comparison take turns inside every repetition, so drifting
machine load hits them alike); the targets are *ratios* of medians measured in one run:

1. **forward** of a generated descent step vs the hand-written PyTorch layer it equals vs the
   autograd-of-energy step (``x − η torch.func.grad(E)(x)`` every step, as HAMUX and the Energy
   Transformer do): the Hopfield step vs ``F.scaled_dot_product_attention`` (tokens as rows, and
   unfold's tokens-as-columns Hopfield energy against SDPA on the transposed views), the
   Yang–Huang–Wipf attention MM step vs SDPA with the per-key bias — every SDPA reference on 4-dim
   ``(B, 1, n, d)`` views with last-dim stride 1, the only inputs torch's fused CPU kernel takes (a
   3-dim call falls back to the slower math path) — the CRATE ISTA block
   (proximal-gradient step) vs its plain-torch formula, the Energy-Transformer step vs the paper's
   two-term gradient.  Targets: generated ≤ 1.10× hand-written, autograd ≥ 1.5× generated.
   Before timing, every generated output is compared with the hand-written one (max abs error
   reported).
2. **training step** (forward + backward to the layer's weights) through a depth-12 unrolled model:
   generated vs autograd route vs hand-written.  Target ≤ 1.2× hand-written.
3. **derive + generate + two-leg check** per built-in and per catalogue energy (fresh process
   state except for a one-time ``torch.func`` warm-up, reported separately), and the time of
   ``unfold verify`` over the catalogue.  Targets < 1 s per energy, < 60 s in total.
4. **FixedPoint** implicit vs unrolled backward at 10 / 100 / 1000 iterations: bytes saved for
   backward (counted with ``torch.autograd.graph.saved_tensors_hooks``, so also on CPU; CUDA peak
   memory too when on a GPU) and time.  Target: implicit memory flat in the iteration count.
5. **scaling** in the number of tokens ``n``: forward time vs ``n`` and the fitted exponent of
   ``time ∝ nᵏ`` (least squares in log–log).

``main(argv)`` prints a table and writes ``bench.json`` and ``bench.png`` into ``--out``.
Nothing here asserts a time: the JSON records which targets were met.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Profile", "PROFILES", "interleaved", "run", "main"]

Tensor = torch.Tensor


# ---- configuration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """Sizes and repetition counts of one benchmark run."""

    name: str
    batch: int
    tokens: int
    width: int
    reps: int
    warmup: int
    train_depth: int
    train_reps: int
    scaling_tokens: tuple[int, ...]
    fixed_point_iters: tuple[int, ...]
    verify: bool
    energies: bool
    #: further (batch, tokens, width) points of the forward comparison, reported next to the main one
    forward_sizes: tuple[tuple[int, int, int], ...] = ()


PROFILES: dict[str, Profile] = {
    # the sizes (batch 8–32, tokens 64–1024, width 64–256): for a GPU or an idle machine
    "full": Profile("full", 32, 1024, 256, 30, 5, 12, 20, (64, 128, 256, 512, 1024), (10, 100, 1000), True, True),
    # the default: the lower end of the sizes, ≈ 3 minutes on 2 shared CPU cores
    "default": Profile("default", 8, 256, 64, 20, 3, 12, 20, (64, 128, 256, 512, 1024), (10, 100, 1000), True, True,
                       ((8, 1024, 64), (32, 256, 256))),
    # smoke run (tests, CI): tiny sizes, a few repetitions; numbers are not meaningful
    "quick": Profile("quick", 2, 16, 8, 5, 1, 3, 3, (8, 16, 32), (10, 100), False, False),
}

TARGETS = {
    "forward_vs_hand": 1.10,       # generated / hand-written  ≤
    "autograd_vs_generated": 1.5,  # autograd-of-energy / generated  ≥
    "train_vs_hand": 1.2,          # generated / hand-written (forward + backward)  ≤
    "check_seconds": 1.0,          # derive + generate + check per energy  <
    "verify_seconds": 60.0,        # unfold verify  <
}


# ---- timing -----------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: Mapping[str, Callable[[], Any]], reps: int, warmup: int = 1,
                device: torch.device = torch.device("cpu"), seed: int = 0) -> dict[str, list[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then ``reps`` rounds in
    which every function is called once, in a fresh random order per round (seeded: reproducible).

    The order matters: a call right after a heavy one (the autograd route allocates and frees
    tens of MB and runs much Python) finds cold caches and pays for it, more so the more Python a
    call runs.  A rotating order (``names[r:] + names[:r]``) put the first-listed function (the
    generated layer) right after the last-listed one (the autograd route) in 2 of every 3 rounds and
    the hand-written layer in 1 of 3: measured on the CRATE ISTA block at 8 × 256 × 64, generated /
    hand 1.21–1.31 in that order and 1.06–1.12 with the two swapped.  Random orders give every
    function every predecessor equally often in expectation."""
    names = list(fns)
    for _ in range(warmup):
        for k in names:
            fns[k]()
    _sync(device)
    out: dict[str, list[float]] = {k: [] for k in names}
    rng = random.Random(seed)
    for _ in range(reps):
        order = list(names)
        rng.shuffle(order)
        for k in order:
            _sync(device)
            t0 = time.perf_counter()
            fns[k]()
            _sync(device)
            out[k].append(time.perf_counter() - t0)
    return out


def _stats(ts: Sequence[float]) -> dict[str, float]:
    return {"min": min(ts), "median": statistics.median(ts), "max": max(ts), "n": len(ts)}


def _err(a: Tensor, b: Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max())


# ---- the layers -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One forward comparison: the generated layer, the hand-written one, the autograd route."""

    name: str
    generated: Callable[[], Tensor]
    hand: Callable[[], Tensor]
    autograd: Optional[Callable[[], Tensor]]
    note: str = ""
    source: str = ""


def _autograd_step(energy_fn: Callable[..., Tensor], names: Sequence[str], wrt: str,
                   inputs: Mapping[str, Any]) -> Callable[[Tensor], Tensor]:
    """``x ↦ ∇ₓ Σ_batch E(x)`` by ``torch.func.grad`` of the generated energy."""
    i = list(names).index(wrt)

    def grad(x: Tensor) -> Tensor:
        def f(v: Tensor) -> Tensor:
            a = [inputs[k] for k in names]
            a[i] = v
            return energy_fn(*a).sum()

        return torch.func.grad(f)(x)

    return grad


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _hopfield_case(name: str, rows: bool, B: int, n: int, d: int, dtype: torch.dtype,
                   device: torch.device) -> Case:
    """One Hopfield retrieval step (η = 1 on ``−lse(β ·)/β + ½‖Ξ‖²``) vs SDPA.  ``rows``: tokens as
    rows, ``Ξ⁺ = softmax_row(β Ξ Xᵀ) X`` vs ``SDPA(q=Ξ, k=X, v=X, scale=β)``; otherwise unfold's
    tokens as columns, ``Ξ⁺ = X softmax_col(β Xᵀ Ξ)``, vs SDPA on the transposed views (the same
    ``(d, n)`` tensor)."""
    from unfold.energies import hopfield_rows, hopfield_tokens
    from unfold.steps import GradientStep

    E = hopfield_rows() if rows else hopfield_tokens()
    step = GradientStep(E, wrt="Xi", step=1.0).to(device)
    g = _gen(1 if rows else 2)
    shape = (B, n, d) if rows else (B, d, n)
    X = torch.randn(*shape, generator=g, dtype=dtype).to(device)
    Xi = torch.randn(*shape, generator=g, dtype=dtype).to(device)
    beta = 1.0 / math.sqrt(d)
    grad = _autograd_step(E.compile().energy_fn.fn, [str(s) for s in E.inputs], "Xi",
                          {"X": X, "Xi": Xi, "beta": beta})
    if rows:
        hand = lambda: F.scaled_dot_product_attention(  # noqa: E731
            Xi[:, None], X[:, None], X[:, None], scale=beta)[:, 0]
        note = "tokens as rows: the layout SDPA takes (4-dim (B, 1, n, d) views: the fused CPU kernel)"
    else:
        def hand() -> Tensor:
            Xt = X.mT.contiguous()[:, None]   # the fused kernel needs last-dim stride 1 and 4 dims
            return F.scaled_dot_product_attention(Xi.mT.contiguous()[:, None], Xt, Xt, scale=beta)[:, 0].mT
        note = "tokens as columns (unfold's convention); SDPA gets contiguous (B, 1, n, d) transposes"
    return Case(name, lambda: step(Xi, X=X, beta=beta), hand, lambda: Xi - grad(Xi), note, step.torch_source())


def hopfield_rows_case(B: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    return _hopfield_case("hopfield_rows", True, B, n, d, dtype, device)


def hopfield_columns_case(B: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    return _hopfield_case("hopfield_columns", False, B, n, d, dtype, device)


def yhw_case(B: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    """Yang–Huang–Wipf attention: the MM step (α = 1) of the catalogue vs
    ``softmax_j(yᵢᵀ G yⱼ − ½‖W_s yⱼ‖²) Y`` by SDPA with the bias as a mask."""
    from unfold.catalogue import yang_huang_wipf as yhw

    step = yhw.attention_step(1.0).to(device)
    E = yhw.attention_energy()
    g = _gen(3)
    Y = (torch.randn(B, n, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device)
    Ws = (torch.eye(d, dtype=dtype) + 0.1 * torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device)
    G = Ws.mT @ Ws
    grad = _autograd_step(E.compile().energy_fn.fn, [str(s) for s in E.inputs], "Y", {"Y": Y, "Ws": Ws})

    def hand() -> Tensor:
        V = Y @ Ws.mT
        bias = -0.5 * (V * V).sum(-1)[..., None, :]
        return F.scaled_dot_product_attention(V[:, None], V[:, None], Y[:, None], attn_mask=bias[:, None],
                                              scale=1.0)[:, 0]

    def auto() -> Tensor:
        V = Y @ Ws.mT
        sq = (V * V).sum(-1)
        Gam = torch.exp(-0.5 * (sq[..., :, None] + sq[..., None, :] - 2 * V @ V.mT))
        Dg = Gam.sum(-1, keepdim=True)
        return Y - torch.linalg.solve(G, grad(Y) / Dg, left=False)

    src = step.inner.torch_source() if hasattr(step, "inner") else step.torch_source()
    return Case("yhw_attention_mm", lambda: step(Y, Ws=Ws), hand, auto,
                "Y⁺ = Y − D⁻¹ ∇E₁ G⁻¹ (α = 1); autograd route: the same preconditioned step with "
                "∇E₁ by torch.func.grad", src)


def crate_ista_case(B: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    """CRATE ISTA block: one proximal-gradient step on ``½‖Z₀ − DZ‖²`` + ``λ‖Z‖₁ + ι_{≥0}`` from
    ``Z = Z₀`` vs ``relu(Z + η Dᵀ(Z − DZ) − ηλ)`` (tokens as columns)."""
    from unfold.catalogue import crate

    E, eta, lam = crate.ista_energy(), crate.ETA, crate.LAM
    step = crate.ista_step().to(device)
    g = _gen(4)
    Zt = torch.randn(B, d, n, generator=g, dtype=dtype).to(device)
    Dt = (torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device)
    grad = _autograd_step(E.compile().energy_fn.fn, [str(s_) for s_ in E.inputs], "Z", {"Z": Zt, "Zh": Zt, "D": Dt})
    return Case(
        "crate_ista", lambda: step(Zt, Zh=Zt, D=Dt),
        lambda: torch.relu(Zt + eta * Dt.mT @ (Zt - Dt @ Zt) - eta * lam),
        lambda: torch.relu(Zt - eta * grad(Zt) - eta * lam), "η = λ = 0.1 (CRATE's defaults)",
        step.torch_source())


def et_case(B: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    """Energy-Transformer step ``x⁺ = x − α ∂E/∂g|_{g=LN(x)}`` (2 heads, head dim d/2, 4d memories)
    vs the paper's two-term closed-form gradient in plain torch."""
    from unfold.catalogue import energy_transformer as et

    heads, K, M, alpha = 2, max(1, d // 2), 4 * d, 0.1
    inp = et.make_inputs(_gen(5), dtype, n, d, K, M, heads)
    inp = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in inp.items()}
    ln = {"gamma": 1.0, "delta": torch.zeros(d, 1, dtype=dtype, device=device)}
    layer = et.et_layer(alpha, heads=heads, ln=ln, mask=False).to(device)   # C = 0: no mask input
    inp.pop("C")
    x = torch.randn(B, n, d, generator=_gen(6), dtype=dtype).to(device)
    WQ = [inp[f"WQ{h}"] for h in range(1, heads + 1)]
    WK = [inp[f"WK{h}"] for h in range(1, heads + 1)]
    E = et.energy(heads, mask=False)
    names = [str(s) for s in E.inputs]

    def ln_plain(v: Tensor) -> Tensor:
        return F.layer_norm(v, (d,), eps=et.EPS)

    def hand() -> Tensor:
        return x - alpha * et.reference_gradient(ln_plain(x), WQ, WK, inp["Xi"], inp["beta"])

    def auto() -> Tensor:
        gx = layer.g(x)
        grad = _autograd_step(E.compile().energy_fn.fn, names, "g", {**inp, "g": gx})
        return x - alpha * grad(gx)

    return Case("energy_transformer", lambda: layer(x, **inp), hand, auto,
                f"{heads} heads, head dim {K}, {M} memories, α = {alpha}; LN gain 1, bias 0",
                layer._grad.source if hasattr(layer, "_grad") else "")


CASES: dict[str, Callable[..., Case]] = {
    "hopfield_rows": hopfield_rows_case,
    "hopfield_columns": hopfield_columns_case,
    "yhw_attention_mm": yhw_case,
    "crate_ista": crate_ista_case,
    "energy_transformer": et_case,
}


# ---- 1. forward -------------------------------------------------------------------------------------
def _compiled(fn: Callable[[], Tensor]) -> tuple[Callable[[], Tensor], float]:
    """``torch.compile(fn)`` and the seconds its first call (the compilation) took."""
    cfn = torch.compile(fn)
    t0 = time.perf_counter()
    cfn()
    return cfn, time.perf_counter() - t0


def bench_forward(p: Profile, device: torch.device, dtype: torch.dtype, log: Callable[[str], None],
                  compile: bool = False) -> dict[str, Any]:
    """Section 1; with ``compile``, ``torch.compile`` of the generated and of the hand-written layer
    are timed too (the same interleaved rounds) and their ratio reported."""
    out: dict[str, Any] = {}
    for name, make in CASES.items():
        try:
            c = make(p.batch, p.tokens, p.width, dtype, device)
            with torch.no_grad():
                gen, hand = c.generated(), c.hand()
                err = _err(gen, hand)
                scale = float(hand.abs().max())
                aerr = _err(c.autograd(), hand) if c.autograd else None
            fns = {"generated": c.generated, "hand": c.hand}
            if c.autograd:
                fns["autograd"] = c.autograd
            compile_seconds = {}
            if compile:
                fns["generated_compiled"], compile_seconds["generated"] = _compiled(c.generated)
                fns["hand_compiled"], compile_seconds["hand"] = _compiled(c.hand)
            # grad mode stays on (torch.func.grad needs it); no input requires grad, so the
            # generated and hand-written layers record no graph
            ts = interleaved(fns, p.reps, p.warmup, device)
            rec = {k: _stats(v) for k, v in ts.items()}
            med = {k: v["median"] for k, v in rec.items()}
            r = {
                "sizes": {"batch": p.batch, "tokens": p.tokens, "width": p.width},
                "note": c.note, "max_abs_error_vs_hand": err, "max_abs_hand": scale,
                "max_abs_error_autograd_vs_hand": aerr, "seconds": rec,
                "ratio_generated_over_hand": med["generated"] / med["hand"],
                "ratio_autograd_over_generated": (med["autograd"] / med["generated"]) if "autograd" in med else None,
                # ratios of the fastest repetitions: less sensitive to load spikes on a shared machine
                "ratio_min_generated_over_hand": rec["generated"]["min"] / rec["hand"]["min"],
                "ratio_min_autograd_over_generated": (rec["autograd"]["min"] / rec["generated"]["min"])
                if "autograd" in rec else None,
            }
            if compile:
                r["compile_seconds"] = compile_seconds
                r["ratio_compiled_generated_over_compiled_hand"] = med["generated_compiled"] / med["hand_compiled"]
                r["ratio_compiled_generated_over_hand"] = med["generated_compiled"] / med["hand"]
            r["meets_forward_target"] = r["ratio_generated_over_hand"] <= TARGETS["forward_vs_hand"]
            r["meets_autograd_target"] = (r["ratio_autograd_over_generated"] or 0) >= TARGETS["autograd_vs_generated"]
            out[name] = r
            log(f"  {name:20s} gen {med['generated'] * 1e3:8.2f} ms  hand {med['hand'] * 1e3:8.2f} ms  "
                + (f"autograd {med['autograd'] * 1e3:8.2f} ms  " if "autograd" in med else "")
                + f"gen/hand {r['ratio_generated_over_hand']:.2f}  "
                + (f"autograd/gen {r['ratio_autograd_over_generated']:.2f}  " if "autograd" in med else "")
                + f"(min-ratio {r['ratio_min_generated_over_hand']:.2f})  err {err:.1e}")
            if compile:
                log(f"  {'':20s} torch.compile: gen {med['generated_compiled'] * 1e3:8.2f} ms  hand "
                    f"{med['hand_compiled'] * 1e3:8.2f} ms  compiled gen/compiled hand "
                    f"{r['ratio_compiled_generated_over_compiled_hand']:.2f}  compiled gen/eager hand "
                    f"{r['ratio_compiled_generated_over_hand']:.2f}  (compile {compile_seconds['generated']:.1f} s / "
                    f"{compile_seconds['hand']:.1f} s)")
        except Exception as exc:  # reported, never hidden
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
            log(f"  {name:20s} unavailable: {type(exc).__name__}: {exc}")
        gc.collect()
    return out


# ---- 2. training ------------------------------------------------------------------------------------
def _train_cases(p: Profile, device: torch.device, dtype: torch.dtype) -> dict[str, dict[str, Any]]:
    """Depth-``train_depth`` models, loss ``mean(out²)``, backward to the weights (``X`` / ``D``)."""
    from unfold.energies import hopfield_rows
    from unfold.steps import GradientStep, Unrolled

    B, n, d, depth = p.batch, p.tokens, p.width, p.train_depth
    out: dict[str, dict[str, Any]] = {}

    # Hopfield / attention stack, tokens as rows, the stored patterns X are the trained weights
    E = hopfield_rows()
    model = Unrolled(GradientStep(E, wrt="Xi", step=1.0), depth=depth).to(device)
    g = _gen(7)
    X = (torch.randn(B, n, d, generator=g, dtype=dtype)).to(device).requires_grad_(True)
    Xi0 = torch.randn(B, n, d, generator=g, dtype=dtype).to(device)
    beta = 1.0 / math.sqrt(d)
    efn, names = E.compile().energy_fn.fn, [str(s) for s in E.inputs]

    def gen_h() -> None:
        X.grad = None
        model(Xi0, X=X, beta=beta).square().mean().backward()

    def hand_h() -> None:
        X.grad = None
        x = Xi0
        for _ in range(depth):
            x = F.scaled_dot_product_attention(x[:, None], X[:, None], X[:, None], scale=beta)[:, 0]
        x.square().mean().backward()

    def auto_h() -> None:
        X.grad = None
        x = Xi0
        for _ in range(depth):
            x = x - torch.func.grad(lambda v, W: efn(v, W, beta).sum())(x, X)
        x.square().mean().backward()

    assert names == ["Xi", "X", "beta"], names
    out["hopfield_rows"] = {"generated": gen_h, "hand": hand_h, "autograd": auto_h, "params": [X]}

    # CRATE ISTA stack (each layer a proximal-gradient step from its input), dictionary D trained
    from unfold.catalogue import crate

    Ei, eta, lam = crate.ista_energy(), crate.ETA, crate.LAM
    step = crate.ista_step().to(device)
    Dt = (torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device).requires_grad_(True)
    Zs = torch.randn(B, d, n, generator=g, dtype=dtype).to(device)
    efn_i = Ei.compile().energy_fn.fn
    names_i = [str(s_) for s_ in Ei.inputs]
    assert names_i == ["Z", "D", "Zh"], names_i

    def gen_i() -> None:
        Dt.grad = None
        z = Zs
        for _ in range(depth):
            z = step(z, Zh=z, D=Dt)
        z.square().mean().backward()

    def hand_i() -> None:
        Dt.grad = None
        z = Zs
        for _ in range(depth):
            z = torch.relu(z + eta * Dt.mT @ (z - Dt @ z) - eta * lam)
        z.square().mean().backward()

    def auto_i() -> None:
        Dt.grad = None
        z = Zs
        for _ in range(depth):
            gz = torch.func.grad(lambda v, W, v0: efn_i(v, W, v0).sum())(z, Dt, z)
            z = torch.relu(z - eta * gz - eta * lam)
        z.square().mean().backward()

    out["crate_ista"] = {"generated": gen_i, "hand": hand_i, "autograd": auto_i, "params": [Dt]}
    out["yhw_attention_mm"] = _train_yhw(p, device, dtype)
    out["energy_transformer"] = _train_et(p, device, dtype)
    return out


def _train_yhw(p: Profile, device: torch.device, dtype: torch.dtype) -> dict[str, Callable[[], Any]]:
    """12 Yang–Huang–Wipf attention MM steps (α = 1), ``W_s`` trained: generated vs SDPA with the
    per-key bias vs the preconditioned step with ``∇E₁`` by ``torch.func.grad``."""
    from unfold.catalogue import yang_huang_wipf as yhw

    B, n, d, depth = p.batch, p.tokens, p.width, p.train_depth
    step = yhw.attention_step(1.0).to(device)
    E = yhw.attention_energy()
    efn = E.compile().energy_fn.fn
    assert [str(a) for a in E.inputs] == ["Y", "Ws"]
    g = _gen(8)
    Y0 = (torch.randn(B, n, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device)
    Ws = (torch.eye(d, dtype=dtype) + 0.1 * torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d)
          ).to(device).requires_grad_(True)

    def gen() -> None:
        Ws.grad = None
        y = Y0
        for _ in range(depth):
            y = step(y, Ws=Ws)
        y.square().mean().backward()

    def hand() -> None:
        Ws.grad = None
        y = Y0
        for _ in range(depth):
            V = y @ Ws.mT
            bias = -0.5 * (V * V).sum(-1)[..., None, :]
            y = F.scaled_dot_product_attention(V[:, None], V[:, None], y[:, None], attn_mask=bias[:, None],
                                               scale=1.0)[:, 0]
        y.square().mean().backward()

    def auto() -> None:
        Ws.grad = None
        y = Y0
        G = Ws.mT @ Ws
        for _ in range(depth):
            V = y @ Ws.mT
            sq = (V * V).sum(-1)
            Dg = torch.exp(-0.5 * (sq[..., :, None] + sq[..., None, :] - 2 * V @ V.mT)).sum(-1, keepdim=True)
            gy = torch.func.grad(lambda v, W: efn(v, W).sum())(y, Ws)
            y = y - torch.linalg.solve(G, gy / Dg, left=False)
        y.square().mean().backward()

    return {"generated": gen, "hand": hand, "autograd": auto, "params": [Ws]}


def _train_et(p: Profile, device: torch.device, dtype: torch.dtype) -> dict[str, Callable[[], Any]]:
    """12 Energy-Transformer blocks (shared weights, α = 0.1, no mask), ``W_Q, W_K, Ξ`` trained:
    generated vs the paper's closed-form gradient vs ``torch.func.grad`` of the energy."""
    from unfold.catalogue import energy_transformer as et

    B, n, d, depth = p.batch, p.tokens, p.width, p.train_depth
    heads, K, M, alpha = 2, max(1, d // 2), 4 * d, 0.1
    inp = et.make_inputs(_gen(9), dtype, n, d, K, M, heads)
    inp.pop("C")
    weights = {k: v.to(device).requires_grad_(True) for k, v in inp.items() if isinstance(v, Tensor)}
    beta = inp["beta"]
    ln = {"gamma": 1.0, "delta": torch.zeros(d, 1, dtype=dtype, device=device)}
    layer = et.et_layer(alpha, heads=heads, ln=ln, mask=False).to(device)
    E = et.energy(heads, mask=False)
    efn, names = E.compile().energy_fn.fn, [str(a) for a in E.inputs]
    x0 = torch.randn(B, n, d, generator=_gen(10), dtype=dtype).to(device)
    WQ = [weights[f"WQ{h}"] for h in range(1, heads + 1)]
    WK = [weights[f"WK{h}"] for h in range(1, heads + 1)]

    def zero() -> None:
        for w in weights.values():
            w.grad = None

    def gen() -> None:
        zero()
        x = x0
        for _ in range(depth):
            x = layer(x, beta=beta, **weights)
        x.square().mean().backward()

    def hand() -> None:
        zero()
        x = x0
        for _ in range(depth):
            x = x - alpha * et.reference_gradient(F.layer_norm(x, (d,), eps=et.EPS), WQ, WK, weights["Xi"], beta)
        x.square().mean().backward()

    def auto() -> None:
        zero()
        x = x0
        i = names.index("g")
        for _ in range(depth):
            def f(v: Tensor, *ws: Tensor) -> Tensor:
                a = [None] * len(names)
                a[i] = v
                for k, w in zip(sorted(weights), ws):
                    a[names.index(k)] = w
                a[names.index("beta")] = beta
                return efn(*a).sum()

            gx = layer.g(x)
            x = x - alpha * torch.func.grad(f)(gx, *[weights[k] for k in sorted(weights)])
        x.square().mean().backward()

    return {"generated": gen, "hand": hand, "autograd": auto, "params": [weights[k] for k in sorted(weights)]}


def bench_train(p: Profile, device: torch.device, dtype: torch.dtype, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        cases = _train_cases(p, device, dtype)
    except Exception as exc:
        log(f"  training unavailable: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}
    for name, case in cases.items():
        try:
            params = case.pop("params")
            fns = case
            grads = {}
            for k, fn in fns.items():  # the three routes must train the same weights the same way
                fn()
                grads[k] = [w.grad.detach().clone() for w in params]
            scale = max(float(g.abs().max()) for g in grads["hand"]) or 1.0
            grad_err = {k: max(float((a - b).abs().max()) for a, b in zip(grads[k], grads["hand"])) / scale
                        for k in grads if k != "hand"}
            ts = interleaved(fns, p.train_reps, p.warmup, device)
            rec = {k: _stats(v) for k, v in ts.items()}
            med = {k: v["median"] for k, v in rec.items()}
            r = {"depth": p.train_depth, "sizes": {"batch": p.batch, "tokens": p.tokens, "width": p.width},
                 "seconds": rec, "ratio_generated_over_hand": med["generated"] / med["hand"],
                 "ratio_autograd_over_generated": med["autograd"] / med["generated"],
                 "ratio_min_generated_over_hand": rec["generated"]["min"] / rec["hand"]["min"],
                 "weight_grad_rel_error_vs_hand": grad_err}
            r["meets_train_target"] = r["ratio_generated_over_hand"] <= TARGETS["train_vs_hand"]
            out[name] = r
            log(f"  {name:20s} gen {med['generated'] * 1e3:8.2f} ms  hand {med['hand'] * 1e3:8.2f} ms  "
                f"autograd {med['autograd'] * 1e3:8.2f} ms  gen/hand {r['ratio_generated_over_hand']:.2f}  "
                f"autograd/gen {r['ratio_autograd_over_generated']:.2f}  weight-grad err "
                f"{grad_err['generated']:.1e} / {grad_err['autograd']:.1e}")
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"  {name:20s} unavailable: {type(exc).__name__}: {exc}")
        gc.collect()
    return out


# ---- 3. derive + generate + check -------------------------------------------------------------------
def _check_time(make: Callable[[], Any]) -> tuple[float, dict[str, float]]:
    from unfold.verify.gradient import check_gradient

    t0 = time.perf_counter()
    E = make()
    t1 = time.perf_counter()
    for v in E.variables:
        E.grad(v)
    t2 = time.perf_counter()
    cm = E.compile()
    for v in E.variables:
        cm.grad_fn(v)
    t3 = time.perf_counter()
    res = check_gradient(E)
    t4 = time.perf_counter()
    return t4 - t0, {"build": t1 - t0, "derive": t2 - t1, "generate": t3 - t2, "check": t4 - t3,
                     "max_error": res.max_error}


def bench_energies(p: Profile, log: Callable[[str], None], catalogue: bool = True) -> dict[str, Any]:
    from unfold.energies import BUILTIN_ENERGIES
    from unfold.energies import l1_norm

    out: dict[str, Any] = {"builtin": {}, "catalogue": {}}
    t0 = time.perf_counter()
    from unfold.verify.gradient import check_gradient

    check_gradient(l1_norm())  # first torch.func call of the process imports torch._dynamo
    out["process_warmup_seconds"] = time.perf_counter() - t0
    log(f"  one-time torch.func warm-up {out['process_warmup_seconds']:.2f} s")
    for name, make in BUILTIN_ENERGIES.items():
        total, parts = _check_time(make)
        out["builtin"][name] = {"seconds": total, **parts, "meets_target": total < TARGETS["check_seconds"]}
        log(f"  {name:24s} {total:6.2f} s  (derive {parts['derive']:.2f} generate {parts['generate']:.2f} "
            f"check {parts['check']:.2f})")
    if catalogue:
        try:
            from unfold.catalogue.registry import entries

            for entry in entries():
                try:
                    if not hasattr(entry.energy(), "variables"):  # e.g. an entry over many energies
                        out["catalogue"][entry.name] = {"skipped": "energy() is not a single Energy"}
                        continue
                    total, parts = _check_time(entry.energy)
                    out["catalogue"][entry.name] = {"seconds": total, **parts,
                                                    "meets_target": total < TARGETS["check_seconds"]}
                    log(f"  catalogue {entry.name:24s} {total:6.2f} s  (derive {parts['derive']:.2f} "
                        f"generate {parts['generate']:.2f} check {parts['check']:.2f})")
                except Exception as exc:
                    out["catalogue"][entry.name] = {"error": f"{type(exc).__name__}: {exc}"}
                    log(f"  catalogue {entry.name:24s} unavailable: {type(exc).__name__}: {exc}")
        except Exception as exc:
            out["catalogue_error"] = f"{type(exc).__name__}: {exc}"
    allt = [v["seconds"] for v in list(out["builtin"].values()) + list(out["catalogue"].values()) if "seconds" in v]
    if allt:
        out["summary"] = {"min": min(allt), "median": statistics.median(allt), "max": max(allt),
                          "over_target": sorted(f"{sec}/{k}" for sec in ("builtin", "catalogue")
                                                for k, v in out[sec].items()
                                                if v.get("seconds", 0) >= TARGETS["check_seconds"])}
    return out


def bench_verify(log: Callable[[str], None]) -> dict[str, Any]:
    """Time of running every catalogue entry's checks (what ``unfold verify`` runs)."""
    try:
        from unfold.catalogue import RunConfig, run_entry
        from unfold.catalogue.registry import entries
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    per: dict[str, Any] = {}
    t0 = time.perf_counter()
    for e in entries():
        t = time.perf_counter()
        try:
            rep = run_entry(e, RunConfig())
            per[e.name] = {"seconds": time.perf_counter() - t, "passed": rep.passed}
        except Exception as exc:
            per[e.name] = {"seconds": time.perf_counter() - t, "error": f"{type(exc).__name__}: {exc}"}
        log(f"  verify {e.name:24s} {per[e.name]['seconds']:6.2f} s")
    total = time.perf_counter() - t0
    log(f"  verify total {total:.1f} s")
    return {"entries": per, "total_seconds": total, "meets_target": total < TARGETS["verify_seconds"]}


# ---- 4. fixed point ---------------------------------------------------------------------------------
class _SavedBytes:
    """Bytes of the tensors autograd saves for backward (storage counted once)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: Tensor) -> Tensor:
        try:
            key = t.untyped_storage().data_ptr()
            if key not in self.seen:
                self.seen.add(key)
                self.bytes += t.untyped_storage().nbytes()
        except Exception:  # tensors without storage (e.g. functorch wrappers)
            self.bytes += t.numel() * t.element_size()
        return t

    @staticmethod
    def unpack(t: Tensor) -> Tensor:
        return t


def _measure_backward(fn: Callable[[], Tensor], params: Sequence[Tensor], device: torch.device) -> dict[str, float]:
    counter = _SavedBytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        loss = fn()
    t1 = time.perf_counter()
    for q in params:
        q.grad = None
    loss.backward()
    _sync(device)
    t2 = time.perf_counter()
    r = {"saved_bytes": float(counter.bytes), "forward_seconds": t1 - t0, "backward_seconds": t2 - t1}
    if device.type == "cuda":
        r["cuda_peak_bytes"] = float(torch.cuda.max_memory_allocated(device))
    return r


def bench_fixed_point(p: Profile, device: torch.device, dtype: torch.dtype, log: Callable[[str], None]) -> dict[str, Any]:
    """A contractive gradient step (``η = 0.5`` on ``½‖Y − WY − B‖²``-type energy: here the Hopfield
    step with small β, a contraction) iterated ``k`` times: unrolled autograd vs ``FixedPoint``."""
    from unfold import steps

    if not hasattr(steps, "FixedPoint"):
        log("  FixedPoint not available in unfold.steps yet")
        return {"error": "unfold.steps has no FixedPoint yet"}
    from unfold.energies import hopfield_rows

    E = hopfield_rows()
    step = steps.GradientStep(E, wrt="Xi", step=1.0).to(device)
    # memory flatness needs no big tensors: small sizes keep 1000 unrolled steps affordable
    B, n, d = min(p.batch, 4), min(p.tokens, 64), min(p.width, 32)
    g = _gen(8)
    X = (0.5 * torch.randn(B, n, d, generator=g, dtype=dtype)).to(device).requires_grad_(True)
    Xi0 = torch.randn(B, n, d, generator=g, dtype=dtype).to(device)
    beta = 0.1  # β ‖X‖² < 1 keeps the step a contraction, so the fixed point exists and is unique
    out: dict[str, Any] = {"sizes": {"batch": B, "tokens": n, "width": d}, "implicit": {}, "unrolled": {}}
    for k in p.fixed_point_iters:
        try:
            # tol = 0: exactly k forward iterations (no autograd graph); the adjoint solve stops at 1e-6
            fp = steps.FixedPoint(step, tol=0.0, max_iter=k, adjoint_tol=1e-6, adjoint_max_iter=200)
            out["implicit"][k] = _measure_backward(lambda: fp(Xi0, X=X, beta=beta).square().mean(), [X], device)
        except Exception as exc:
            out["implicit"][k] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            un = steps.Unrolled(step, depth=k)
            out["unrolled"][k] = _measure_backward(lambda: un(Xi0, X=X, beta=beta).square().mean(), [X], device)
        except Exception as exc:
            out["unrolled"][k] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"  k={k:5d} implicit {out['implicit'][k].get('saved_bytes', float('nan')) / 1e6:9.3f} MB "
            f"{out['implicit'][k].get('backward_seconds', float('nan')) * 1e3:8.1f} ms backward   "
            f"unrolled {out['unrolled'][k].get('saved_bytes', float('nan')) / 1e6:9.3f} MB "
            f"{out['unrolled'][k].get('backward_seconds', float('nan')) * 1e3:8.1f} ms backward")
        gc.collect()
    mem = [v["saved_bytes"] for v in out["implicit"].values() if "saved_bytes" in v]
    if len(mem) >= 2:
        out["implicit_memory_growth"] = max(mem) / max(min(mem), 1.0)
        out["meets_flat_memory_target"] = max(mem) <= 1.05 * min(mem)
    return out


# ---- 5. scaling -------------------------------------------------------------------------------------
def _fit_exponent(ns: Sequence[int], ts: Sequence[float]) -> float:
    xs, ys = [math.log(n) for n in ns], [math.log(t) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else float("nan")


def bench_scaling(p: Profile, device: torch.device, dtype: torch.dtype, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens": list(p.scaling_tokens), "generated": [], "hand": []}
    reps = max(3, p.reps // 2)
    for n in p.scaling_tokens:
        c = hopfield_rows_case(p.batch, n, p.width, dtype, device)
        with torch.no_grad():
            ts = interleaved({"generated": c.generated, "hand": c.hand}, reps, p.warmup, device)
        out["generated"].append(_stats(ts["generated"]))
        out["hand"].append(_stats(ts["hand"]))
        log(f"  n={n:5d}  gen {out['generated'][-1]['median'] * 1e3:8.2f} ms  hand {out['hand'][-1]['median'] * 1e3:8.2f} ms")
        gc.collect()
    for k in ("generated", "hand"):
        out[f"exponent_{k}"] = _fit_exponent(p.scaling_tokens, [r["median"] for r in out[k]])
    log(f"  fitted exponent (time ∝ n^k): generated {out['exponent_generated']:.2f}, hand {out['exponent_hand']:.2f}")
    return out


# ---- report -----------------------------------------------------------------------------------------
def _plot(results: Mapping[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    fw = {k: v for k, v in results.get("forward", {}).items() if "seconds" in v}
    names = list(fw)
    kinds = ["generated", "hand", "autograd"]
    for j, kind in enumerate(kinds):
        vals = [fw[k]["seconds"].get(kind, {}).get("median", float("nan")) * 1e3 for k in names]
        axes[0].bar([i + 0.27 * (j - 1) for i in range(len(names))], vals, width=0.27, label=kind)
    axes[0].set_xticks(range(len(names)))
    axes[0].set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    axes[0].set_ylabel("forward, median ms")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("one step: generated vs hand-written vs autograd")
    sc = results.get("scaling", {})
    if sc.get("tokens"):
        for kind in ("generated", "hand"):
            axes[1].loglog(sc["tokens"], [r["median"] * 1e3 for r in sc[kind]], "o-",
                           label=f"{kind} (k = {sc.get('exponent_' + kind, float('nan')):.2f})")
        axes[1].set_xlabel("tokens n")
        axes[1].set_ylabel("median ms")
        axes[1].legend()
        axes[1].set_title("Hopfield step: time vs n")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary(results: Mapping[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for name, r in results.get("forward", {}).items():
        if "ratio_generated_over_hand" in r:
            s[f"forward/{name}"] = {"generated_over_hand": r["ratio_generated_over_hand"],
                                    "autograd_over_generated": r["ratio_autograd_over_generated"],
                                    "met": bool(r["meets_forward_target"] and r["meets_autograd_target"])}
    for size, block in results.get("forward_sizes", {}).items():
        for name, r in block.items():
            if "ratio_generated_over_hand" in r:
                s[f"forward@{size}/{name}"] = {
                    "generated_over_hand": r["ratio_generated_over_hand"],
                    "autograd_over_generated": r["ratio_autograd_over_generated"],
                    "met": bool(r["meets_forward_target"] and r["meets_autograd_target"])}
    for name, r in results.get("train", {}).items():
        if isinstance(r, dict) and "ratio_generated_over_hand" in r:
            s[f"train/{name}"] = {"generated_over_hand": r["ratio_generated_over_hand"], "met": r["meets_train_target"]}
    en = results.get("energies", {})
    if "summary" in en:
        s["check/max_seconds"] = {"value": en["summary"]["max"], "met": not en["summary"]["over_target"],
                                  "over_target": en["summary"]["over_target"]}
    ve = results.get("verify", {})
    if "total_seconds" in ve:
        s["verify/total_seconds"] = {"value": ve["total_seconds"], "met": ve["meets_target"]}
    fp = results.get("fixed_point", {})
    if "meets_flat_memory_target" in fp:
        s["fixed_point/implicit_memory_growth"] = {"value": fp["implicit_memory_growth"],
                                                   "met": fp["meets_flat_memory_target"]}
    return s


def run(profile: Profile, out_dir: str, device: str = "cpu", sections: Optional[Sequence[str]] = None,
        log: Callable[[str], None] = print, compile: bool = False) -> dict[str, Any]:
    """Run the benchmark sections, write ``bench.json`` / ``bench.png`` to ``out_dir``, return the results."""
    dev = torch.device(device)
    dtype = torch.float32
    wanted = set(sections or ("energies", "forward", "train", "fixed_point", "scaling", "verify"))
    results: dict[str, Any] = {
        "profile": profile.__dict__,
        "torch_compile": compile,
        "targets": TARGETS,
        "environment": {
            "torch": torch.__version__, "python": platform.python_version(), "device": str(dev),
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "dtype": str(dtype),
            "platform": platform.platform(),
        },
    }
    t_start = time.perf_counter()
    # the energies section runs first: its timings include first-use derivation in this process
    if "energies" in wanted and profile.energies:
        log("[3] derive + generate + two-leg check per energy")
        results["energies"] = bench_energies(profile, log)
    elif "energies" in wanted:
        log("[3] derive + generate + two-leg check (quick: three energies)")
        from unfold.energies import BUILTIN_ENERGIES

        results["energies"] = {"builtin": {}}
        for name in ("hopfield", "l1_norm", "lasso"):
            total, parts = _check_time(BUILTIN_ENERGIES[name])
            results["energies"]["builtin"][name] = {"seconds": total, **parts}
            log(f"  {name:24s} {total:6.2f} s")
    if "forward" in wanted:
        log(f"[1] forward, batch {profile.batch}, tokens {profile.tokens}, width {profile.width}, float32, "
            f"median of {profile.reps} interleaved repetitions")
        results["forward"] = bench_forward(profile, dev, dtype, log, compile)
        if profile.forward_sizes:
            results["forward_sizes"] = {}
        for b, n, w in profile.forward_sizes:
            log(f"[1] forward, batch {b}, tokens {n}, width {w}")
            sized = Profile(**{**profile.__dict__, "batch": b, "tokens": n, "width": w})
            results["forward_sizes"][f"{b}x{n}x{w}"] = bench_forward(sized, dev, dtype, log, compile)
    if "train" in wanted:
        log(f"[2] training step (forward + backward), depth {profile.train_depth}")
        results["train"] = bench_train(profile, dev, dtype, log)
    if "fixed_point" in wanted:
        log("[4] FixedPoint implicit vs unrolled backward")
        results["fixed_point"] = bench_fixed_point(profile, dev, dtype, log)
    if "scaling" in wanted:
        log("[5] scaling in tokens n (Hopfield step, tokens as rows)")
        results["scaling"] = bench_scaling(profile, dev, dtype, log)
    if "verify" in wanted and profile.verify:
        log("[3b] unfold verify (every catalogue entry)")
        results["verify"] = bench_verify(log)
    if "realsize" in wanted:
        from .realsize import QUICK_SHAPES, SHAPES, run as run_realsize

        log("[6] real sizes: ViT-B and GPT-2-small causal, 12 heads (benchmarks/realsize.py)")
        results["realsize"] = run_realsize(profile.reps, profile.train_depth,
                                           QUICK_SHAPES if profile.name == "quick" else SHAPES,
                                           max(1, profile.train_reps // 10), log)
    results["summary"] = _summary(results)
    results["total_seconds"] = time.perf_counter() - t_start
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    try:
        _plot(results, os.path.join(out_dir, "bench.png"))
    except Exception as exc:  # the plot is a convenience; the JSON is the record
        log(f"plot failed: {type(exc).__name__}: {exc}")
    log("summary (targets: gen/hand ≤ 1.10, autograd/gen ≥ 1.5, train gen/hand ≤ 1.2, check < 1 s, verify < 60 s):")
    for k, v in results["summary"].items():
        log(f"  {'MET ' if v.get('met') else 'MISS'} {k}: " + ", ".join(
            f"{a} {b:.3g}" for a, b in v.items() if isinstance(b, float)))
    log(f"wrote {os.path.join(out_dir, 'bench.json')} ({results['total_seconds']:.0f} s)")
    return results


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="unfold bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repetitions (a smoke run)")
    ap.add_argument("--full", action="store_true", help="the issue's full sizes (batch 32, 1024 tokens, width 256)")
    ap.add_argument("--out", default="bench-results", help="directory for bench.json and bench.png")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", nargs="*", choices=["energies", "forward", "train", "fixed_point", "scaling", "verify",
                                                  "realsize"],
                    help="run only these sections (realsize, the ViT-B / GPT-2 multi-head section, runs only "
                         "when named: minutes on a CPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default on CPU: 1, so that timings on a shared machine are "
                         "not dominated by thread wake-ups; pass the core count on an idle machine)")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of the generated and of the hand-written forward layers")
    for k in ("batch", "tokens", "width", "reps"):
        ap.add_argument(f"--{k}", type=int, default=None, help=f"override the profile's {k}")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``unfold bench [--quick]`` and ``python benchmarks/run.py``."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu":
        torch.set_num_threads(1)
    prof = PROFILES["quick" if args.quick else ("full" if args.full else "default")]
    over: dict[str, Any] = {k: getattr(args, k) for k in ("batch", "tokens", "width", "reps")
                            if getattr(args, k) is not None}
    if any(k in over for k in ("batch", "tokens", "width")):
        over["forward_sizes"] = ()  # an explicit size replaces the size sweep
    if over:
        prof = Profile(**{**prof.__dict__, **over})
    run(prof, args.out, args.device, args.only, compile=args.compile)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
