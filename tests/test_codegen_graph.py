"""Code generation through the SSA graph (:mod:`unfold.codegen.graph`).

Bookkeeping on a corpus: every energy below (the built-in energies, every catalogue entry's and
model's energy builder that takes no required argument (or a head count), every registered scalar
function, and a fuzz corpus drawn from the grammar of ``tests/test_fuzz.py``, ``UNFOLD_FUZZ_EXAMPLES``
examples, 25 by default) is lowered as one function returning the energy and the gradient with
respect to every variable, and the graph's recorded reads, releases and dropped values are checked
against the test's own scan of the statements' text: nothing is read unrecorded, before it is
computed or after it is released, and nothing is computed that is never read.  (The legacy printer
path, statements as emitted and released by a text scan, was the differential oracle while the
graph path was introduced: both agreed to 1e-12 in float64 on this corpus and 2400 random fuzz
draws, and it was then removed.)

Structural properties of the passes (an equal statement printed twice is one temporary; a value is
released after its last read; a value no output needs is not computed; no d×d temporary in the
multi-head step) are checked on small graphs, and a shared product against plain torch.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import unfold as uf
import unfold.catalogue as catalogue_pkg
import unfold.models as models_pkg
from unfold import symbolic as s
from unfold.codegen.generate import Output, compile_source, generate_source, lower
from unfold.codegen.graph import Graph
from unfold.energies import BUILTIN_ENERGIES
from unfold.errors import UnfoldError
from unfold.sampling import random_inputs
from unfold.symbolic import Energy
from unfold.symbolic.primitives.registry import scalar_functions

from test_fuzz import LONG, MAX_DEPTH, N_EXAMPLES, Y, ops, scalar_expr, x


def _energy_builders() -> dict[str, Callable[[], Energy]]:
    """Every zero-argument function returning an :class:`Energy` in the catalogue and the models."""
    import importlib
    import pkgutil

    found: dict[str, Callable[[], Energy]] = {f"builtin:{k}": f for k, f in BUILTIN_ENERGIES.items()}
    modules = [f"{pkg.__name__}.{m.name}" for pkg in (catalogue_pkg, models_pkg)
               for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    for mod_name in sorted(modules):
        mod = importlib.import_module(mod_name)
        for fname, f in vars(mod).items():
            if (fname.startswith("_") or isinstance(f, type) or not callable(f)
                    or getattr(f, "__module__", None) != mod.__name__):
                continue
            sig = inspect.signature(f)
            if sig.return_annotation not in ("Energy", Energy):
                continue
            required = [p for p in sig.parameters.values() if p.default is inspect.Parameter.empty]
            if not required:
                found[f"{mod_name}.{fname}"] = f
            elif len(required) == 1 and required[0].name in ("heads", "K", "H"):
                found[f"{mod_name}.{fname}(2)"] = lambda f=f: f(2)  # a head count
    for fname in sorted(scalar_functions()):
        if hasattr(uf, fname):  # every registered scalar function with a builder, on positive entries
            found[f"primitive:{fname}"] = lambda fname=fname: _activation_energy(getattr(uf, fname))
    return found


def _activation_energy(f: Callable[[Any], Any]) -> Energy:
    """``E(X) = Σ C ∘ f(exp(W X))`` (positive arguments: inside the domain of log and sqrt)."""
    d, n = uf.dims("d n")
    X, W, C = uf.state("X", d, n), uf.param("W", d, d), uf.param("C", d, n)
    return Energy(uf.sum_entries(uf.hadamard(C, f(uf.exp(W @ X)))))


BUILDERS = _energy_builders()


def _outputs(E: Energy) -> list[Output]:
    outs = [Output("scalar", E.expr)]
    for v in E.variables:
        outs.append(Output("grad", E.grad(v), v))
    return outs


_NAME = re.compile(r"\b_t\d+\b")  # the test's own scan of the text: independent of the printer's bookkeeping


def _check_graph(g: Graph, what: str) -> None:
    """The graph's bookkeeping against a scan of its statements: every temporary a statement's text
    names is among its recorded reads, computed by an earlier kept statement and not yet released;
    every kept temporary is read later (dead values dropped)."""
    nodes = g.live_nodes()
    released = Graph.releases(nodes)
    defined: set[str] = set()
    gone: set[str] = set()
    read_later = set().union(*(n.reads for n in nodes)) if nodes else set()
    for node, dead in zip(nodes, released):
        named = set(_NAME.findall(node.text))
        assert named <= node.reads, f"{what}: {node.name} = {node.text} reads {sorted(named - node.reads)} unrecorded"
        assert named <= defined, f"{what}: {node.name} reads {sorted(named - defined)} before it is computed"
        assert not named & gone, f"{what}: {node.name} reads {sorted(named & gone)} after its release"
        if node.kind == "temp":
            assert node.name in read_later, f"{what}: {node.name} is computed but read by nothing"
            defined.add(node.name)
        gone |= set(dead)
    assert any(n.kind == "out" for n in nodes)


def test_the_corpus_covers_builtin_catalogue_model_and_primitive_energies() -> None:
    assert len([k for k in BUILDERS if k.startswith("builtin:")]) == len(BUILTIN_ENERGIES)
    assert any(k.startswith("unfold.catalogue.") for k in BUILDERS)
    assert any(k.startswith("unfold.models.") for k in BUILDERS)
    assert {"primitive:gelu", "primitive:softplus", "primitive:erf"} <= set(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_graph_bookkeeping_on_every_builtin_energy(name: str) -> None:
    E = BUILDERS[name]()
    _check_graph(lower("f", E.inputs, _outputs(E)), name)


@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(node=st.integers(1, MAX_DEPTH).flatmap(scalar_expr))
def test_graph_bookkeeping_on_the_fuzz_corpus(node: Any) -> None:
    expr = sp.sympify(node.sym)  # safe: a number or a sympy expression built by the fuzz grammar
    if not (expr.has(Y) or expr.has(x)):
        expr = expr + ops.fro2(Y) / 2
    try:
        E = Energy(expr)
        g = lower("f", E.inputs, _outputs(E))
    except UnfoldError:
        return  # refused at build time: nothing generated
    _check_graph(g, str(expr))


# ---- structure of the graph ----------------------------------------------------------------------
def test_equal_statements_are_one_temporary() -> None:
    g = Graph()
    a = g.value("torch.exp(X)", ())
    b = g.value("torch.exp(X)", ())
    assert a == b and len(g.nodes) == 1
    assert g.value("torch.exp(X.mT)", ()) != a and len(g.nodes) == 2


def test_values_are_released_after_their_last_read_and_dead_values_dropped() -> None:
    g = Graph()
    g.leaf("X")
    t0 = g.value("X @ X.mT", ())
    t1 = g.value(f"torch.softmax({t0}, dim=-1)", (t0,))
    g.value("torch.exp(X)", ())  # read by no output
    g.output("_r0", f"{t1} @ X", (t1,))
    g.output("_r0", f"_r0 + {t0}", (t0,))
    nodes = g.live_nodes()
    assert [n.name for n in nodes] == [t0, t1, "_r0", "_r0"]
    released = Graph.releases(nodes)
    assert released == [[], [], [t1], [t0]]
    for i, dead in enumerate(released):  # nothing is read after it is released
        for name in dead:
            assert all(name not in n.reads for n in nodes[i + 1:])


def test_transposed_views_are_known_to_the_graph() -> None:
    g = Graph()
    g.leaf("X")
    t = g.value("X @ X", ())
    v = g.transposed(t)
    assert g.untranspose(v) == t and g.is_view_of_name(v)
    assert g.untranspose(t) is None and not g.is_view_of_name("X @ X.mT")


def test_graph_path_matches_plain_torch_on_a_shared_product() -> None:
    """``Xᵀ W X`` read by two terms (one temporary in the graph) against the energy in plain torch."""
    d, n = s.dims("d n")
    X, W = s.param("X", d, n), s.state("W", d, d)
    P = X.T * W * X
    E = Energy(s.trace(P) + s.fro2(P) / 2)
    outs = _outputs(E)
    src = generate_source("f", E.inputs, outs)
    fn = compile_source("f", src)
    env = random_inputs(E, {d: 4, n: 3}, batch=(2,))
    args = [env[str(a)] for a in E.inputs]
    Xt, Wt = env["X"], env["W"]
    Pt = Xt.mT @ Wt @ Xt
    ref = torch.diagonal(Pt, dim1=-2, dim2=-1).sum(-1) + (Pt ** 2).sum((-2, -1)) / 2
    assert torch.allclose(fn(*args)[0], ref, rtol=1e-12, atol=1e-12)


def test_no_value_of_the_multi_head_step_is_a_width_by_width_product() -> None:
    """The graph of ∂E/∂X for ``E = −(1/β) Σ_h lse(β (W_K^h X)ᵀ (W_Q^h X)) + ½‖X‖²`` holds no d×d
    value: the low-rank ``W_Kᵀ W_Q`` (rank p < d) is applied factor by factor, never formed.
    Control: the same query finds the d×d ``Y Yᵀ`` of an energy that uses it twice."""

    d, n, p = uf.dims("d n p")
    h = uf.axis("h", 12)
    WQ, WK = uf.param("WQ", p, d, over=h), uf.param("WK", p, d, over=h)
    X, beta = uf.state("X", d, n), uf.scalar("beta", positive=True)
    E = uf.Energy(-uf.sum_over(h, uf.lse(beta * (WK * X).T * (WQ * X))) / beta + uf.fro2(X) / 2)
    g = lower("grad_X", E.inputs, [Output("grad", E.grad(X), X)])
    shapes = [nd.shape for nd in g.live_nodes() if nd.kind == "temp"]
    assert shapes and (d, d) not in shapes

    Y = uf.state("Y", d, n)
    G = Energy(uf.fro2(Y * Y.T) / 2 + uf.trace(Y * Y.T * Y * Y.T * Y * Y.T))
    control = lower("grad_Y", G.inputs, [Output("grad", G.grad(Y), Y)])
    assert (d, d) in [nd.shape for nd in control.live_nodes() if nd.kind == "temp"]


def test_a_negative_term_next_to_its_transpose_is_computed_once():
    """The Yang–Huang–Wipf energy ``n/2 − ½ Σᵢⱼ exp(−½‖Ws(yᵢ − yⱼ)‖²)`` holds ``−½ v 1ᵀ − ½ 1 vᵀ``
    (``v = ‖Ws yᵢ‖²``): v is computed once (one elementwise square), and the value is the formula."""
    from unfold.catalogue import yang_huang_wipf as yhw

    from test_codegen_fuse import CallCount

    fn = yhw.attention_energy().compile().energy_fn
    g = torch.Generator().manual_seed(6)
    Y = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    Ws = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    with CallCount(frozenset({"square", "pow", "__pow__", "mul", "__mul__"}),
                   lambda x, *rest: x.dim() >= 2 and x.shape[-1] == 3 and x.shape[-2] == 5) as squares:
        got = fn(Y, Ws)
    assert squares.calls == 1
    Z = Y @ Ws.mT
    d2 = ((Z[..., :, None, :] - Z[..., None, :, :]) ** 2).sum(-1)
    want = 5 / 2 - 0.5 * torch.exp(-0.5 * d2).sum((-2, -1))
    assert float((got - want).abs().max()) < 1e-12


def test_a_head_projection_is_computed_once_in_the_multi_head_step():
    """Yang–Huang–Wipf with several heads: ``Y W_s^hᵀ`` is a run of the scores ``Y Wsᵀ Ws Yᵀ`` and
    the base of the key bias ``‖W_s^h yⱼ‖²``: one product of Y with Ws (in either order)."""
    from unfold.models import yhw as yhw_model

    from test_codegen_fuse import CallCount

    fn = yhw_model.attention_heads_function(2)
    g = torch.Generator().manual_seed(7)
    Y = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    Ws = torch.randn(2, 2, 4, generator=g, dtype=torch.float64)
    U = torch.randn(2, 2, 4, generator=g, dtype=torch.float64)
    ptrs = {Y.data_ptr(), Ws.data_ptr()}
    names = frozenset({"matmul", "__matmul__", "mm", "bmm", "einsum"})
    with CallCount(names, lambda *a: {t.data_ptr() for t in a if isinstance(t, torch.Tensor)} == ptrs) as products:
        fn(Y, Ws, U)
    assert products.calls == 1
