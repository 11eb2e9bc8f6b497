"""Execute the notebooks in place so that they are committed with their outputs (a code host and
the documentation site show the derivations and plots without running anything).

    python notebooks/render.py                 # every notebook
    python notebooks/render.py icl_gd looped   # some

``tests/test_notebooks.py`` executes every notebook and fails when the committed outputs differ from
a fresh run (compared through :func:`signature` and :func:`same_outputs`: text outputs with timings,
memory addresses and table alignment normalised, decimal numbers within a relative 2e-3 (differences
below 1e-9 ignored: round-off), integers exactly; images by count).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CELL_TIMEOUT = 180  # seconds per cell

_TIME = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|µs)\b")
_ADDR = re.compile(r"0x[0-9a-fA-F]+")
_RULE = re.compile(r"─+")
_SPACE = re.compile(r"[ \t]+")
_NUM = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


#: Relative tolerance on the numbers of a text output (printed values may differ in their last digit
#: between runs: thread scheduling in solvers, rounding at a printed digit boundary).
NUM_RTOL = 2e-3
NUM_ATOL = 1e-9


def normalise(text: str) -> tuple[str, tuple[float, ...]]:
    """A text output as (text with timings, addresses, table alignment and decimal numbers replaced by
    placeholders, the decimal numbers).  Integers (sizes, counts) stay in the text, compared exactly."""
    text = _TIME.sub("<time>", text)
    text = _ADDR.sub("0x…", text)
    text = _RULE.sub("─", text)
    numbers: list[float] = []

    def take(m: re.Match[str]) -> str:
        tok = m.group(0)
        if not any(ch in tok for ch in ".eE"):
            return tok
        numbers.append(float(tok))
        return "<num>"

    return _SPACE.sub(" ", _NUM.sub(take, text)), tuple(numbers)


Output = tuple[str, str, tuple[float, ...]]


def signature(nb: Any) -> list[list[Output]]:
    """Per code cell: its outputs as (kind, normalised text, numbers); images contribute their kind only."""
    cells = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        outs: list[tuple[str, str]] = []
        for o in c.get("outputs", []):
            if o.output_type == "stream":  # the kernel may split one print's text into several chunks
                if outs and outs[-1][0] == o.name:
                    outs[-1] = (o.name, outs[-1][1] + o.text)
                else:
                    outs.append((o.name, o.text))
            elif o.output_type in ("display_data", "execute_result"):
                data = o.get("data", {})
                if "image/png" in data:
                    outs.append(("image", ""))
                else:
                    outs.append(("data", data.get("text/latex") or data.get("text/plain", "")))
            elif o.output_type == "error":
                outs.append(("error", o.ename))
        cells.append([(kind, *normalise(text)) for kind, text in outs])
    return cells


def _numbers_close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(
        x == y or abs(x - y) <= NUM_ATOL + NUM_RTOL * max(abs(x), abs(y)) for x, y in zip(a, b))


def same_outputs(a: list[Output], b: list[Output]) -> bool:
    """Two cells' signatures agree: the same kinds and texts, numbers within :data:`NUM_RTOL`."""
    return len(a) == len(b) and all(
        ka == kb and ta == tb and _numbers_close(na, nb) for (ka, ta, na), (kb, tb, nb) in zip(a, b))


def execute(path: Path) -> Any:
    """The notebook at ``path`` executed top to bottom (kernel python3, the repository on the path)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
    try:
        nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return nb


def main(names: list[str]) -> int:
    import nbformat

    paths = [HERE / f"{n}.ipynb" for n in names] if names else sorted(HERE.glob("*.ipynb"))
    for p in paths:
        nb = execute(p)
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, p)
        print(f"rendered {p.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
