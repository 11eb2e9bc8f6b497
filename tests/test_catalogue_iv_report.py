"""Catalogue IV (sequence models and the 2024–26 results) in the report: each of its five entries
appears with its summary, every check's row, and every plot its checks produce (one PNG per figure,
referenced from the Markdown and embedded in the HTML)."""

from __future__ import annotations

import re

import pytest

from unfold.catalogue import RunConfig, RunSummary, get_entry
from unfold.report.write import write_report

PNG = b"\x89PNG\r\n\x1a\n"
NEW = ("causal_attention", "ttr", "sparse_hopfield", "layernorm_lagrangian", "tost")


@pytest.fixture(scope="module")
def written(tmp_path_factory, catalogue_run):
    entries = [get_entry(n) for n in NEW]
    reports = [catalogue_run(e) for e in entries]
    out = tmp_path_factory.mktemp("report")
    write_report(RunSummary(RunConfig(), entries, reports, 1.0, "now", {}), out)
    return out, entries, reports


def test_each_new_entry_is_in_the_report_with_its_plots(written):
    out, entries, reports = written
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    pngs = {p.name for p in (out / "figures").iterdir()}
    for e, rep in zip(entries, reports):
        assert e.title in md and f"`{e.name}`" in md
        figures = [(r.check, f.name) for r in rep.results for f in r.figures]
        assert figures, f"{e.name}: no plot"
        for check, fig in figures:
            png = f"{e.name}__{check}__{fig}.png"
            assert png in pngs and f"(figures/{png})" in md, png
            assert (out / "figures" / png).read_bytes().startswith(PNG)
        for r in rep.results:
            assert re.search(rf"\| {r.check} \| {r.claim} \|", md), r.check
    assert html.count("data:image/png;base64,") == 1 + sum(len(r.figures) for rep in reports for r in rep.results)
