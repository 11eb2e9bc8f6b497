"""The Yang–Huang–Wipf catalogue entry: its checks, and targeted tests of its claims."""

import math

import pytest
import torch

import unfold as uf
from unfold.catalogue import _attention_refs as ref
from unfold.catalogue import yang_huang_wipf as yhw
from unfold.catalogue import RunConfig
from unfold.steps import MMStep, ProximalGradientStep
from unfold.verify.descent import check_descent

torch.set_num_threads(1)  # tiny float64 tensors: extra threads only contend for the 2 shared cores
DT = torch.float64


@pytest.fixture(scope="module")
def report(catalogue_run):
    return catalogue_run(yhw.ENTRY)


def test_every_check_passes(report):
    assert [r.check for r in report.results] == [
        "attention_mm_step", "plain_softmax_equal_norms", "attention_heads_mm_step", "attention_descent",
        "ffn_prox_step", "layer_stack"]
    for r in report.results:
        assert r.passed, f"{r.check}: {r.detail}"
        assert r.error is not None, r.check
        # a descent claim (no single tolerance): its largest increase, clamped at 0, within 64ε unscaled
        assert r.error <= (r.tol if r.tol is not None else 64 * torch.finfo(torch.float64).eps), r.check


def test_exact_errors(report):
    by = {r.check: r for r in report.results}
    for k in ("alpha=0.5", "alpha=1.0", "energy"):
        assert by["attention_mm_step"].data["errors"][k] < 1e-13, k
        assert by["ffn_prox_step"].data["errors"][k] < 1e-13, k
    heads = by["attention_heads_mm_step"]
    assert set(heads.data["errors"]) == {"preconditioned gradient step", "multi-head SDPA form"}
    assert heads.error < 1e-13
    # one preconditioner shared by the heads (the single-head form) is rejected by a resolvable margin
    shared = next(c for c in heads.controls if c.name.startswith("one shared preconditioner"))
    assert shared.rejected and shared.error > 1e-2
    assert by["plain_softmax_equal_norms"].error < 1e-13
    # without equal norms the official (bias-free) forward pass is NOT the MM step
    gap = next(c for c in by["plain_softmax_equal_norms"].controls if c.name.startswith("unequal G-norms"))
    assert gap.rejected and gap.error > 1e-3


def test_stack_reports_sum_and_figures(report):
    r = next(r for r in report.results if r.check == "layer_stack")
    assert {f.name for f in r.figures} == {"yhw_stack_random", "yhw_stack_structured"}
    for f in r.figures:                         # E₁+E₂ − E_min over 12 layers (13 points), never below 0
        assert len(f.x) == 13 and min(f.series["mean"]) >= 0 and min(f.series["median"]) >= 0
    # the verdict is the sub-steps' descent (error = largest sub-step increase); the sum's increases are
    # counted in the data, not part of the verdict
    subs = [v for k, v in r.data.items() if "sub-step max increase" in k]
    assert len(subs) == 4 and r.error == max(subs) and r.passed == (r.error <= r.tol)
    counts = [v for k, v in r.data.items() if "E1+E2 increased" in k]
    assert len(counts) == 2 and all(isinstance(c, int) and c >= 0 for c in counts)


def test_mm_rule_is_symbolic_and_anchor_substituted(monkeypatch):
    step = yhw.attention_step(1.0)
    assert isinstance(step, MMStep)
    rule = yhw.attention_rule(1.0)
    names = {str(a) for a in rule.free_symbols}
    assert "A" not in names and {"Y", "Ws"} <= names
    assert "A" in {str(a) for a in step.inner.update_rule().free_symbols}
    # the generated code is the rewritten rule: G⁻¹ cancels against ∇Q = (…) WsᵀWs and diag(Γ1)⁻¹
    # against the row scaling, leaving (1 − α) Y + α diag(Γ1)⁻¹ Γ Y: no linear solve or inverse, and
    # diag(Γ1)⁻¹ Γ Y is one fused attention call (calls counted by patching torch)
    calls: dict[str, int] = {}
    for mod, name in ((torch.linalg, "solve"), (torch.linalg, "inv"),
                      (torch.nn.functional, "scaled_dot_product_attention")):
        def counted(*a, _f=getattr(mod, name), _n=name, **k):
            calls[_n] = calls.get(_n, 0) + 1
            return _f(*a, **k)
        monkeypatch.setattr(mod, name, counted)
    g = torch.Generator().manual_seed(5)
    Y, Ws = torch.randn(2, 5, 4, generator=g, dtype=DT), torch.eye(4, dtype=DT)
    for alpha in (1.0, 0.5):
        calls.clear()
        yhw.attention_step(alpha)(Y, Ws=Ws)
        assert calls == {"scaled_dot_product_attention": 1}, (alpha, calls)


def test_majorizer_conditions_can_fail():
    """The majorizer check is a real test: Q(·|A) touches E only at the anchor."""
    g = torch.Generator().manual_seed(1)
    Ws = torch.eye(4, dtype=DT)
    Y = torch.randn(5, 4, generator=g, dtype=DT)
    step = yhw.attention_step(0.5)
    ok = step.check_majorizer(Y, tol=1e-12, Ws=Ws)
    assert ok.passed and ok.touch < 1e-13 and ok.gap >= 0 and ok.decrease < 0
    other = Y + 0.5 * torch.randn(Y.shape, generator=g, dtype=DT)  # pairwise distances change
    gap = float(step.majorizer_value(Y, other, Ws=Ws) - step.energy(Y, Ws=Ws))
    assert gap > 1e-6  # Q(·|A) ≥ E with equality only at the anchor


