"""Every notebook under notebooks/ executes top to bottom (nbclient, kernel python3); a failing cell
(including a failing ``assert``) fails the test.  Notebooks are committed *with* their outputs (so a
reader sees the derivations and plots without running anything), and a fresh run must reproduce
them: the committed rendering is stale otherwise (re-render with ``python notebooks/render.py NAME``).
Notebooks call the catalogue code that ``unfold verify`` runs, so they share its numbers."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # run by CI; `pytest -m "not slow"` skips it while editing

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("notebook_render", ROOT / "notebooks" / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)


def _catalogue_modules() -> list[str]:
    from unfold import catalogue
    from unfold.catalogue import registry

    return [m.name for m in pkgutil.iter_modules(catalogue.__path__)
            if not m.name.startswith("_") and m.name not in registry.NOT_ENTRIES]


def _python(src: str) -> str:
    """A code cell as Python (IPython magics and shell lines dropped)."""
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_its_committed_rendering_is_current(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")

    committed = nbformat.read(path, as_version=4)
    fresh = render.execute(path)  # raises CellExecutionError on the first failing cell
    code = [c for c in fresh.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    asserts = sum(isinstance(n, ast.Assert) for c in code for n in ast.walk(ast.parse(_python(c.source))))
    assert asserts, f"{path.name} asserts nothing"
    assert [c.source for c in committed.cells] == [c.source for c in fresh.cells]
    new, old = render.signature(fresh), render.signature(committed)
    assert len(new) == len(old)
    stale = [i for i, (a, b) in enumerate(zip(new, old)) if not render.same_outputs(a, b)]
    assert not stale, (f"{path.name}: the committed outputs of code cells {stale} differ from a fresh run; "
                       f"re-render with `python notebooks/render.py {path.stem}`. First difference: "
                       f"{old[stale[0]]!r} → {new[stale[0]]!r}")


def test_normalisation_keeps_real_differences() -> None:
    """Timings and round-off-level numbers are normalised; a changed value, count or word is not."""
    def same(a: str, b: str) -> bool:
        return render.same_outputs([("stdout", *render.normalise(a))], [("stdout", *render.normalise(b))])

    assert same("error 1.4e-16 in 12 ms", "error 3.1e-17 in 1.5 s")
    assert same("peak 0.8971", "peak 0.8970")
    assert not same("error 1.4e-03", "error 1.5e-03")
    assert not same("8 checks", "9 checks")
    assert not same("CCCP True", "CCCP False")


def test_signature_joins_split_stream_chunks() -> None:
    """One print may reach the notebook as one stream chunk or several; the signature is the same."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def nb(*texts: str):  # type: ignore[no-untyped-def]
        cell = new_code_cell("print()", outputs=[new_output("stream", name="stdout", text=t) for t in texts])
        return new_notebook(cells=[cell])

    assert render.signature(nb("a 1\n", "b 2.5\n")) == render.signature(nb("a 1\nb 2.5\n"))
    assert render.signature(nb("a 1\n", "b 3\n")) != render.signature(nb("a 1\nb 2\n"))


def _private_names(tree: ast.AST) -> set[str]:
    """Imported modules with a private component, and private attributes used (``x._y``)."""
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    private = {m for m in names if any(part.startswith("_") for part in m.split("."))}
    private |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
                and not n.attr.startswith("__")}
    return private


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_names_a_catalogue_entry_and_uses_only_public_names(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    mods = [m for m in _catalogue_modules() if m in path.stem]
    assert mods, f"{path.name} does not name a catalogue module ({_catalogue_modules()})"
    nb = nbformat.read(path, as_version=4)
    tree = ast.parse(_python("\n".join(c.source for c in nb.cells if c.cell_type == "code")))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert any(m == "unfold.catalogue" or m.startswith("unfold.catalogue.") for m in imported), \
        f"{path.name} must call the catalogue code shared with `unfold verify`"
    private = sorted(_private_names(tree))
    assert not private, f"{path.name} uses private names {private}"
