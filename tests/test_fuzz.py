"""Property-based fuzzing of the gradient engine, the torch printer and the gradient check.

Random energies are drawn from a typed grammar over every primitive (depth ≤ 5).  Each grammar node
is built twice: as an unfold expression and as a plain-torch reference written directly from the
primitive's definition (softmax as exp/Σexp, layer norm from mean and biased variance, ...).  The
reference gradient is ``torch.autograd`` of the reference energy, so it shares nothing with
unfold's VJP engine, its printer or its explicit-size leg.

Property: for every drawn energy, every variable's derived gradient obtained through the public,
checked path (``unfold.verify.checked_grad_fn``) is either refused with an ``UnfoldError`` or
agrees with the reference (scaled error ≤ 1e-7 in float64); the generated energy agrees with the
reference energy too.  A refusal by ``GradientCheckError`` means the engine derived something wrong
but the check caught it: those are counted and must also be zero (an engine bug either way).

Profiles: CI (default) draws ``UNFOLD_FUZZ_EXAMPLES`` = 25 examples, derandomized, well under 60 s;
``UNFOLD_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -s`` is the long profile (prints the tallies).
"""

from __future__ import annotations

import collections
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from unfold.errors import GradientCheckError, UnfoldError
from unfold.symbolic import Energy, ops
from unfold.symbolic.symbols import dims, param, scalar, state
from unfold.verify.certificates import checked_grad_fn
from unfold.verify.scaled import scaled_error

N_EXAMPLES = int(os.environ.get("UNFOLD_FUZZ_EXAMPLES", "25"))
LONG = N_EXAMPLES > 25
MAX_DEPTH = 5
TOL = 1e-7

d, n = dims("d n")
SIZES = {"d": 4, "n": 3}
DIMS = {"d": d, "n": n, 1: 1}
Y, x = state("Y", d, n), state("x", d, 1)
X, W, A = param("X", d, n), param("W", d, d), param("A", n, n)
beta, c = scalar("beta", positive=True), scalar("c")
LEAVES = {("d", "n"): [Y, X], ("d", "d"): [W], ("n", "n"): [A], ("d", 1): [x]}
SHAPES = [("d", "n"), ("n", "d"), ("d", "d"), ("n", "n"), ("d", 1), (1, "n"), (1, 1), ("n", 1)]

Env = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Node:
    """An unfold expression and its independent plain-torch reference."""

    sym: Any
    ref: Callable[[Env], torch.Tensor]  # matrices (..., r, c); scalars (...)
    text: str


def _size(k: Any) -> int:
    return SIZES[k] if isinstance(k, str) else k


# ---- reference definitions (plain torch, from the textbook definitions) ---------------------------
def _softmax_ref(M: torch.Tensor, axis: int) -> torch.Tensor:
    dim = -2 if axis == 0 else -1
    e = torch.exp(M - M.amax(dim=dim, keepdim=True).detach())
    return e / e.sum(dim=dim, keepdim=True)


def _lse_ref(M: torch.Tensor, dim: int) -> torch.Tensor:
    m = M.amax(dim=dim, keepdim=True).detach()
    return m + torch.log(torch.exp(M - m).sum(dim=dim, keepdim=True))


def _layernorm_ref(M: torch.Tensor, eps: float, axis: int) -> torch.Tensor:
    dim = -2 if axis == 0 else -1
    mu = M.mean(dim=dim, keepdim=True)
    var = ((M - mu) ** 2).mean(dim=dim, keepdim=True)
    return (M - mu) / torch.sqrt(var + eps)


def _eye(k: Any, like: Env) -> torch.Tensor:
    return torch.eye(_size(k), dtype=torch.float64)


