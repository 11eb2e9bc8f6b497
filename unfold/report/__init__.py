"""Running catalogue checks and presenting their results: terminal table, results.json, Markdown
and a self-contained HTML report with embedded plots."""

from .results import RunSummary, results_json, run_checks, timings_json
from .table import format_error, format_table, format_failures
from .write import write_report

__all__ = [
    "RunSummary", "results_json", "run_checks", "timings_json", "format_error", "format_table",
    "format_failures", "write_report",
]
