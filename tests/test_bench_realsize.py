"""Smoke run of the real-size benchmark at tiny sizes: every route computes the same layer."""

from __future__ import annotations

import importlib.util
import os

import torch


def _module():
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "realsize.py")
    spec = importlib.util.spec_from_file_location("realsize_bench", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_routes_agree_at_tiny_sizes() -> None:
    rs = _module()
    for causal in (False, True):
        fns = rs.energy_step_case(2, 7, 12, 3, causal, dtype=torch.float64)
        ref = fns["hand"]()
        assert torch.allclose(fns["generated"](), ref, atol=1e-12, rtol=0)
        assert torch.allclose(fns["autograd"](), ref, atol=1e-12, rtol=0)
        fwd, trn = rs.attention_cases(2, 7, 12, 3, causal, depth=2, dtype=torch.float64)
        ref = fwd["hand"]()
        assert torch.allclose(fwd["generated"](), ref, atol=1e-12, rtol=0)
        assert torch.allclose(fwd["nn_mha"](), ref, atol=1e-12, rtol=0)
        assert all(torch.isfinite(f()) for f in trn.values())
    res = rs.run(reps=1, depth=1, shapes={"tiny": (1, 5, 8, 2, True)}, train_reps=1, log=lambda s: None)
    assert res["tiny/energy_step"]["max_abs_error_vs_hand"]["generated"] < 1e-4  # float32 run