# ---- grammar ---------------------------------------------------------------------------------------
def _mat_leaf(draw: Any, shape: tuple[Any, Any]) -> Node:
    r, cc = shape
    options: list[Node] = [
        Node(s, (lambda e, s=str(s): e[s]), str(s)) for s in LEAVES.get(shape, [])
    ]
    if r == cc:
        options.append(Node(ops.identity(DIMS[r]), lambda e, r=r: _eye(r, e), f"I_{r}"))
    options.append(
        Node(ops.ones(DIMS[r], DIMS[cc]), lambda e, r=r, cc=cc: torch.ones(_size(r), _size(cc), dtype=torch.float64),
             f"ones({r},{cc})")
    )
    if (cc, r) in LEAVES:  # a transposed leaf
        s = draw(st.sampled_from(LEAVES[(cc, r)]))
        options.append(Node(s.T, lambda e, s=str(s): e[s].mT, f"{s}.T"))
    return draw(st.sampled_from(options))


@st.composite
def matrix(draw: Any, shape: tuple[Any, Any], depth: int) -> Node:
    """A matrix expression of the given shape (keys 'd', 'n' or 1)."""
    r, cc = shape
    if depth <= 0:
        return _mat_leaf(draw, shape)
    kind = draw(st.sampled_from([
        "leaf", "add", "sub", "scale", "matmul", "transpose", "ew", "hadamard", "hpow", "softmax",
        "layernorm", "soft_threshold", "lse", "inv", "matpow", "neg",
    ]))
    sub = depth - 1
    if kind == "leaf":
        return _mat_leaf(draw, shape)
    if kind in ("add", "sub"):
        a, b = draw(matrix(shape, sub)), draw(matrix(shape, sub))
        if kind == "add":
            return Node(a.sym + b.sym, lambda e: a.ref(e) + b.ref(e), f"({a.text} + {b.text})")
        return Node(a.sym - b.sym, lambda e: a.ref(e) - b.ref(e), f"({a.text} - {b.text})")
    if kind == "neg":
        a = draw(matrix(shape, sub))
        return Node(-a.sym, lambda e: -a.ref(e), f"-{a.text}")
    if kind == "scale":
        s, a = draw(scalar_expr(sub)), draw(matrix(shape, sub))
        return Node(s.sym * a.sym, lambda e: s.ref(e)[..., None, None] * a.ref(e), f"{s.text}*{a.text}")
    if kind == "matmul":
        k = draw(st.sampled_from(["d", "n", 1]))
        a, b = draw(matrix((r, k), sub)), draw(matrix((k, cc), sub))
        return Node(a.sym * b.sym, lambda e: a.ref(e) @ b.ref(e), f"({a.text} @ {b.text})")
    if kind == "transpose":
        a = draw(matrix((cc, r), sub))
        return Node(a.sym.T, lambda e: a.ref(e).mT, f"{a.text}.T")
    if kind == "ew":
        f = draw(st.sampled_from(["exp", "tanh", "sigmoid", "relu", "abs", "sqrt1p", "softplus", "log", "sqrt"]))
        a = draw(matrix(shape, sub))
        if f == "sqrt1p":  # sqrt(1 + M∘M): always in the domain
            sq = ops.hpow(a.sym, 2)
            return Node(ops.sqrt(ops.ones(DIMS[r], DIMS[cc]) + sq), lambda e: torch.sqrt(1 + a.ref(e) ** 2),
                        f"sqrt(1+{a.text}^2)")
        if f == "softplus":
            return Node(ops.log(ops.ones(DIMS[r], DIMS[cc]) + ops.exp(a.sym)),
                        lambda e: torch.log(1 + torch.exp(a.ref(e))), f"softplus({a.text})")
        fn = {"exp": ops.exp, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "relu": ops.relu, "abs": ops.abs_,
              "log": ops.log, "sqrt": ops.sqrt}[f]
        tf = {"exp": torch.exp, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
              "abs": torch.abs, "log": torch.log, "sqrt": torch.sqrt}[f]
        return Node(fn(a.sym), lambda e: tf(a.ref(e)), f"{f}({a.text})")
    if kind == "hadamard":
        a, b = draw(matrix(shape, sub)), draw(matrix(shape, sub))
        return Node(ops.hadamard(a.sym, b.sym), lambda e: a.ref(e) * b.ref(e), f"({a.text} ∘ {b.text})")
    if kind == "hpow":
        p = draw(st.sampled_from([2, 3]))
        a = draw(matrix(shape, sub))
        return Node(ops.hpow(a.sym, p), lambda e: a.ref(e) ** p, f"{a.text}^∘{p}")
    if kind == "softmax":
        axis = draw(st.sampled_from([0, 1]))
        a = draw(matrix(shape, sub))
        return Node(ops.softmax(a.sym, axis=axis), lambda e: _softmax_ref(a.ref(e), axis), f"softmax{axis}({a.text})")
    if kind == "layernorm":
        axis = draw(st.sampled_from([0, 1]))
        eps = draw(st.sampled_from([1e-5, 0.1, 1]))
        gain = draw(st.sampled_from([None, 2, "beta"]))
        a = draw(matrix(shape, sub))
        g = None if gain is None else (beta if gain == "beta" else gain)
        sym = ops.layernorm(a.sym, eps, gain=g, axis=axis)

        def ref(e: Env, a: Node = a) -> torch.Tensor:
            out = _layernorm_ref(a.ref(e), eps, axis)
            if gain is None:
                return out
            return (e["beta"][..., None, None] if gain == "beta" else gain) * out

        return Node(sym, ref, f"LN{axis}({a.text}, {eps}, {gain})")
    if kind == "soft_threshold":
        t = draw(st.sampled_from([0.1, "beta"]))
        a = draw(matrix(shape, sub))
        sym = ops.soft_threshold(a.sym, beta if t == "beta" else t)

        def ref(e: Env, a: Node = a) -> torch.Tensor:
            v = a.ref(e)
            tt = e["beta"][..., None, None] if t == "beta" else t
            return torch.sign(v) * torch.clamp(v.abs() - tt, min=0)

        return Node(sym, ref, f"S_{t}({a.text})")
    if kind == "lse" and (r == 1 or cc == 1):
        if r == 1:  # column-wise lse of a (k × cc) matrix
            k = draw(st.sampled_from(["d", "n"]))
            a = draw(matrix((k, cc), sub))
            return Node(ops.lse_cols(a.sym), lambda e: _lse_ref(a.ref(e), -2), f"lse_cols({a.text})")
        k = draw(st.sampled_from(["d", "n"]))
        a = draw(matrix((r, k), sub))
        return Node(ops.lse_rows(a.sym), lambda e: _lse_ref(a.ref(e), -1), f"lse_rows({a.text})")
    if kind == "inv" and r == cc:
        k = draw(st.sampled_from(["d", "n"]))
        a = draw(matrix((r, k), sub))  # (I + a aᵀ)⁻¹ is always defined
        M = ops.identity(DIMS[r]) + a.sym * a.sym.T
        return Node(ops.inv(M), lambda e: torch.linalg.inv(_eye(r, e) + a.ref(e) @ a.ref(e).mT),
                    f"inv(I + {a.text}{a.text}ᵀ)")
    if kind == "matpow" and r == cc and (r, cc) in LEAVES:
        s = draw(st.sampled_from(LEAVES[(r, cc)]))
        p = draw(st.sampled_from([2, 3, -1]))
        return Node(s ** p, lambda e, s=str(s): torch.linalg.matrix_power(e[s], p), f"{s}**{p}")
    return _mat_leaf(draw, shape)


