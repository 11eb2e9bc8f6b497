"""A dependency-free progress bar on stderr.

On a terminal it redraws one line (``\\r``); elsewhere (pipes, CI logs) it prints one line per
finished check, so logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress"]


class Progress:
    """``Progress(total)``; call :meth:`start` before and :meth:`done` after each item."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, width: int = 28, enabled: bool = True):
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self.count = 0
        self.failed = 0
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.columns = max(40, shutil.get_terminal_size((100, 20)).columns - 1)

    def _bar(self) -> str:
        filled = int(self.width * self.count / self.total)
        return "█" * filled + "·" * (self.width - filled)

    def _line(self, label: str) -> str:
        el = time.perf_counter() - self.t0
        fails = f"  {self.failed} failed" if self.failed else ""
        return f"{self._bar()} {self.count}/{self.total} {el:5.1f}s{fails}  {label}"

    def start(self, label: str) -> None:
        if self.enabled and self.tty:
            line = self._line(label)[: self.columns]
            self.stream.write("\r" + line.ljust(self.columns))
            self.stream.flush()

    def done(self, label: str, passed: bool) -> None:
        self.count += 1
        self.failed += 0 if passed else 1
        if not self.enabled:
            return
        if self.tty:
            self.start(label)
        else:
            self.stream.write(f"[{self.count:>3}/{self.total}] {'ok  ' if passed else 'FAIL'} {label}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * self.columns + "\r")
            self.stream.flush()
