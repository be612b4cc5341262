"""The dependency graph: typed edges between ``name==version`` nodes, build order, JSON."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .credentials import redact_text
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
        # Spelled once: the graph, the run log and the report spell every key many times,
        # and a Version is spelled again from its parts each time.
        text: str | None = self.__dict__.get("_text")
        if text is None:
            text = f"{self.name}=={self.version}"
            object.__setattr__(self, "_text", text)
        return text


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

    def nodes(self) -> list[Node]:
        """Every node, in the order added."""
        return [node for node in self._nodes.values() if node is not None]

    def roots(self) -> list[tuple[NodeKey, Requirement]]:
        """The top-level requirements, each with the node it resolved to, in the order added."""
        return list(self._roots)

    def restricted(
        self,
        keys: Collection[NodeKey],
        roots: Sequence[tuple[NodeKey, Requirement]] | None = None,
    ) -> DependencyGraph:
        """The graph of ``keys`` alone: their nodes, the edges between them, and the roots
        that name one of them (or ``roots``, when given: a part of a graph can stand
        for other top-level requirements than the whole)."""
        kept = DependencyGraph()
        kept._nodes = {k: n for k, n in self._nodes.items() if k in keys}
        for parent in kept._nodes:  # edges by parent, as a copy of a networkx graph has them
            for child, between in self._edges.get(parent, {}).items():
                if child in kept._nodes:
                    kept._edges.setdefault(parent, {})[child] = list(between)
                    kept._added.extend((parent, child, kind, text) for kind, text in between)
        kept._roots = [
            (key, req) for key, req in (self._roots if roots is None else roots) if key in keys
        ]
        return kept

    def edges(self) -> list[tuple[NodeKey, NodeKey, EdgeKind, str]]:
        return sorted(self._added)

    def build_order(self) -> list[NodeKey]:
        """Every node after its build requirements and their install closure.

        Install cycles are allowed: their members come together, by name. A cycle through
        a build edge cannot be built and is reported.
        """
        components = strongly_connected(self._nodes, self._edges)
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
                "requirement": redact_text(str(req)),
            }
            for key, req in self._roots
        ]
        edges.extend(
            {
                "from": self._label(u),
                "to": self._label(v),
                "kind": str(kind),
                "requirement": redact_text(req),
            }
            for u, v, kind, req in self.edges()
        )
        # A direct URL (``name @ https://user:token@host/...``) keeps no credentials here.
        return {
            "schema": SCHEMA,
            "roots": [redact_text(root) for root in roots],
            "nodes": nodes,
            "edges": edges,
        }

    @classmethod
    def from_json(cls, document: Any) -> tuple[DependencyGraph, list[str]]:
        """The graph and the top-level requirements of a ``graph.json`` document (what
        :meth:`to_json` writes): its nodes keep every field, so that ``to_json`` gives the
        same document back. Raises ValueError saying what is wrong with one it did not
        write."""
        if not isinstance(document, dict):
            raise ValueError(f"a JSON {type(document).__name__} where an object is expected")
        if document.get("schema") != SCHEMA:
            raise ValueError(f"schema {document.get('schema')!r}, where {SCHEMA} is expected")
        roots = _json_list(document, "roots", str)
        graph = cls()
        labels: dict[str, NodeKey] = {}
        for i, item in enumerate(_json_list(document, "nodes", dict)):
            node = _node_from_json(item, f"nodes[{i}]")
            if node.key in graph._nodes:
                raise ValueError(f"nodes[{i}]: {node.label} is there twice")
            graph._nodes[node.key] = node
            labels[node.label] = node.key
        #: By name and published version, for labels not spelled as written here.
        by_version: dict[tuple[NormalizedName, Version], NodeKey] = {}

        def endpoint(label: Any, where: str) -> NodeKey:
            if not isinstance(label, str):
                raise ValueError(f"{where}: a {type(label).__name__} where a node is expected")
            key = labels.get(label)
            if key is not None:
                return key
            # Written by hand: Foo_Bar==1.0.0 for the node foo-bar==1.0.
            if not by_version:
                by_version.update(
                    ((n.key.name, Version(n.version or str(n.key.version))), n.key)
                    for n in graph.nodes()
                )
            name, _, version = label.partition("==")
            try:
                found = by_version.get((canonicalize_name(name), Version(version)))
            except InvalidVersion:
                found = None
            if found is None:
                raise ValueError(f"{where}: {label!r} is not one of the nodes")
            return found

        for i, item in enumerate(_json_list(document, "edges", dict)):
            where = f"edges[{i}]"
            try:
                kind = EdgeKind(item["kind"])
                requirement = item["requirement"]
                parent_label, child_label = item["from"], item["to"]
            except KeyError as e:
                raise ValueError(f"{where}: no {e.args[0]!r}") from None
            except ValueError:
                raise ValueError(f"{where}: unknown kind {item['kind']!r}") from None
            if not isinstance(requirement, str):
                raise ValueError(f"{where}: the requirement is not a string")
            child = endpoint(child_label, f"{where}.to")
            if kind is EdgeKind.TOPLEVEL:
                if parent_label is not None:
                    raise ValueError(f"{where}: a toplevel edge comes from null")
                try:
                    graph.add_root(child, Requirement(requirement))
                except InvalidRequirement as e:
                    raise ValueError(f"{where}: {e}") from None
                continue
            parent = endpoint(parent_label, f"{where}.from")
            # The requirement is kept as text: parsing thousands costs a query more than
            # it answers, and the text is what is shown.
            between = graph._edges.setdefault(parent, {}).setdefault(child, [])
            if (kind, requirement) not in between:
                between.append((kind, requirement))
                graph._added.append((parent, child, kind, requirement))
        return graph, roots


def _json_list(document: dict[str, Any], field: str, item_type: type) -> list[Any]:
    value = document.get(field)
    if not isinstance(value, list):
        raise ValueError(f"no list {field!r}")
    for i, item in enumerate(value):
        if not isinstance(item, item_type):
            raise ValueError(
                f"{field}[{i}]: a {type(item).__name__} where a {item_type.__name__} is expected"
            )
    return value


def _node_from_json(item: dict[str, Any], where: str) -> Node:
    fields = {}
    for field_name in ("name", "version", "wheel", "sdist"):
        value = item.get(field_name)
        if not isinstance(value, str):
            raise ValueError(f"{where}: no string {field_name!r}")
        fields[field_name] = value
    extra = {k: v for k, v in item.items() if k not in fields}
    try:
        # The key is the version resolved from the index; ``version`` is the published
        # wheel's, which a rebuild scheme may have changed (1.4 -> 1.4.post2).
        source = extra.get("source_version", fields["version"])
        key = NodeKey(canonicalize_name(fields["name"]), Version(str(source)))
        Version(fields["version"])
    except InvalidVersion as e:
        raise ValueError(f"{where}: {e}") from None
    return Node(key, fields["wheel"], fields["sdist"], extra, fields["version"])


def strongly_connected(
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
