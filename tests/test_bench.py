"""Smoke test of ``unfold bench --quick``: it runs at tiny sizes and writes valid JSON.

No timing is asserted (machines are noisy); the test checks the structure of the record, that
every forward comparison computed the same tensor as its hand-written reference, and that the
training and scaling sections produced finite numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench import PROFILES, Profile, _fit_exponent, interleaved, run

ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> Profile:
    p = PROFILES["quick"]
    return Profile(**{**p.__dict__, "reps": 2, "warmup": 1, "train_depth": 2, "train_reps": 2,
                      "scaling_tokens": (4, 8), "fixed_point_iters": (3, 6)})


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    run(_tiny(), str(out), "cpu", ["energies", "forward", "train", "fixed_point", "scaling"], log=lambda s: None)
    path = out / "bench.json"
    assert path.exists() and (out / "bench.png").exists()
    return json.loads(path.read_text())


def test_json_structure(record: dict) -> None:
    for key in ("profile", "targets", "environment", "energies", "forward", "train", "fixed_point", "scaling",
                "summary"):
        assert key in record, key
    assert record["profile"]["name"] == "quick"


def test_forward_layers_equal_their_references(record: dict) -> None:
    fw = record["forward"]
    assert set(fw) == {"hopfield_rows", "hopfield_columns", "yhw_attention_mm", "crate_ista", "energy_transformer"}
    for name, r in fw.items():
        assert "error" not in r, (name, r.get("error"))
        # float32: the generated layer and the hand-written one compute the same tensor
        assert r["max_abs_error_vs_hand"] <= 1e-4 * max(1.0, r["max_abs_hand"]), name
        assert r["max_abs_error_autograd_vs_hand"] <= 1e-4 * max(1.0, r["max_abs_hand"]), name
        for kind in ("generated", "hand", "autograd"):
            s = r["seconds"][kind]
            assert s["n"] == 2 and 0 < s["min"] <= s["median"] <= s["max"], (name, kind)
        assert r["ratio_generated_over_hand"] > 0 and isinstance(r["meets_forward_target"], bool)


def test_train_and_scaling_numbers(record: dict) -> None:
    for name in ("hopfield_rows", "crate_ista", "yhw_attention_mm", "energy_transformer"):
        r = record["train"][name]
        assert "error" not in r, r
        assert r["depth"] == 2 and r["ratio_generated_over_hand"] > 0
        # float32: the generated, autograd and hand-written stacks train the weights identically
        for route, err in r["weight_grad_rel_error_vs_hand"].items():
            assert err <= 1e-4, (name, route, err)
    sc = record["scaling"]
    assert sc["tokens"] == [4, 8] and len(sc["generated"]) == 2
    assert math.isfinite(sc["exponent_generated"]) and math.isfinite(sc["exponent_hand"])


def test_fit_exponent_recovers_a_power_law() -> None:
    ns = [64, 128, 256, 512]
    assert abs(_fit_exponent(ns, [3e-6 * n ** 2 for n in ns]) - 2.0) < 1e-9
    assert abs(_fit_exponent(ns, [1e-4 * n for n in ns]) - 1.0) < 1e-9


def test_interleaved_calls_every_function_once_per_round() -> None:
    calls: list[str] = []
    ts = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, reps=3, warmup=1)
    assert len(ts["a"]) == len(ts["b"]) == 3
    assert calls.count("a") == calls.count("b") == 4

    calls.clear()
    names = ["gen", "hand", "auto"]
    interleaved({k: (lambda k=k: calls.append(k)) for k in names}, reps=60, warmup=0)
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert all(sorted(r) == sorted(names) for r in rounds)
    # no function always follows another: each comes right after each other one in some round
    follows = {(a, b) for a, b in zip(calls, calls[1:]) if a != b}
    assert follows == {(a, b) for a in names for b in names if a != b}
    after_auto = [b for a, b in zip(calls, calls[1:]) if a == "auto"]
    assert abs(after_auto.count("gen") - after_auto.count("hand")) <= len(after_auto) // 3


def test_cli_quick_writes_json(tmp_path: Path) -> None:
    """``python benchmarks/run.py --quick`` (the script users run) exits 0 and writes the record."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path),
         "--only", "scaling", "--reps", "2", "--batch", "1", "--width", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / "bench.json").read_text())
    assert rec["profile"]["reps"] == 2 and rec["profile"]["batch"] == 1
    assert rec["environment"]["threads"] == 1  # the CPU default: single-threaded timings
    assert len(rec["scaling"]["generated"]) == len(rec["profile"]["scaling_tokens"])


def test_quick_energies_pass_the_check(record: dict) -> None:
    en = record["energies"]["builtin"]
    assert set(en) == {"hopfield", "l1_norm", "lasso"}
    assert all(v["max_error"] <= 1e-10 and v["seconds"] > 0 for v in en.values())
