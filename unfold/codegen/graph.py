"""The SSA graph that code generation emits into, and its passes.

The printer lowers an expression tree to a list of :class:`Node`\\ s: each node is one statement of
the generated function, ``name = text``, where ``text`` is the readable torch expression of one
lowering rule and ``reads`` are the values (earlier nodes) it reads.  Temporaries (``_t0``, ``_t1``,
...) are assigned once (static single assignment); an output (``_r0``) may be accumulated over
several statements (``_r0 = a``, ``_r0 = _r0 + b``), each its own node.

Why not ``torch.fx.Graph``: an fx node is one call of one torch function, so every rule would have
to be re-expressed op by op and the emitted source would be fx's (one statement per call, its own
names); here a node carries the compound expression its rule prints, so the source stays the one a
person would write (``torch.softmax(_t2 @ X.mT, dim=-1)``) and the rules keep their signature.

Structure the printer needs is answered from the graph, never from the text: :meth:`Graph.is_name`
(is this code a value or a leaf, so it need not be hoisted), :meth:`Graph.untranspose` (is this
code a transposed view ``x.mT``, and of what).

Passes, run by :meth:`Graph.render`:

* **common sub-expressions** — :meth:`Graph.value` returns the existing temporary when one with the
  same text was emitted before (value numbering: the text names only earlier single-assignment
  values, and every lowering rule prints a pure expression — no in-place update, no random draw —
  so equal text is the same value);
* **dead values** — temporaries no output depends on are dropped;
* **liveness** — ``del`` after the last statement that reads each temporary, so large intermediates
  (n × n scores) are freed as soon as they are spent, not at return.

Where the other passes live: exact algebraic rewrites in :mod:`.optimize` and fusions (attention,
layer norm) in :mod:`.fuse`, both on the expression DAG before printing; sharing of repeated
sub-trees and of runs of factors inside products in the printer (:mod:`.printer`, by use counts over
the tree).  Chain ordering by size stays at run time (``_mm`` in :mod:`.runtime`): the dims are
symbolic when the code is generated; a chain node reads its factors as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Optional

__all__ = ["Node", "Graph"]

Kind = Literal["temp", "out"]


@dataclass(frozen=True)
class Node:
    """One statement ``name = text`` that reads the values ``reads`` (earlier temporaries) and the
    leaves ``leaves`` (inputs, dims, ``_dt``/``_dev``); ``shape`` is the symbolic ``(rows, cols)``
    of the matrix it holds (after any batch and axis dims) when known."""

    name: str
    text: str
    reads: frozenset[str]
    kind: Kind
    shape: Optional[tuple[Any, Any]] = None
    leaves: frozenset[str] = frozenset()


@dataclass
class Graph:
    """Nodes in emission order, the leaves (input names) and the transposed views of codes."""

    nodes: list[Node] = field(default_factory=list)
    leaves: set[str] = field(default_factory=set)
    _by_text: dict[str, str] = field(default_factory=dict)
    _temps: dict[str, Node] = field(default_factory=dict)
    _views: dict[str, str] = field(default_factory=dict)  # "x.mT" -> "x"

    # ---- building ------------------------------------------------------------------------------
    def leaf(self, name: str) -> str:
        """Register an input (a symbol bound by the function's arguments or prologue)."""
        self.leaves.add(name)
        return name

    def value(self, text: str, reads: Iterable[str], shape: Optional[tuple[Any, Any]] = None) -> str:
        """A temporary holding ``text``: an existing one with the same text (shared sub-expression),
        ``text`` itself when it is already a name, else a new node."""
        if self.is_name(text):
            return text
        hit = self._by_text.get(text)
        if hit is not None:
            return hit
        name = f"_t{len(self._temps)}"
        reads = set(reads)
        node = Node(name, text, frozenset(reads & self._temps.keys()), "temp", shape,
                    frozenset(reads & self.leaves))
        self.nodes.append(node)
        self._temps[name] = node
        self._by_text[text] = name
        return name

    def output(self, target: str, text: str, reads: Iterable[str]) -> None:
        """The statement ``target = text`` for an output (which may be assigned again)."""
        reads = set(reads)
        self.nodes.append(Node(target, text, frozenset(reads & self._temps.keys()), "out", None,
                               frozenset(reads & self.leaves)))

    def transposed(self, code: str) -> str:
        """``code.mT`` for a primary ``code`` (its transposed view), remembered as such."""
        t = f"{code}.mT"
        self._views[t] = code
        return t

    # ---- structure queries ----------------------------------------------------------------------
    def is_name(self, code: str) -> bool:
        """True when ``code`` is a value's name: a temporary or a leaf."""
        return code in self._temps or code in self.leaves

    def untranspose(self, code: str) -> str | None:
        """``x`` when ``code`` is the transposed view ``x.mT`` made by :meth:`transposed`."""
        return self._views.get(code)

    def is_view_of_name(self, code: str) -> bool:
        """True for a name or the transposed view of one (nothing to compute)."""
        base = self._views.get(code)
        return self.is_name(code) or (base is not None and self.is_name(base))

    # ---- passes ---------------------------------------------------------------------------------
    def live_nodes(self) -> list[Node]:
        """The nodes some output depends on (dead temporaries dropped), in emission order."""
        needed: set[str] = set()
        keep: list[Node] = []
        for node in reversed(self.nodes):
            if node.kind == "out" or node.name in needed:
                keep.append(node)
                needed |= node.reads
        return keep[::-1]

    def leaves_read(self) -> set[str]:
        """The leaves the live nodes read: the prologue binds only these (an unused dim is still
        checked by the binding call, just not assigned)."""
        return set().union(*(node.leaves for node in self.live_nodes()))

    @staticmethod
    def releases(nodes: list[Node]) -> list[list[str]]:
        """For each node, the temporaries read for the last time by it (to ``del`` after it)."""
        last: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for r in node.reads:
                last[r] = i
        out: list[list[str]] = [[] for _ in nodes]
        for name, i in last.items():
            out[i].append(name)
        return [sorted(d, key=lambda n: int(n[2:])) for d in out]

    def render(self) -> list[str]:
        """Source lines of the body: the live nodes, each followed by the ``del`` of its spent reads."""
        nodes = self.live_nodes()
        lines: list[str] = []
        for node, dead in zip(nodes, self.releases(nodes)):
            lines.append(f"{node.name} = {node.text}")
            if dead:
                lines.append(f"del {', '.join(dead)}")
        return lines
