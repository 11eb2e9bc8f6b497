"""The ``unfold`` command line: list, derive, verify (table, exit status, report, determinism,
dtype, quick profile), bench pass-through, ``python -m unfold``."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from unfold import cli
from unfold.catalogue.base import AssumptionResult, Check, CheckResult, Entry, Figure, RunConfig
from unfold.catalogue import registry

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# ---- a synthetic catalogue, so exit codes and failure display are tested without real entries ----
def _ok_of(entry: str):
    return lambda config: _ok(config, entry)


def _ok(config: RunConfig, entry: str = "toy") -> CheckResult:
    return CheckResult(entry, "exact_ok", "exact", True, error=2e-16, tol=1e-12, detail="fine",
                       assumptions=[AssumptionResult("W symmetric", True), AssumptionResult("step ≤ 1/L", True)],
                       figures=[Figure("e", "energy per layer", [0, 1, 2], {"E": [3.0, 2.0, 1.5]}, "layer", "E")])


def _bad(config: RunConfig) -> CheckResult:
    return CheckResult("toy", "descent_bad", "descent", False, error=3.5e-3, tol=1e-12,
                       detail="energy increases at layer 7 by 3.5e-03",
                       assumptions=[AssumptionResult("step ≤ 1/L", False, "η L = 1.7")])


def _raises(config: RunConfig) -> CheckResult:
    raise RuntimeError("boom in the reference")


def _seeded(config: RunConfig) -> CheckResult:
    import torch

    x = torch.randn(4, generator=config.generator(), dtype=config.dtype)
    return CheckResult("seeded", "value", "exact", True, error=float(x.abs().max()) * 1e-20, tol=1.0,
                       data={"x": x})


TOY = Entry("toy", "A toy entry", "nobody 2026", "toy summary", energy=lambda: None,
            checks=(Check("exact_ok", "exact", "passes", _ok), Check("descent_bad", "descent", "fails", _bad),
                    Check("raises", "exact", "raises", _raises, quick=False)), assumptions=("W symmetric",))
OK_ONLY = Entry("okonly", "Only passing", "nobody", "s", energy=lambda: None,
                checks=(Check("exact_ok", "exact", "passes", _ok_of("okonly")),))
SEEDED = Entry("seeded", "Seeded", "nobody", "s", energy=lambda: None, checks=(Check("value", "exact", "v", _seeded),))


def _sized(config: RunConfig) -> CheckResult:
    n = 3 if config.quick else 30      # how a real check picks its size
    return CheckResult(passed=True, error=0.0, tol=1e-12, detail=f"n={n}", data={"n": n, "quick": config.quick})


SIZED = Entry("sized", "Sized", "nobody", "s", energy=lambda: None,
              checks=(Check("size", "exact", "quick-size aware", _sized),))


@pytest.fixture
def toy_catalogue(monkeypatch):
    monkeypatch.setattr(registry, "entries", lambda: [OK_ONLY, TOY, SEEDED])


def test_verify_failure_exit_status_and_worst_case_shown(toy_catalogue, capsys):
    rc, out, err = run(["verify", "--no-progress"], capsys)
    assert rc == 1
    lines = out.splitlines()
    header = lines[0]
    for col in ("entry", "check", "claim", "result", "error", "tol", "assumptions", "time"):
        assert col in header
    bad = next(line for line in lines if "descent_bad" in line)
    assert "FAIL" in bad and "3.5e-03" in bad and "1e-12" in bad and "NOT HELD: step ≤ 1/L" in bad
    ok = next(line for line in lines if "exact_ok" in line and "okonly" in line)
    assert "PASS" in ok and "2.0e-16" in ok and "2/2 held" in ok
    # the failure block shows the worst case and the exception message, nothing hidden
    assert "energy increases at layer 7 by 3.5e-03" in out
    assert "raised RuntimeError: boom in the reference" in out
    assert "2 of 5 checks FAILED" in out


def test_verify_table_columns_aligned(toy_catalogue, capsys):
    rc, out, _ = run(["verify", "--no-progress", "okonly", "toy:exact_ok", "toy:descent_bad"], capsys)
    table = out.split("\n\n")[0].splitlines()
    rows = [line for line in table[2:] if "exact_ok" in line or "descent_bad" in line]
    assert len(rows) == 3
    # the result column starts at the same offset in every row
    offsets = {line.index("PASS") if "PASS" in line else line.index("FAIL") for line in rows}
    assert len(offsets) == 1


def test_verify_passing_selection_exits_zero(toy_catalogue, capsys):
    rc, out, _ = run(["verify", "--no-progress", "okonly"], capsys)
    assert rc == 0 and "1/1 passed" in out and "all checks passed" in out


def test_verify_quick_skips_slow_checks(toy_catalogue, capsys):
    rc, out, _ = run(["verify", "--no-progress", "--quick", "toy"], capsys)
    assert "raises" not in out.split("\n\n")[0]
    assert "1 of 2 checks FAILED" in out


def test_verify_quick_runs_the_quick_sizes(monkeypatch, capsys, tmp_path):
    """`--quick` runs the checks at their quick sizes (the check receives quick=True), and the names
    are filled in by the runner (the check returned none)."""
    monkeypatch.setattr(registry, "entries", lambda: [SIZED])
    for flags, n in ((["--quick"], 3), ([], 30)):
        d = tmp_path / str(n)
        rc, out, _ = run(["verify", "--no-progress", "-j", "1", "--report", str(d), *flags, "sized"], capsys)
        res = json.loads((d / "results.json").read_text())
        (r,) = res["entries"][0]["checks"]
        assert rc == 0 and res["config"]["quick"] == bool(flags)
        assert r["data"] == {"n": n, "quick": bool(flags)} and (r["entry"], r["check"], r["claim"]) == ("sized", "size", "exact")


def test_verify_unknown_name_is_usage_error(toy_catalogue, capsys):
    rc, out, err = run(["verify", "nosuchentry"], capsys)
    assert rc == 2 and "no catalogue entry 'nosuchentry'" in err and "toy" in err
    rc, out, err = run(["verify", "toy:nocheck"], capsys)
    assert rc == 2 and "no check 'nocheck'" in err and "exact_ok" in err


def test_progress_goes_to_stderr(toy_catalogue, capsys):
    rc, out, err = run(["verify", "okonly", "seeded"], capsys)
    assert "[  1/2] ok   okonly: exact_ok" in err and "[  2/2]" in err
    assert "okonly: exact_ok" not in out  # the table, not the progress lines, is on stdout


def test_verify_report_directory(toy_catalogue, capsys, tmp_path):
    rc, out, _ = run(["verify", "--no-progress", "--report", str(tmp_path / "r")], capsys)
    assert rc == 1
    d = tmp_path / "r"
    for f in ("report.html", "report.md", "results.json", "timings.json", "figures/overview.png"):
        assert (d / f).is_file(), f
    pngs = sorted(p.name for p in (d / "figures").glob("*.png"))
    assert pngs == ["okonly__exact_ok__e.png", "overview.png", "toy__exact_ok__e.png"]
    res = json.loads((d / "results.json").read_text())
    assert res["summary"] == {"checks": 5, "passed": 3, "failed": 2}
    assert str(d / "report.html") in out


def test_same_seed_identical_results_json(monkeypatch, capsys, tmp_path):
    from unfold.catalogue.gradients import ENTRY

    monkeypatch.setattr(registry, "entries", lambda: [ENTRY, SEEDED])
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert run(["verify", "--no-progress", "-j", "1", "--seed", seed, "--report", str(tmp_path / name),
                    "seeded", "gradients:determinant"], capsys)[0] == 0
    a, b, c = ((tmp_path / n / "results.json").read_bytes() for n in "abc")
    assert a == b
    assert a != c
    # timings live elsewhere
    assert b'"seconds"' not in a
    assert "checks" in json.loads((tmp_path / "a" / "timings.json").read_text())


def test_dtype_float32_runs_at_float32(capsys, tmp_path):
    rc, out, _ = run(["verify", "--no-progress", "-j", "1", "--dtype", "float32", "--report", str(tmp_path),
                      "gradients:hopfield"], capsys)
    res = json.loads((tmp_path / "results.json").read_text())
    r = res["entries"][0]["checks"][0]
    assert res["config"]["dtype"] == "float32"
    assert r["tol"] == 1e-4
    # float32 round-off is visible (a float64 run gives ~1e-16), and stays inside the stated tolerance
    assert 1e-9 < r["error"] <= 1e-4 and rc == 0


def test_list_shows_entries_with_source_claims_assumptions(capsys):
    rc, out, _ = run(["list"], capsys)
    assert rc == 0
    assert "gradients — Derived gradients of the built-in energies" in out
    assert "claims:      gradient" in out and "source:" in out and "assumptions:" in out
    assert "hopfield" in out and "matrix_power" in out  # built-in energies listed


def test_derive_builtin_shows_gradient_step_and_source(capsys):
    rc, out, _ = run(["derive", "hopfield"], capsys)
    assert rc == 0
    assert "∂E/∂xi = xi - X*Softmax(beta*X.T*xi)" in out
    assert "xi ← X*Softmax(beta*X.T*xi)" in out
    assert "\\operatorname{softmax}" in out  # LaTeX
    assert "def energy(xi, X, beta)" in out and "def grad_xi(xi, X, beta)" in out
    assert "torch.logsumexp" in out  # the generated bodies are printed, not only their signatures


def test_derive_wrt_parameter(capsys):
    rc, out, _ = run(["derive", "quadratic_residual", "--wrt", "W", "--no-source"], capsys)
    assert rc == 0 and "∂E/∂W" in out and "def " not in out


def test_derive_expression(capsys):
    rc, out, _ = run(["derive", "fro2(Y - W*Y)/2", "--dims", "d n", "--state", "Y:d,n", "--param", "W:d,d",
                      "--no-source"], capsys)
    assert rc == 0
    grad = next(line for line in out.splitlines() if line.startswith("∂E/∂Y"))
    # (I - W)^T (I - W) Y = Y - W Y - W^T Y + W^T W Y, in any order
    for term in ("W.T*W*Y", "W*Y", "W.T*Y"):
        assert term in grad


def test_derive_errors_are_clear(capsys):
    rc, out, err = run(["derive", "nosuchenergy"], capsys)
    assert rc == 2 and "unfold list" in err and "--dims" in err
    rc, out, err = run(["derive", "fro2(Y) + foo(Y)", "--dims", "d n", "--state", "Y:d,n"], capsys)
    assert rc == 2 and "foo" in err
    rc, out, err = run(["derive", "gradients"], capsys)
    assert rc == 2 and "derive one of them by name" in err


def test_bench_passes_arguments(monkeypatch, capsys):
    seen = {}
    fake = types.ModuleType("benchmarks.bench")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "benchmarks.bench", fake)
    assert cli.main(["bench", "--quick", "hopfield"]) == 0
    assert seen["argv"] == ["--quick", "hopfield"]


SEL = ["gradients:l1_norm", "gradients:trace_sum", "gradients:logdet_minus_trace"]


def test_parallel_matches_serial(tmp_path, capsys):
    """`unfold verify -j 2` (worker processes) gives the same numbers, in catalogue order, as a
    serial run."""
    for jobs in ("2", "1"):
        rc, out, _ = run(["verify", "--no-progress", "--quick", "-j", jobs, "--report", str(tmp_path / jobs)]
                         + SEL + ["hopfield:cccp_step_is_attention"], capsys)
        assert rc == 0 and "4/4 passed" in out
        rows = [line for line in out.splitlines() if "gradient" in line and "PASS" in line]
        assert [r.split()[1] if i == 0 else r.split()[0] for i, r in enumerate(rows)] == \
            ["l1_norm", "trace_sum", "logdet_minus_trace"]
        res = json.loads((tmp_path / jobs / "results.json").read_text())
        hop = next(e for e in res["entries"] if e["name"] == "hopfield")["checks"][0]["detail"]
        assert "d=8, N=12, S=3" in hop, hop            # --quick reaches the worker processes too
    assert (tmp_path / "2" / "results.json").read_bytes() == (tmp_path / "1" / "results.json").read_bytes()


def test_python_dash_m():
    p = subprocess.run([sys.executable, "-m", "unfold", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert "{list,derive,verify,reproduce,audit,bench}" in p.stdout


def test_bad_option_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--dtype", "float16"])
    assert exc.value.code == 2 and "invalid choice: 'float16'" in capsys.readouterr().err


# ---- Ctrl-C: the checks that finished are written, the run is marked interrupted ----------------
def _ctrl_c(config: RunConfig) -> CheckResult:
    raise KeyboardInterrupt


CTRL_C = Entry("ctrlc", "Interrupted here", "nobody", "s", energy=lambda: None,
               checks=(Check("stops", "exact", "Ctrl-C while it runs", _ctrl_c),
                       Check("after", "exact", "never reached", _ok_of("ctrlc"))))


def test_ctrl_c_writes_the_finished_checks(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(registry, "entries", lambda: [OK_ONLY, CTRL_C, SEEDED])
    rc, out, err = run(["verify", "--no-progress", "-j", "1", "--report", str(tmp_path)], capsys)
    assert rc == 130 and "interrupted" in err and "INTERRUPTED, 3 checks not run" in out
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["summary"] == {"checks": 1, "passed": 1, "failed": 0, "interrupted": True,
                              "not_run": ["ctrlc:stops", "ctrlc:after", "seeded:value"]}
    assert [(e["name"], [c["check"] for c in e["checks"]]) for e in res["entries"]] == [("okonly", ["exact_ok"])]
    assert "INTERRUPTED (3 not run)" in (tmp_path / "report.md").read_text()
    assert "INTERRUPTED (3 not run)" in (tmp_path / "report.html").read_text()


def test_ctrl_c_in_the_process_pool_keeps_finished_checks():
    """Ctrl-C while worker processes run: the result that had arrived is kept, the rest are not run."""
    from unfold.catalogue._runner import run_checks, select

    class StopAfterFirst:
        total = 0
        done_labels: list = []

        def start(self, label): pass

        def done(self, label, passed):
            self.done_labels.append(label)
            raise KeyboardInterrupt

        def close(self): pass

    progress = StopAfterFirst()
    s = run_checks(select(registry.entries(), SEL), RunConfig(quick=True), progress, jobs=2)
    assert s.interrupted and len(s.results) == 1 and len(s.not_run) == 2
    (r,) = s.results
    assert r.passed and f"{r.entry}: {r.check}" == progress.done_labels[0]
    assert sorted(s.not_run + [f"{r.entry}:{r.check}"]) == sorted(SEL)
