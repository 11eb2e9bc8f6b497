"""The terminal table of ``unfold verify``: one row per check, aligned, PASS/FAIL first.

Columns: entry, check, claim, the strongest scope of the symbolic proofs behind the claim
(``general`` / ``engine-golden`` / ``fixed-size`` / ``numeric``, ``—`` for none; see
:mod:`unfold.catalogue._proof`), result, measured error vs tolerance (two significant digits),
assumptions ("3/3 held" or the names that failed), controls (cases the check must reject: "2/2
rejected", or the names it did not reject), time.  Failures are listed below the table with
their detail (the worst case), never hidden.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..catalogue.base import AssumptionResult, CheckResult, ControlResult

__all__ = ["format_error", "format_assumptions", "format_controls", "format_table", "format_failures", "rows"]

HEADERS = ("entry", "check", "claim", "proof", "result", "error", "tol", "assumptions", "controls", "time")


def format_error(x: Optional[float]) -> str:
    """``3.0e-16``; exact zero as ``0``; missing as ``—``."""
    if x is None:
        return "—"
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.1e}"


def format_tol(x: Optional[float]) -> str:
    if x is None:
        return "—"
    s = f"{x:.0e}"
    return s if float(s) == x else f"{x:.1e}"


def _tally(names_ok: Sequence[tuple[str, bool]], word: str) -> str:
    """``"—"``, ``"n/n <word>"``, or ``"NOT <WORD>: "`` and the names that were not."""
    if not names_ok:
        return "—"
    bad = [n for n, ok in names_ok if not ok]
    return f"{len(names_ok)}/{len(names_ok)} {word}" if not bad else f"NOT {word.upper()}: " + ", ".join(bad)


def format_assumptions(a: Sequence[AssumptionResult]) -> str:
    """``"3/3 held"``, or the assumptions that did not hold."""
    return _tally([(x.name, x.holds) for x in a], "held")


def format_controls(c: Sequence[ControlResult]) -> str:
    """``"2/2 rejected"`` (the expected outcome), or the controls the check failed to reject."""
    return _tally([(x.name, x.rejected) for x in c], "rejected")


def format_time(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"


def _clip(s: str, n: int = 44) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def rows(results: Sequence[CheckResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.entry, r.check, r.claim, r.proof or "—", "PASS" if r.passed else "FAIL",
            format_error(r.error), format_tol(r.tol), _clip(format_assumptions(r.assumptions)),
            _clip(format_controls(r.controls), 30), format_time(r.seconds),
        )
        for r in results
    ]


def format_table(results: Sequence[CheckResult], color: bool = False) -> str:
    """Aligned plain-text table (numbers right-aligned); ``color`` adds ANSI green/red."""
    body = rows(results)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(HEADERS)]
    right = {5, 6, 9}

    def fmt(cells: Sequence[str], paint: bool = False) -> str:
        out = []
        for i, c in enumerate(cells):
            txt = c.rjust(widths[i]) if i in right else c.ljust(widths[i])
            if paint and i == 4:
                txt = f"\033[32m{txt}\033[0m" if c == "PASS" else f"\033[1;31m{txt}\033[0m"
            out.append(txt)
        return "  ".join(out).rstrip()

    lines = [fmt(HEADERS), "  ".join("─" * w for w in widths)]
    prev = None
    for r in body:
        cells = list(r)
        if cells[0] == prev:
            cells[0] = ""
        else:
            prev = cells[0]
        lines.append(fmt(cells, paint=color))
    return "\n".join(lines)


def format_failures(results: Sequence[CheckResult]) -> str:
    """One block per failing check: what was measured, the worst case, the assumptions."""
    out = []
    for r in results:
        if r.passed:
            continue
        head = f"FAIL {r.entry}:{r.check} ({r.claim})"
        if r.error is not None:
            head += f": error {format_error(r.error)} vs tol {format_tol(r.tol)}"
        out.append(head)
        if r.detail:
            out.extend("    " + line for line in r.detail.splitlines())
        for a in r.assumptions:
            if not a.holds:
                out.append(f"    assumption not held: {a.name}" + (f" ({a.detail})" if a.detail else ""))
        for c in r.controls:
            if not c.rejected:
                out.append(f"    control not rejected: {c.name}" + (f" ({c.detail})" if c.detail else ""))
    return "\n".join(out)
