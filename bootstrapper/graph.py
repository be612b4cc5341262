"""The dependency graph: typed edges between ``name==version`` nodes, build order, JSON."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from .errors import BuildCycleError

SCHEMA = 1


class EdgeKind(enum.StrEnum):
    TOPLEVEL = "toplevel"
    INSTALL = "install"
    BUILD_SYSTEM = "build-system"
    BUILD_BACKEND = "build-backend"
    BUILD_SDIST = "build-sdist"

    @property
    def is_build(self) -> bool:
        return self is not EdgeKind.TOPLEVEL and self is not EdgeKind.INSTALL


@dataclass(frozen=True, order=True)
class NodeKey:
    name: NormalizedName
    version: Version
    #: Hashed once: keys are looked up in sets and maps thousands of times per package,
    #: and a Version hashes its whole comparison key each time.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.name, self.version)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[NodeKey], tuple[NormalizedName, Version]]:
        # Hashed again where it is unpickled: a str's hash differs between processes.
        return (NodeKey, (self.name, self.version))

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Node:
    key: NodeKey
    wheel: str
    sdist: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: The published wheel's version, when a rebuild scheme changed it (1.4.post2).
    version: str | None = None

    @property
    def label(self) -> str:
        return f"{self.key.name}=={self.version or self.key.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.key.name,
            "version": self.version or str(self.key.version),
            "wheel": self.wheel,
            "sdist": self.sdist,
            **self.extra,
        }


class DependencyGraph:
    """A multigraph of packages; edges carry their kind and the requirement behind them.

    Kept in plain dicts: a run needs only its build order, and importing networkx costs a
    re-run more than computing that (networkx names a build cycle, when there is one).
    """

    def __init__(self) -> None:
        #: Every node, in the order met; None for one met only as an edge's end so far.
        self._nodes: dict[NodeKey, Node | None] = {}
        #: parent -> child -> (kind, requirement) of each edge between them, in order.
        self._edges: dict[NodeKey, dict[NodeKey, list[tuple[EdgeKind, str]]]] = {}
        #: Every edge (parent, child, kind, requirement), in the order added.
        self._added: list[tuple[NodeKey, NodeKey, EdgeKind, str]] = []
        self._roots: list[tuple[NodeKey, Requirement]] = []

    def add_node(self, node: Node) -> None:
        self._nodes[node.key] = node

    def node(self, key: NodeKey) -> Node:
        node = self._nodes[key]
        if node is None:
            raise KeyError(key)
        return node

    def __contains__(self, key: object) -> bool:
        return self._nodes.get(key) is not None  # type: ignore[call-overload]

    def add_root(self, key: NodeKey, requirement: Requirement) -> None:
        if (key, requirement) not in self._roots:
            self._roots.append((key, requirement))

    def add_edge(
        self, parent: NodeKey, child: NodeKey, kind: EdgeKind, requirement: Requirement
    ) -> None:
        text = str(requirement)
        self._nodes.setdefault(parent, None)
        self._nodes.setdefault(child, None)
        between = self._edges.setdefault(parent, {}).setdefault(child, [])
        if (kind, text) not in between:
            between.append((kind, text))
            self._added.append((parent, child, kind, text))

    def restricted(self, keys: Collection[NodeKey]) -> DependencyGraph:
        """The graph of ``keys`` alone: their nodes, the edges between them, the roots
        that name one of them."""
        kept = DependencyGraph()
        kept._nodes = {k: n for k, n in self._nodes.items() if k in keys}
        for parent in kept._nodes:  # edges by parent, as a copy of a networkx graph has them
            for child, between in self._edges.get(parent, {}).items():
                if child in kept._nodes:
                    kept._edges.setdefault(parent, {})[child] = list(between)
                    kept._added.extend((parent, child, kind, text) for kind, text in between)
        kept._roots = [(key, req) for key, req in self._roots if key in keys]
        return kept

    def edges(self) -> list[tuple[NodeKey, NodeKey, EdgeKind, str]]:
        return sorted(self._added)

    def build_order(self) -> list[NodeKey]:
        """Every node after its build requirements and their install closure.

        Install cycles are allowed: their members come together, by name. A cycle through
        a build edge cannot be built and is reported.
        """
        components = _strongly_connected(self._nodes, self._edges)
        for members in components:
            if any(
                kind.is_build
                for parent in members
                for child, between in self._edges.get(parent, {}).items()
                if child in members
                for kind, _ in between
            ):
                cycle = _build_cycle(
                    [k for k in self._nodes if k in members],
                    [e for e in self._added if e[0] in members and e[1] in members],
                )
                raise BuildCycleError("build cycle: " + " -> ".join(str(k) for k in cycle))
        # Dependencies first: a component comes once every component it needs did; of
        # those ready, the one whose least member's name sorts first.
        index = {key: i for i, members in enumerate(components) for key in members}
        needs: list[set[int]] = [set() for _ in components]
        needed_by: list[set[int]] = [set() for _ in components]
        for parent, children in self._edges.items():
            for child in children:
                if index[parent] != index[child]:
                    needs[index[parent]].add(index[child])
                    needed_by[index[child]].add(index[parent])
        labels = [min(str(k) for k in members) for members in components]
        waiting = [len(n) for n in needs]
        ready = [(labels[i], i) for i, count in enumerate(waiting) if count == 0]
        heapq.heapify(ready)
        order: list[NodeKey] = []
        while ready:
            _, i = heapq.heappop(ready)
            order.extend(sorted(components[i]))
            for j in needed_by[i]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, (labels[j], j))
        return [key for key in order if key in self]

    def _label(self, key: NodeKey) -> str:
        return self.node(key).label if key in self else str(key)

    def to_json(self, roots: Iterable[str]) -> dict[str, Any]:
        nodes = [self.node(k).to_json() for k in sorted(self._nodes) if k in self]
        edges: list[dict[str, Any]] = [
            {
                "from": None,
                "to": self._label(key),
                "kind": EdgeKind.TOPLEVEL.value,
                "requirement": str(req),
            }
            for key, req in self._roots
        ]
        edges.extend(
            {"from": self._label(u), "to": self._label(v), "kind": str(kind), "requirement": req}
            for u, v, kind, req in self.edges()
        )
        return {"schema": SCHEMA, "roots": list(roots), "nodes": nodes, "edges": edges}


def _strongly_connected(
    nodes: Iterable[NodeKey], edges: Mapping[NodeKey, Mapping[NodeKey, Any]]
) -> list[set[NodeKey]]:
    """The strongly connected components (Tarjan's algorithm, without recursion: a
    chain of dependencies can be deeper than Python's stack)."""
    index: dict[NodeKey, int] = {}
    low: dict[NodeKey, int] = {}
    stack: list[NodeKey] = []
    on_stack: set[NodeKey] = set()
    components: list[set[NodeKey]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, {})))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, {}))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _build_cycle(
    members: Sequence[NodeKey], edges: Sequence[tuple[NodeKey, NodeKey, EdgeKind, str]]
) -> list[NodeKey]:
    """A cycle through a build edge inside one strongly connected component (its
    ``members`` and the ``edges`` between them, in the order added), if any: the build
    edge, then the shortest way back. An error path: networkx finds it."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    graph.add_nodes_from(members)
    for parent, child, kind, text in edges:
        graph.add_edge(parent, child, kind=kind, requirement=text)
    for parent, child, data in sorted(graph.edges(data=True), key=lambda e: (e[0], e[1])):
        if EdgeKind(data["kind"]).is_build:
            back: list[NodeKey] = nx.shortest_path(graph, child, parent)
            return [parent, *back] if parent != child else [parent, parent]
    return []
