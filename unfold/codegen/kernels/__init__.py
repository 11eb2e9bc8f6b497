"""Torch kernels that generated code calls by name, one module per primitive (or family).

A primitive whose lowering prints a call of a torch function of unfold's own (``_adjugate(A)``,
``_logdet_pd(M)``, …) names it in its record's ``kernels`` field
(:class:`~unfold.symbolic.primitives.registry.Primitive`; the symbolic layer holds names only, no
torch).  Code generation resolves those names here: every module of this package exposes
``KERNELS`` (name → function), and the modules are found by listing the package.  So a primitive
with a kernel is its module in :mod:`unfold.symbolic.primitives` plus its kernel module here, and
nothing else: the generated module's namespace (:func:`declared`) holds exactly the kernels the
registered primitives declare.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Any, Callable, Iterable

from ...errors import UnsupportedNodeError

__all__ = ["kernels", "resolve", "declared"]


@lru_cache(maxsize=1)
def kernels() -> dict[str, Callable[..., Any]]:
    """Every kernel of every module of this package, by the name generated code calls."""
    out: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, fn in getattr(module, "KERNELS", {}).items():
            if name in out:
                raise ValueError(f"kernel {name} defined twice (in {module.__name__} and elsewhere)")
            out[name] = fn
    return out


def resolve(names: Iterable[str], who: str = "a primitive") -> dict[str, Callable[..., Any]]:
    """The kernels called ``names``; a name no kernel module defines is an
    :class:`~unfold.errors.UnsupportedNodeError` naming it and ``who`` declared it."""
    table = kernels()
    missing = sorted(set(names) - set(table))
    if missing:
        raise UnsupportedNodeError(
            f"{who} declares torch kernel(s) {missing}, which no module of unfold.codegen.kernels "
            "defines (each kernel module exposes KERNELS = {name: function})")
    return {n: table[n] for n in names}


def declared() -> dict[str, Callable[..., Any]]:
    """The kernels every registered primitive and scalar function declares, resolved (not cached:
    a primitive registered after the first compile is seen; a few dict lookups per compile)."""
    from ...symbolic.primitives import primitives, scalar_functions

    out: dict[str, Callable[..., Any]] = {}
    for node, p in primitives().items():
        out.update(resolve(p.kernels, node.__name__))
    for name, f in scalar_functions().items():
        out.update(resolve(f.kernels, name))
    return out
