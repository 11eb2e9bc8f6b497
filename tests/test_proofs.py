"""Every module ``proofs/proof_*.py`` defines ``prove()``, which raises AssertionError unless its
exact symbolic proofs hold, and returns a mapping claim -> how it was proved."""

import importlib
import pathlib

import pytest

PROOFS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / "proofs").glob("proof_*.py"))


@pytest.mark.parametrize("name", PROOFS)
def test_proof(name: str) -> None:
    mod = importlib.import_module(f"proofs.{name}")
    proven = mod.prove()
    assert proven, f"{name}.prove() proved nothing"
