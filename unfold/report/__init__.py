"""Presenting catalogue results: terminal table, results.json, Markdown
and a self-contained HTML report with embedded plots."""

from .results import results_json, timings_json
from .table import format_error, format_table, format_failures
from .write import write_report

__all__ = [
    "results_json", "timings_json", "format_error", "format_table",
    "format_failures", "write_report",
]
