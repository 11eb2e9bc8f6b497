"""Plots of check results as PNG bytes (matplotlib, Agg backend; never opens a window).

:func:`figure_png` draws a :class:`~unfold.catalogue.base.Figure` (kinds ``line``, ``semilogy``,
``box``; optional shaded bands); :func:`overview_png` draws every check's measured error against
its tolerance on a log axis.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from ..catalogue.base import CheckResult, Figure  # noqa: E402

__all__ = ["figure_png", "overview_png"]

_GREEN, _RED, _GREY = "#1a7f37", "#cf222e", "#8c959f"
_STYLE = {
    "figure.dpi": 100, "savefig.dpi": 110, "font.size": 9, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "axes.titlesize": 10,
    "legend.fontsize": 8, "legend.frameon": False,
}


def _png(fig: "plt.Figure") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def figure_png(f: Figure) -> bytes:
    """Render one figure of a check; a figure that cannot be drawn becomes a PNG saying why."""
    try:
        return _figure_png(f)
    except Exception as exc:  # shown in the report, not hidden
        plt.close("all")
        with plt.rc_context(_STYLE):
            fig, ax = plt.subplots(figsize=(5.2, 1.2))
            ax.set_axis_off()
            ax.text(0, 0.5, f"{f.title}: could not draw ({type(exc).__name__}: {exc})"[:150], color=_RED,
                    va="center", wrap=True)
            return _png(fig)


def _figure_png(f: Figure) -> bytes:
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        if f.kind == "box":
            names = list(f.series)
            ax.boxplot([f.series[k] for k in names])
            ax.set_xticks(range(1, len(names) + 1), names)
        else:
            for name, ys in f.series.items():
                xs = f.x if len(f.x) == len(ys) else list(range(len(ys)))
                ys_plot = [y if (y is not None and math.isfinite(y)) else float("nan") for y in ys]
                (line,) = ax.plot(xs, ys_plot, marker="o" if len(ys) <= 30 else None, ms=3, lw=1.4, label=name)
                if name in f.bands:
                    lo, hi = f.bands[name]
                    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
            if f.kind == "semilogy":
                ax.set_yscale("log")
            if len(f.series) > 1:
                ax.legend()
        ax.set_title(f.title)
        ax.set_xlabel(f.xlabel)
        ax.set_ylabel(f.ylabel)
        return _png(fig)


def overview_png(results: Sequence[CheckResult]) -> bytes:
    """Measured error (dot) and tolerance (bar) of every check with a numeric error, log scale."""
    rs = [r for r in results if r.error is not None and r.tol is not None]
    with plt.rc_context(_STYLE):
        h = max(1.6, 0.19 * len(rs) + 0.9)
        fig, ax = plt.subplots(figsize=(7.0, h))
        if not rs:
            ax.text(0.5, 0.5, "no numeric errors to plot", ha="center", va="center")
            ax.set_axis_off()
            return _png(fig)
        floor = 1e-18
        ys = list(range(len(rs)))[::-1]
        for y, r in zip(ys, rs):
            err = r.error if math.isfinite(r.error) else 1e3
            ax.plot([floor, r.tol], [y, y], color="#d0d7de", lw=3, solid_capstyle="butt", zorder=1)
            ax.plot([r.tol], [y], marker="|", ms=11, mew=2, color=_GREY, zorder=2)
            ax.plot([max(err, floor)], [y], marker="o", ms=5, color=_GREEN if r.passed else _RED, zorder=3)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{r.entry}: {r.check}" for r in rs])
        ax.set_xscale("log")
        ax.set_xlim(floor / 3, 10 * max([1.0] + [r.error for r in rs if math.isfinite(r.error)]))
        ax.set_ylim(-0.7, len(rs) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("measured error (dot; exact zero drawn at 1e-18)   |   tolerance (bar)")
        ax.set_title("Measured error vs tolerance, every check")
        return _png(fig)
