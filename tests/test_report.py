"""The report: number formatting, the table, results.json determinism, the self-contained HTML,
Markdown with PNG files, and resilience to a catalogue module that fails to import."""

from __future__ import annotations

import base64
import json
import math
import re
import sys

import torch

from unfold.catalogue.base import AssumptionResult, CheckResult, Entry, EntryReport, Figure, RunConfig
from unfold.catalogue import RunSummary, entries as load_entries
from unfold.report.results import results_json
from unfold.report.table import format_assumptions, format_error, format_failures, format_table
from unfold.report.write import write_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_format_error_two_significant_digits():
    assert format_error(3.0412e-16) == "3.0e-16"
    assert format_error(0.0) == "0"
    assert format_error(None) == "—"
    assert format_error(float("inf")) == "inf"
    assert format_error(float("nan")) == "nan"


def test_format_assumptions():
    a = [AssumptionResult("sym", True), AssumptionResult("psd", True), AssumptionResult("step", True)]
    assert format_assumptions(a) == "3/3 held"
    a[1].holds = False
    a[2].holds = False
    assert format_assumptions(a) == "NOT HELD: psd, step"
    assert format_assumptions([]) == "—"


def _summary(seconds: float = 1.0) -> RunSummary:
    figs = [
        Figure("energy", "energy per layer", [0, 1, 2, 3], {"E": [4.0, 2.0, 1.0, 0.5]}, "layer", "E"),
        Figure("descent", "descent curves", [1, 2, 3], {"a": [1e-1, 1e-3, 1e-9], "b": [1.0, 1e-2, 1e-4]},
               "t", "gap", kind="semilogy", bands={"a": ([1e-2, 1e-4, 1e-10], [1.0, 1e-2, 1e-8])}),
        Figure("regime", "error by regime", [], {"small": [1e-3, 2e-3], "large": [0.1, 0.3]}, kind="box"),
    ]
    ok = CheckResult("toy", "exact one", "exact", True, 1e-16, 1e-12, "ok", seconds,
                     [AssumptionResult("W symmetric", True)],
                     {"tensor": torch.tensor([1.0, 2.0]), "inf": math.inf,
                      "run": {"seconds": {"train": seconds}, "iters": 3, "trials": [{"seconds": seconds, "ok": True}]}},
                     figs)
    bad = CheckResult("toy", "approx", "approximate", False, float("inf"), 1e-2, "diverged at layer 3", seconds,
                      [AssumptionResult("small γ", False, "γ‖A‖ = 4")])
    e = Entry("toy", "Toy <entry>", "Someone 2026", "A summary & more", energy=lambda: None, checks=())
    return RunSummary(RunConfig(seed=3), [e], [EntryReport("toy", [ok, bad])], seconds, "now", {"torch": "x"})


def test_table_shows_fail_and_worst_case():
    s = _summary()
    table = format_table(s.results)
    lines = table.splitlines()
    assert len({len(l.split("PASS")[0]) for l in lines if "PASS" in l} | {len(l.split("FAIL")[0]) for l in lines if "FAIL" in l}) == 1
    assert "NOT HELD: small γ" in table and "inf" in table
    fails = format_failures(s.results)
    assert "FAIL toy:approx" in fails and "diverged at layer 3" in fails and "γ‖A‖ = 4" in fails
    assert "exact one" not in fails


def test_results_json_deterministic_and_timing_free():
    a = json.dumps(results_json(_summary(seconds=1.0)))
    b = json.dumps(results_json(_summary(seconds=7.5)))
    assert a == b
    d = json.loads(a)
    c = d["entries"][0]["checks"]
    assert "seconds" not in c[0]
    assert c[0]["data"]["tensor"] == [1.0, 2.0] and c[0]["data"]["inf"] == "inf" and c[1]["error"] == "inf"
    assert d["config"] == {"seed": 3, "dtype": "float64", "quick": False}
    assert d["summary"] == {"checks": 2, "passed": 1, "failed": 1}
    assert c[0]["data"]["run"] == {"iters": 3, "trials": [{"ok": True}]}  # timings go to timings.json


def test_write_report_files_and_self_contained_html(tmp_path):
    path = write_report(_summary(), tmp_path)
    html = path.read_text()
    # self-contained: no external resources at all
    assert not re.search(r"""(src|href)=['"](https?:|//|file:)""", html)
    assert "<script" not in html and "<link" not in html
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 4  # overview + 3 figures
    assert all(base64.b64decode(i).startswith(PNG) for i in imgs)
    # escaped user text, failures listed with their detail
    assert "Toy &lt;entry&gt;" in html and "A summary &amp; more" in html
    assert "1 FAILED" in html and "diverged at layer 3" in html
    # one PNG per plot, referenced from the Markdown
    pngs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert pngs == ["overview.png", "toy__exact_one__descent.png", "toy__exact_one__energy.png",
                    "toy__exact_one__regime.png"]
    md = (tmp_path / "report.md").read_text()
    for ref in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / ref).read_bytes().startswith(PNG)
    assert "**FAIL**" in md
    assert json.loads((tmp_path / "results.json").read_text())["summary"]["failed"] == 1
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["checks"]["toy:approx"] == 1.0
    assert timings["data"]["toy:exact one"] == {"run": {"seconds": {"train": 1.0}, "trials": [{"seconds": 1.0}]}}


def test_broken_catalogue_module_reported_not_crashing(tmp_path, monkeypatch):
    from unfold import catalogue
    from unfold.catalogue import registry

    (tmp_path / "zz_broken_entry.py").write_text("raise ImportError('half-written entry')\n")
    monkeypatch.setattr(catalogue, "__path__", list(catalogue.__path__) + [str(tmp_path)])
    registry._discover.cache_clear()
    try:
        ents = load_entries()
    finally:
        registry._discover.cache_clear()
        sys.modules.pop("unfold.catalogue.zz_broken_entry", None)
    names = [e.name for e in ents]
    assert "gradients" in names and names[-1] == "zz_broken_entry"
    r = ents[-1].checks[0].run(RunConfig())
    assert not r.passed and "half-written entry" in r.detail


def test_progress_bar_redraws_one_line_on_a_terminal():
    import io

    from unfold.report.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    s = Tty()
    p = Progress(4, stream=s)
    for i, ok in enumerate((True, False, True, True)):
        p.start(f"e: c{i}")
        p.done(f"e: c{i}", ok)
    p.close()
    text = s.getvalue()
    assert "\n" not in text and text.count("\r") >= 8
    assert "4/4" in text and "1 failed" in text and "█" * p.width in text
    assert len(max(text.split("\r"), key=len)) <= p.columns
