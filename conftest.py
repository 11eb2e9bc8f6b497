"""Root conftest: makes ``proofs`` importable and keeps torch to one thread per test process
(small tensors are much faster single-threaded, and timings stop depending on machine load)."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(1)
