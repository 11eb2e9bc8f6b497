"""Derivation, code generation and display stay linear in the nesting depth of an energy.

The cotangent of a nested softmax (or layer norm) uses its parent's cotangent twice, so the derived
gradient is a DAG whose tree doubles with each level: any walk of it as a tree (sympy's deep
``doit``, ``count_ops``, ``free_symbols``, equality of two equal copies, ``shape``) is exponential.
These tests count work (calls of sympy's structural equality and of ``shape``), never time, and
check every derived gradient against ``torch.func.grad`` in float64.
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch
from sympy.core.basic import Basic
from torch.func import grad

import unfold as uf
from unfold import cli
from unfold.codegen import Output, generate_source
from unfold.symbolic.display import with_shared
from unfold.symbolic.nodes import MatFn
from unfold.symbolic.tidy import tree_size

EPS = 1e-5
GAIN = 4  # softmax(4·x) over 4 rows: Jacobians of norm about 1, so the gradient does not vanish


def _nested(kind: str, depth: int, d: "sp.Symbol", n: "sp.Symbol"):
    Y, X = uf.state("Y", d, n), uf.param("X", d, n)
    e = Y
    for _ in range(depth):
        e = uf.softmax(GAIN * e) if kind == "softmax" else uf.layernorm(e, EPS)
    return uf.Energy(uf.fro2(e - X))  # (‖LN(y)‖² alone is constant in y)


def _reference(kind: str, depth: int, x: torch.Tensor):
    def energy(y: torch.Tensor) -> torch.Tensor:
        for _ in range(depth):
            if kind == "softmax":
                y = torch.softmax(GAIN * y, dim=0)
            else:
                y = (y - y.mean(0)) / torch.sqrt(y.var(0, unbiased=False) + EPS)
        return ((y - x) ** 2).sum()
    return energy


class _WorkCounter:
    """Counts reads of ``Basic.args`` (every walk of an expression reads them), calls of sympy's
    ``Basic.__eq__`` and computations of ``MatFn`` shapes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        eq, args, shape = Basic.__eq__, Basic.args.fget, MatFn._shape

        def counting_eq(a, b):
            self.calls += 1
            return eq(a, b)

        def counting_args(a):
            self.calls += 1
            return args(a)

        def counting_shape(m):
            self.calls += 1
            return shape(m)

        monkeypatch.setattr(Basic, "__eq__", counting_eq)
        monkeypatch.setattr(Basic, "__hash__", Basic.__hash__)  # __eq__ replaced: keep the hash
        monkeypatch.setattr(Basic, "args", property(counting_args))
        monkeypatch.setattr(MatFn, "_shape", counting_shape)


def _derive_and_generate(kind: str, depth: int, name: str) -> None:
    d, n = uf.dims(f"d{name} n{name}")  # fresh symbols: nothing cached from another depth
    E = _nested(kind, depth, d, n)
    g = E.grad("Y")
    rule = E.update_rule("Y", sp.Rational(1, 2))
    generate_source("f", list(E.inputs), [Output("matrix", g), Output("matrix", rule)])


@pytest.mark.parametrize("kind", ["softmax", "layernorm"])
def test_work_to_derive_and_generate_grows_linearly_with_depth(kind, monkeypatch):
    work = {}
    for depth in (4, 8):
        counter = _WorkCounter(monkeypatch)
        _derive_and_generate(kind, depth, f"{kind}{depth}")
        work[depth] = counter.calls
        monkeypatch.undo()
    # linear: twice the depth, about twice the work; the tree doubles per level (2^4 = 16x)
    assert work[8] < 4 * work[4], work


@pytest.mark.parametrize("kind", ["softmax", "layernorm"])
def test_depth_12_gradient_equals_autograd(kind):
    d, n = uf.dims("d n")
    E = _nested(kind, 12, d, n)
    g = E.grad("Y")
    assert tree_size(g) > 4000  # as a tree the gradient is large: shared sub-trees are what keep it cheap
    gen = torch.Generator().manual_seed(0)
    y, x = (torch.randn(2, 4, 3, dtype=torch.float64, generator=gen) for _ in range(2))
    got = E.compile().grad_fn("Y")(y, x)
    want = torch.stack([grad(_reference(kind, 12, x[b]))(y[b]) for b in range(2)])
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 1e-10 * max(scale, 1e-300), (got - want).abs().max()


def test_shared_display_names_repeated_subtrees_and_reads_back_to_the_gradient():
    d, n = uf.dims("d n")
    E = _nested("softmax", 5, d, n)
    g = E.grad("Y")
    shown, defs = with_shared(g, limit=50)
    assert defs and tree_size(shown) < tree_size(g)
    assert all(tree_size(body) < 60 for _, body in defs)  # each definition is small
    back = shown
    for name, body in reversed(defs):  # substitute the definitions back, outermost first
        back = back.xreplace({name: body})
    assert back == g
    assert with_shared(g, limit=10 ** 9) == (g, [])  # small expressions are shown as they are


def test_cli_derive_depth_12_softmax_prints_named_subtrees(capsys):
    text = "fro2(" + "softmax(" * 12 + "Y" + ")" * 12 + ")"
    rc = cli.main(["derive", text, "--dims", "d n", "--state", "Y:d,n"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "where t_1 = Softmax_cols(Y)" in out
    assert len(out) < 40_000  # the tree written out would be millions of characters


def _check_derived(g: Basic, Y: Basic) -> None:
    """Validation and smoothness inspection of a derived gradient, as building an energy from it
    (``‖∇E‖²``) and a gradient step on such an energy do."""
    from unfold.steps.smoothness import jump_factor
    from unfold.symbolic.validate import check_expression, check_shapes

    check_shapes(g)
    check_expression(uf.fro2(g))  # uf.fro2 itself validates its argument's shapes
    uf.Energy(uf.fro2(g) + uf.fro2(Y))
    assert jump_factor(g) is None


@pytest.mark.parametrize("kind", ["softmax", "layernorm"])
def test_validation_and_jump_search_of_a_derived_gradient_grow_linearly_with_depth(kind, monkeypatch):
    work = {}
    for depth in (4, 8):
        d, n = uf.dims(f"dv{kind}{depth} nv{kind}{depth}")
        E = _nested(kind, depth, d, n)
        g = E.grad("Y")  # derived outside the count: only the walks over it are counted
        counter = _WorkCounter(monkeypatch)
        _check_derived(g, E.symbol("Y"))
        work[depth] = counter.calls
        monkeypatch.undo()
    assert work[8] < 4 * work[4], work  # a walk of the tree: 2^4 = 16x