def test_equal_norm_predicate():
    g = torch.Generator().manual_seed(2)
    Ws = yhw._ws(g, 4, DT)
    Y = torch.randn(2, 6, 4, generator=g, dtype=DT)
    assert not yhw.equal_g_norm(Y, Ws).holds
    Yeq = Y / (Y @ Ws.T).norm(dim=-1, keepdim=True)
    assert yhw.equal_g_norm(Yeq, Ws).holds


def test_attention_descent_for_alpha_in_unit_interval():
    g = torch.Generator().manual_seed(3)
    Ws = yhw._ws(g, 5, DT)
    Y = torch.randn(3, 9, 5, generator=g, dtype=DT)
    for a in (0.5, 1.0):
        assert check_descent(yhw.attention_step(a), Y, depth=8, Ws=Ws).passed


def test_too_large_ffn_step_is_reported_and_can_increase_energy():
    g = torch.Generator().manual_seed(4)
    d = 6
    W = yhw._ffn_weight(g, d, DT)
    preds = yhw.ffn_step_bound(W, 1.9)
    assert preds[0].holds and preds[1].holds and not preds[2].holds
    assert all(p.holds for p in yhw.ffn_step_bound(W, 0.9))
    # with α well past 2/L the prox step oscillates and the descent check reports it
    Wbig = 0.95 * torch.eye(d, dtype=DT)
    b = torch.ones(d, 1, dtype=DT)
    Y = 3 * torch.rand(2, 5, d, generator=g, dtype=DT)
    step = ProximalGradientStep(yhw.ffn_energy(), uf.NonNegative(), wrt="Y", step=1.9)
    assert not yhw.ffn_step_bound(Wbig, 1.9)[2].holds
    assert not check_descent(step, Y, depth=6, W=Wbig, b=b).passed


def test_ffn_asymmetric_weight_breaks_the_closed_form():
    """The derived step uses ½(W + Wᵀ): with an asymmetric W it is not ReLU(Y((1−α)I − αW) + α1bᵀ)."""
    g = torch.Generator().manual_seed(5)
    W = torch.randn(4, 4, generator=g, dtype=DT)
    b = torch.randn(4, 1, generator=g, dtype=DT)
    Y = torch.rand(3, 4, generator=g, dtype=DT)
    assert not yhw.ffn_step_bound(W, 0.5)[0].holds
    out = yhw.ffn_step(0.5)(Y, W=W, b=b)
    assert ref.rel_err(out, ref.yhw_ffn_step(Y, 0.5 * (W + W.T), b, 0.5)) < 1e-13
    assert ref.rel_err(out, ref.yhw_ffn_step(Y, W, b, 0.5)) > 1e-3


def test_pair_energy_is_the_pair_sum_and_gradient_checks():
    res = uf.check_gradient(yhw.attention_energy(), wrt=["Y"])
    assert res.passed and res.max_error < 1e-10
    g = torch.Generator().manual_seed(6)
    Y, Ws = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(3, 3, generator=g, dtype=DT)
    want = sum(-math.exp(-0.5 * float(((Ws @ (Y[i] - Y[j])) ** 2).sum())) for i in range(4) for j in range(i + 1, 4))
    assert abs(float(yhw.attention_step(1.0).energy(Y, Ws=Ws)) - want) < 1e-13


def test_same_seed_same_numbers():
    a = yhw.check_stack(RunConfig(seed=3, quick=True))
    b = yhw.check_stack(RunConfig(seed=3, quick=True))
    assert a.data == b.data and a.figures[0].series == b.figures[0].series


def test_heads_layer_with_one_head_is_the_single_head_step():
    """H = 1 (W_s^1 = W_s): the head-coordinate MM step mapped back equals the single-head MM step."""
    g = torch.Generator().manual_seed(3)
    d = 5
    Ws = torch.eye(d, dtype=DT) + 0.3 * torch.randn(d, d, generator=g, dtype=DT) / math.sqrt(d)
    Y = torch.randn(2, 7, d, generator=g, dtype=DT)
    for a in (0.5, 1.0):
        got = yhw.attention_heads(Y, Ws[None], a)
        assert ref.rel_err(got, ref.yhw_attention_step(Y, Ws.T @ Ws, a)) < 1e-13


def test_heads_layer_descends_and_rejects_non_square_heads():
    g = torch.Generator().manual_seed(4)
    H, p = 3, 2
    d = H * p
    Ws = (torch.eye(d, dtype=DT) + 0.3 * torch.randn(d, d, generator=g, dtype=DT) / math.sqrt(d)).reshape(H, p, d)
    Y = torch.randn(2, 8, d, generator=g, dtype=DT)
    E = [ref.yhw_heads_energy(Y, Ws)]
    for _ in range(10):
        Y = yhw.attention_heads(Y, Ws, 1.0)
        E.append(ref.yhw_heads_energy(Y, Ws))
    steps = torch.stack(E)
    assert (steps[1:] - steps[:-1]).max() <= 1e-12 * steps.abs().max()
    with pytest.raises(uf.errors.ShapeMismatchError, match="H·p = d"):
        yhw.attention_heads(Y, Ws[:, :1], 1.0)
