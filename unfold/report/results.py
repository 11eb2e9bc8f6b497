"""Catalogue results as JSON-ready data.

``results.json`` holds only what the seed determines (errors, verdicts, assumptions, controls, data,
figure data), so two runs with the same seed give byte-identical files; wall-clock times go to
``timings.json`` — ``CheckResult.seconds`` and any ``"seconds"`` key inside ``CheckResult.data``
(the convention for timings a check records).  Running the checks is :mod:`unfold.catalogue._runner`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..catalogue.base import CheckResult
from ..catalogue._runner import RunSummary

__all__ = ["results_json", "timings_json", "jsonable"]


def jsonable(x: Any) -> Any:
    """Plain JSON data: tensors and arrays become lists, non-finite floats become strings."""
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist())
    if isinstance(x, torch.dtype):
        return str(x).replace("torch.", "")
    if hasattr(x, "tolist"):  # numpy
        return jsonable(x.tolist())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return {k: jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return str(x)


def _split_seconds(x: Any) -> tuple[Any, Any]:
    """(``x`` without any ``"seconds"`` key, the removed timings) — for JSON-ready data."""
    if isinstance(x, dict):
        kept, timed = {}, {}
        for k, v in x.items():
            if k == "seconds":
                timed[k] = v
                continue
            kv, tv = _split_seconds(v)
            kept[k] = kv
            if tv not in (None, {}):
                timed[k] = tv
        return kept, timed
    if isinstance(x, list):
        parts = [_split_seconds(v) for v in x]
        timed_list = [t for _, t in parts]
        return [k for k, _ in parts], (timed_list if any(t not in (None, {}) for t in timed_list) else None)
    return x, None


def _result(r: CheckResult) -> dict[str, Any]:
    d = jsonable(r)
    d.pop("seconds", None)
    d["data"], _ = _split_seconds(d["data"])
    return d


def results_json(s: RunSummary) -> dict[str, Any]:
    """Deterministic results (no timings): same seed and dtype → identical data."""
    return {
        "config": {"seed": s.config.seed, "dtype": jsonable(s.config.dtype), "quick": s.config.quick},
        "summary": {"checks": len(s.results), "passed": len(s.results) - len(s.failures),
                    "failed": len(s.failures),
                    **({"interrupted": True, "not_run": list(s.not_run)} if s.interrupted else {})},
        "entries": [
            {
                "name": e.name, "title": e.title, "source": e.source, "claims": list(e.claims),
                "assumptions": list(e.assumptions), "passed": rep.passed,
                "checks": [_result(r) for r in rep.results],
            }
            for e, rep in zip(s.entries, s.reports)
        ],
    }


def timings_json(s: RunSummary) -> dict[str, Any]:
    """Wall-clock times and environment (not deterministic; kept out of results.json)."""
    return {
        "started": s.started, "seconds": s.seconds, "environment": s.environment,
        "checks": {f"{r.entry}:{r.check}": r.seconds for r in s.results},
        "data": {
            f"{r.entry}:{r.check}": t for r in s.results
            for t in [_split_seconds(jsonable(r.data))[1]] if t
        },
    }
