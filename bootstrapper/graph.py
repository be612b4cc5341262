"""The dependency graph: typed edges between ``name==version`` nodes, build order, JSON."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
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
    """A multigraph of packages; edges carry their kind and the requirement behind them."""

    def __init__(self) -> None:
        self._graph: nx.MultiDiGraph = nx.MultiDiGraph()
        self._roots: list[tuple[NodeKey, Requirement]] = []

    def add_node(self, node: Node) -> None:
        self._graph.add_node(node.key, node=node)

    def node(self, key: NodeKey) -> Node:
        node: Node = self._graph.nodes[key]["node"]
        return node

    def __contains__(self, key: object) -> bool:
        return key in self._graph and "node" in self._graph.nodes[key]

    def add_root(self, key: NodeKey, requirement: Requirement) -> None:
        if (key, requirement) not in self._roots:
            self._roots.append((key, requirement))

    def add_edge(
        self, parent: NodeKey, child: NodeKey, kind: EdgeKind, requirement: Requirement
    ) -> None:
        text = str(requirement)
        existing = self._graph.get_edge_data(parent, child) or {}
        if any(d["kind"] == kind and d["requirement"] == text for d in existing.values()):
            return
        self._graph.add_edge(parent, child, kind=kind, requirement=text)

    def restricted(self, keys: Collection[NodeKey]) -> DependencyGraph:
        """The graph of ``keys`` alone: their nodes, the edges between them, the roots
        that name one of them."""
        kept = DependencyGraph()
        kept._graph = self._graph.subgraph(k for k in self._graph if k in keys).copy()
        kept._roots = [(key, req) for key, req in self._roots if key in keys]
        return kept

    def edges(self) -> list[tuple[NodeKey, NodeKey, EdgeKind, str]]:
        return sorted(
            (u, v, d["kind"], d["requirement"]) for u, v, d in self._graph.edges(data=True)
        )

    def build_order(self) -> list[NodeKey]:
        """Every node after its build requirements and their install closure.

        Install cycles are allowed: their members come together, by name. A cycle through
        a build edge cannot be built and is reported.
        """
        condensed = nx.condensation(self._graph)
        members: Mapping[int, set[NodeKey]] = nx.get_node_attributes(condensed, "members")
        for component in members.values():
            cycle = _build_cycle(self._graph.subgraph(component))
            if cycle:
                raise BuildCycleError("build cycle: " + " -> ".join(str(k) for k in cycle))
        order: list[NodeKey] = []
        # Dependencies first: reverse the edges (parent -> child means child is needed).
        reversed_dag = condensed.reverse(copy=True)
        for component in nx.lexicographical_topological_sort(
            reversed_dag, key=lambda c: min(str(k) for k in members[c])
        ):
            order.extend(sorted(members[component]))
        return [key for key in order if key in self]

    def _label(self, key: NodeKey) -> str:
        return self.node(key).label if key in self else str(key)

    def to_json(self, roots: Iterable[str]) -> dict[str, Any]:
        nodes = [self.node(k).to_json() for k in sorted(self._graph.nodes) if k in self]
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


def _build_cycle(component: nx.MultiDiGraph) -> list[NodeKey]:
    """A cycle through a build edge inside one strongly connected component, if any:
    the build edge, then the shortest way back."""
    for parent, child, data in sorted(component.edges(data=True), key=lambda e: (e[0], e[1])):
        if EdgeKind(data["kind"]).is_build:
            back: list[NodeKey] = nx.shortest_path(component, child, parent)
            return [parent, *back] if parent != child else [parent, parent]
    return []
