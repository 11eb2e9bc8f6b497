"""Plots of an :class:`~unfold.audit.AuditReport`: energy before/after each layer, and the distance
from each layer's output to the exact descent step."""

from __future__ import annotations

import math

from .plots import _STYLE, _GREEN, _RED, _png, plt

__all__ = ["audit_png"]


def audit_png(report) -> bytes:  # type: ignore[no-untyped-def]
    """Two panels: energies before/after (green: decreased, red: not) and distance to the exact step."""
    names = [a.layer for a in report.layers]
    xs = list(range(len(names)))
    with plt.rc_context(_STYLE):  # type: ignore[arg-type]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.2))
        finite = lambda v: v if math.isfinite(v) else float("nan")  # noqa: E731
        before = [finite(a.energy_before) for a in report.layers]
        after = [finite(a.energy_after) for a in report.layers]
        ax1.plot(xs, before, "o", color="#8c959f", label="before")
        for x, a, b, au in zip(xs, before, after, report.layers):
            ax1.plot([x], [b], "o", color=_GREEN if au.decreased else _RED)
            if a == a and b == b:
                ax1.annotate("", (x, b), (x, a), arrowprops={"arrowstyle": "->", "color": "#57606a"})
        ax1.set_title(f"{report.model}: energy before → after each layer")
        ax2.bar(xs, [max(a.step_distance, 1e-17) for a in report.layers], color="#0969da")
        ax2.set_yscale("log")
        ax2.set_title("‖layer(x) − exact step(x)‖ / ‖step(x) − x‖")
        for ax in (ax1, ax2):
            ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=7)
        ax1.legend()
        return _png(fig)
