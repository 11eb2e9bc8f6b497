"""The ``unfold`` command line: ``list``, ``derive``, ``verify``, ``reproduce``, ``audit``, ``bench``.

``unfold verify`` runs every check of every catalogue entry (or the named ones) and exits non-zero
when any fails; ``unfold derive NAME`` shows an energy, its gradients, the descent step it yields
and the generated torch source.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
from typing import Any, Optional, Sequence

__all__ = ["main", "build_parser"]

_DTYPES = ("float64", "float32")


def _out(s: str = "") -> None:
    sys.stdout.write(s + "\n")


def _err(s: str) -> None:
    sys.stderr.write(s + "\n")


# ---- list ----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from .energies import BUILTIN_ENERGIES
    from .catalogue import registry

    ents = registry.entries()
    for e in ents:
        quick = sum(c.quick for c in e.checks)
        _out(f"{e.name} — {e.title}")
        _out(f"    source:      {e.source}")
        _out(f"    claims:      {', '.join(e.claims) or '—'}")
        _out(f"    checks:      {len(e.checks)} ({quick} in --quick)")
        if e.assumptions:
            _out(textwrap.fill("; ".join(e.assumptions), 100, initial_indent="    assumptions: ",
                               subsequent_indent=" " * 17))
        for p in e.proofs:
            _out(textwrap.fill(f"[{p.scope}] {p.statement}", 100, initial_indent="    proof:       ",
                               subsequent_indent=" " * 17))
        _out()
    _out(f"{len(ents)} catalogue entries. Built-in energies (unfold derive NAME):")
    _out(textwrap.fill(", ".join(BUILTIN_ENERGIES), 100, initial_indent="    ", subsequent_indent="    "))
    return 0


# ---- derive --------------------------------------------------------------------------------------
def _resolve_energy(args: argparse.Namespace) -> tuple[str, Any]:
    """The energy named (built-in or catalogue entry) or written (``EXPR`` with declarations)."""
    from .energies import BUILTIN_ENERGIES
    from .errors import UndeclaredSymbolError

    name = args.name
    spec = args.dims or args.state or args.param or args.scalar
    if not spec:
        if name in BUILTIN_ENERGIES:
            return f"{name} (built-in energy; `unfold list` shows the catalogue entries)", BUILTIN_ENERGIES[name]()
        from .catalogue import registry
        from .symbolic import Energy

        for e in registry.entries():
            if e.name == name:
                E = e.energy()
                if isinstance(E, Energy):
                    head = f"{e.name}: {e.title}\n{e.source}\n\n{textwrap.fill(e.summary, 100)}"
                    if e.mapping:
                        head += "\n\n" + textwrap.fill("parameter mapping: " + e.mapping, 100)
                    return head, E
                if isinstance(E, dict):
                    raise UndeclaredSymbolError(
                        f"catalogue entry {name!r} holds {len(E)} energies; derive one of them by name: "
                        + ", ".join(E)
                    )
                raise UndeclaredSymbolError(f"catalogue entry {name!r} does not define a single Energy")
        known = sorted(BUILTIN_ENERGIES) + [e.name for e in registry.entries()]
        raise UndeclaredSymbolError(
            f"no built-in energy or catalogue entry {name!r} (see `unfold list`). To derive an expression, "
            f"declare its symbols, e.g.  unfold derive \"fro2(Y - W*Y)/2\" --dims \"d n\" --state Y:d,n "
            f"--param W:d,d.  Known names: {', '.join(known)}"
        )
    from .parse import parse_energy_spec

    E = parse_energy_spec(name, args.dims or "", list(args.state), list(args.param), list(args.scalar),
                          axes=list(getattr(args, "axis", []) or []), masks=list(getattr(args, "mask", []) or []))
    return name, E


def _step_size(text: str) -> float:
    """``--step η``: a finite positive number (``inf``/``nan``/``0``/negative are refused here, before
    anything is derived)."""
    try:
        eta = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step size (a number), got {text!r}") from None
    if not math.isfinite(eta) or eta <= 0:
        raise argparse.ArgumentTypeError(f"the step size must be a finite positive number, got {text}")
    return eta


def _step_of(E: Any, v: Any, step: float) -> tuple[Any, str]:
    """The gradient step on ``v`` (:class:`unfold.steps.GradientStep`): its update rule and generated torch source."""
    from .steps import GradientStep

    st = GradientStep(E, wrt=str(v), step=step)
    return st.update_rule(), st.torch_source()


def _show(lhs: str, expr: Any, latex_lhs: str = "") -> None:
    """``lhs = expr`` in text and LaTeX; a large expression with its repeated sub-trees named."""
    from .symbolic.display import to_latex, to_str, with_shared

    shown, defs = with_shared(expr)
    sep = " " if lhs.endswith("←") else " = "
    _out(f"{lhs}{sep}{to_str(shown)}")
    _out(f"    LaTeX: {latex_lhs + ' ' if latex_lhs else ''}{to_latex(shown)}")
    for name, body in defs:
        _out(f"    where {name} = {to_str(body)}")
        _out(f"        LaTeX: {to_latex(name)} = {to_latex(body)}")


def cmd_derive(args: argparse.Namespace) -> int:
    import sympy as sp

    from .errors import UnfoldError
    from .symbolic import Energy, to_latex

    title, E = _resolve_energy(args)
    variables = [E.symbol(w) for w in args.wrt] if args.wrt else list(E.states) or list(E.variables)
    step = args.step
    rule_step = sp.Integer(1) if step == 1 else sp.Float(step)  # safe: a float from argparse
    _out(f"# {title}")
    _out()
    _out(f"E = {E}")
    _out(f"    LaTeX: {E.latex()}")
    if len(E.terms) > 1:
        for k, t in E.terms.items():
            _out(f"    term {k}: {Energy(t)}")
    _out("inputs: " + ", ".join(
        f"{s} ({getattr(s, 'role', 'scalar')}{' ' + 'x'.join(map(str, s.shape)) if hasattr(s, 'shape') else ''})"
        for s in E.inputs
    ))
    for v in variables:
        g = E.grad(v)
        _out()
        _show(f"∂E/∂{v}", g)
        if v in E.states:
            try:
                rule, src = _step_of(E, v, step)
            except UnfoldError as exc:  # e.g. a non-smooth term: the layer is a proximal step
                _out(f"gradient step on {v}: not available — {exc}")
                continue
            _show(f"gradient step (η = {rule_step}):  {v} ←", rule, to_latex(v) + r" \leftarrow")
            if not args.no_source:
                _out()
                _out(f"generated step on {v}:")
                _out(textwrap.indent(src.rstrip(), "    "))
    if not args.no_source:
        cm = E.compile()
        _out()
        _out("generated energy and gradients:")
        _out(textwrap.indent(cm.energy_fn.source.rstrip(), "    "))
        for v in variables:
            _out()
            _out(textwrap.indent(cm.grad_fn(v).source.rstrip(), "    "))
    return 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---- verify --------------------------------------------------------------------------------------
def _jobs(text: str) -> int:
    """``-j N``: a number of worker processes, at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"the number of worker processes must be at least 1, got {n}")
    return n


