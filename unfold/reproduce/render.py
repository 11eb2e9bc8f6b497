"""Rendering reproduced experiments: a terminal table, ``report.md`` with PNG figures, ``results.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..report.plots import figure_png
from .base import Criterion, ExperimentResult

__all__ = ["format_results", "write_reproduction"]


def _row(c: Criterion) -> tuple[str, str]:
    verdict = ("PASS" if c.passed else "FAIL") if c.asserted else ("shown" if c.passed else "NOT shown")
    return f"{c.measured:.4g} {c.sense} {c.bound:g}", verdict


def format_results(results: Sequence[ExperimentResult]) -> str:
    """One block per experiment, one line per criterion (asserted: PASS/FAIL; trend: shown/NOT shown)."""
    lines = []
    for r in results:
        lines.append(f"{r.name} — {r.title} ({r.source}; {r.seconds:.0f} s)")
        for c in r.criteria:
            value, verdict = _row(c)
            lines.append(f"    {verdict:<9} {c.name}: {value}" + (f"  [{c.detail}]" if c.detail else ""))
        lines.extend(f"    note: {n}" for n in r.notes)
    return "\n".join(lines)


def write_reproduction(results: Sequence[ExperimentResult], outdir: str) -> str:
    out = Path(outdir)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    md = ["# unfold reproduce", "",
          "Generated models trained on offline data; asserted criteria (PASS/FAIL) and the papers' "
          "trends (shown / NOT shown), with the measured numbers.", ""]
    for r in results:
        md += [f"## {r.name}: {r.title}", "", f"Source: {r.source}. Time: {r.seconds:.0f} s.", "",
               "| criterion | measured | bound | verdict | detail |", "|---|---|---|---|---|"]
        for c in r.criteria:
            _, verdict = _row(c)
            md.append(f"| {c.name} | {c.measured:.4g} | {c.sense} {c.bound:g} | {verdict} | {c.detail} |")
        md.append("")
        md.extend(f"- {n}" for n in r.notes)
        for f in r.figures:
            name = f"{r.name}_{f.name}.png"
            (figdir / name).write_bytes(figure_png(f))
            md += [f"![{f.title}](figures/{name})", ""]
    (out / "results.json").write_text(json.dumps([r.as_dict() for r in results], indent=1, sort_keys=True))
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return str(path)
