"""Plots of check results as PNG bytes (matplotlib, Agg backend; never opens a window).

:func:`figure_png` draws a :class:`~unfold.catalogue.base.Figure` (kinds ``line``, ``semilogy``,
``box``; optional shaded bands); :func:`overview_png` draws every check's measured error against
its tolerance on a log axis.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

from ..catalogue.base import CheckResult, Figure  # noqa: E402

__all__ = ["figure_png", "overview_png"]

_GREEN, _RED, _GREY = "#1a7f37", "#cf222e", "#8c959f"
_STYLE: dict[RcKeyType, Any] = {
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
            if f.x and all(float(v).is_integer() for v in f.x):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(f.series) > 1:
                ax.legend()
        ax.set_title(f.title)
        ax.set_xlabel(f.xlabel)
        ax.set_ylabel(f.ylabel)
        return _png(fig)


def overview_png(results: Sequence[CheckResult]) -> bytes:
    """One row per entry, one dot per check: measured error divided by its tolerance (log scale).

    Left of the dashed line (ratio ≤ 1) is inside tolerance; errors ≤ 0 (exact zero, or a strict
    energy decrease for descent checks) are drawn at the left edge; failing checks are red and
    labelled; inf/nan errors are crosses at the right edge.
    """
    rs = [(r, r.error, r.tol) for r in results if r.error is not None and r.tol]  # (result, error, tol)
    with plt.rc_context(_STYLE):
        entries: list[str] = []
        for r in results:
            if r.entry not in entries:
                entries.append(r.entry)
        fig, ax = plt.subplots(figsize=(7.6, 0.42 * len(entries) + 1.1))
        if not entries:
            ax.text(0.5, 0.5, "no checks", ha="center", va="center")
            ax.set_axis_off()
            return _png(fig)
        hi, floor = 1e4, 1e-16  # floor: the left edge, where ratios ≤ 1e-16 (and errors ≤ 0) are drawn
        ratios = [err / tol for _, err, tol in rs if math.isfinite(err) and err > 0]
        top = max([hi] + [10 * x for x in ratios])
        y_of = {e: len(entries) - 1 - i for i, e in enumerate(entries)}
        ax.axvspan(floor / 3, 1.0, color="#dafbe1", alpha=0.5, lw=0)
        ax.axvline(1.0, color=_GREY, ls="--", lw=1)
        jitter = [-0.18, 0.0, 0.18]
        for i, (r, err, tol) in enumerate(rs):
            y = y_of[r.entry] + jitter[i % 3]
            if not math.isfinite(err):
                x, marker = top / 3, "X"
            else:
                x, marker = max(err / tol, floor), "o"
            ax.plot([x], [y], marker=marker, ms=5 if marker == "o" else 7, alpha=0.85,
                    color=_GREEN if r.passed else _RED, zorder=3)
            if not r.passed:
                ax.annotate(r.check, (x, y), xytext=(6, 0), textcoords="offset points", va="center",
                            fontsize=7.5, color=_RED)
        for e in entries:  # failed checks without a measured error still show up, one note per entry
            bad = [r.check for r in results if r.entry == e and not r.passed and (r.error is None or not r.tol)]
            if bad:
                note = f"{len(bad)} failed without a measured error: {', '.join(bad)}"
                ax.annotate(note if len(note) <= 90 else note[:89] + "…", (floor, y_of[e]), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=7.5, color=_RED)
        counts = {e: (sum(r.passed for r in results if r.entry == e), sum(r.entry == e for r in results))
                  for e in entries}
        ax.set_yticks([y_of[e] for e in entries])
        ax.set_yticklabels([f"{e}  {counts[e][0]}/{counts[e][1]}" for e in entries])
        ax.set_xscale("log")
        ax.set_xlim(floor / 3, top)
        ax.set_ylim(-0.6, len(entries) - 0.4)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("measured error / tolerance  (green band: within tolerance; ≤ 0 drawn at the left edge)")
        ax.set_title("Every check, by entry (passed/total)")
        return _png(fig)
