"""Root conftest: makes ``proofs`` importable and keeps torch to one thread per test process
(small tensors are much faster single-threaded, and timings stop depending on machine load)."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(1)


import pytest  # noqa: E402


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device a test should pass on: cpu always, cuda where present."""
    return torch.device(request.param)


_CATALOGUE_RUNS: dict = {}


@pytest.fixture(scope="session")
def catalogue_run():
    """``catalogue_run(entry, seed=0, dtype=torch.float64, quick=False)``: the entry's report, run once
    per test session for each configuration (every test file reads the same run)."""
    from unfold.catalogue import RunConfig, run_entry

    def run(entry, seed: int = 0, dtype: torch.dtype = torch.float64, quick: bool = False):
        key = (entry.name, seed, dtype, quick)
        if key not in _CATALOGUE_RUNS:
            _CATALOGUE_RUNS[key] = run_entry(entry, RunConfig(seed=seed, dtype=dtype, quick=quick))
        return _CATALOGUE_RUNS[key]

    return run


@pytest.fixture(scope="session")
def entry_results(catalogue_run):
    """``entry_results(entry, dtype=torch.float64)``: the entry's results (seed 0, full sizes) keyed by
    check name, from the session's one run (:func:`catalogue_run`)."""

    def results(entry, dtype: torch.dtype = torch.float64) -> dict:
        return {r.check: r for r in catalogue_run(entry, dtype=dtype).results}

    return results


@pytest.fixture(scope="session")
def assert_checks_pass():
    """``assert_checks_pass(results, names, error_below=None)``: exactly the checks ``names`` ran, each
    passed with every assumption holding, and (given ``error_below``) each error is below it."""

    def check(results: dict, names: set, error_below: float | None = None) -> None:
        assert set(results) == names
        for r in results.values():
            assert r.passed, (r.check, r.detail)
            assert all(a.holds for a in r.assumptions), (r.check, r.assumptions)
            if error_below is not None:
                assert r.error < error_below, (r.check, r.error)

    return check


@pytest.fixture(scope="session")
def assert_float32_rule(entry_results):
    """``assert_float32_rule(entry, every_claim=False)``: every check of the entry passes at float32 (the
    precision rule scales its tolerances), and every exact claim's error (with ``every_claim``, every
    check's) is at most 64 ulps of float32."""

    def check(entry, every_claim: bool = False) -> None:
        eps32 = torch.finfo(torch.float32).eps
        for r in entry_results(entry, dtype=torch.float32).values():
            assert r.passed, (r.check, r.detail)
            if every_claim or r.claim == "exact":
                assert r.error <= 64 * eps32, (r.check, r.error)

    return check
