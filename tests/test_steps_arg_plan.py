"""A fixed-η step remembers where its generated update's arguments come from (per keyword names);
later calls read the current values (never stale ones) and still get every check."""

from __future__ import annotations

import math

import pytest
import torch

import unfold as uf
from unfold.catalogue import crate
from unfold.errors import DimMismatchError, InputError
from unfold.steps import GradientStep

DT = torch.float64


def _ista_reference(Z: torch.Tensor, Zh: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """CRATE's ISTA block from the paper: ReLU(Z + η Dᵀ(Ẑ − DZ) − ηλ)."""
    return torch.relu(Z + crate.ETA * D.mT @ (Zh - D @ Z) - crate.ETA * crate.LAM)


def test_later_calls_use_their_own_inputs_even_where_the_first_aliased_the_state() -> None:
    step = crate.ista_step()
    g = torch.Generator().manual_seed(0)
    Z1, Z2, Zh2 = (torch.randn(3, 4, 5, generator=g, dtype=DT) for _ in range(3))
    D1, D2 = (torch.randn(4, 4, generator=g, dtype=DT) / 2 for _ in range(2))
    # first call: Ẑ is the state itself (CRATE's Z = Z₀); the next ones pass other tensors
    assert torch.allclose(step(Z1, Zh=Z1, D=D1), _ista_reference(Z1, Z1, D1), atol=1e-14, rtol=0)
    assert torch.allclose(step(Z2, Zh=Zh2, D=D2), _ista_reference(Z2, Zh2, D2), atol=1e-14, rtol=0)
    assert torch.allclose(step(Z2, D=D1, Zh=Z1), _ista_reference(Z2, Z1, D1), atol=1e-14, rtol=0)


def test_checks_still_run_after_the_plan_is_remembered() -> None:
    step = crate.ista_step()
    Z = torch.randn(2, 4, 5, dtype=DT)
    D = torch.randn(4, 4, dtype=DT)
    step(Z, Zh=Z, D=D)
    with pytest.raises(DimMismatchError):
        step(Z, Zh=Z, D=torch.randn(3, 3, dtype=DT))
    with pytest.raises(InputError, match="must be a torch.Tensor"):
        step(Z.tolist(), Zh=Z, D=D)
    with pytest.raises(InputError, match="must have shape"):
        step(Z[0, 0], Zh=Z, D=D)
    with pytest.raises(InputError, match="unknown input"):
        step(Z, Zh=Z, D=D, W=D)
    with pytest.raises(InputError, match="holds 1 non-finite"), uf.finite_checks():
        bad = D.clone()
        bad[0, 0] = math.nan
        step(Z, Zh=Z, D=bad)


def test_registered_parameters_are_read_at_every_call() -> None:
    d, n = uf.dims("d n")
    Y, W = uf.state("Y", d, n), uf.param("W", d, d)
    E = uf.Energy(uf.fro2(Y - W * Y) / 2)
    g = torch.Generator().manual_seed(1)
    W1 = 0.3 * torch.randn(4, 4, generator=g, dtype=DT)
    step = GradientStep(E, "Y", step=0.3, params={"W": W1})
    y = torch.randn(2, 4, 3, generator=g, dtype=DT)

    def reference(W: torch.Tensor) -> torch.Tensor:  # Y − η (I − W)ᵀ(I − W) Y, by hand
        M = torch.eye(4, dtype=DT) - W
        return y - 0.3 * M.T @ (M @ y)

    assert torch.allclose(step(y), reference(W1), atol=1e-14, rtol=0)
    with torch.no_grad():
        step.W.mul_(2.0)  # in place
    assert torch.allclose(step(y), reference(2 * W1), atol=1e-14, rtol=0)
    W3 = 0.1 * torch.randn(4, 4, generator=g, dtype=DT)
    step.W = torch.nn.Parameter(W3)  # replaced
    assert torch.allclose(step(y), reference(W3), atol=1e-14, rtol=0)
    with pytest.raises(InputError, match="registered on the module"):
        step(y, W=W3)


def test_a_keyword_planned_as_a_tensor_may_be_a_number_later() -> None:
    d, n = uf.dims("d n")
    Y, b = uf.state("Y", d, n), uf.scalar("b")
    step = GradientStep(uf.Energy(b * uf.fro2(Y) / 2), "Y", step=0.1)
    X = torch.randn(2, 3, 4, dtype=DT)
    assert torch.allclose(step(X, b=torch.tensor(2.0, dtype=DT)), X - 0.1 * 2.0 * X, atol=1e-15, rtol=0)
    assert torch.allclose(step(X, b=3.0), X - 0.1 * 3.0 * X, atol=1e-15, rtol=0)