_SEED_LIMIT = 2 ** 31  # checks add small offsets to the seed; every generator they feed accepts this range


def _seed(text: str) -> int:
    """``--seed S``: an integer in ``[0, 2³¹)``."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= n < _SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"the seed must lie in [0, 2**31), got {n}")
    return n


def _report_dir(text: str) -> str:
    """``--report DIR``: a directory that can be created and written, checked before any check runs."""
    import tempfile

    if not text.strip():
        raise argparse.ArgumentTypeError("the report directory is empty; give a path such as out/")
    try:
        os.makedirs(text, exist_ok=True)
        with tempfile.TemporaryFile(dir=text):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write the report to {text!r}: {exc.strerror or exc}") from None
    return text


def cmd_verify(args: argparse.Namespace) -> int:
    import torch

    from .catalogue import registry
    from .catalogue.base import RunConfig
    from .catalogue._runner import run_checks, select
    from .report.progress import Progress
    from .report.table import format_failures, format_table

    try:
        selection = select(registry.entries_named(args.names), args.names)
    except KeyError as exc:
        _err(f"error: {exc.args[0]}")
        return 2
    config = RunConfig(seed=args.seed, dtype=getattr(torch, args.dtype), quick=args.quick)
    progress = Progress(0, enabled=not args.no_progress)
    jobs = args.jobs if args.jobs is not None else min(2, _cores())
    s = run_checks(selection, config, progress, jobs=max(1, jobs))
    color = sys.stdout.isatty()
    _out(format_table(s.results, color=color))
    n, nf = len(s.results), len(s.failures)
    _out()
    if nf:
        _out(format_failures(s.results))
        _out()
    verdict = "all checks passed" if not nf else f"{nf} of {n} checks FAILED"
    if s.interrupted:
        verdict = f"INTERRUPTED, {len(s.not_run)} checks not run" + (f", {nf} FAILED" if nf else "")
    _out(f"{n - nf}/{n} passed in {s.seconds:.1f} s (seed {config.seed}, {args.dtype}"
         f"{', quick' if config.quick else ''}): {verdict}")
    if args.report:
        from .report.write import write_report

        path = write_report(s, args.report)
        _out(f"report: {path}")
    if s.interrupted:
        _err("interrupted")
        return 130
    return 1 if nf else 0


# ---- reproduce -----------------------------------------------------------------------------------
def cmd_reproduce(args: argparse.Namespace) -> int:
    from . import reproduce
    from .reproduce.render import format_results

    profile = reproduce.Profile(quick=args.quick, seed=args.seed, progress=not args.no_progress)
    results = reproduce.run(args.names, profile)
    _out(format_results(results))
    failed = [r.name for r in results if not r.passed]
    _out()
    _out(f"{len(results) - len(failed)}/{len(results)} experiments met their asserted criteria"
         + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.report:
        _out(f"report: {reproduce.write(results, args.report)}")
    return 1 if failed else 0


# ---- audit ---------------------------------------------------------------------------------------
_AUDITED = ("crate", "deq", "encoder")


def cmd_audit(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from . import models
    from .audit import audit

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small models: a second intra-op thread cost 2 min vs 8 s (crate, 3 epochs, busy 2 cores)
    model: Any = {"crate": lambda: models.CRATE(seed=args.seed), "deq": lambda: models.HopfieldClassifier(seed=args.seed),
             "encoder": lambda: models.EncoderClassifier(seed=args.seed)}[args.model]()
    data = models.digits(args.seed)
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    elif args.epochs > 0:
        models.fit(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                   models.digit_batches(data.x_train, data.y_train, 64, args.seed), epochs=args.epochs,
                   progress=not args.no_progress, desc=f"training {args.model} on digits")
    x = data.x_test[: args.samples]
    target = model.encoder if args.model == "encoder" else model
    report = audit(target, model.tokens_of(x) if args.model == "encoder" else x)
    _out(f"test accuracy {models.accuracy(model, data.x_test, data.y_test):.3f}")
    _out(report.table())
    if args.report:
        from .report.audit_plots import audit_png

        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.json").write_text(json.dumps(report.as_dict(), indent=1))
        (out / "audit.png").write_bytes(audit_png(report))
        _out(f"report: {out / 'audit.png'}, {out / 'audit.json'}")
    return 0


# ---- bench ---------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks/bench.py`` of the source checkout this ``unfold`` is imported from."""
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "bench.py").is_file():
        _err(f"error: unfold bench runs from a source checkout (no benchmarks/bench.py next to {root / 'unfold'})")
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    bench = importlib.import_module("benchmarks.bench")
    return int(bench.main(list(args.rest)) or 0)


