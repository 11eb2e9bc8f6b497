"""Run the unfold benchmarks: ``python benchmarks/run.py [--quick] [--out DIR] ...``.

A thin wrapper around :func:`benchmarks.bench.main` (the same as ``unfold bench``); see
``benchmarks/README.md`` for what is measured.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
