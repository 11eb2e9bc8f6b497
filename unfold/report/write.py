"""Writing a report directory: ``report.html`` (self-contained, plots embedded as base64 PNG),
``report.md`` (links the PNGs), one PNG per plot under ``figures/``, ``results.json``
(deterministic) and ``timings.json``.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any, Optional

from ..catalogue.base import CheckResult, Entry
from .plots import figure_png, overview_png
from ..catalogue._runner import RunSummary
from .results import jsonable, results_json, timings_json
from .table import format_assumptions, format_controls, format_error, format_table, format_time, format_tol

__all__ = ["write_report", "energy_text"]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "x"


def energy_text(entry: Entry) -> Optional[str]:
    """The entry's energy in unicode text, or None when it is not a single energy."""
    try:
        E = entry.energy()
    except Exception as exc:  # shown, not hidden
        return f"(energy could not be built: {type(exc).__name__}: {exc})"
    from ..symbolic import Energy

    if isinstance(E, Energy):
        if len(E.terms) > 1:
            return "\n".join(f"{k}: {v}" for k, v in ((k, Energy(v)) for k, v in E.terms.items()))
        return str(E)
    return None


def _figures(s: RunSummary, outdir: Path) -> dict[int, list[tuple[str, str, bytes]]]:
    """Render every figure once: {id(result): [(title, relative path, png)]}; plus the overview."""
    figdir = outdir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    out: dict[int, list[tuple[str, str, bytes]]] = {}
    for r in s.results:
        for f in r.figures:
            png = figure_png(f)
            rel = f"figures/{_slug(r.entry)}__{_slug(r.check)}__{_slug(f.name)}.png"
            (outdir / rel).write_bytes(png)
            out.setdefault(id(r), []).append((f.title, rel, png))
    return out


