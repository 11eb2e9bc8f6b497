"""The test-time-regression catalogue entry: its checks, and targeted tests of its claims."""

import pytest
import torch

from unfold.catalogue import _ttr_refs as ref
from unfold.catalogue import ttr
from unfold.catalogue import RunConfig, run_entry

CHECKS = {"linear_attention_gd", "deltanet_gd_step", "deltanet_step_descends", "gated_deltanet_decay_then_gd",
          "longhorn_implicit_step", "longhorn_released_kernel", "mesa_layer_ridge_argmin",
          "softmax_attention_nadaraya_watson"}


@pytest.fixture(scope="module")
def report(entry_results):
    return entry_results(ttr.ENTRY)


def test_every_check_passes_with_its_assumptions(report, assert_checks_pass):
    assert_checks_pass(report, CHECKS)


def test_exact_claims_hold_to_float64_rounding(report):
    for r in report.values():
        if r.claim == "exact":
            assert r.error < 1e-14, (r.check, r.error)


def test_float32_passes_under_the_precision_rule(assert_float32_rule):
    assert_float32_rule(ttr.ENTRY)


def test_deltanet_step_is_not_longhorn_and_vice_versa():
    """The explicit (DeltaNet) and implicit (Longhorn) steps are different layers for the same β."""
    d = ttr.sample_sequence(RunConfig(seed=1), unit_keys=False)
    O_delta, _, _ = ttr.unroll(ttr.deltanet_step(), d["S0"], d["Q"], d["K"], d["V"], beta=d["beta"])
    O_long, _ = ref.longhorn_closed_form(d["Q"], d["K"], d["V"], d["beta"], d["S0"])
    assert (O_delta - O_long).abs().max() > 1e-2


def test_gated_deltanet_is_not_a_step_with_weight_decay(report):
    """Decay-then-step differs from one GD step on ℓ + weight decay (the Skkᵀ coefficient differs by α)."""
    (c,) = [c for c in report["gated_deltanet_decay_then_gd"].controls if "weight decay" in c.name]
    assert c.rejected and c.error > 1e-2


def test_every_exact_claim_rejects_its_controls(report):
    for r in report.values():
        if r.claim == "exact":
            assert len(r.controls) >= 2 and all(c.rejected for c in r.controls), (r.check, r.controls)


def test_longhorn_kernel_is_far_from_the_exact_step_except_on_coordinate_keys(report):
    d = report["longhorn_released_kernel"].data
    # the released layer's own regime (β = sigmoid ∈ (0, 1), unnormalised keys, S₀ = 0), per token and overall
    assert d["relative_output_error"] > 0.1 and d["relative_sequence_error"] > 0.05
    assert d["relative_output_error_large_steps"] > 0.1 and d["one_step_state_error"] > 1e-2
    assert d["relative_output_error_unit_keys"] > 0.1       # also with L2-normalised keys
    assert d["coordinate_keys_error"] < 1e-14


