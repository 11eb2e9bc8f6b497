"""The catalogue of known "forward pass = energy minimisation" results, one module per paper."""

from .base import (
    CLAIM_KINDS, AssumptionResult, Check, CheckResult, Entry, EntryReport, Figure, RunConfig, run_entry,
)
from .proof import PROOF_SCOPES, Proof, ProofScope, strongest_scope
from .registry import entries, get_entry

__all__ = [
    "CLAIM_KINDS", "AssumptionResult", "Check", "CheckResult", "Entry", "EntryReport", "Figure",
    "RunConfig", "run_entry", "entries", "get_entry", "PROOF_SCOPES", "Proof", "ProofScope", "strongest_scope",
]
