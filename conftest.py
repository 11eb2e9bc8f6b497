"""Root conftest: makes ``proofs`` importable and keeps torch to one thread per test process."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