@st.composite
def scalar_expr(draw: Any, depth: int) -> Node:
    """A scalar expression (reference returns shape (...) )."""
    if depth <= 0:
        kind = draw(st.sampled_from(["beta", "c", "num"]))
    else:
        kind = draw(st.sampled_from([
            "fro2", "sum", "l1", "trace", "det", "logdet", "lse", "quad", "add", "mul", "div", "fn",
            "beta", "c", "num", "pow",
        ]))
    sub = depth - 1
    if kind == "beta":
        return Node(beta, lambda e: e["beta"], "beta")
    if kind == "c":
        return Node(c, lambda e: e["c"], "c")
    if kind == "num":
        v = draw(st.sampled_from([2, sp.Rational(1, 2), sp.Float(0.3), -1]))
        return Node(v, lambda e: torch.tensor(float(v), dtype=torch.float64), str(v))
    if kind in ("fro2", "sum", "l1", "lse"):
        shape = draw(st.sampled_from(SHAPES))
        a = draw(matrix(shape, sub))
        if kind == "fro2":
            return Node(ops.fro2(a.sym), lambda e: (a.ref(e) ** 2).sum((-2, -1)), f"fro2({a.text})")
        if kind == "sum":
            return Node(ops.sum_entries(a.sym), lambda e: a.ref(e).sum((-2, -1)), f"sum({a.text})")
        if kind == "l1":
            return Node(ops.l1(a.sym), lambda e: a.ref(e).abs().sum((-2, -1)), f"l1({a.text})")
        axis = draw(st.sampled_from([0, 1]))
        return Node(ops.lse(a.sym, axis=axis),
                    lambda e: _lse_ref(a.ref(e), -2 if axis == 0 else -1).sum((-2, -1)), f"lse{axis}({a.text})")
    if kind in ("trace", "det"):
        k = draw(st.sampled_from(["d", "n"]))
        a = draw(matrix((k, k), sub))
        if kind == "trace":
            return Node(ops.trace(a.sym), lambda e: torch.diagonal(a.ref(e), dim1=-2, dim2=-1).sum(-1),
                        f"tr({a.text})")
        return Node(ops.det(a.sym), lambda e: torch.linalg.det(a.ref(e)), f"det({a.text})")
    if kind == "logdet":
        k = draw(st.sampled_from(["d", "n"]))
        m = draw(st.sampled_from(["d", "n", 1]))
        a = draw(matrix((k, m), sub))
        M = ops.identity(DIMS[k]) + a.sym * a.sym.T
        return Node(ops.logdet(M),
                    lambda e: torch.logdet(_eye(k, e) + a.ref(e) @ a.ref(e).mT), f"logdet(I + {a.text}{a.text}ᵀ)")
    if kind == "quad":
        a = draw(matrix((1, 1), sub))
        return Node(ops.as_scalar(a.sym), lambda e: a.ref(e)[..., 0, 0], f"[{a.text}]")
    if kind in ("add", "mul"):
        a, b = draw(scalar_expr(sub)), draw(scalar_expr(sub))
        if kind == "add":
            return Node(a.sym + b.sym, lambda e: a.ref(e) + b.ref(e), f"({a.text} + {b.text})")
        return Node(a.sym * b.sym, lambda e: a.ref(e) * b.ref(e), f"({a.text} * {b.text})")
    if kind == "div":
        a, b = draw(scalar_expr(sub)), draw(scalar_expr(sub))
        return Node(a.sym / (2 + sp.tanh(b.sym)), lambda e: a.ref(e) / (2 + torch.tanh(b.ref(e))),
                    f"{a.text}/(2+tanh {b.text})")
    if kind == "pow":
        a = draw(scalar_expr(sub))
        p = draw(st.sampled_from([2, 3]))
        return Node(ops.power(a.sym, p), lambda e: a.ref(e) ** p, f"{a.text}^{p}")
    f = draw(st.sampled_from(["exp", "tanh", "sigmoid", "sqrt1p", "log1p2"]))
    a = draw(scalar_expr(sub))
    if f == "exp":
        return Node(ops.exp(a.sym), lambda e: torch.exp(a.ref(e)), f"exp({a.text})")
    if f == "tanh":
        return Node(ops.tanh(a.sym), lambda e: torch.tanh(a.ref(e)), f"tanh({a.text})")
    if f == "sigmoid":
        return Node(ops.sigmoid(a.sym), lambda e: torch.sigmoid(a.ref(e)), f"sigmoid({a.text})")
    if f == "sqrt1p":
        return Node(ops.sqrt(1 + a.sym ** 2), lambda e: torch.sqrt(1 + a.ref(e) ** 2), f"sqrt(1+{a.text}²)")
    return Node(ops.log(1 + a.sym ** 2), lambda e: torch.log(1 + a.ref(e) ** 2), f"log(1+{a.text}²)")


