"""Execute the notebooks in place so that they are committed with their outputs (a code host and
the documentation site show the derivations and plots without running anything).

    python notebooks/render.py                 # every notebook
    python notebooks/render.py icl_gd looped   # some

``tests/test_notebooks.py`` executes every notebook and fails when the committed outputs differ from
a fresh run (compared through :func:`signature`: text outputs with timings, memory addresses and
round-off-level numbers normalised; images by count).
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


def _number(m: re.Match[str]) -> str:
    tok = m.group(0)
    if not any(ch in tok for ch in ".eE"):
        return tok  # integers (sizes, counts) are compared exactly
    x = float(tok)
    return "~0" if abs(x) < 1e-9 else f"{x:.4g}"


def normalise(text: str) -> str:
    """Text output with timings, addresses and numbers at round-off level made machine-independent
    (and table alignment, which follows the width of the timing column)."""
    text = _TIME.sub("<time>", text)
    text = _ADDR.sub("0x…", text)
    text = _RULE.sub("─", text)
    return _SPACE.sub(" ", _NUM.sub(_number, text))


def signature(nb: Any) -> list[list[tuple[str, str]]]:
    """Per code cell: its outputs as (kind, normalised text); images contribute their kind only."""
    cells = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        outs = []
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
        cells.append([(kind, normalise(text)) for kind, text in outs])
    return cells


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
