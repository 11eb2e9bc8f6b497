"""The documentation site builds with warnings as errors (``mkdocs build --strict``): the API
reference from the docstrings, one generated page per catalogue entry, the rendered notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unfold.catalogue import entries
from unfold.report.entry_page import entry_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_entry_page_lists_every_check_and_proof_with_its_scope() -> None:
    for e in entries():
        page = entry_markdown(e)
        for c in e.checks:
            assert f"| `{c.name}` | {c.claim} |" in page, (e.name, c.name)
        for p in e.proofs:
            assert f"| {p.scope} |" in page and p.method.split()[0] in page, (e.name, p.key)


@pytest.mark.slow
def test_docs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocs_jupyter")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for e in entries():
        page = (site / "catalogue" / e.name / "index.html").read_text()
        assert e.title.split()[0] in page
    api = (site / "api" / "steps" / "index.html").read_text()
    assert "GradientStep" in api and "ProximalGradientStep" in api
    nbs = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert all((site / "notebooks" / n / "index.html").exists() for n in nbs), nbs