# ---- inputs and the property -----------------------------------------------------------------------
def _inputs(seed: int) -> Env:
    g = torch.Generator().manual_seed(seed)
    B = 3  # equal to n on purpose: torch.linalg.solve reads an (n, n) right-hand side as n vectors then

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    dd, nn_ = SIZES["d"], SIZES["n"]
    return {
        "Y": 0.5 * rnd(B, dd, nn_), "x": 0.5 * rnd(B, dd, 1), "X": 0.5 * rnd(dd, nn_),
        "W": 2 * torch.eye(dd, dtype=torch.float64) + 0.3 * rnd(dd, dd),
        "A": 2 * torch.eye(nn_, dtype=torch.float64) + 0.3 * rnd(nn_, nn_),
        "beta": torch.tensor(0.5 + float(torch.rand((), generator=g, dtype=torch.float64)), dtype=torch.float64),
        "c": torch.tensor(float(rnd(())), dtype=torch.float64),
    }


def _scaled(a: torch.Tensor, b: torch.Tensor) -> float:
    if not torch.isfinite(a).all() or not torch.isfinite(b).all():
        return math.inf
    return scaled_error(a, b)


TALLY: collections.Counter[str] = collections.Counter()
WORST = [0.0]


def _reference(node: Node, names: list[str], env: Env) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    leaves = {k: v.clone().requires_grad_(True) for k, v in env.items()}
    value = node.ref(leaves)
    value = value.expand(2) if value.dim() == 0 else value
    grads = torch.autograd.grad(value.sum(), [leaves[k] for k in names], allow_unused=True)
    return value.detach(), {
        k: (g if g is not None else torch.zeros_like(env[k])) for k, g in zip(names, grads)
    }