def test_exact_step_with_one_beta_per_channel():
    """The per-channel exact step (rows of S as a batch of generated d_v = 1 steps) equals the shared-β generated
    step when the channels share β, and the row-wise closed form S⁺ = S − Diag(ε)(Sk − v)kᵀ in plain torch."""
    d = ttr.sample_sequence(RunConfig(seed=1), unit_keys=False)
    Q, K, V, S0 = d["Q"], d["K"], d["V"], d["S0"]
    shared = d["beta"][..., None].expand(*V.shape)
    O_shared, _, _ = ttr.unroll(ttr.longhorn_step(), S0, Q, K, V, beta=d["beta"])
    assert (ttr._exact_per_channel(Q, K, V, shared, S0) - O_shared).abs().max() < 1e-14
    b = torch.rand(*V.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    S, outs = S0, []
    for t in range(K.shape[-2]):
        k, v = K[:, t], V[:, t]
        e = b[:, t] / (1 + b[:, t] * (k * k).sum(-1, keepdim=True))
        S = S - e[..., None] * ((S @ k[..., None])[..., 0] - v)[..., None] * k[:, None, :]
        outs.append((S @ Q[:, t, :, None])[..., 0])
    assert (ttr._exact_per_channel(Q, K, V, b, S0) - torch.stack(outs, dim=1)).abs().max() < 1e-13


def test_linear_attention_chunk_form_carries_the_state():
    """The chunkwise reference equals the recurrence at chunk sizes 1, 5 (a shorter last chunk) and T, and it is
    not vacuous: the same form without the decay differs."""
    d = ttr.sample_sequence(RunConfig(seed=3))
    O, S = ref.decayed_linear_attention(d["Q"], d["K"], d["V"], d["alpha"], d["S0"])
    for c in (1, 5, 12):
        O_c, S_c = ref.decayed_linear_attention_chunkwise(d["Q"], d["K"], d["V"], d["alpha"], c, d["S0"])
        assert (O - O_c).abs().max() < 1e-13 and (S - S_c).abs().max() < 1e-13
    O_nodecay, _ = ref.decayed_linear_attention_chunkwise(d["Q"], d["K"], d["V"], torch.ones_like(d["alpha"]), 3,
                                                         d["S0"])
    assert (O - O_nodecay).abs().max() > 1e-2


def test_deltanet_descent_needs_the_step_range(report):
    w = report["deltanet_step_descends"].data["worst_increase"]
    assert w["β ∈ (0,1)"] < 0 and w["β‖k‖² = 2.5 (control)"] > 0


def test_longhorn_is_stable_where_deltanet_is_not():
    """β‖k‖² = 3: the explicit step amplifies the residual by |1 − 3| = 2, the implicit step shrinks it by 1/4."""
    cfg = RunConfig(seed=2)
    d = ttr.sample_sequence(cfg)
    kw = {"k": d["K"][:, 0, :, None], "v": d["V"][:, 0, :, None], "beta": torch.full((3,), 3.0, dtype=torch.float64)}
    r0 = (d["S0"] @ kw["k"] - kw["v"]).norm(dim=-2)
    r_delta = (ttr.deltanet_step()(d["S0"], **kw) @ kw["k"] - kw["v"]).norm(dim=-2)
    r_long = (ttr.longhorn_step()(d["S0"], **kw) @ kw["k"] - kw["v"]).norm(dim=-2)
    assert torch.allclose(r_delta, 2 * r0, rtol=1e-13) and torch.allclose(r_long, r0 / 4, rtol=1e-13)


def test_chunk_form_detects_a_transposed_state():
    """The chunk reference is not vacuous: fla's orientation H = Sᵀ used as S breaks the agreement."""
    d = ttr.sample_sequence(RunConfig(seed=3), dk=4, dv=4)
    O, _ = ref.delta_rule(d["Q"], d["K"], d["V"], d["beta"], d["S0"])
    O_t, _ = ref.delta_rule_chunkwise(d["Q"], d["K"], d["V"], d["beta"], 3, d["S0"].mT)
    assert (O - O_t).abs().max() > 1e-2


def test_same_seed_same_numbers():
    a = run_entry(ttr.ENTRY, RunConfig(seed=4), only=["deltanet_gd_step", "longhorn_released_kernel"])
    b = run_entry(ttr.ENTRY, RunConfig(seed=4), only=["deltanet_gd_step", "longhorn_released_kernel"])
    assert [r.data for r in a.results] == [r.data for r in b.results]


def test_mesa_step_is_the_ridge_solution_from_any_state():
    """The generated Newton step lands on VKᵀ(KKᵀ + λI)⁻¹ (a direct solve) whatever the starting state."""
    d = ttr.sample_sequence(RunConfig(seed=5))
    K, V = d["K"].mT, d["V"].mT
    eye = torch.eye(K.shape[-2], dtype=torch.float64)
    direct = torch.linalg.solve(K @ K.mT + ttr.MESA_LAMBDA * eye, K @ V.mT).mT
    for S0 in (d["S0"], torch.zeros_like(d["S0"]), 100 * d["S0"]):
        S1 = ttr.mesa_step()(S0, K=K, V=V, lam=ttr.MESA_LAMBDA)
        assert torch.allclose(S1, direct, rtol=0, atol=1e-11)