def _b64(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--mut:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;
max-width:1180px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 6px;padding-top:10px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
.sub{color:var(--mut);margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0 8px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:120px;background:#fff}
.card b{display:block;font-size:22px}.card span{color:var(--mut);font-size:12px}
.card.ok b{color:var(--ok)}.card.bad b{color:var(--bad)}
table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:13px}
th,td{text-align:left;padding:5px 9px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
td.detail{color:var(--mut);font-size:12px;max-width:420px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.pill{display:inline-block;border:1px solid var(--line);border-radius:10px;padding:0 7px;margin-right:4px;font-size:12px;color:var(--mut)}
.held{color:var(--ok)}.nheld{color:var(--bad);font-weight:600}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-word;font-size:12.5px;margin:6px 0}
.meta{color:var(--mut);font-size:13px;margin:2px 0}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px;margin:10px 0}
.figs figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fff}
.figs img{width:100%;height:auto}
figcaption{color:var(--mut);font-size:12px}
.fail{border-left:4px solid var(--bad);background:#fff5f5;padding:8px 12px;margin:8px 0;border-radius:4px}
.fail pre{background:#fff}
img.overview{max-width:100%;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
nav a{margin-right:10px;font-size:13px}
footer{margin-top:40px;color:var(--mut);font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _assump_html(r: CheckResult) -> str:
    if not r.assumptions:
        return "—"
    parts = []
    for a in r.assumptions:
        cls = "held" if a.holds else "nheld"
        mark = "✓" if a.holds else "✗"
        tip = f' title="{_e(a.detail)}"' if a.detail else ""
        why = f" ({_e(a.detail)})" if a.detail and not a.holds else ""
        parts.append(f'<span class="{cls}"{tip}>{mark} {_e(a.name)}{why}</span>')
    return "<br>".join(parts)


def _controls_html(r: CheckResult) -> str:
    """Controls are cases the check must reject: rejected is the expected (green) outcome."""
    if not r.controls:
        return "—"
    return "<br>".join(
        f'<span class="{"held" if c.rejected else "nheld"}" title="{_e(c.detail)}">'
        f'{"✓ rejected" if c.rejected else "✗ NOT rejected"}: {_e(c.name)}</span>' for c in r.controls)


def _verdict(s: RunSummary) -> str:
    """``ALL PASS``, ``k FAILED``, or, for a run stopped by Ctrl-C, ``INTERRUPTED`` and what did not run."""
    nf = len(s.failures)
    verdict = "ALL PASS" if nf == 0 else f"{nf} FAILED"
    if s.interrupted:
        return f"INTERRUPTED ({len(s.not_run)} not run{'' if nf == 0 else f', {verdict}'})"
    return verdict


def _html(s: RunSummary, figs: dict[int, list[tuple[str, str, bytes]]], overview: bytes) -> str:
    n, nf = len(s.results), len(s.failures)
    c = s.config
    dtype = str(c.dtype).replace("torch.", "")
    env = " · ".join(f"{k} {v}" for k, v in s.environment.items())
    h: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>unfold verify — {n - nf}/{n} checks passed</title><style>{_CSS}</style></head><body>",
        "<h1>unfold verify</h1>",
        f"<p class='sub'>Does each architecture's forward pass equal the energy minimisation its paper claims? "
        f"Every check below compares a layer generated from the energy with an independent reference, "
        f"at seed {c.seed}, {dtype}{', quick profile' if c.quick else ''}.</p>",
        "<div class='cards'>",
        f"<div class='card {'ok' if nf == 0 and not s.interrupted else 'bad'}'><b>{_e(_verdict(s))}</b>"
        "<span>verdict</span></div>",
        f"<div class='card'><b>{n - nf}/{n}</b><span>checks passed</span></div>",
        f"<div class='card'><b>{len(s.entries)}</b><span>entries</span></div>",
        f"<div class='card'><b>{s.seconds:.1f} s</b><span>wall time</span></div>",
        f"<div class='card'><b>{c.seed}</b><span>seed · {dtype}</span></div>",
        "</div>",
        "<nav>" + "".join(f"<a href='#{_slug(e.name)}'>{_e(e.name)}</a>" for e in s.entries) + "</nav>",
    ]
    if s.interrupted:
        h.append(f"<p>Interrupted (Ctrl-C); not run: {_e(', '.join(s.not_run) or 'none')}.</p>")
    if nf:
        h.append("<h2>Failures</h2>")
        for r in s.failures:
            err = f" — error {format_error(r.error)} vs tol {format_tol(r.tol)}" if r.error is not None else ""
            h.append(f"<div class='fail'><b>{_e(r.entry)}: {_e(r.check)}</b> ({_e(r.claim)}){_e(err)}"
                     f"<pre>{_e(r.detail or '(no detail)')}</pre>"
                     + "".join(f"<div class='nheld'>assumption not held: {_e(a.name)}"
                               f"{' (' + _e(a.detail) + ')' if a.detail else ''}</div>"
                               for a in r.assumptions if not a.holds) + "</div>")
    h.append("<h2>Overview</h2>")
    h.append(f"<img class='overview' alt='measured error vs tolerance' src='{_b64(overview)}'>")
    for e, rep in zip(s.entries, s.reports):
        ok = rep.passed
        h.append(f"<h2 id='{_slug(e.name)}'>{_e(e.title)} <span class='badge {'ok' if ok else 'bad'}'>"
                 f"{'PASS' if ok else 'FAIL'}</span></h2>")
        h.append(f"<p class='meta'><b>{_e(e.name)}</b> · {_e(e.source)}</p>")
        h.append(f"<p>{_e(e.summary)}</p>")
        h.append("<p class='meta'>claims: " + "".join(f"<span class='pill'>{_e(k)}</span>" for k in e.claims) + "</p>")
        if e.assumptions:
            h.append("<p class='meta'>assumptions: " + _e("; ".join(e.assumptions)) + "</p>")
        et = energy_text(e)
        if et:
            h.append(f"<pre>E = {_e(et)}</pre>")
        if e.mapping:
            h.append(f"<p class='meta'>parameter mapping: {_e(e.mapping)}</p>")
        if e.proofs:
            h.append("<p class='meta'>symbolic proofs (scope: general / engine-golden / fixed-size / numeric):</p><ul>"
                     + "".join(f"<li><span class='pill'>{_e(p.scope)}</span> {_e(p.statement)} "
                               f"<span class='meta'>({_e(p.method)})</span></li>" for p in e.proofs) + "</ul>")
        h.append("<table><tr><th>check</th><th>claim</th><th>proof</th><th>result</th><th>error</th><th>tol</th>"
                 "<th>assumptions</th><th>controls</th><th>time</th><th>detail</th></tr>")
        for r in rep.results:
            badge = f"<span class='badge {'ok' if r.passed else 'bad'}'>{'PASS' if r.passed else 'FAIL'}</span>"
            h.append(
                f"<tr><td>{_e(r.check)}</td><td>{_e(r.claim)}</td><td>{_e(r.proof or '—')}</td><td>{badge}</td>"
                f"<td class='num'>{format_error(r.error)}</td><td class='num'>{format_tol(r.tol)}</td>"
                f"<td>{_assump_html(r)}</td><td>{_controls_html(r)}</td><td class='num'>{format_time(r.seconds)}</td>"
                f"<td class='detail'>{_e(r.detail)}</td></tr>"
            )
        h.append("</table>")
        fl = [(r, f) for r in rep.results for f in figs.get(id(r), [])]
        if fl:
            h.append("<div class='figs'>")
            for r, (title, _rel, png) in fl:
                h.append(f"<figure><img alt='{_e(title)}' src='{_b64(png)}'>"
                         f"<figcaption>{_e(r.check)} — {_e(title)}</figcaption></figure>")
            h.append("</div>")
    h.append(f"<footer>Generated by <code>unfold verify --seed {c.seed} --dtype {dtype}"
             f"{' --quick' if c.quick else ''}</code> on {_e(s.started)} · {_e(env)}. "
             "Same seed → identical results.json.</footer></body></html>")
    return "\n".join(h)


def _markdown(s: RunSummary, figs: dict[int, list[tuple[str, str, bytes]]]) -> str:
    n, nf = len(s.results), len(s.failures)
    dtype = str(s.config.dtype).replace("torch.", "")
    m = [
        "# unfold verify", "",
        f"**{_verdict(s)}** — {n - nf}/{n} checks passed, "
        f"{len(s.entries)} entries, seed {s.config.seed}, {dtype}, {s.seconds:.1f} s.", "",
        *([f"Interrupted (Ctrl-C); not run: {', '.join(s.not_run) or 'none'}.", ""] if s.interrupted else []),
        "![overview](figures/overview.png)", "",
    ]
    if nf:
        m += ["## Failures", ""]
        for r in s.failures:
            m += [f"- **{r.entry}: {r.check}** ({r.claim}) error {format_error(r.error)} vs tol "
                  f"{format_tol(r.tol)}: {r.detail}"]
        m.append("")
    for e, rep in zip(s.entries, s.reports):
        m += [f"## {e.title} ({'PASS' if rep.passed else 'FAIL'})", "", f"`{e.name}` · {e.source}", "",
              e.summary, ""]
        if e.proofs:
            m += ["Symbolic proofs:", ""] + [f"- [{p.scope}] {p.statement} ({p.method})" for p in e.proofs] + [""]
        m += ["| check | claim | proof | result | error | tol | assumptions | controls | time |",
              "|---|---|---|---|---:|---:|---|---|---:|"]
        for r in rep.results:
            m.append(f"| {r.check} | {r.claim} | {r.proof or '—'} | {'PASS' if r.passed else '**FAIL**'} | "
                     f"{format_error(r.error)} | {format_tol(r.tol)} | "
                     f"{format_assumptions(r.assumptions)} | {format_controls(r.controls)} | {format_time(r.seconds)} |")
        m.append("")
        for r in rep.results:
            for title, rel, _ in figs.get(id(r), []):
                m += [f"![{r.check}: {title}]({rel})", ""]
    m += ["```", format_table(s.results), "```", ""]
    return "\n".join(m)


def write_report(s: RunSummary, outdir: str | Path) -> Path:
    """Write the report directory; returns the path of ``report.html``."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(s, out)
    overview = overview_png(s.results)
    (out / "figures" / "overview.png").write_bytes(overview)
    (out / "results.json").write_text(json.dumps(results_json(s), indent=1, sort_keys=False) + "\n")
    (out / "timings.json").write_text(json.dumps(jsonable(timings_json(s)), indent=1) + "\n")
    (out / "report.md").write_text(_markdown(s, figs))
    path = out / "report.html"
    path.write_text(_html(s, figs, overview))
    return path
