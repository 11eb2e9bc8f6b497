"""``unfold.parse``: energies read from text are the same energies as written in Python, and text
outside the whitelist is refused without anything being executed, in bounded time."""

from __future__ import annotations

import ast
import builtins
import time
import warnings

import pytest
import sympy as sp
import torch
from sympy.parsing import sympy_parser

import unfold as uf
from unfold.errors import (
    NotScalarError, ParseError, ShapeMismatchError, UndeclaredSymbolError, UnfoldError,
    UnsupportedNodeError,
)
from unfold.parse import (
    MAX_LENGTH, parse, parse_dims, parse_energy_spec, parse_expression, parse_matrix_spec,
    parse_scalar_spec,
)

HOPFIELD = "-lse(beta * X.T @ xi) / beta + fro2(xi) / 2"


def _hopfield_python() -> uf.Energy:
    d, n = uf.dims("d n")
    X, xi, beta = uf.param("X", d, n), uf.state("xi", d, 1), uf.scalar("beta", positive=True)
    return uf.Energy(-uf.lse(beta * X.T * xi) / beta + uf.fro2(xi) / 2)


# ---- what parses is what you would have written in Python ------------------------------------------
def test_hopfield_text_equals_python_energy() -> None:
    E = parse(HOPFIELD, dims="d n", states={"xi": "d"}, params={"X": "d,n"}, scalars=["beta:positive"])
    assert E.expr == _hopfield_python().expr
    d, n = uf.dims("d n")
    X, xi, beta = uf.param("X", d, n), uf.state("xi", d, 1), uf.scalar("beta", positive=True)
    assert E.update_rule(xi, 1) == X * uf.softmax(beta * X.T * xi)


def test_cli_spec_form_equals_dict_form() -> None:
    a = parse_energy_spec(HOPFIELD, "d n", ["xi:d"], ["X:d,n"], ["beta:positive"])
    b = parse(HOPFIELD, dims="d n", states={"xi": ("d", 1)}, params={"X": ("d", "n")}, scalars={"beta": "positive"})
    assert a.expr == b.expr == _hopfield_python().expr


@pytest.mark.parametrize("text, python", [
    ("fro2(Y - W*Y)/2", lambda Y, W, b: uf.fro2(Y - W * Y) / 2),
    ("fro2(Y - W@Y)/2", lambda Y, W, b: uf.fro2(Y - W * Y) / 2),
    ("sum_entries(relu(W @ Y)) + b*l1(Y)", lambda Y, W, b: uf.sum_entries(uf.relu(W * Y)) + b * uf.l1(Y)),
    ("-lse(Y.T @ W @ Y, axis=1)", lambda Y, W, b: -uf.lse(Y.T * W * Y, axis=1)),
    ("logdet(identity(d) + b * Y @ Y.T) / 2", lambda Y, W, b: uf.logdet(uf.identity(Y.rows) + b * Y * Y.T) / 2),
    ("fro2(layernorm(Y, 1e-5, gain=b))", lambda Y, W, b: uf.fro2(uf.layernorm(Y, 1e-5, gain=b))),
    ("trace(W**2 @ Y @ Y.T)", lambda Y, W, b: uf.trace(W ** 2 * Y * Y.T)),
    ("sum_entries(hadamard(Y, tanh(Y))) - 3", lambda Y, W, b: uf.sum_entries(uf.hadamard(Y, uf.tanh(Y))) - 3),
    ("fro2(soft_threshold(Y, 0.1)) + sum_entries(power(Y, 2))",
     lambda Y, W, b: uf.fro2(uf.soft_threshold(Y, 0.1)) + uf.sum_entries(uf.power(Y, 2))),
    ("sum_entries(ones(1, d) @ softmax(Y, axis=0))", lambda Y, W, b: uf.sum_entries(uf.ones(1, Y.rows) * uf.softmax(Y))),
    ("fro2(Y)**2 / n", lambda Y, W, b: uf.fro2(Y) ** 2 / Y.cols),
])
def test_text_matches_python(text: str, python) -> None:
    d, n = uf.dims("d n")
    Y, W, b = uf.state("Y", d, n), uf.param("W", d, d), uf.scalar("b")
    E = parse_energy_spec(text, "d n", ["Y:d,n"], ["W:d,d"], ["b"])
    assert E.expr == uf.Energy(python(Y, W, b)).expr
    uf.check_gradient(E)  # and it differentiates: both legs agree


