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
