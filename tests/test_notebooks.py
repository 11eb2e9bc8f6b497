"""Every notebook under notebooks/ executes top to bottom (nbclient, kernel python3); a failing cell
(including a failing ``assert``) fails the test.  Notebooks call the catalogue code that
``unfold verify`` runs, so they share its numbers."""

from __future__ import annotations

import ast
import os
import pkgutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # run by CI; `pytest -m "not slow"` skips it while editing

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds per cell; each notebook is meant to run in well under 25 s


def _catalogue_modules() -> list[str]:
    from unfold import catalogue

    return [m.name for m in pkgutil.iter_modules(catalogue.__path__)
            if not m.name.startswith("_") and m.name not in ("base", "registry")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.read(path, as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    try:
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    asserts = sum(isinstance(n, ast.Assert) for c in code for n in ast.walk(ast.parse(_python(c.source))))
    assert asserts, f"{path.name} asserts nothing"


def _python(src: str) -> str:
    """A code cell as Python (IPython magics and shell lines dropped)."""
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_names_a_catalogue_entry_and_uses_its_code(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    mods = [m for m in _catalogue_modules() if m in path.stem]
    assert mods, f"{path.name} does not name a catalogue module ({_catalogue_modules()})"
    nb = nbformat.read(path, as_version=4)
    tree = ast.parse(_python("\n".join(c.source for c in nb.cells if c.cell_type == "code")))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert any(m == "unfold.catalogue" or m.startswith("unfold.catalogue.") for m in imported), \
        f"{path.name} must call the catalogue code shared with `unfold verify`"
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} is committed with outputs; clear them"
