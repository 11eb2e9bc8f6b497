"""Both legs of the gradient check on every built-in energy (≥ 25), float64, tolerance 1e-10."""

import pytest

import unfold as uf
from unfold.energies import BUILTIN_ENERGIES


def test_at_least_25_energies():
    assert len(BUILTIN_ENERGIES) >= 25


@pytest.mark.parametrize("name", sorted(BUILTIN_ENERGIES))
def test_builtin_energy_passes_both_legs(name):
    E = BUILTIN_ENERGIES[name]()
    result = uf.check_gradient(E, tol=1e-10)
    assert result.passed
    assert {v.name for v in result.variables} == {str(s) for s in E.variables}
    for v in result.variables:
        assert v.leg1_error <= 1e-10 and v.leg2_grad_error <= 1e-10 and v.leg2_energy_error <= 1e-10
