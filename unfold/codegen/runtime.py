"""Helpers the generated torch code calls: dimension binding and checks, scalar conversion,
reductions for unbatched parameters, and numerically careful primitives.

Everything here is plain torch and works under ``torch.func`` transforms and ``torch.compile``.
"""

from __future__ import annotations

from functools import lru_cache
import contextlib
import math
import os
from typing import Any, Iterator, Sequence, Union

import torch

from ..errors import DimMismatchError, InputError

__all__ = [
    "bind_dims", "lift_axes", "lower_axes", "reduce_to_axes", "as_scalar", "finite_checks", "check_finite", "as_rhs", "reduce_to", "reduce_scalar", "colsum", "rowsum", "repeat_rows", "mm", "mm2", "smm", "axis_mm", "attention", "attention_kernel", "masked", "ln_rows",
]

DimSpec = Union[str, int]

#: Opt-in check that every input is finite (``finite_checks()`` / ``UNFOLD_CHECK_FINITE=1``); off by
#: default so the hot path stays free of device synchronisation.  Skipped under transforms.
_CHECK_FINITE = [os.environ.get("UNFOLD_CHECK_FINITE", "") not in ("", "0")]


@contextlib.contextmanager
def finite_checks(enabled: bool = True) -> Iterator[None]:
    """Within the block, every generated function raises :class:`InputError` naming any input that
    holds NaN or ±Inf (instead of returning NaN)."""
    saved = _CHECK_FINITE[0]
    _CHECK_FINITE[0] = bool(enabled)
    try:
        yield
    finally:
        _CHECK_FINITE[0] = saved


def check_finite(name: str, t: Any) -> None:
    """Raise :class:`InputError` if the concrete tensor or number ``t`` holds NaN or ±Inf."""
    if isinstance(t, torch.Tensor):
        if not _concrete(t) or t.is_floating_point() is False:
            return
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            kinds = [k for k, m in (("NaN", torch.isnan(t)), ("±Inf", torch.isinf(t))) if bool(m.any())]
            raise InputError(
                f"input {name!r} holds {int(bad.sum())} non-finite entr{'y' if int(bad.sum()) == 1 else 'ies'} "
                f"({' and '.join(kinds)}) of {t.numel()}; clean or clamp it before calling unfold"
            )
    elif isinstance(t, float) and not math.isfinite(t):
        raise InputError(f"scalar {name!r} is {t!r}; pass a finite number")


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}"


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    """``torch.broadcast_shapes`` for concrete shapes, in plain Python (torch's version costs tens of
    microseconds a call, which every generated function paid); raises ``RuntimeError`` likewise."""
    if torch.compiler.is_compiling():
        return torch.broadcast_shapes(*shapes)
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, v in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = int(v)
            elif v != 1 and v != o:
                raise RuntimeError(f"shapes {[tuple(x) for x in shapes]} do not broadcast")
    return torch.Size(out)


#: bindings already checked, keyed by ``(id(spec), (shape, dtype, device) per tensor)``; the value keeps
#: ``spec`` alive so its id is not reused.  Bounded: cleared when it reaches ``_BIND_CACHE_SIZE``.
_BIND_CACHE: dict[Any, tuple[Any, dict[str, int]]] = {}
_BIND_CACHE_SIZE = 4096


def bind_dims(spec: Sequence[tuple[Any, ...]], tensors: Sequence[Any]) -> dict[str, int]:
    """Bind symbolic dims from the trailing axes of each input and check they agree.

    ``spec`` lists ``(name, (rows, cols))`` per matrix input, each entry a dim name or a fixed int;
    a matrix over named axes lists ``(name, (size₁, …, sizeₖ, rows, cols), (axis₁, …, axisₖ))``:
    its tensor is ``(..., size₁, …, sizeₖ, rows, cols)``.
    Raises :class:`DimMismatchError` naming the dim and both tensors; :class:`InputError` for a
    non-tensor, a tensor of rank < 2, or inputs of different dtype or device.

    The outcome depends only on the shapes, dtypes and devices, so a successful binding is cached
    under them (a repeated call costs one dictionary look-up; the checks run once per signature).
    The cache is bypassed under ``torch.compile`` and while :func:`finite_checks` is on.
    """
    if _CHECK_FINITE[0] or torch.compiler.is_compiling():
        return _bind_dims_checked(spec, tensors)
    try:
        key = (id(spec), tuple([(t.shape, t.dtype, t.device) for t in tensors]))
    except AttributeError:  # not a tensor: the checked path names it
        return _bind_dims_checked(spec, tensors)
    hit = _BIND_CACHE.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    dims = _bind_dims_checked(spec, tensors)
    if len(_BIND_CACHE) >= _BIND_CACHE_SIZE:
        _BIND_CACHE.clear()
    _BIND_CACHE[key] = (spec, dims)
    return dims