# ---- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unfold",
        description="Derive transformer layers as descent steps on symbolic energies, and check that they are.",
    )
    sub = p.add_subparsers(dest="command", metavar="{list,derive,verify,reproduce,audit,bench}")
    sub.required = True

    sl = sub.add_parser("list", help="catalogue entries with their source, claims and assumptions")
    sl.set_defaults(func=cmd_list)

    sd = sub.add_parser(
        "derive", help="an energy, its gradients, the step it yields and the generated torch source",
        description="Show a built-in energy or catalogue entry (NAME), or an expression (EXPR with "
                    "--dims/--state/--param/--scalar declarations).",
    )
    sd.add_argument("name", metavar="NAME|EXPR")
    sd.add_argument("--wrt", action="append", default=[], help="variable(s) to differentiate (default: states)")
    sd.add_argument("--step", type=_step_size, default=1.0, help="step size η of the shown gradient step (default 1)")
    sd.add_argument("--dims", default="", help='dimension names, e.g. "d n"')
    sd.add_argument("--state", action="append", default=[], help="state matrix, e.g. Y:d,n (repeatable)")
    sd.add_argument("--param", action="append", default=[], help="parameter matrix, e.g. W:d,d (repeatable)")
    sd.add_argument("--scalar", action="append", default=[], help="scalar parameter name (repeatable)")
    sd.add_argument("--axis", action="append", default=[],
                    help="named axis NAME:SIZE, e.g. h:H; a matrix over it is W:p,d@h (repeatable)")
    sd.add_argument("--mask", action="append", default=[],
                    help="mask input NAME:ROWS,COLS for lse/softmax(..., mask=NAME); mask=causal needs none")
    sd.add_argument("--no-source", action="store_true", help="omit the generated torch source")
    sd.set_defaults(func=cmd_derive)

    sv = sub.add_parser(
        "verify", help="run the catalogue's checks and print a table (non-zero exit on any failure)",
        description="Run every check of the selected entries (all by default). NAME is an entry or "
                    "entry:check.",
    )
    sv.add_argument("names", nargs="*", metavar="NAME")
    sv.add_argument("--report", metavar="DIR", type=_report_dir,
                    help="write report.html, report.md, PNG plots and results.json to DIR")
    sv.add_argument("--seed", type=_seed, default=0, help="seed of every check (default 0)")
    sv.add_argument("--dtype", choices=_DTYPES, default="float64", help="precision of the checks (default float64)")
    sv.add_argument("--quick", action="store_true", help="only the checks marked quick")
    sv.add_argument("--jobs", "-j", type=_jobs, default=None, metavar="N",
                    help="worker processes (default: 2, or 1 on a single core); results do not depend on it")
    sv.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    sv.set_defaults(func=cmd_verify)

    sr = sub.add_parser(
        "reproduce", help="train generated models on offline data and measure the papers' figures",
        description="Train unfold's generated models (digits, in-context regression) and measure each "
                    "paper's figure as a criterion (about 3 minutes on 2 busy cores; --quick: the reduced version).",
    )
    sr.add_argument("names", nargs="*", metavar="NAME", help="experiments (default: all)")
    sr.add_argument("--report", metavar="DIR", help="write report.md, PNG figures and results.json to DIR")
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--quick", action="store_true", help="the reduced version (seconds)")
    sr.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    sr.set_defaults(func=cmd_reproduce)

    sa = sub.add_parser(
        "audit", help="per layer: energy before/after, distance to the exact step, assumption gaps",
        description="Train (or load with --weights) a model on digits and audit every layer against the "
                    "energy its claim names: crate and deq are unfold's generated models, encoder a "
                    "standard nn.TransformerEncoder read as Hopfield attention. From Python: "
                    "unfold.audit.audit(model, x) for any model, with energy=/wrt=/mapping= for your own.",
    )
    sa.add_argument("model", choices=_AUDITED)
    sa.add_argument("--epochs", type=int, default=5, help="training epochs on digits (default 5; 0: as initialised)")
    sa.add_argument("--weights", metavar="PATH", help="a state_dict to load instead of training")
    sa.add_argument("--samples", type=int, default=128, help="test images audited (default 128)")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--report", metavar="DIR", help="write audit.png and audit.json to DIR")
    sa.add_argument("--no-progress", action="store_true")
    sa.set_defaults(func=cmd_audit)

    sb = sub.add_parser("bench", help="performance benchmarks (arguments passed on)", add_help=False)
    sb.add_argument("rest", nargs=argparse.REMAINDER)
    sb.set_defaults(func=cmd_bench)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 a check failed, 2 usage error)."""
    from .errors import UnfoldError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after `bench` belongs to benchmarks/bench.py
        return cmd_bench(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnfoldError as exc:
        _err(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
