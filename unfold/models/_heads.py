"""Per-head parameters stored as one tensor over a head axis, and loading the older per-head layout.

Models built before head axes stored ``H`` parameters ``{name}1 … {name}H`` (each ``(rows, cols)``);
they are now one ``(H, rows, cols)`` tensor ``{name}`` (head ``h`` at index ``h − 1``).
:func:`stack_legacy_heads` is a ``load_state_dict`` pre-hook body that stacks the old keys, so state
dicts saved in either layout load.
"""

from __future__ import annotations

import re
from typing import Any, MutableMapping, Sequence

import torch

__all__ = ["stack_legacy_heads"]


def stack_legacy_heads(state_dict: MutableMapping[str, Any], prefix: str, names: Sequence[str]) -> None:
    """Replace ``{prefix}{name}1 … {prefix}{name}H`` in ``state_dict`` by ``{prefix}{name}`` (stacked,
    ``(H, rows, cols)``) for every ``name`` in ``names`` that is stored the old way."""
    for name in names:
        pat = re.compile(re.escape(prefix + name) + r"(\d+)$")
        found = {int(m.group(1)): k for k in list(state_dict) if (m := pat.match(k))}
        if not found or prefix + name in state_dict:
            continue
        order = sorted(found)
        if order != list(range(1, len(order) + 1)):
            continue  # not a complete 1…H family: left for load_state_dict to report
        state_dict[prefix + name] = torch.stack([state_dict.pop(found[h]) for h in order])
