"""The common ground of every descent step: an ``nn.Module`` bound to one energy and one state.

A step owns the energy it descends (``step.energy(x, **inputs)`` always exists), the state it
updates (``wrt``) and the other inputs of the energy, which are either registered on the module at
construction (``params=`` as ``nn.Parameter``, ``buffers=`` as buffers; numbers become 0-d
buffers) or given at call time as keywords.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Optional, Union

import sympy as sp
import torch
from sympy import Basic
from torch import nn

from ..errors import InputError, UndeclaredSymbolError
from ..symbolic.energy import Energy, unique_name
from ..symbolic.symbols import ScalarParam, StateMatrix
from ..verify.certificates import checked_grad_fn

__all__ = ["EnergyStep", "resolve_state"]


def resolve_state(energy: Energy, wrt: Union[str, Basic], who: str) -> StateMatrix:
    """The state symbol ``wrt`` of ``energy`` (a name or the symbol itself), checked to be a state."""
    if not isinstance(energy, Energy):
        raise InputError(f"{who}: expected an unfold Energy, got {type(energy).__name__}")
    v = energy._resolve(wrt)
    if not isinstance(v, StateMatrix):
        raise UndeclaredSymbolError(
            f"{who}: {v} is not a state of the energy (declare it with uf.state); the states are "
            f"{[str(s) for s in energy.states]}"
        )
    return v


def _as_tensor(name: str, v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return torch.tensor(float(v), dtype=torch.get_default_dtype())
    raise InputError(f"input {name!r} must be a tensor or a number, got {type(v).__name__}")


class EnergyStep(nn.Module):
    """Base class: an ``nn.Module`` descending ``energy`` in the state ``wrt``.

    Subclasses implement ``forward(x, **inputs)``; this class supplies input handling,
    ``energy`` and ``energy_terms``.
    """

    def __init__(
        self,
        energy: Energy,
        wrt: Union[str, Basic],
        params: Optional[Mapping[str, Any]] = None,
        buffers: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.source_energy = energy
        self.wrt = resolve_state(energy, wrt, who)
        self.wrt_name = str(self.wrt)
        self._compiled = energy.compile()
        self._held: list[str] = []
        names = set(self.input_names(energy))
        for kind, table in (("params", params or {}), ("buffers", buffers or {})):
            for k, v in table.items():
                if k not in names:
                    raise UndeclaredSymbolError(
                        f"{who}: {kind} entry {k!r} is not an input of the energy; inputs are {sorted(names)}"
                    )
                if k == self.wrt_name:
                    raise InputError(f"{who}: {k!r} is the state being updated; pass it at call time")
                t = _as_tensor(k, v)
                if kind == "params":
                    self.register_parameter(k, t if isinstance(t, nn.Parameter) else nn.Parameter(t.detach().clone()))
                else:
                    self.register_buffer(k, t)
                self._held.append(k)

    # ---- inputs --------------------------------------------------------------------------------
    def held_inputs(self) -> dict[str, torch.Tensor]:
        """The energy inputs registered on this module (parameters and buffers)."""
        return {k: getattr(self, k) for k in self._held}

    def _check_state(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InputError(
                f"{type(self).__name__}: the state {self.wrt_name!r} must be a torch.Tensor, got "
                f"{type(x).__name__}"
            )
        if x.dim() < 2:
            r, c = self.wrt.shape
            raise InputError(
                f"{type(self).__name__}: the state {self.wrt_name!r} must have shape (..., {r}, {c}); "
                f"got shape {tuple(x.shape)}. Use x[..., None] for a column vector"
            )
        return x

    def input_names(self, energy: Energy) -> frozenset[str]:
        """Names of ``energy``'s inputs (cached: no sympy work on the forward path)."""
        cache = self.__dict__.setdefault("_input_names", {})
        key = id(energy)  # energies are held as attributes (and shared by deep copies)
        if key not in cache:
            cache[key] = frozenset(str(s) for s in energy.inputs)
        return cache[key]

    def inputs_for(self, energy: Energy, x: torch.Tensor, extra: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword inputs of ``energy``: the state, the held inputs, then call-time ``extra``.

        (On every forward call: one pass over the held inputs and one over ``extra``.)"""
        names = self.input_names(energy)
        out: dict[str, Any] = {}
        if self._held:
            params, buffers = self._parameters, self._buffers
            for k in self._held:
                if k in extra:
                    raise InputError(
                        f"{type(self).__name__}: input {k!r} is registered on the module; do not pass it again"
                    )
                if k in names:
                    v = params.get(k)
                    out[k] = buffers[k] if v is None else v
        unknown = []
        for k, v in extra.items():
            if k in names:
                if k == self.wrt_name:
                    raise InputError(f"{type(self).__name__}: {k!r} is the state; pass it positionally")
                out[k] = v
            else:
                unknown.append(k)
        if unknown:
            ok = self.accepted_inputs()
            unknown = [k for k in unknown if k not in ok]
        if unknown:
            raise InputError(
                f"{type(self).__name__}: unknown input(s) {unknown}; the energy's inputs are {sorted(names)}"
            )
        out[self.wrt_name] = self._check_state(x)
        return out

    def accepted_inputs(self) -> set[str]:
        """Every call-time keyword this step understands (energy inputs of all energies involved)."""
        return set(self.input_names(self.source_energy))

    # ---- energy --------------------------------------------------------------------------------
    def energy(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor:
        """The energy this step descends, at ``x``; shape ``(...)`` (the batch shape)."""
        cm = self._compiled
        return cm.energy_fn(*cm.args(**self.inputs_for(self.source_energy, x, inputs)))

    def energy_terms(self, x: torch.Tensor, /, **inputs: Any) -> dict[str, torch.Tensor]:
        """The energy of every named term at ``x``."""
        return self._compiled.breakdown(**self.inputs_for(self.source_energy, x, inputs))

    def __deepcopy__(self, memo: dict[int, Any]) -> "EnergyStep":
        """Deep-copy tensors and sub-modules; share the immutable symbolic and generated parts."""
        for v in self.__dict__.values():
            if _immutable(v):
                memo[id(v)] = v
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def update_rule(self) -> Basic:  # pragma: no cover - overridden
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"wrt={self.wrt_name}, energy={self.source_energy!s}"


def _immutable(v: Any) -> bool:
    """Symbolic objects and generated functions: never mutated after construction, so shared."""
    from ..codegen.compiled import CompiledEnergy
    from ..codegen.generate import GeneratedFunction

    if isinstance(v, (Basic, Energy, CompiledEnergy, GeneratedFunction)):
        return True
    if isinstance(v, (list, tuple)) and v and all(isinstance(a, (Basic, str)) for a in v):
        return True
    return False


def new_scalar(base: str, taken: Any) -> ScalarParam:
    """A fresh real scalar symbol whose name clashes with none of ``taken``."""
    return ScalarParam(unique_name(base, taken), real=True)


def compile_update(name: str, inputs: Any, expr: Basic) -> Any:
    """Generate the torch function computing the matrix ``expr`` from ``inputs`` (symbols)."""
    from ..codegen.generate import Output, generate

    return generate(name, tuple(inputs), [Output("matrix", expr)])


class GeneratedUpdateMixin:
    """Shared closures of steps whose update ``x⁺ = U(x, η)`` and gradient are generated functions.

    A subclass calls :meth:`_step_size` (policy, checked gradient ``_grad``, ``_eta_symbol``: None
    when η is a fixed number), sets ``_rule`` (the symbolic update) and ``_update`` (its generated
    function), and implements ``_update_values(x, inputs)`` (the named inputs of ``_update``) and
    ``problem(**inputs)`` (the closures its policy works with).
    """

    # provided by EnergyStep and the subclass (declared for the type checker)
    wrt: Any
    wrt_name: str
    source_energy: Any
    policy: Any
    _compiled: Any
    _grad: Any
    _eta_symbol: Optional[ScalarParam]
    _rule: Basic
    _update: Any
    _update_values: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
    _check_state: Callable[[torch.Tensor], torch.Tensor]
    problem: Callable[..., Any]
    inputs_for: Callable[..., dict[str, Any]]

    def _step_size(self, step: Any, check: bool, taken: set[str]) -> sp.Expr:
        """Set the step-size policy and the (checked) generated gradient; return ``η`` for the update
        rule: the exact number when the policy fixes it (baked into the generated update), else a
        fresh scalar symbol ``eta`` that the policy supplies at call time."""
        from .policies import as_policy, exact_number

        self.policy = as_policy(step)
        cm = self._compiled
        v = self.wrt
        self._grad = checked_grad_fn(cm.energy, v) if check else cm.grad_fn(v)
        if self.policy.fixed_value is not None:
            self._eta_symbol = None
            return exact_number(self.policy.fixed_value)
        self._eta_symbol = new_scalar("eta", taken)
        return self._eta_symbol

    def forward(self, x: torch.Tensor, /, **inputs: Any) -> torch.Tensor:
        """One step: the generated update with the fixed η, or the policy's step on the generated
        update and gradient."""
        if self._eta_symbol is None:  # a fixed η is baked into the generated update: call it directly
            args = self._planned_args(x, inputs)
            if args is not None:
                return finish_generated(self._update(*args), x)
            vals = self._update_values(x, inputs)  # every check on the inputs (and on x)
            self._plan_args(x, inputs, vals)
            return call_generated(self._update, vals, x)
        self._check_state(x)
        return self.policy.step(self.problem(**inputs), x)

    def _plan_args(self, x: torch.Tensor, inputs: Mapping[str, Any], vals: Mapping[str, Any]) -> None:
        """Remember where each argument of the generated update came from (the state, a call-time
        keyword, a registered parameter or buffer), keyed by the call's keyword names: everything
        :meth:`_update_values` checks about the inputs depends on those names alone, so a later call
        with the same names gets its arguments without re-checking them (:meth:`_planned_args`).
        No plan when an argument has another source (it is then rebuilt on every call)."""
        params, buffers = self._parameters, self._buffers  # type: ignore[attr-defined]
        plan: list[tuple[int, str]] = []
        for k in self._update.input_names:
            if k not in vals:
                return  # a missing input: the call names it
            v = vals[k]
            if k == self.wrt_name and v is x:
                plan.append((0, k))
            elif k in inputs and inputs[k] is v:
                plan.append((1, k))
            elif k in params and params[k] is v:
                plan.append((2, k))
            elif k in buffers and buffers[k] is v:
                plan.append((3, k))
            else:
                return
        self.__dict__.setdefault("_arg_plans", {})[tuple(inputs)] = tuple(plan)

    def _planned_args(self, x: Any, inputs: Mapping[str, Any]) -> Optional[list[Any]]:
        """The generated update's arguments by a remembered plan (:meth:`_plan_args`), or ``None``
        (first call with these keyword names, a state that is not a tensor of rank ≥ 2, or a
        registered input that is gone): the caller then takes the checked path."""
        plan = self.__dict__.get("_arg_plans", {}).get(tuple(inputs))
        if plan is None or not isinstance(x, torch.Tensor) or x.dim() < 2:
            return None
        sources = (None, inputs, self._parameters, self._buffers)  # type: ignore[attr-defined]
        try:
            return [x if kind == 0 else sources[kind][k] for kind, k in plan]  # type: ignore[index]
        except KeyError:
            return None

    def update_rule(self) -> Basic:
        """The symbolic update (η numeric when fixed, the symbol ``eta`` otherwise)."""
        return self._rule

    def torch_source(self) -> str:
        """The generated code of the update."""
        return self._update.source

    def _update_and_grad(self, inputs: Mapping[str, Any]) -> tuple[Any, Any]:
        cm = self._compiled

        def update(x: torch.Tensor, eta: Any) -> torch.Tensor:
            vals = self._update_values(x, inputs)
            if self._eta_symbol is not None:
                vals[str(self._eta_symbol)] = eta
            return call_generated(self._update, vals, x)

        def grad(x: torch.Tensor) -> torch.Tensor:
            return self._grad(*cm.args(**self.inputs_for(self.source_energy, x, inputs)))

        return update, grad


def call_generated(fn: Any, values: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    """Call a generated function with inputs by name; broadcast the result to ``like``'s shape."""
    try:
        args = [values[k] for k in fn.input_names]
    except KeyError as e:
        raise InputError(
            f"missing input {e.args[0]!r}; the step needs {list(fn.input_names)}"
        ) from None
    return finish_generated(fn(*args), like)


def finish_generated(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A generated update's result broadcast to the state's shape ``like``."""
    if out.shape != like.shape:
        out = torch.broadcast_to(out, torch.broadcast_shapes(out.shape, like.shape))
    return out