def test_quadratic_form_is_a_scalar() -> None:
    """A 1×1 matrix (xiᵀ W xi) is a scalar where a scalar is needed."""
    E = parse_energy_spec("xi.T @ W @ xi / 2 + beta", "d", ["xi:d"], ["W:d,d"], ["beta"])
    grad = E.compile().grad_fn("xi")
    x, w = torch.randn(2, 3, 1, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    torch.testing.assert_close(grad(x, w, 1.0), 0.5 * (w + w.T) @ x)


def test_parse_expression_returns_matrices() -> None:
    M = parse_expression("W @ Y + Y", "d n", {"Y": "d,n"}, {"W": "d,d"})
    d, n = uf.dims("d n")
    assert M == uf.param("W", d, d) * uf.state("Y", d, n) + uf.state("Y", d, n)


def test_fixed_integer_sizes() -> None:
    E = parse_energy_spec("fro2(v) + sum_entries(M @ v)", "", ["v:3"], ["M:2,3"], [])
    assert E.states[0].shape == (3, 1) and E.params[0].shape == (2, 3)


def test_unused_declaration_warns() -> None:
    with pytest.warns(UserWarning, match="unused.*W"):
        parse_energy_spec("fro2(Y)", "d n", ["Y:d,n"], ["W:d,d"], [])


# ---- spec strings -----------------------------------------------------------------------------------
def test_spec_helpers() -> None:
    dims = parse_dims("d n")
    assert list(dims) == ["d", "n"]
    assert parse_matrix_spec("Y:d,n", dims) == ("Y", dims["d"], dims["n"])
    assert parse_matrix_spec("xi: d", dims) == ("xi", dims["d"], 1)
    assert parse_scalar_spec("beta:positive") == ("beta", True)
    assert parse_scalar_spec("c") == ("c", False)


@pytest.mark.parametrize("spec, exc, words", [
    ("Y", ParseError, "NAME:ROWS,COLS"),
    ("Y:d,n,m", ParseError, "NAME:ROWS,COLS"),
    ("Y:d,", ParseError, "NAME:ROWS,COLS"),
    ("Y:m,n", UndeclaredSymbolError, "'m' is not declared"),
    ("Y:dd,n", UndeclaredSymbolError, "did you mean 'd'"),
    ("Y:0,n", ParseError, "positive"),
])
def test_bad_matrix_specs(spec: str, exc: type, words: str) -> None:
    with pytest.raises(exc, match=words):
        parse_energy_spec("fro2(Y)", "d n", [spec], [], [])


@pytest.mark.parametrize("kwargs, words", [
    ({"dims": "d d"}, "declared twice"),
    ({"dims": "d exp"}, "name of a primitive"),
    ({"params": ["Y:d,n"]}, "declared twice"),
    ({"scalars": ["beta:complex"]}, "unknown kind"),
    ({"scalars": ["lse"]}, "primitive"),
    ({"states": []}, "at least one state"),
    ({"dims": "d n 2x"}, "invalid dimension name"),
])
def test_bad_declarations(kwargs: dict, words: str) -> None:
    args = {"dims": "d n", "states": ["Y:d,n"], "params": [], "scalars": []} | kwargs
    with pytest.raises(ParseError, match=words):
        parse_energy_spec("fro2(Y)", **args)


# ---- injection: refused with a clear message, nothing executed, bounded time ------------------------
INJECTIONS = [
    ("__import__('os').system('touch /tmp/unfold_pwned')", r"calling \.system\(\.\.\.\) is not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", r"calling \.__subclasses__"),
    ("Y.__class__", r"attribute \.__class__ is not allowed"),
    ("Y.T.__dict__", r"attribute \.__dict__"),
    ("fro2(Y).func", r"attribute \.func"),
    ("exp.__globals__", r"attribute \.__globals__"),
    ("(lambda: fro2(Y))()", "only unfold primitives can be called"),
    ("lambda: 1", "lambda expressions are not allowed"),
    ("[fro2(Y) for _ in range(10**9)]", "comprehensions are not allowed"),
    ("sum(fro2(Y) for i in [1])", "unsupported function 'sum'|generator"),
    ("eval('1')", "unsupported function 'eval'"),
    ("__import__('os')", "starting with '_'"),
    ("__builtins__", "starting with '_'"),
    ("exec('import os')", "unsupported function 'exec'"),
    ("open('/etc/passwd')", "unsupported function 'open'"),
    ("getattr(Y, 'T')", "unsupported function 'getattr'"),
    ("globals()", "unsupported function 'globals'"),
    ("'fro2(Y)'", "only numbers are allowed"),
    ("f'{Y}'", "f-strings"),
    ("fro2(Y) if True else 0", "conditional"),
    ("fro2(Y) or 1", "and/or"),
    ("(x := fro2(Y))", "assignment expressions|not declared"),
    ("Y[0, 0]", "subscripts"),
    ("fro2(Y); import os", "syntax error"),
    ("import os", "syntax error"),
    ("fro2(*[Y])", "starred|\\*args"),
    ("fro2(**{'M': Y})", "\\*\\*kwargs"),
    ("fro2(Y) == 1", "comparisons"),
    ("~Y", "operator Invert"),
    ("fro2(Y) % 2", "operator Mod"),
    ("1j * fro2(Y)", "only numbers"),
    ("True * fro2(Y)", "only numbers"),
    ("fro2(Y) ** 10 ** 10", "out of range"),
    ("9 ** 9 ** 9 * fro2(Y)", "out of range"),
    ("1" * 40 + " * fro2(Y)", "more than 30 digits"),
    ("1e999 * fro2(Y)", "not finite"),
    ("fro2(Y) / 0", "division by zero"),
    ("fro2(Y) + log(0)", "non-finite"),
    ("fro2(Y)\x00", "not allowed"),
    ("fro2(Y) − 1", "ASCII"),
]


@pytest.mark.parametrize("text, words", INJECTIONS, ids=[t[:30] for t, _ in INJECTIONS])
def test_injection_refused_without_executing(text: str, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    for name in ("eval", "exec", "compile", "open"):
        real = getattr(builtins, name)

        def spy(*a, _n=name, _real=real, **k):  # records any call (ast.parse's parse-only compile excepted)
            flags = k.get("flags", a[3] if len(a) > 3 else 0)
            if not (_n == "compile" and flags & ast.PyCF_ONLY_AST):
                called.append(_n)
            return _real(*a, **k)

        monkeypatch.setattr(builtins, name, spy)
    real_sympify = sp.sympify

    def sympify_spy(a, *args, **kw):
        if isinstance(a, str):
            called.append("sympify(str)")
        return real_sympify(a, *args, **kw)

    monkeypatch.setattr(sp, "sympify", sympify_spy)
    monkeypatch.setattr(sympy_parser, "parse_expr", lambda *a, **k: called.append("parse_expr"))
    t0 = time.perf_counter()
    with pytest.raises(UnfoldError, match=words) as info:
        parse_energy_spec(text, "d n", ["Y:d,n"], [], [])
    monkeypatch.undo()
    assert time.perf_counter() - t0 < 30.0  # a hang guard (e.g. 9**9**9 never evaluated), not a timing
    assert not called, called
    assert "Traceback" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__ or info.value.__context__ is None


def test_no_side_effect_file() -> None:
    import os

    with pytest.raises(ParseError):
        parse_energy_spec("__import__('os').system('touch /tmp/unfold_pwned_2')", "d n", ["Y:d,n"], [], [])
    assert not os.path.exists("/tmp/unfold_pwned_2")


@pytest.mark.parametrize("text, words", [
    ("(" * 500 + "fro2(Y)" + ")" * 500, "nested|too many nested|characters long"),
    ("-" * 1500 + "fro2(Y)", "nested more than"),
    ("exp(" * 300 + "fro2(Y)" + ")" * 300, "nested|too many nested"),
    ("fro2(Y)" + " + fro2(Y)" * 400, "characters long|more than"),
    ("+".join(["fro2(Y)"] * 240), "more than 600 parts|nested more than"),
    ("fro2(Y) + " + "1" * 3000, "characters long"),
])
def test_huge_or_deep_input_refused_quickly(text: str, words: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ParseError, match=words):
        parse_energy_spec(text, "d n", ["Y:d,n"], [], [])
    assert time.perf_counter() - t0 < 30.0  # a hang guard (e.g. 9**9**9 never evaluated), not a timing


def test_max_length_boundary_accepted() -> None:
    text = "fro2(Y)" + " " * (MAX_LENGTH - len("fro2(Y)"))
    assert parse_energy_spec(text, "d n", ["Y:d,n"], [], []).expr == parse_energy_spec("fro2(Y)", "d n", ["Y:d,n"], [], []).expr


def test_error_position_points_at_the_problem() -> None:
    with pytest.raises(UndeclaredSymbolError) as info:
        parse_energy_spec("fro2(Y) + betta * l1(Y)", "d n", ["Y:d,n"], [], ["beta"])
    assert info.value.position == 10
    assert "did you mean 'beta'" in str(info.value)
    assert "\n  fro2(Y) + betta * l1(Y)\n            ^" in str(info.value)


@pytest.mark.parametrize("text, exc, words", [
    ("Y * Y", ShapeMismatchError, r"product Y \* Y: Y is d×n but Y is d×n"),
    ("fro2(Y + W)", ShapeMismatchError, "need the same shape"),
    ("fro2(Y / Y)", ShapeMismatchError, "division by the d×n matrix"),
    ("fro2(Y) + Y", ShapeMismatchError, "sum of the d×n matrix"),
    ("fro2(Y**2)", ShapeMismatchError, "matrix power"),
    ("2 @ fro2(Y)", ShapeMismatchError, "@ needs two matrices"),
    ("fro2(Y).T", ShapeMismatchError, "only matrices can be transposed"),
    ("Y", NotScalarError, "d×n matrix, not a scalar"),
    ("sinh(fro2(Y))", UnsupportedNodeError, "unsupported function 'sinh'"),
    ("fro(Y)", UnsupportedNodeError, "did you mean 'fro2'"),
    ("fro2(Z)", UndeclaredSymbolError, "'Z' is not declared"),
    ("exp", ParseError, "exp is a function"),
    ("lse(Y, axis=2)", ParseError, "axis must be the literal 0"),
    ("lse(Y, axis=beta)", ParseError, "axis must be the literal 0"),
    ("fro2(Y, Y)", ParseError, "fro2"),
    ("fro2()", ParseError, "missing a required argument"),
    ("fro2(Y, foo=1)", ParseError, "unexpected keyword"),
    ("sum_entries(ones(q, 1)) + fro2(Y)", ShapeMismatchError, "takes dimensions"),
    ("logdet(Y)", ShapeMismatchError, "square"),
    ("sum_entries(layernorm(Y, 0))", ShapeMismatchError, "eps must be positive"),
    ("fro2(W)", ParseError, "does not depend on any declared state"),
])
def test_semantic_errors(text: str, exc: type, words: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=words):
            parse_energy_spec(text, "d n", ["Y:d,n"], ["W:d,d"], ["beta"])


def test_parsed_energy_is_checked_like_any_energy() -> None:
    E = parse_energy_spec("-lse(beta * X.T @ Xi) / beta + fro2(Xi) / 2", "d n m", ["Xi:d,m"], ["X:d,n"], ["beta:positive"])
    result = uf.check_gradient(E)
    assert result.passed and result.max_error < 1e-10
