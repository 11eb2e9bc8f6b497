"""Memory and time of the backward pass: FixedPoint (implicit) vs Unrolled (backprop), CPU.

For N = 10, 100, 1000 iterations of the Hopfield gradient step (d = 64, n = 512 stored patterns,
a batch of 64 queries, step 0.01 so the iteration never converges exactly and all N steps run) it
measures, each configuration in a fresh subprocess:

* ``saved MiB``: bytes of the tensors autograd saves for backward during the forward pass
  (``torch.autograd.graph.saved_tensors_hooks``) — exact and deterministic;
* ``peak RSS growth MiB``: growth of the process's peak resident set size (``ru_maxrss``) over the
  forward + backward, relative to the peak after setup;
* ``fwd+bwd s``: wall time of forward + backward.

Run: ``PYTHONPATH=. python3 benchmarks/fixed_point_memory.py``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

D, N_PATTERNS, BATCH, STEP = 64, 512, 64, 0.01


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one(kind: str, iters: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    from unfold.energies import builtin_energy
    from unfold.steps import FixedPoint, GradientStep, Unrolled

    g = torch.Generator().manual_seed(0)
    X = (torch.randn(D, N_PATTERNS, generator=g, dtype=torch.float64) / D ** 0.5).requires_grad_()
    q = torch.randn(BATCH, D, 1, generator=g, dtype=torch.float64)
    step = GradientStep(builtin_energy("hopfield"), "xi", step=STEP)
    model = FixedPoint(step, tol=0.0, max_iter=iters) if kind == "implicit" else Unrolled(step, depth=iters)
    step(q, X=X, beta=1.0).sum().backward()  # warm up
    X.grad = None
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    base = _rss_mib()
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(q, X=X, beta=1.0)
    out.sum().backward()
    dt = time.perf_counter() - t0
    return {"saved_mib": saved[0] / 2 ** 20, "rss_growth_mib": _rss_mib() - base, "seconds": dt,
            "grad_norm": float(X.grad.norm())}


def main() -> None:
    rows = []
    for iters in (10, 100, 1000):
        for kind in ("implicit", "unrolled"):
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
                       OMP_NUM_THREADS="1")
            out = subprocess.run([sys.executable, __file__, "--one", kind, str(iters)], capture_output=True,
                                 text=True, env=env, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((iters, kind, r))
    print(f"Hopfield step d={D}, n={N_PATTERNS}, batch={BATCH}, step {STEP}, float64, CPU (1 thread)")
    print(f"{'iters':>6} {'backward':>9} {'saved MiB':>10} {'peak RSS growth MiB':>20} {'fwd+bwd s':>10}")
    for iters, kind, r in rows:
        print(f"{iters:>6} {kind:>9} {r['saved_mib']:>10.2f} {r['rss_growth_mib']:>20.1f} {r['seconds']:>10.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
