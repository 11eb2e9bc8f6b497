"""Small exact-arithmetic helpers shared by the proof modules (no numerics, no unfold engine).

* :func:`explicit_zero` — every entry of an explicit sympy ``Matrix`` cancels to 0;
* :func:`symbolic_zero` — a matrix expression at symbolic sizes expands to the zero matrix, after
  writing each 1×1 product in one canonical orientation (a 1×1 matrix equals its transpose, the
  only rewrite applied);
* :func:`blocks_equal` — two ``BlockMatrix`` expressions, multiplied out by ``block_collapse``,
  agree block by block (:func:`symbolic_zero` of each difference);
* :func:`scalars_out_of_hadamard` — ``(cA) ⊙ (dB) = cd (A ⊙ B)`` applied throughout an expression, so that
  structural comparisons do not depend on where the engine left a scalar factor;
* :func:`main` — what ``python -m proofs.proof_<entry>`` runs: ``prove()`` and one line per statement.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import sympy as sp
from sympy.matrices.expressions import HadamardProduct, MatAdd, MatMul, ZeroMatrix, block_collapse
from sympy.matrices.expressions.blockmatrix import BlockMatrix

__all__ = ["explicit_zero", "symbolic_zero", "blocks_equal", "scalars_out_of_hadamard", "main"]


def explicit_zero(M: Any) -> bool:
    """``True`` when every entry of the explicit matrix (or scalar) ``M`` cancels to 0."""
    entries = list(M) if isinstance(M, sp.MatrixBase) else [M]
    return all(sp.cancel(sp.expand(e)) == 0 for e in entries)


def _orient_1x1(term: sp.Expr) -> sp.Expr:
    """A 1×1 product ``t`` and ``tᵀ`` are the same scalar: keep the one whose string sorts first."""
    if getattr(term, "shape", None) != (1, 1):
        return term
    flipped = term.T.doit()
    return min(term, flipped, key=sp.default_sort_key)


def symbolic_zero(M: Any) -> bool:
    """``True`` when the matrix expression ``M`` (symbolic sizes) is identically the zero matrix.

    ``M`` is expanded into a sum of products; each 1×1 product is oriented canonically
    (:func:`_orient_1x1`); the sum is rebuilt and must collapse to ``ZeroMatrix`` (or 0).
    """
    e = sp.expand(M)
    if e == 0 or isinstance(e, ZeroMatrix):
        return True
    terms = e.args if isinstance(e, MatAdd) else (e,)
    if getattr(e, "shape", None) == (1, 1):
        terms = tuple(_orient_1x1(t) for t in terms)
    rebuilt = sp.expand(MatAdd(*terms).doit()) if terms else 0
    return rebuilt == 0 or isinstance(rebuilt, ZeroMatrix)


def blocks_equal(lhs: Any, rhs: Any) -> bool:
    """Block-by-block equality of two block-matrix expressions at symbolic block sizes."""
    L, R = block_collapse(lhs), block_collapse(rhs)
    if not (isinstance(L, BlockMatrix) and isinstance(R, BlockMatrix)):
        return symbolic_zero(L - R)
    if L.blocks.shape != R.blocks.shape:
        return False
    rows, cols = L.blocks.shape
    return all(symbolic_zero(L.blocks[i, j] - R.blocks[i, j]) for i in range(rows) for j in range(cols))



def scalars_out_of_hadamard(e: Any) -> Any:
    """``e`` with every ``HadamardProduct``'s scalar factors pulled in front: ``(cA) ⊙ (dB) = cd (A ⊙ B)``."""
    def pull(h: HadamardProduct) -> Any:
        coeff, rest = sp.S.One, []
        for arg in h.args:
            c, m = arg.as_coeff_mmul() if isinstance(arg, MatMul) else (sp.S.One, arg)
            coeff, rest = coeff * c, rest + [m]
        return coeff * HadamardProduct(*rest)
    return e.replace(lambda x: isinstance(x, HadamardProduct), pull)


def main(prove: Callable[[], Mapping[str, str]]) -> None:
    """Run ``prove()`` (it raises AssertionError at the first step that fails) and print each proved
    statement as ``PROVED <key>  [<how>]``: the ``__main__`` of every ``proofs/proof_<entry>.py``."""
    for key, how in prove().items():
        print(f"PROVED {key}  [{how}]")