def check_one(node: Node, seed: int) -> str:
    """Run the property on one energy; returns the outcome label (raises on a silent mismatch)."""
    expr = sp.sympify(node.sym)  # safe: a number or a sympy expression built by the grammar
    if not (expr.has(Y) or expr.has(x)):
        expr = expr + ops.fro2(Y) / 2
        node = Node(expr, lambda e, r=node.ref: r(e) + (e["Y"] ** 2).sum((-2, -1)) / 2, node.text + " + fro2(Y)/2")
    try:
        E = Energy(expr)
        cm = E.compile()
    except UnfoldError as exc:
        return f"refused at build: {type(exc).__name__}"
    env = _inputs(seed)
    names = [str(s) for s in E.inputs]
    ref_value, ref_grads = _reference(node, names, env)
    if not torch.isfinite(ref_value).all() or not all(torch.isfinite(g).all() for g in ref_grads.values()):
        return "outside the domain at the test point"
    args = cm.args(**{k: (float(env[k]) if k in ("beta", "c") else env[k]) for k in names})
    value = cm.energy_fn(*args)
    err = _scaled(value, ref_value)
    assert err <= TOL, f"generated energy disagrees with the reference ({err:.2e}) for {node.text}"
    for v in E.inputs:
        try:
            g = checked_grad_fn(cm.energy, v)(*args)
        except GradientCheckError as exc:
            raise AssertionError(f"engine derived a wrong gradient (caught by the check) for {node.text}:\n{exc}") from exc
        except UnfoldError as exc:
            return f"refused: {type(exc).__name__}"
        err = _scaled(torch.as_tensor(g), ref_grads[str(v)])
        WORST[0] = max(WORST[0], err)
        assert err <= TOL, (
            f"UNREFUSED MISMATCH: gradient wrt {v} disagrees with the independent reference "
            f"({err:.2e}) for {node.text}\nderived: {E.grad(v)}"
        )
    return "agrees"


@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: the failure message names the energy
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(energy=st.integers(1, MAX_DEPTH).flatmap(scalar_expr), seed=st.integers(0, 2**16))
def test_random_energies_gradient_agrees_or_is_refused(energy: Node, seed: int) -> None:
    TALLY[check_one(energy, seed)] += 1


