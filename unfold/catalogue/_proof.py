"""What a catalogue entry's symbolic proofs establish, and at which scope, as data.

Each entry lists its proof statements (:class:`Proof`); the module ``proofs/proof_<entry>.py`` of
the repository proves each of them by key (``prove()`` returns ``{key: how}``, and a test checks
that the keys match).  The scope says what kind of statement it is:

``general``
    The mathematical identity holds for every size and every value of its symbols: a scalar case
    analysis, a block-matrix identity at symbolic dimensions, a derivative taken entry by entry by
    plain scalar ``sp.diff``.  Independent of unfold's gradient engine.
``engine-golden``
    unfold's derived expression (a gradient, an update rule) is structurally equal, at symbolic
    dimensions, to a closed form written by hand.  A statement about what the engine outputs: it
    is not independent of the engine (a wrong engine could agree with a wrong closed form).
``fixed-size``
    An exact identity (symbolic entries, rational arithmetic) at explicit small sizes only.
``numeric``
    A floating-point comparison with a stated tolerance: evidence, not proof.

"Proved" in this project means ``general``; the others are stated as what they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Optional

from ..errors import InputError

__all__ = ["ProofScope", "PROOF_SCOPES", "Proof", "strongest_scope"]

ProofScope = Literal["general", "engine-golden", "fixed-size", "numeric"]
#: The scopes, strongest first (see the module docstring).
PROOF_SCOPES: tuple[str, ...] = ("general", "engine-golden", "fixed-size", "numeric")


@dataclass(frozen=True)
class Proof:
    """One proof statement of a catalogue entry.

    ``key`` names it in ``proofs/proof_<entry>.py``; ``statement`` is the mathematics; ``scope`` is
    one of :data:`PROOF_SCOPES`; ``backs`` names the entry's checks whose claim it underpins (empty:
    a supporting lemma); ``method`` says how it is proved.
    """

    key: str
    statement: str
    scope: ProofScope
    method: str
    backs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in PROOF_SCOPES:
            raise InputError(f"proof {self.key!r}: scope {self.scope!r} is not one of {PROOF_SCOPES}")


def strongest_scope(proofs: Iterable[Proof]) -> Optional[str]:
    """The strongest scope among ``proofs`` (``None`` when there are none)."""
    ranks = [PROOF_SCOPES.index(p.scope) for p in proofs]
    return PROOF_SCOPES[min(ranks)] if ranks else None
