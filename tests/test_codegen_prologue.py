"""The prologue of a generated function: it assigns only the dims (and ``_dt``/``_dev``) the body
reads, while the binding call still checks every dim of every input; a name the code reads but
never binds is refused when the source is compiled, not at the first call."""

import pytest
import torch

import unfold as uf
from unfold.codegen import compile_source
from unfold.codegen.generate import Output, lower


def _ista_like() -> tuple[uf.Energy, tuple[int, int]]:
    """``½‖Zh − D Z‖²``: its gradient reads no dim at all (d and n are only checked)."""
    d, n = uf.dims("d n")
    Z, D, Zh = uf.state("Z", d, n), uf.param("D", d, d), uf.param("Zh", d, n)
    return uf.Energy(uf.fro2(Zh - D * Z) / 2), (3, 5)


def _inputs(d: int, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"Z": torch.randn(2, d, n, generator=g, dtype=torch.float64),
            "D": torch.randn(d, d, generator=g, dtype=torch.float64),
            "Zh": torch.randn(2, d, n, generator=g, dtype=torch.float64)}


def test_gradient_reading_no_dim_matches_closed_form():
    E, (d, n) = _ista_like()
    x = _inputs(d, n)
    grad = E.compile().grad_fn("Z")
    got = grad(*(x[str(a)] for a in grad.inputs))
    want = -x["D"].mT @ (x["Zh"] - x["D"] @ x["Z"])
    assert torch.allclose(got, want, atol=1e-13, rtol=0)


@pytest.mark.parametrize("checked", [False, True], ids=["cached", "finite_checks"])
@pytest.mark.parametrize("bad", ["n", "d"])
def test_unread_dim_is_still_checked(bad: str, checked: bool):
    """The gradient's body reads neither d nor n (asked of its graph); an input inconsistent in
    either still raises DimMismatchError naming the dim, on the cached and the checked path."""
    E, (d, n) = _ista_like()
    graph = lower("grad_Z", E.inputs, [Output("grad", E.grad("Z"), E.inputs[0])])
    assert not {"d", "n"} & graph.leaves_read()
    grad = E.compile().grad_fn("Z")
    x = _inputs(d, n)
    grad(*(x[str(a)] for a in grad.inputs))  # the consistent call first: the binding is cached
    x["Zh"] = x["Zh"][..., :-1] if bad == "n" else x["Zh"][..., :-1, :]
    with uf.finite_checks(checked), pytest.raises(uf.DimMismatchError, match=f"dimension '{bad}'.*'Zh'"):
        grad(*(x[str(a)] for a in grad.inputs))


def test_read_dims_are_bound_and_unread_ones_checked():
    """``‖Y‖²/n + tr(W + I_d) + ‖VY‖² + tr(U)``: n and d are read (``I_d`` needs d), m is only
    checked.  Values against the formula; inputs inconsistent in d or in m are refused."""
    d, n, m = uf.dims("d n m")
    Y, W = uf.state("Y", d, n), uf.param("W", d, d)
    V, U = uf.param("V", m, d), uf.param("U", m, m)
    E = uf.Energy(uf.fro2(Y) / n + uf.trace(W + uf.identity(d)) + uf.fro2(V * Y) + uf.trace(U))
    assert lower("energy", E.inputs, [Output("scalar", E.expr)]).leaves_read() & {"d", "n", "m"} == {"d", "n"}
    f = E.compile().energy_fn
    g = torch.Generator().manual_seed(1)
    vals = {"Y": torch.randn(4, 3, 5, generator=g, dtype=torch.float64),
            "W": torch.randn(3, 3, generator=g, dtype=torch.float64),
            "V": torch.randn(2, 3, generator=g, dtype=torch.float64),
            "U": torch.randn(2, 2, generator=g, dtype=torch.float64)}
    got = f(*(vals[str(a)] for a in f.inputs))
    want = (vals["Y"].square().sum((-2, -1)) / 5 + torch.diagonal(vals["W"]).sum() + 3
            + (vals["V"] @ vals["Y"]).square().sum((-2, -1)) + torch.diagonal(vals["U"]).sum())
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    for name, shape, dim in [("V", (2, 4), "d"), ("U", (3, 3), "m")]:
        bad = {**vals, name: torch.randn(*shape, generator=g, dtype=torch.float64)}
        with pytest.raises(uf.DimMismatchError, match=f"dimension '{dim}'"):
            f(*(bad[str(a)] for a in f.inputs))


def test_source_reading_an_unbound_name_is_refused_at_compile_time():
    src = ("def f(X):\n"
           "    _bind_dims((('X', ('n', 'm',), ()),), (X,))\n"
           "    return X * n\n")
    with pytest.raises(uf.UnsupportedNodeError, match=r"\['n'\]"):
        compile_source("f", src)