def test_fuzz_tally_report() -> None:
    """Prints the tallies of the property run (``-s``); asserts the property actually exercised energies."""
    if not TALLY:
        pytest.skip("run together with the property test")
    print(f"\nfuzz tallies over {sum(TALLY.values())} examples: {dict(TALLY)}; worst agreeing error {WORST[0]:.2e}")
    assert TALLY["agrees"] >= 0.5 * sum(TALLY.values())


# ---- regressions: foundation bugs this fuzzer found (each fixed in unfold/codegen) -----------------
def _autograd_sum(E: Energy, wrt: str, env: Env) -> torch.Tensor:
    cm = E.compile()
    return cm.autograd_grad(wrt)(*cm.args(**env))


def test_regression_unbatched_param_term_counts_once_per_batch_element() -> None:
    """``fro2(W)`` with W unbatched and Y batched (B=3): the energy is (B,), so ∂(Σ_b E_b)/∂W = 2·B·W.
    The generated gradient used to return 2W (not batch-summed)."""
    E = Energy(ops.fro2(W) + ops.fro2(Y) / 2)
    env = {"Y": torch.randn(3, 4, 3, dtype=torch.float64), "W": torch.randn(4, 4, dtype=torch.float64)}
    g = E.compile().grad_fn("W")(*E.compile().args(**env))
    torch.testing.assert_close(g, 6 * env["W"], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(g, _autograd_sum(E, "W", env), rtol=1e-13, atol=1e-13)


def test_regression_constant_scalar_derivative() -> None:
    """∂(2·beta)/∂beta = 2 is printed as a number; the generated gradient used to crash on it."""
    E = Energy(2 * beta + ops.fro2(Y))
    g = E.compile().grad_fn("beta")(*E.compile().args(Y=torch.zeros(3, 4, 3, dtype=torch.float64), beta=0.7))
    assert float(g) == 6.0  # summed over the batch of 3
    E = Energy(c * sp.tanh(2) + ops.fro2(Y))  # ∂/∂c = tanh(2), printed as a 0-d tensor
    g = E.compile().grad_fn("c")(*E.compile().args(Y=torch.zeros(3, 4, 3, dtype=torch.float64), c=0.7))
    assert abs(float(g) - 3 * math.tanh(2)) < 1e-15


@pytest.mark.parametrize("const, value", [
    (lambda: ops.fro2(ops.ones(d, 1)), 4.0), (lambda: ops.trace(ops.identity(d)), 4.0),
    (lambda: ops.sum_entries(ops.ones(d, n)), 12.0), (lambda: ops.logdet(ops.identity(n)), 0.0),
    (lambda: ops.det(ops.identity(d)), 1.0),
])
def test_regression_constant_matrix_terms_print(const: Callable[[], Any], value: float) -> None:
    """Terms such as tr(I_d) or ‖1‖² have only dims as free symbols; the printer used to hand them
    to sympy's pycode, which cannot print Trace/SumAll/LogDet."""
    E = Energy(const() + ops.fro2(Y))
    out = E.compile().energy_fn(*E.compile().args(Y=torch.zeros(2, 4, 3, dtype=torch.float64)))
    torch.testing.assert_close(out, torch.full((2,), value, dtype=torch.float64))


def test_regression_inverse_of_a_sum_on_the_right() -> None:
    """``B (A − A²)⁻¹`` prints as ``solve((A − A²)ᵀ, Bᵀ)ᵀ``; the transpose of the sum used to bind to
    its last term only (``A - A².mT``), a wrong gradient of ``det(A − A²)`` (caught by the check)."""
    E = Energy(ops.det(A - A ** 2) + ops.fro2(Y))
    a = 2 * torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    M = a - a @ a
    G = torch.linalg.det(M) * torch.linalg.inv(M).T  # ∂det M/∂M, then the chain rule through M = A − A²
    expected = G - G @ a.T - a.T @ G
    got = E.compile().grad_fn("A")(*E.compile().args(Y=torch.zeros(1, 4, 3, dtype=torch.float64), A=a))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_regression_nested_soft_threshold_kink() -> None:
    """``S_t(S_t(A))``: the inner threshold makes entries exactly 0, where the explicit-size leg met
    ``DiracDelta(0)·0`` and crashed with a raw TypeError; ``δ(a)·g = g(a)·δ(a) = 0`` there."""
    E = Energy(ops.fro2(ops.soft_threshold(ops.soft_threshold(A, 1), 1)) + ops.fro2(Y))
    result = check_gradient_public(E)
    assert result.passed and result.max_error < 1e-12


def check_gradient_public(E: Energy) -> Any:
    from unfold.verify import check_gradient

    return check_gradient(E)


def test_regression_hadamard_of_identities() -> None:
    """``I ∘ I`` (e.g. from derivatives of 1×1 terms): the diagonal shortcut of the printer used to
    build an empty HadamardProduct and crash."""
    E = Energy(ops.as_scalar(ops.hadamard(ops.identity(1), ops.identity(1))) + ops.sum_entries(ops.hadamard(ops.identity(d), W)) + ops.fro2(Y))
    w = torch.randn(4, 4, dtype=torch.float64)
    out = E.compile().energy_fn(*E.compile().args(Y=torch.zeros(2, 4, 3, dtype=torch.float64), W=w))
    torch.testing.assert_close(out, torch.full((2,), 1.0 + float(torch.diagonal(w).sum()), dtype=torch.float64))


def test_regression_composition_to_identity() -> None:
    """``log(1 + exp(log(1 + exp(Y))))``: sympy's ``doit`` composes exp∘log to its ``IdentityFunction``
    ``Lambda(_x, _x)`` (whose ``is_identity`` is False), which then failed validation as an undeclared
    symbol 'x'."""
    one = ops.ones(d, n)
    softplus = lambda M: ops.log(one + ops.exp(M))  # noqa: E731
    E = Energy(ops.fro2(softplus(softplus(Y))))
    y = torch.randn(2, 4, 3, dtype=torch.float64)
    ref = torch.nn.functional.softplus(torch.nn.functional.softplus(y))
    torch.testing.assert_close(E.compile().energy_fn(y), (ref ** 2).sum((-2, -1)), rtol=1e-13, atol=1e-13)
    assert check_gradient_public(E).passed


def test_regression_solve_with_unbatched_rhs_and_batch_equal_to_n() -> None:
    """``(I + YᵀY)⁻¹ 1`` with Y batched (B = n = 3) prints as a solve with an unbatched ``n×n``
    right-hand side, which ``torch.linalg.solve`` read as a batch of n vectors (a silently wrong
    gradient whenever the batch size equals n; caught by the check's batch of 3)."""
    one, I = ops.ones(n, n), ops.identity(n)
    E = Energy(ops.trace(ops.inv(I + Y.T * Y) * one * ops.inv(I + Y.T * Y)) + ops.fro2(Y))
    y = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    yy = y.clone().requires_grad_(True)
    Mi = torch.linalg.inv(yy.mT @ yy + torch.eye(3, dtype=torch.float64))
    ref = torch.diagonal(Mi @ torch.ones(3, 3, dtype=torch.float64) @ Mi, dim1=-2, dim2=-1).sum(-1) + (yy ** 2).sum((-2, -1))
    (g_ref,) = torch.autograd.grad(ref.sum(), yy)
    torch.testing.assert_close(E.compile().grad_fn("Y")(y), g_ref, rtol=1e-12, atol=1e-12)
    assert check_gradient_public(E).passed


def test_regression_irrational_constant_prints_as_float() -> None:
    """``sqrt(2)·c`` printed as ``torch.sqrt(2)`` (an int argument: TypeError)."""
    E = Energy(sp.sqrt(2) * c + ops.fro2(Y))
    out = E.compile().energy_fn(*E.compile().args(Y=torch.zeros(2, 4, 3, dtype=torch.float64), c=1.5))
    torch.testing.assert_close(out, torch.full((2,), 1.5 * math.sqrt(2), dtype=torch.float64))
