"""unfold.audit: per-layer energy, distance to the exact step and assumption gaps, checked on
modules whose answer is known independently (PyTorch's own nn.MultiheadAttention with Hopfield
weights, a hand-written gradient step), and its errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import unfold as uf
from unfold.audit import audit, audit_attention
from unfold.cli import main
from unfold.energies import builtin_energy
from unfold.errors import InputError, ShapeMismatchError, UndeclaredSymbolError

DT = torch.float64


def _hopfield_mha(d=8, heads=2):
    """An nn.MultiheadAttention whose heads are Hopfield CCCP steps: W_V = W_K, b_V = b_K,
    output projection the identity."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(d, heads, batch_first=True).double()
    with torch.no_grad():
        Wq, Wk, Wv = mha.in_proj_weight.split(d)
        Wv.copy_(Wk)
        bq, bk, bv = mha.in_proj_bias.split(d)
        bk.normal_()
        bv.copy_(bk)
        mha.out_proj.weight.copy_(torch.eye(d))
        mha.out_proj.bias.zero_()
    return mha


def test_attention_with_hopfield_weights_is_the_exact_step():
    mha = _hopfield_mha()
    x = torch.randn(3, 7, 8, generator=torch.Generator().manual_seed(1), dtype=DT)
    a = audit_attention(mha, x)
    assert a.step_distance <= 1e-12
    assert a.decreased and a.energy_after <= a.energy_before             # CCCP descent
    assert a.gaps[0].holds and a.gaps[0].value <= 1e-15                  # W_V = W_K
    # independent: PyTorch's forward, per head, equals the Hopfield update X softmax(β XᵀΞ)
    out = mha(x, x, x, need_weights=False)[0]
    Wq, Wk, _ = mha.in_proj_weight.split(8)
    bq, bk, _ = mha.in_proj_bias.split(8)
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        Q, K = (x @ Wq[sl].T + bq[sl]).mT, (x @ Wk[sl].T + bk[sl]).mT
        ref = K @ torch.softmax(K.mT @ Q / 2.0, dim=-2)
        assert torch.allclose(out[..., sl].mT, ref, rtol=0, atol=1e-12)


def test_trained_like_attention_reports_gaps_and_distance():
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2, batch_first=False).double()
    x = torch.randn(5, 2, 8, dtype=DT)                                   # (n, B, d)
    a = audit_attention(mha, x)
    assert a.step_distance > 0.1
    assert not a.gaps[0].holds and not a.gaps[1].holds
    with torch.no_grad():                                                 # W_Q = W_K: W_QᵀW_K symmetric
        Wq, Wk, _ = mha.in_proj_weight.split(8)
        Wq.copy_(Wk)
    assert audit_attention(mha, x).gaps[1].value <= 1e-15


def test_encoder_stack_audits_every_layer():
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).double()
    report = audit(enc, torch.randn(2, 6, 8, dtype=DT))
    assert [a.layer for a in report.layers] == [f"layer {i} self_attn" for i in range(3)]
    assert "dist. to step" in report.table()
    json.dumps(report.as_dict())


class _Step(nn.Module):
    """A user's layer: one gradient step on ½‖Y − WY‖², written by hand."""

    def __init__(self, W, eta):
        super().__init__()
        self.lin = nn.Linear(W.shape[0], W.shape[0], bias=False).double()
        with torch.no_grad():
            self.lin.weight.copy_(W)
        self.eta = eta

    def forward(self, Y):
        A = torch.eye(Y.shape[-2], dtype=Y.dtype) - self.lin.weight
        return Y - self.eta * A.T @ A @ Y


def test_user_module_with_mapping():
    g = torch.Generator().manual_seed(4)
    W = 0.3 * torch.randn(4, 4, generator=g, dtype=DT)
    Y = torch.randn(2, 4, 5, generator=g, dtype=DT)
    E = builtin_energy("quadratic_residual")
    exact = audit(_Step(W, 0.2), Y, energy=E, wrt="Y", mapping={"W": "lin.weight"}, step=0.2)
    assert exact.layers[0].step_distance <= 1e-14 and exact.all_decreased
    off = audit(_Step(W, 0.2), Y, energy=E, wrt="Y", mapping={"W": "lin.weight"}, step=0.1)
    assert off.layers[0].step_distance == pytest.approx(1.0, abs=1e-12)  # twice the step: distance = its length


def test_user_module_bad_mappings_name_the_parameter():
    g = torch.Generator().manual_seed(5)
    mod = _Step(torch.randn(4, 4, generator=g, dtype=DT), 0.1)
    Y = torch.randn(4, 5, generator=g, dtype=DT)
    E = builtin_energy("quadratic_residual")
    with pytest.raises(UndeclaredSymbolError, match=r"'lin\.wieght'.*lin\.weight"):
        audit(mod, Y, energy=E, wrt="Y", mapping={"W": "lin.wieght"})
    with pytest.raises(UndeclaredSymbolError, match=r"\['V'\].*not inputs of the energy"):
        audit(mod, Y, energy=E, wrt="Y", mapping={"V": "lin.weight"})
    with pytest.raises(ShapeMismatchError, match=r"W ← 'wide'"):
        mod.wide = torch.zeros(4, 3, dtype=DT)
        audit(mod, Y, energy=E, wrt="Y", mapping={"W": "wide"})
    with pytest.raises(ShapeMismatchError, match="'W'.*shape \\(4,\\)"):
        audit(mod, Y, energy=E, wrt="Y", mapping={"W": lambda m: m.lin.weight[0]})
    with pytest.raises(InputError, match="no built-in mapping for Linear"):
        audit(nn.Linear(3, 3), Y)
    with pytest.raises(InputError, match="energy=, wrt= and mapping= together"):
        audit(mod, Y, energy=E)


def test_crate_model_audit():
    model = uf.models.CRATE(width=8, heads=2, depth=2).double()
    report = audit(model, torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(6), dtype=DT))
    comp = [a for a in report.layers if "compression" in a.layer]
    assert len(comp) == 2 and all(a.decreased for a in comp)
    ista = [a for a in report.layers if "ISTA" in a.layer]
    assert all(g.holds for a in ista for g in a.gaps)                    # D starts orthogonal, η λ_max = η


def test_cli_audit_writes_report(tmp_path, capsys):
    assert main(["audit", "deq", "--epochs", "1", "--samples", "16", "--no-progress", "--report", str(tmp_path)]) == 0
    assert "audit of Hopfield DEQ" in capsys.readouterr().out
    assert json.loads((tmp_path / "audit.json").read_text())["layers"][0]["decreased"] is True
    assert (tmp_path / "audit.png").stat().st_size > 1000
