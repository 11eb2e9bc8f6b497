r"""The catalogue of known "forward pass = energy minimisation" results, one module per paper.

Adding an entry: a module ``unfold/catalogue/<name>.py`` defining ``ENTRY`` (discovered, no list to
edit; see ``unfold/catalogue/README.md``).  Its checks are typed :class:`Claim`\ s — the generated
layer, the independent reference, how inputs are drawn per :class:`RunConfig`, the float64
tolerance, the assumptions as :class:`Predicate`\ s, the :class:`Control`\ s that must be rejected —
:class:`Descent`\ s (the energy never increases along named runs of generated models) — or free-form
:class:`Check`\ s where a claim needs more than a comparison.  The runner fills in the names,
applies the precision rule, and adds the 1e-3 mutation control to every exact and gradient claim.
"""

from .base import (
    CLAIM_KINDS, AssumptionResult, Check, CheckResult, ControlResult, Entry, EntryReport, Figure, RunConfig,
)
from ._claim import Claim, Control, Descent, EnergyPlot, Predicate
from ._proof import PROOF_SCOPES, Proof, ProofScope, strongest_scope
from .registry import entries, entries_named, get_entry
from ._runner import RunSummary, run_check, run_checks, run_entry, select

__all__ = [
    "CLAIM_KINDS", "AssumptionResult", "Check", "CheckResult", "ControlResult", "Entry", "EntryReport", "Figure",
    "RunConfig", "PROOF_SCOPES", "Claim", "Control", "Descent", "EnergyPlot", "Predicate", "run_entry", "run_check", "run_checks",
    "select", "RunSummary", "entries", "entries_named", "get_entry", "Proof", "ProofScope", "strongest_scope",
]