def _bind_dims_checked(spec: Sequence[tuple[Any, ...]], tensors: Sequence[Any]) -> dict[str, int]:
    """:func:`bind_dims` without the cache: every check, every call."""
    bound: dict[str, tuple[int, str, tuple[int, ...]]] = {}
    first: torch.Tensor | None = None
    first_name = ""
    trails: list[int] = []
    for entry, t in zip(spec, tensors):
        name, sizes = entry[0], tuple(entry[1])
        labels = tuple(entry[2]) if len(entry) > 2 else ()
        is_mask = len(entry) > 3 and entry[3] == "mask"
        r, c = sizes[-2], sizes[-1]
        trails.append(len(sizes))
        if not isinstance(t, torch.Tensor):
            raise InputError(f"input {name!r} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < len(sizes):
            lead = "".join(f"{d} (axis {a}), " for d, a in zip(sizes, labels))
            raise InputError(
                f"input {name!r} must have shape (..., {lead}rows, cols) with rows×cols = {r}×{c}; got "
                f"{_describe(t)}" + (". Use x[..., None] for a column vector" if not labels else
                                     f": it ranges over the axis/axes {list(labels)}, which lead the matrix dims")
            )
        if is_mask:
            if not (t.is_floating_point() or t.dtype == torch.bool):
                raise InputError(
                    f"mask {name!r} has dtype {t.dtype}; a mask is boolean (True = take part) or "
                    "floating point (added to the scores, -inf = excluded)"
                )
            if _CHECK_FINITE[0] and t.is_floating_point() and _concrete(t) and bool(torch.isnan(t).any()):
                raise InputError(f"mask {name!r} holds NaN; an additive mask holds finite values or -inf")
        elif not t.is_floating_point():
            raise InputError(
                f"input {name!r} has dtype {t.dtype}; unfold computes in floating point: pass "
                f"{name}.double() (float64, recommended for checks) or {name}.float()"
            )
        if _CHECK_FINITE[0] and not is_mask:
            check_finite(name, t)
        if is_mask:
            pass
        elif first is None:
            first, first_name = t, name
        else:
            if t.dtype != first.dtype:
                raise InputError(
                    f"inputs {first_name!r} ({first.dtype}) and {name!r} ({t.dtype}) have different "
                    "dtypes; convert them to one dtype"
                )
            if t.device != first.device:
                raise InputError(
                    f"inputs {first_name!r} ({first.device}) and {name!r} ({t.device}) are on "
                    "different devices; move them to one device"
                )
        names = tuple(f"named axis {a!r}" for a in labels) + ("rows", "cols")
        for axis, d, what in zip(range(-len(sizes), 0), sizes, names):
            size = int(t.shape[axis])
            if isinstance(d, int):
                if size != d:
                    raise DimMismatchError(
                        f"input {name!r} must have size {d} on axis {axis} ({what}) but has {_describe(t)}"
                    )
                continue
            if d in bound and bound[d][0] != size:
                v, other, shape = bound[d]
                raise DimMismatchError(
                    f"dimension {d!r} disagrees: {other!r} has {d}={v} (shape {tuple(shape)}) but {name!r} "
                    f"has {d}={size} on axis {axis} ({what}; {_describe(t)})"
                )
            bound.setdefault(d, (size, name, t.shape))
    batches = [(entry[0], t.shape[:t.dim() - n]) for entry, t, n in zip(spec, tensors, trails)]
    try:
        broadcast_shapes(*(b for _, b in batches))
    except RuntimeError:
        desc = ", ".join(f"{n!r} {tuple(b)}" for n, b in batches if len(b))
        raise DimMismatchError(
            f"the batch shapes (leading axes) of the inputs do not broadcast: {desc}; give the inputs "
            "equal batch shapes, or leave parameters unbatched"
        ) from None
    return {k: v[0] for k, v in bound.items()}


def _check_scalar_batch(t: torch.Tensor, name: str, batch: Sequence[Sequence[int]]) -> None:
    """A batched scalar must broadcast with the matrices' batch shape; a shape ending in ``(1, 1)``
    of higher rank than a non-empty matrix batch is the per-sample scalar written as a matrix
    (``(B, 1, 1)`` for ``(B,)``), which would broadcast to a ``(B, 1, B, ...)`` output."""
    mb = tuple(torch.broadcast_shapes(*batch)) if batch else ()
    shape = tuple(t.shape)
    if mb and len(shape) > len(mb) and shape[-2:] == (1, 1):
        raise InputError(
            f"scalar {name!r} has shape {shape} but the matrices' batch shape is {mb}: a scalar per "
            f"batch element has the batch shape itself ({shape[:-2]!r}, without the trailing (1, 1))"
        )
    try:
        torch.broadcast_shapes(mb, shape)
    except RuntimeError:
        raise InputError(
            f"scalar {name!r} has batch shape {shape}, which does not broadcast with the matrices' "
            f"batch shape {mb}"
        ) from None


def _check_positive(v: Any, name: str) -> None:
    """Numbers always; tensors on the CPU, or on any device within :func:`finite_checks` (the check
    synchronises with the device), and never under transforms."""
    if isinstance(v, (int, float)):
        bad = v <= 0 or v != v
    else:
        bad = (_concrete(v) and (v.device.type == "cpu" or _CHECK_FINITE[0])
               and bool((~(v > 0)).any()))
    if bad:
        got = v if isinstance(v, (int, float)) else f"a tensor with {int((~(v > 0)).sum())} entries ≤ 0 or NaN"
        raise InputError(
            f"scalar {name!r} was declared positive (uf.scalar({name!r}, positive=True)), and the "
            f"derivation relies on it (e.g. sqrt({name}²) = {name}), but got {got}"
        )


def as_scalar(v: Any, dtype: torch.dtype, device: torch.device, name: str, positive: bool = False,
              batch: Sequence[Sequence[int]] = ()) -> torch.Tensor:
    """A scalar parameter (number or tensor of batch shape ``(...)``) as a ``(..., 1, 1)`` tensor.

    ``positive``: the scalar was declared positive, which is checked (the derived expressions
    may rely on it).  ``batch``: the batch shapes of the matrix inputs, which a batched scalar must
    broadcast with."""
    if isinstance(v, bool) or not isinstance(v, (int, float, torch.Tensor)):
        raise InputError(f"scalar {name!r} must be a number or a tensor, got {type(v).__name__}")
    if _CHECK_FINITE[0]:
        check_finite(name, v)
    if positive:
        _check_positive(v, name)
    if isinstance(v, torch.Tensor) and v.dim():
        _check_scalar_batch(v, name, batch)
    if isinstance(v, float) and not torch.compiler.is_compiling():
        key = (v, dtype, device)
        t = _SCALAR_CACHE.get(key)
        if t is None:
            if len(_SCALAR_CACHE) >= _BIND_CACHE_SIZE:
                _SCALAR_CACHE.clear()
            t = _SCALAR_CACHE[key] = torch.tensor([[v]], dtype=dtype, device=device)
        return t
    t = torch.as_tensor(v, dtype=dtype, device=device)
    return t[..., None, None]


#: Python-float scalars as ``(1, 1)`` constant tensors, per ``(value, dtype, device)`` (generated code
#: never writes into its inputs, so a constant is shared).
_SCALAR_CACHE: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def reduce_to(r: torch.Tensor, like: torch.Tensor, batch: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Broadcast a gradient to the batch shape of all ``batch`` inputs and sum away the batch axes
    ``like`` does not have (the gradient of the summed batch energy: a term that does not depend on
    the batch still counts once per batch element)."""
    r = torch.as_tensor(r, dtype=like.dtype, device=like.device)
    shape = broadcast_shapes(r.shape, like.shape, *(t.shape[:-2] + like.shape[-2:] for t in batch))
    if shape == like.shape and r.shape == shape:
        return r
    return torch.broadcast_to(r, shape).sum_to_size(like.shape)


def reduce_scalar(r: torch.Tensor, like: Any, batch: Sequence[Any], shapes: bool = False) -> torch.Tensor:
    """The gradient of a scalar parameter: drop the ``(1, 1)`` axes and sum over extra batch axes.
    ``batch``: the matrix inputs, or (``shapes=True``) their batch shapes."""
    if not isinstance(r, torch.Tensor):  # a constant derivative (e.g. of 2·beta) printed as a number
        dt = like.dtype if isinstance(like, torch.Tensor) else torch.get_default_dtype()
        dev = like.device if isinstance(like, torch.Tensor) else None
        if not shapes:
            dt, dev = batch[0].dtype, batch[0].device
        r = torch.full((1, 1), float(r), dtype=dt, device=dev)
    while r.dim() < 2:  # a constant printed as a 0-d tensor (e.g. tanh(2))
        r = r[None]
    bshapes = list(batch) if shapes else [t.shape[:-2] for t in batch]
    target = like.shape if isinstance(like, torch.Tensor) else torch.Size([])
    shape = torch.broadcast_shapes(*bshapes, r.shape[:-2], target)  # the scalar's own batch too
    g = torch.broadcast_to(r[..., 0, 0], shape)
    return g.sum_to_size(target) if g.shape != target else g


def lift_axes(t: torch.Tensor, own: Sequence[int], k: int) -> torch.Tensor:
    """An input over named axes in the layout of generated code: ``t`` is ``(..., a₁, …, aₘ, r, c)``
    with its own axes in declared order, ``own[i]`` the canonical position (among ``k``) of its
    ``i``-th axis; the result is ``(..., A₀, …, A_{k-1}, r, c)``, its axes permuted to canonical
    order and size 1 on the axes it does not range over (a view, no copy).  A tensor of at most
    two dims (unbatched, no axes) is returned as is: it broadcasts from the left."""
    m = len(own)
    if t.dim() <= 2 and m == 0:
        return t
    nb = t.dim() - 2 - m
    order = sorted(range(m), key=lambda i: own[i])
    if order != list(range(m)):
        t = t.permute(*range(nb), *(nb + i for i in order), nb + m, nb + m + 1)
    have = set(own)
    for i in range(k):
        if i not in have:
            t = t.unsqueeze(nb + i)
    return t


def lower_axes(r: Any, keep: Sequence[int], k: int) -> Any:
    """The inverse of :func:`lift_axes` for a result: drop the (size-1) axes not in ``keep`` and
    order the kept ones as listed (``keep[i]`` the canonical position of the output's ``i``-th axis)."""
    if not isinstance(r, torch.Tensor):
        return r
    while r.dim() < k + 2:
        r = r[None]
    nb = r.dim() - 2 - k
    have = set(keep)
    idx: list[Any] = [slice(None)] * nb + [slice(None) if i in have else 0 for i in range(k)]
    r = r[tuple(idx)]
    kept = sorted(keep)
    order = [kept.index(i) for i in keep]
    if order != list(range(len(keep))):
        r = r.permute(*range(nb), *(nb + i for i in order), nb + len(keep), nb + len(keep) + 1)
    return r


def reduce_to_axes(r: Any, like: torch.Tensor, batch: Sequence[Sequence[int]], trail: int) -> torch.Tensor:
    """:func:`reduce_to` for inputs over named axes: ``like``'s last ``trail`` dims are its axes and
    matrix dims, ``batch`` the batch shapes of all matrix inputs."""
    r = torch.as_tensor(r, dtype=like.dtype, device=like.device)
    tail = tuple(like.shape[like.dim() - trail:])
    shape = broadcast_shapes(r.shape, like.shape, *(tuple(b) + tail for b in batch))
    if shape == like.shape and r.shape == shape:
        return r
    return torch.broadcast_to(r, shape).sum_to_size(like.shape)


def masked(x: torch.Tensor, mask: Any, keys: int = -2) -> torch.Tensor:
    """Scores ``x`` with a mask applied; the keys run along dim ``keys`` (``-2``: ``(..., keys,
    queries)``, a column-wise reduction follows; ``-1``: ``(..., queries, keys)``).  ``"causal"``
    sets key > query entries to ``-inf``; a boolean mask sets its ``False`` entries to ``-inf``; a
    float mask is added (``-inf`` entries exclude)."""
    if isinstance(mask, str):
        r, c = x.shape[-2], x.shape[-1]
        ones = torch.ones(r, c, dtype=torch.bool, device=x.device)
        drop = ones.tril(-1) if keys == -2 else ones.triu(1)  # key index > query index
        return x.masked_fill(drop, float("-inf"))
    if mask.dtype == torch.bool:
        return x.masked_fill(~mask, float("-inf"))
    return x + mask.to(x.dtype)


def _sdpa_layout(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when its last dim has unit stride and no dim of size > 1 is broadcast, else a
    contiguous copy."""
    if t.stride(-1) == 1 and all(st != 0 or n == 1 for st, n in zip(t.stride(), t.shape)):
        return t
    return t.contiguous()


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` are the same tensor or views of the same base tensor with the same
    offset, shape and strides (keys and values both ``X.mT``, tokens as columns): the same values
    with the same autograd history, so one layout copy serves both."""
    base = a._base
    return a is b or (base is not None and base is b._base and a.storage_offset() == b.storage_offset()
                      and a.shape == b.shape and a.stride() == b.stride())


def _plain_scale(c: Any) -> float | None:
    """The attention scale ``c`` as a Python float when reading it costs nothing and loses nothing
    (a number; a one-element CPU tensor outside autograd, transforms and compilation), so the
    kernel applies it; ``None`` when it must stay a tensor factor of ``Q``."""
    if isinstance(c, (int, float)):
        return float(c)
    if (isinstance(c, torch.Tensor) and c.numel() == 1 and c.device.type == "cpu"
            and not c.requires_grad and _concrete(c)):  # (_concrete: not under compile or transforms)
        return float(c.item())
    return None


def attention(c: Any, factors: Sequence[torch.Tensor], v: torch.Tensor, mask: Any) -> torch.Tensor:
    """``softmax_rows(c·(F₁⋯Fⱼ)ᵀ; mask) v`` (``F₁⋯Fⱼ`` the keys × queries scores): split where the
    inner dim is smallest, ``K = F₁⋯Fᵢ``, ``Q = c·(Fᵢ₊₁⋯Fⱼ)ᵀ`` (the scale is applied to ``Q``, so it
    stays differentiable), ``mask`` the queries × keys mask (boolean True = allowed, additive,
    ``"causal"``: key ≤ query, or ``None``), run by the kernel :func:`attention_kernel` picks for
    the actual tensors.  A query whose keys are all excluded gets the zero row on every kernel."""
    i = 1  # the first split with the smallest inner dim (a plain loop: torch.compile traces it)
    for j in range(2, len(factors)):
        if int(factors[j - 1].shape[-1]) < int(factors[i - 1].shape[-1]):
            i = j
    k = mm(*factors[:i])
    q = mm(*factors[i:]).mT
    scale = _plain_scale(c)
    if scale is None:
        q = c * q  # a scale that is learned, batched, or on an accelerator: applied to Q
        scale = 1.0
    kernel = attention_kernel(q, k, v, mask)
    if kernel == "explicit":
        return _explicit_attention(q, k, v, scale, mask)
    shared_kv = _same_view(v, k)  # keys and values both X.mT (tokens as columns): one copy
    batch = broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                             mask.shape[:-2] if isinstance(mask, torch.Tensor) else ())
    # equal batch shapes, unit stride along the head dim and no broadcast (stride-0) dims: the fused
    # CPU kernel takes nothing else.  Strided views (heads split off a projection) pass uncopied;
    # the copies otherwise are of (…, tokens, head dim) tensors, small next to the scores they avoid
    q, k = (_sdpa_layout(t.expand(*batch, *t.shape[-2:])) for t in (q, k))
    v = k if shared_kv else _sdpa_layout(v.expand(*batch, *v.shape[-2:]))
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)
    if kernel == "fused_cpu":  # the fused CPU kernel takes (N, H, L, E) only; other ranks take torch's math path
        return _fused_cpu(q, k, v, scale, mask, batch)
    return _sdpa(q, k, v, scale, mask)


def attention_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any) -> str:
    """The kernel :func:`attention` runs for queries ``q``, keys ``k``, values ``v`` (``(..., tokens,
    dim)``) and ``mask``, chosen from the actual device, shapes, dtype and mask at run time:

    - ``"sdpa"``: ``F.scaled_dot_product_attention`` as it is, on every device other than the CPU
      (CUDA's dispatcher picks its flash / memory-efficient kernels itself);
    - ``"fused_cpu"``: on the CPU, SDPA with the inputs lifted to 4 dims ``(N, H, tokens, dim)``.
      Torch's fused (flash) CPU kernel takes 4-dim inputs only: a 3-dim call (one head, a batch of
      sequences) silently takes its math path, which materialises the scores and is slower than
      writing ``softmax(QKᵀ)V`` out.  Measured (one thread, float32, interleaved medians, batch·heads
      1–48, tokens 32–1024, head dim 16–256, no mask / causal / additive, forward and forward +
      backward): the fused kernel is never more than ≈ 10 % slower than the explicit form (head dim
      256, within the machine's noise) and 2–10× faster once the scores exceed ≈ 1 M entries
      (4 MB in float32: batch·heads·queries·keys; 8 × 1024² or 48 × 256²), where the explicit
      form's n × n temporaries leave the cache; small sizes favour it too (2× at 32 tokens, one
      head).  So on the CPU the fused kernel is taken whenever it accepts the inputs;
    - ``"explicit"``: ``softmax(c Q Kᵀ + mask) V`` written out (what torch's math path computes,
      without its extra passes) where the fused kernel refuses the inputs and SDPA would fall back
      to its math path: value dim ≠ query/key dim, a tensor mask that requires grad, integer
      dtypes, and under ``torch.func`` transforms or ``torch.compile`` tracing (jvp
      has no rule for the fused CPU kernel).
    """
    if not (_concrete(q) and _concrete(k) and _concrete(v)):
        return "explicit"
    if q.device.type != "cpu":
        return "sdpa"
    if (v.shape[-1] != q.shape[-1] or not q.is_floating_point()
            or (isinstance(mask, torch.Tensor) and mask.requires_grad)):
        return "explicit"
    return "fused_cpu"


def _fused_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: Any,
               batch: Sequence[int]) -> torch.Tensor:
    """SDPA on ``(N, H, tokens, dim)`` views of ``q, k, v`` (batch shape ``batch``): fewer than two
    batch dims get unit dims inserted as ``H`` (a batch of sequences is ``(B, 1, …)``: the kernel
    writes its output as ``(N, tokens, H, dim)``, so ``H = 1`` leaves it contiguous), more are
    folded into ``N``; a tensor mask is lifted alike (the kernel takes 2- or 4-dim masks)."""
    lead = len(batch) - 2

    def lift(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape((1,) * (len(batch) + 2 - t.dim()) + tuple(t.shape))  # aligned with the batch dims
        if lead > 0:  # outer dims fold into N (a view where they are broadcast or contiguous)
            return t.expand(*batch[:-1], *t.shape[-3:]).reshape(-1, *t.shape[-3:])
        return t.reshape(tuple(t.shape[:-2]) + (1,) * -lead + tuple(t.shape[-2:]))

    if isinstance(mask, torch.Tensor) and mask.dim() != 2:
        mask = lift(mask)
    out = _sdpa(lift(q), lift(k), lift(v), scale, mask)
    return out if lead == 0 else out.reshape(*batch, q.shape[-2], v.shape[-1])


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: Any) -> torch.Tensor:
    if mask is None:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
    if isinstance(mask, str):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: Any) -> torch.Tensor:
    """``softmax_rows(scale·Q Kᵀ; mask) V`` with the scores materialised; a query whose keys are all
    excluded gets the zero row (as SDPA gives it), never NaN."""
    s = q @ k.mT if scale == 1.0 else scale * (q @ k.mT)
    if mask is None:
        return torch.softmax(s, dim=-1) @ v
    s = masked(s, mask, -1)
    p = torch.softmax(s, dim=-1)
    p = torch.where(s.amax(dim=-1, keepdim=True) == float("-inf"), 0.0, p)
    return p @ v


