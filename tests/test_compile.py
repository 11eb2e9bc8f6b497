"""Generated steps compile with ``torch.compile(fullgraph=True)``: the dimension checks, the scalar
cache and the run-time product ordering all trace, and the compiled step computes the eager one."""

from __future__ import annotations

import torch

from unfold.energies import hopfield_rows
from unfold.steps import GradientStep


def test_gradient_step_compiles_in_one_graph():
    step = GradientStep(hopfield_rows(), wrt="Xi", step=1.0)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 7, 4, generator=g, dtype=torch.float64)
    Xi = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    compiled = torch.compile(step, fullgraph=True, backend="eager")  # tracing only: no C++ toolchain
    out = compiled(Xi, X=X, beta=0.7)
    ref = torch.softmax(0.7 * Xi @ X.mT, dim=-1) @ X                 # the formula, not unfold's code
    assert torch.allclose(out, ref, rtol=0, atol=1e-14)
    assert torch.allclose(out, step(Xi, X=X, beta=0.7), rtol=0, atol=1e-14)
