"""``CompiledEnergy``: the generated torch functions of one :class:`~unfold.Energy`.

``energy_fn(*inputs)`` returns the energy with shape ``(...)`` (the batch shape);
``grad_fn(wrt)(*inputs)`` returns ∂E/∂wrt with ``wrt``'s runtime shape; ``autograd_grad`` is
``torch.func.grad`` of ``energy_fn`` (the independent leg of the gradient check).  Inputs go in the
order of ``Energy.inputs`` (states, parameters, scalars by name) or by keyword.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import torch
from sympy import Basic

from ..errors import InputError
from .generate import GeneratedFunction, Output, generate

__all__ = ["CompiledEnergy"]


class CompiledEnergy:
    """Generated energy, per-term energies and gradients of an energy."""

    def __init__(self, energy: Any) -> None:
        self.energy = energy
        self.inputs: tuple[Basic, ...] = energy.inputs
        self.names = [str(s) for s in self.inputs]
        self.energy_fn: GeneratedFunction = generate("energy", self.inputs, [Output("scalar", energy.expr)])
        self._grad_fns: dict[Basic, GeneratedFunction] = {}
        self._term_fns: dict[str, GeneratedFunction] = {}

    # ---- argument handling -------------------------------------------------------------------------
    def args(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Positional arguments in ``inputs`` order from positional and/or keyword arguments."""
        if len(args) > len(self.names):
            raise InputError(f"too many arguments: expected {self.names}")
        values = dict(zip(self.names, args))
        for k, v in kwargs.items():
            if k not in self.names:
                raise InputError(
                    f"unknown input {k!r}: the energy does not depend on it (its inputs are {self.names}); "
                    "a symbol you wrote can cancel when the energy is built (inv(S)·S = I, Y − Y = 0), "
                    "and then it is not an input"
                )
            if k in values:
                raise InputError(f"input {k!r} given twice")
            values[k] = v
        missing = [n for n in self.names if n not in values]
        if missing:
            raise InputError(f"missing input(s) {missing}; the energy's inputs are {self.names}")
        return tuple(values[n] for n in self.names)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.energy_fn(*self.args(*args, **kwargs))

    # ---- per term ----------------------------------------------------------------------------------
    def term_fn(self, name: str) -> GeneratedFunction:
        if name not in self._term_fns:
            self._term_fns[name] = generate(
                f"energy_{name}", self.inputs, [Output("scalar", self.energy.terms[name])]
            )
        return self._term_fns[name]

    def breakdown(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The energy of every named term."""
        a = self.args(*args, **kwargs)
        return {k: self.term_fn(k)(*a) for k in self.energy.terms}

    # ---- gradients ---------------------------------------------------------------------------------
    def _var(self, wrt: Union[Basic, str]) -> Basic:
        return self.energy._resolve(wrt)

    def grad_fn(self, wrt: Union[Basic, str]) -> GeneratedFunction:
        """The generated gradient function for ``wrt`` (unchecked; :func:`unfold.verify.checked_grad_fn`
        returns it after the gradient check)."""
        v = self._var(wrt)
        if v not in self._grad_fns:
            self._grad_fns[v] = generate(f"grad_{v}", self.inputs, [Output("grad", self.energy.grad(v), v)])
        return self._grad_fns[v]

    def grad(self, wrt: Union[Basic, str], *args: Any, **kwargs: Any) -> torch.Tensor:
        """∂E/∂wrt at the given inputs by the generated gradient (unchecked: layers get theirs through
        :func:`unfold.verify.checked_grad_fn`, after the two-leg check)."""
        return self.grad_fn(wrt)(*self.args(*args, **kwargs))

    def autograd_grad(self, wrt: Union[Basic, str]) -> Callable[..., torch.Tensor]:
        """``torch.func.grad`` of the summed generated energy with respect to ``wrt``."""
        i = self.inputs.index(self._var(wrt))
        fn = self.energy_fn.fn

        def g(*args: Any) -> torch.Tensor:
            def f(x: torch.Tensor) -> torch.Tensor:
                a = list(args)
                a[i] = x
                return fn(*a).sum()

            return torch.func.grad(f)(args[i])

        return g

    def autograd_grads(self, wrt: Sequence[Union[Basic, str]]) -> Callable[..., tuple[torch.Tensor, ...]]:
        """``torch.func.grad`` of the summed generated energy with respect to every input in ``wrt``
        at once (one forward and one backward pass); the inputs in ``wrt`` must be tensors."""
        idx = tuple(self.inputs.index(self._var(w)) for w in wrt)
        fn = self.energy_fn.fn

        def g(*args: Any) -> tuple[torch.Tensor, ...]:
            def f(*xs: torch.Tensor) -> torch.Tensor:
                a = list(args)
                for i, x in zip(idx, xs):
                    a[i] = x
                return fn(*a).sum()

            return torch.func.grad(f, argnums=tuple(range(len(idx))))(*(args[i] for i in idx))

        return g

    def torch_source(self) -> str:
        parts = [self.energy_fn.source] + [g.source for g in self._grad_fns.values()]
        return "\n".join(parts)