def as_rhs(B: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``B`` as a right-hand side that ``torch.linalg.solve(A, ·)`` reads as (a batch of) matrices.

    ``torch.linalg.solve`` reads ``B`` as a batch of *vectors* when ``B.shape == A.shape[:-1]``, e.g.
    an unbatched ``n×n`` right-hand side against a batch of ``n`` matrices: silently wrong.  Leading
    unit axes make ``B`` at least as deep as ``A``, so it is always read as matrices.
    """
    if B.dim() < A.dim():
        B = B.reshape((1,) * (A.dim() - B.dim()) + tuple(B.shape))
    return B


def colsum(x: torch.Tensor, rows: int | None = None, scale: Any = None) -> torch.Tensor:
    """``scale · 1 @ x`` for an all-ones left factor: column sums (scaled while still a row),
    repeated ``rows`` times."""
    s = x.sum(dim=-2, keepdim=True)
    if scale is not None:
        s = scale * s
    return s if rows is None else s.expand(*s.shape[:-2], rows, s.shape[-1])


def rowsum(x: torch.Tensor, cols: int | None = None, scale: Any = None) -> torch.Tensor:
    """``scale · x @ 1`` for an all-ones right factor: row sums (scaled while still a column),
    repeated ``cols`` times."""
    s = x.sum(dim=-1, keepdim=True)
    if scale is not None:
        s = scale * s
    return s if cols is None else s.expand(*s.shape[:-1], cols)


def repeat_rows(x: torch.Tensor, rows: int, scale: Any = None) -> torch.Tensor:
    """``scale · 1 @ x`` for an all-ones column times a row ``x`` (``(..., 1, c)``): ``x`` repeated
    ``rows`` times."""
    if scale is not None:
        x = scale * x
    return x.expand(*x.shape[:-2], rows, x.shape[-1])


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


@lru_cache(maxsize=4096)
def _chain_order(shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Split points of the cheapest parenthesisation of a matrix chain (dynamic programming on the
    multiply-add count, batch axes included: a product of unbatched factors is computed once)."""
    k = len(shapes)
    batch = [s[:-2] for s in shapes]
    rows = [int(s[-2]) for s in shapes]
    cols = [int(s[-1]) for s in shapes]
    cost = [[0.0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    bnum = [[_numel(torch.broadcast_shapes(*batch[i:j + 1])) if j >= i else 1 for j in range(k)] for i in range(k)]
    for length in range(1, k):
        for i in range(k - length):
            j = i + length
            best, arg = float("inf"), i
            for m in range(i, j):
                c = cost[i][m] + cost[m + 1][j] + bnum[i][j] * rows[i] * cols[m] * cols[j]
                if c < best:
                    best, arg = c, m
            cost[i][j], split[i][j] = best, arg
    return tuple(tuple(r) for r in split)


def mm2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``; when the batch dims differ and both have some (e.g. tokens ``(B, 1, n, E)`` times
    per-head weights ``(H, E, p)``), an ``einsum``, which folds the broadcast dims into one large
    matrix multiply instead of copying the broadcast operand once per head."""
    if a.dim() > 2 and b.dim() > 2 and a.shape[:-2] != b.shape[:-2]:
        return torch.einsum("...ij,...jk->...ik", a, b)
    return a @ b


def mm(*ts: torch.Tensor) -> torch.Tensor:
    """The product ``t₀ @ t₁ @ …`` in the cheapest order for the runtime shapes (cached per shapes)."""
    if len(ts) == 2:
        return mm2(ts[0], ts[1])
    split = _chain_order(tuple(tuple(t.shape) for t in ts))

    def prod(i: int, j: int) -> torch.Tensor:
        if i == j:
            return ts[i]
        m = split[i][j]
        return mm2(prod(i, m), prod(m + 1, j))

    return prod(0, len(ts) - 1)


def axis_mm(dim: int, *ts: torch.Tensor) -> torch.Tensor:
    """``Σ_h t₀ @ t₁ @ …`` over the named-axis dim ``dim`` (negative, kept with size 1): the chain
    is split where :func:`mm`'s cheapest order puts its last product, and that product contracts
    over ``h`` as well (``(rows × H·p) @ (H·p × cols)``), so the per-head products are never
    materialised and summed."""
    k = len(ts)
    split = _chain_order(tuple(tuple(t.shape) for t in ts)) if k > 2 else None
    m = split[0][k - 1] if split is not None else 0
    left, right = mm(*ts[:m + 1]), mm(*ts[m + 1:])

    def has(t: torch.Tensor) -> bool:
        return t.dim() >= -dim and t.shape[dim] != 1

    if not has(left):
        return left @ right.sum(dim=dim, keepdim=True) if has(right) else (left @ right)
    if not has(right):
        return left.sum(dim=dim, keepdim=True) @ right
    out = torch.einsum("...hij,...hjk->...ik", left.movedim(dim, -3), right.movedim(dim, -3))
    return out.unsqueeze(dim)


def smm(c: Any, *ts: torch.Tensor) -> torch.Tensor:
    """``c · t₀ @ t₁ @ …`` with the scalar ``c`` applied to whichever of the factors and the result
    has the fewest entries (``β (Ξ Xᵀ)`` scales ``Ξ``, not the ``n × n`` scores).  A batched ``c``
    (a tensor of more than one entry) scales the result."""
    if isinstance(c, torch.Tensor) and c.numel() != 1:
        return c * mm(*ts)
    if len(ts) == 2:
        a, b = ts
        sa, sb = a.shape, b.shape
        na, nb = a.numel(), b.numel()
        # entries of the result: rows(a) · cols(b) per batch element, the larger batch of the two
        ka, kb = sa[-2] * sa[-1], sb[-2] * sb[-1]
        nr = sa[-2] * sb[-1] * max(na // ka if ka else 1, nb // kb if kb else 1)
        if na <= nb:
            return mm2(c * a, b) if na < nr else c * mm2(a, b)
        return mm2(a, c * b) if nb < nr else c * mm2(a, b)
    sizes = [t.numel() for t in ts]
    batch = max(n // (int(t.shape[-2]) * int(t.shape[-1]) or 1) for n, t in zip(sizes, ts))
    where = min(range(len(ts)), key=sizes.__getitem__)
    if sizes[where] >= batch * int(ts[0].shape[-2]) * int(ts[-1].shape[-1]):
        return c * mm(*ts)
    return mm(*ts[:where], c * ts[where], *ts[where + 1:])


def ln_rows(x: torch.Tensor, eps: float, gain: Any, bias_row: torch.Tensor) -> torch.Tensor:
    """``gain · LN(x) + 1 bᵀ`` for a row-wise layer norm (each row of ``x`` normalised; biased
    variance), ``gain`` a scalar (``None`` for 1) and ``bias_row`` of shape ``(..., 1, D)``: one
    ``F.layer_norm`` call with weight and bias when both are unbatched, else the three operations."""
    D = x.shape[-1]
    if bias_row.dim() == 2 and (gain is None or not isinstance(gain, torch.Tensor) or gain.numel() == 1):
        w = None if gain is None else torch.as_tensor(gain, dtype=x.dtype, device=x.device).reshape(1).expand(D)
        return torch.nn.functional.layer_norm(x, (D,), w, bias_row.reshape(D), eps)
    y = torch.nn.functional.layer_norm(x, (D,), eps=eps)
    return (y if gain is None else gain * y) + bias_row


def _concrete(t: torch.Tensor) -> bool:
    """True when ``t`` holds real data we may branch on: not while ``torch.compile`` traces, and not a
    tensor wrapped by a ``torch.func`` transform (vmap, grad, jvp, jacrev, …).

    A wrapped tensor is told by the public ``torch.func.debug_unwrap``, which returns a plain tensor
    unchanged and a transform's wrapper as the tensor it wraps (only the identity is compared; the
    unwrapped value is never used inside the transform)."""
    if torch.compiler.is_compiling():
        return False
    return torch.func.debug_unwrap(t, recurse=False) is t
