"""Questions asked of a finished run's ``graph.json``: why a package is in the tree, which
projects are there in several versions, a part of the graph, the build in parallel
rounds. Pure, but for :func:`load_graph`; the CLI prints the answers (``graph_dot`` draws
the graph, ``subsetdir`` writes a part as an output directory)."""

from __future__ import annotations

import difflib
import enum
import heapq
import itertools
import json
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import BootstrapError, BuildCycleError, UsageError
from .graph import DependencyGraph, EdgeKind, Node, NodeKey, strongly_connected

GRAPH_FILE = "graph.json"
#: The version of the ``--json`` answers' shape; it changes only when a field does.
ANSWER_SCHEMA = 1
#: Chains ``why`` lists unless told otherwise.
DEFAULT_MAX_CHAINS = 20
#: Partial chains ``why`` queues before it settles for those found, and steps it takes
#: counting the chains through install cycles: bounds that keep a query of a graph of
#: thousands of nodes to a second or so (and its memory small) whatever its shape.
SEARCH_BUDGET = 200_000
COUNT_BUDGET = 200_000


class GraphFileError(BootstrapError):
    """A graph.json that is not one bootstrapper wrote (or a part of its output missing)."""


@dataclass(frozen=True)
class Edge:
    """One edge of the graph: ``parent`` needs ``child`` (``parent`` is None for a
    top-level requirement)."""

    parent: NodeKey | None
    child: NodeKey
    kind: EdgeKind
    requirement: str


class LoadedGraph:
    """A ``graph.json``, read and indexed for queries."""

    def __init__(self, graph: DependencyGraph, roots: Sequence[str], path: Path) -> None:
        self.graph = graph
        #: The top-level requirements as the run was given them.
        self.root_requirements = list(roots)
        self.path = path
        self.nodes: dict[NodeKey, Node] = {node.key: node for node in graph.nodes()}
        self.edges: list[Edge] = [
            Edge(None, key, EdgeKind.TOPLEVEL, str(requirement))
            for key, requirement in graph.roots()
        ]
        self.edges.extend(Edge(*edge) for edge in graph.edges())
        self.out_edges: dict[NodeKey, list[Edge]] = {}
        self.in_edges: dict[NodeKey, list[Edge]] = {}
        for edge in self.edges:
            if edge.parent is not None:
                self.out_edges.setdefault(edge.parent, []).append(edge)
            self.in_edges.setdefault(edge.child, []).append(edge)
        self.by_name: dict[NormalizedName, list[NodeKey]] = {}
        for key in sorted(self.nodes):
            self.by_name.setdefault(key.name, []).append(key)
        #: The nodes top-level requirements resolved to, with those requirements.
        self.roots: dict[NodeKey, list[Edge]] = {}
        for edge in self.edges:
            if edge.kind is EdgeKind.TOPLEVEL:
                self.roots.setdefault(edge.child, []).append(edge)

    def label(self, key: NodeKey) -> str:
        """``name==version``, with the version the wheel was published as."""
        return self.nodes[key].label

    def published_version(self, key: NodeKey) -> Version:
        node = self.nodes[key]
        return Version(node.version) if node.version else key.version

    def find(self, name: str, version: str | None = None) -> list[NodeKey]:
        """The nodes of project ``name`` (of ``version`` only, when given: the version
        resolved or the one published); a UsageError naming close names when none is."""
        project = canonicalize_name(name)
        keys = self.by_name.get(project)
        if not keys:
            close = difflib.get_close_matches(project, list(self.by_name), n=5, cutoff=0.6)
            close += sorted(n for n in self.by_name if project in n and n not in close)[:5]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{name} is not in {self.path}{hint}")
        if version is None:
            return keys
        try:
            wanted = Version(version)
        except InvalidVersion:
            raise UsageError(f"invalid version {version!r}") from None
        found = [k for k in keys if wanted in (k.version, self.published_version(k))]
        if not found:
            present = ", ".join(self.version_label(k) for k in keys)
            raise UsageError(f"{project} {version} is not in {self.path} (it has {present})")
        return found

    def version_label(self, key: NodeKey) -> str:
        return self.label(key).partition("==")[2]


def load_graph(path: Path) -> LoadedGraph:
    """Read ``path`` (a run's ``graph.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"there is no {path}: give --output-dir the directory a bootstrap wrote "
            f"(default ./bootstrap-output)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise GraphFileError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        graph, roots = DependencyGraph.from_json(json.loads(text))
    except ValueError as e:  # json.JSONDecodeError is one
        raise GraphFileError(f"{path} is not a graph.json bootstrapper wrote: {e}") from None
    return LoadedGraph(graph, roots, path)


# -- why ---------------------------------------------------------------------------------


class Selection(enum.StrEnum):
    """What part of the graph a query looks at (``--install-only``, ``--build-only``).
    For ``why``: chains of install requirements alone (how a package is installed with
    the top-level requirements), or chains with at least one build requirement (which
    builds need it); for a drawing: the install closure of the top-level requirements,
    or the build edges alone."""

    ALL = "all"
    INSTALL = "install"
    BUILD = "build"


@dataclass(frozen=True)
class Step:
    """One node of a chain and the edges that lead to it from the node before (for the
    first, the top-level requirements that name it)."""

    node: NodeKey
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class Why:
    targets: tuple[NodeKey, ...]
    selection: Selection
    #: The chains shown: the shortest first.
    chains: tuple[tuple[Step, ...], ...]
    #: How many chains there are in all; None when too many to count.
    total: int | None

    @property
    def left_out(self) -> int | None:
        return None if self.total is None else self.total - len(self.chains)


#: Where each node's chains can come from: child -> parent -> the edges between them.
_Steps = dict[NodeKey, dict[NodeKey, tuple[Edge, ...]]]


def why(
    graph: LoadedGraph,
    targets: Collection[NodeKey],
    selection: Selection = Selection.ALL,
    max_chains: int = DEFAULT_MAX_CHAINS,
    *,
    search_budget: int = SEARCH_BUDGET,
    count_budget: int = COUNT_BUDGET,
) -> Why:
    """The chains from a top-level requirement to any of ``targets``: simple paths (no
    node twice, so install cycles end), the shortest first, at most ``max_chains``,
    with how many there are in all."""
    incoming = _incoming_steps(graph, selection)
    builds = {
        (parent, child): any(e.kind.is_build for e in edges)
        for child, parents in incoming.items()
        for parent, edges in parents.items()
    }
    outgoing: dict[NodeKey, list[NodeKey]] = {}
    for child, parents in incoming.items():
        for parent in parents:
            outgoing.setdefault(parent, []).append(child)
    need_build = selection is Selection.BUILD
    distance = _distances_from_roots(graph.roots, outgoing, builds)

    def to_root(key: NodeKey, built: bool) -> int | None:
        """The fewest steps from a root to ``key`` for a chain whose rest has a build
        edge (``built``) or not: a bound that never overestimates, for the search."""
        found = [distance.get((key, True))]
        if built or not need_build:
            found.append(distance.get((key, False)))
        return min((d for d in found if d is not None), default=None)

    # Best first, from the targets back to the roots: a partial chain's priority is its
    # length plus the fewest steps left, so complete chains come shortest first.
    order = itertools.count()
    queue: list[tuple[int, tuple[str, ...], int, tuple[NodeKey, ...], bool]] = []
    for target in sorted(targets):
        bound = to_root(target, False)
        if bound is not None:
            queue.append((bound, (graph.label(target),), next(order), (target,), False))
    heapq.heapify(queue)
    found: list[tuple[NodeKey, ...]] = []
    queued = len(queue)
    while queue and len(found) < max_chains and queued < search_budget:
        _, labels, _, path, built = heapq.heappop(queue)
        head = path[0]
        if head in graph.roots and (built or not need_build):
            found.append(path)
        for parent in incoming.get(head, {}):
            if parent == head or parent in path:
                continue
            now_built = built or builds[(parent, head)]
            bound = to_root(parent, now_built)
            if bound is not None:
                queued += 1
                heapq.heappush(
                    queue,
                    (
                        len(path) + bound,
                        (graph.label(parent), *labels),
                        next(order),
                        (parent, *path),
                        now_built,
                    ),
                )
    if not queue:
        total: int | None = len(found)  # every chain there is was found
    else:
        total = _count_chains(
            graph.roots, targets, incoming, builds, distance, need_build, count_budget
        )
    chains = tuple(
        tuple(
            Step(node, tuple(graph.roots[node]) if i == 0 else incoming[node][path[i - 1]])
            for i, node in enumerate(path)
        )
        for path in found
    )
    return Why(tuple(sorted(targets)), selection, chains, total)


def _incoming_steps(graph: LoadedGraph, selection: Selection) -> _Steps:
    steps: dict[NodeKey, dict[NodeKey, list[Edge]]] = {}
    for edge in graph.edges:
        if edge.parent is None or edge.parent == edge.child:
            continue
        if selection is Selection.INSTALL and edge.kind is not EdgeKind.INSTALL:
            continue
        steps.setdefault(edge.child, {}).setdefault(edge.parent, []).append(edge)
    return {
        child: {parent: tuple(edges) for parent, edges in sorted(parents.items())}
        for child, parents in steps.items()
    }


def _distances_from_roots(
    roots: Iterable[NodeKey],
    outgoing: Mapping[NodeKey, Sequence[NodeKey]],
    builds: Mapping[tuple[NodeKey, NodeKey], bool],
) -> dict[tuple[NodeKey, bool], int]:
    """The fewest steps from a root to each node, along a path with a build edge (True)
    and along one without (False)."""
    distance: dict[tuple[NodeKey, bool], int] = {}
    queue: deque[tuple[NodeKey, bool]] = deque()
    for root in roots:
        distance[(root, False)] = 0
        queue.append((root, False))
    while queue:
        node, built = queue.popleft()
        for child in outgoing.get(node, ()):
            state = (child, built or builds[(node, child)])
            if state not in distance:
                distance[state] = distance[(node, built)] + 1
                queue.append(state)
    return distance


def _count_chains(
    roots: Collection[NodeKey],
    targets: Collection[NodeKey],
    incoming: _Steps,
    builds: Mapping[tuple[NodeKey, NodeKey], bool],
    distance: Mapping[tuple[NodeKey, bool], int],
    need_build: bool,
    budget: int,
) -> int | None:
    """How many chains lead to ``targets``, without listing them; None when counting
    would take more than ``budget`` steps.

    A simple path never comes back to a strongly connected component it left, so its
    visit of each is one stretch: counts flow from component to component in
    topological order, multiplied inside a component (an install cycle: a handful of
    nodes) by the simple paths through it, which are enumerated.
    """
    # The nodes a chain can pass: reached from a root, and leading to a target.
    useful: set[NodeKey] = set()
    queue = deque(t for t in targets if (t, False) in distance or (t, True) in distance)
    useful.update(queue)
    while queue:
        node = queue.popleft()
        for parent in incoming.get(node, {}):
            if parent not in useful and ((parent, False) in distance or (parent, True) in distance):
                useful.add(parent)
                queue.append(parent)
    children: dict[NodeKey, dict[NodeKey, bool]] = {node: {} for node in useful}
    for child in useful:
        for parent in incoming.get(child, {}):
            if parent in useful:
                children[parent][child] = builds[(parent, child)]
    steps = 0
    #: Chains ending at a node, with a build edge (True) or without.
    ending: Counter[tuple[NodeKey, bool]] = Counter()
    # Tarjan's components come dependents last: reversed, every way into a component
    # is counted before it.
    for component in reversed(strongly_connected(sorted(useful), children)):
        entering: Counter[tuple[NodeKey, bool]] = Counter()
        for node in component:
            if node in roots:
                entering[(node, False)] += 1
            for parent in incoming.get(node, {}):
                if parent in useful and parent not in component:
                    for built in (False, True):
                        count = ending[(parent, built)]
                        if count:
                            entering[(node, built or builds[(parent, node)])] += count
        if len(component) == 1:
            ending.update(entering)
            continue
        for start in {node for node, _ in entering}:
            through = _paths_within(start, component, children, budget - steps)
            if through is None:
                return None
            paths, spent = through
            steps += spent
            for built_before in (False, True):
                count = entering[(start, built_before)]
                if count:
                    for (end, built_inside), n in paths.items():
                        ending[(end, built_before or built_inside)] += count * n
    return sum(
        ending[(target, built)]
        for target in set(targets)
        for built in ((True,) if need_build else (False, True))
    )


def _paths_within(
    start: NodeKey,
    component: Collection[NodeKey],
    children: Mapping[NodeKey, Mapping[NodeKey, bool]],
    budget: int,
) -> tuple[Counter[tuple[NodeKey, bool]], int] | None:
    """The simple paths from ``start`` inside ``component``, counted by their last node
    and whether they take a build edge; with the steps it took (None past ``budget``)."""
    paths: Counter[tuple[NodeKey, bool]] = Counter({(start, False): 1})
    on_path = {start}
    stack = [(start, False, iter(children[start].items()))]
    steps = 0
    while stack:
        node, built, rest = stack[-1]
        for child, is_build in rest:
            if child in on_path or child not in component:
                continue
            steps += 1
            if steps > budget:
                return None
            now_built = built or is_build
            paths[(child, now_built)] += 1
            on_path.add(child)
            stack.append((child, now_built, iter(children[child].items())))
            break
        else:
            stack.pop()
            on_path.discard(node)
    return paths, steps


# -- duplicates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One requirement on a project: the edge, and the present versions it accepts."""

    edge: Edge
    satisfied_by: tuple[NodeKey, ...]


@dataclass(frozen=True)
class Duplicate:
    """A project present in several versions."""

    name: NormalizedName
    versions: tuple[NodeKey, ...]
    needs: tuple[Need, ...]

    @property
    def satisfy_all(self) -> tuple[NodeKey, ...]:
        """The versions every requirement accepts."""
        return tuple(k for k in self.versions if all(k in n.satisfied_by for n in self.needs))


def duplicates(graph: LoadedGraph) -> list[Duplicate]:
    """Every project present in more than one version, with each requirement on it and
    the present versions that requirement accepts (pre-releases included: one was
    resolved, so it was allowed). Versions are compared as published (a rebuild scheme's
    1.4.post1), which is what an installer would see."""
    found = []
    for name, keys in sorted(graph.by_name.items()):
        if len(keys) < 2:
            continue
        needs = []
        for key in keys:
            for edge in sorted(
                graph.in_edges.get(key, []),
                key=lambda e: (e.parent is not None, e.parent or key, e.kind, e.requirement),
            ):
                if edge.parent == edge.child:
                    continue
                try:
                    specifier = Requirement(edge.requirement).specifier
                except InvalidRequirement as e:
                    raise GraphFileError(
                        f"{graph.path}: the requirement {edge.requirement!r} of "
                        f"{_edge_from(graph, edge)} cannot be read: {e}"
                    ) from None
                accepted = tuple(
                    k for k in keys if specifier.contains(graph.published_version(k), True)
                )
                needs.append(Need(edge, accepted))
        found.append(Duplicate(name, tuple(keys), tuple(needs)))
    return found


def _edge_from(graph: LoadedGraph, edge: Edge) -> str:
    return "a top-level requirement" if edge.parent is None else graph.label(edge.parent)


# -- rounds ------------------------------------------------------------------------------


def rounds(graph: LoadedGraph) -> list[list[NodeKey]]:
    """The build in rounds: a package is in the first round after every one of its build
    requirements and their install closures (what its build environment holds: all
    ``build-*`` edges, then ``install`` edges). Packages of a round can build at once;
    a package's install requirements need not be built before it. A build cycle is a
    BuildCycleError, as for the build order."""
    graph.graph.build_order()  # names a build cycle, if there is one
    installs: dict[NodeKey, dict[NodeKey, None]] = {k: {} for k in graph.nodes}
    build_needs: dict[NodeKey, set[NodeKey]] = {k: set() for k in graph.nodes}
    for edge in graph.edges:
        if edge.parent is None or edge.parent == edge.child:
            continue
        if edge.kind is EdgeKind.INSTALL:
            installs[edge.parent][edge.child] = None
        elif edge.kind.is_build:
            build_needs[edge.parent].add(edge.child)
    # An install closure is the same for every member of an install cycle: one per
    # component, the latest round of its members and of the components it reaches.
    components = strongly_connected(sorted(graph.nodes), installs)
    component_of = {key: i for i, members in enumerate(components) for key in members}

    def needs(item: tuple[bool, int | NodeKey]) -> list[tuple[bool, int | NodeKey]]:
        is_component, value = item
        if not is_component:
            assert isinstance(value, NodeKey)
            return [(True, component_of[k]) for k in sorted(build_needs[value])]
        assert isinstance(value, int)
        members = components[value]
        reached = {component_of[c] for m in members for c in installs[m]} - {value}
        return [(False, m) for m in sorted(members)] + [(True, c) for c in sorted(reached)]

    latest: dict[tuple[bool, int | NodeKey], int] = {}
    for start in sorted(graph.nodes):
        item: tuple[bool, int | NodeKey] = (False, start)
        if item in latest:
            continue
        # Depth first without recursion (a chain can be deeper than Python's stack).
        stack = [(item, iter(needs(item)))]
        entered = {item}
        while stack:
            current, rest = stack[-1]
            for need in rest:
                if need in latest:
                    continue
                if need in entered:  # build_order() let no build cycle through
                    raise BuildCycleError(f"build cycle through {need[1]}")
                entered.add(need)
                stack.append((need, iter(needs(need))))
                break
            else:
                stack.pop()
                done = [latest[n] for n in needs(current)]
                if current[0]:  # a component: as late as its latest member or reach
                    latest[current] = max(done, default=0)
                else:  # a package: one round after its build environment
                    latest[current] = max(done, default=0) + 1
    by_round: dict[int, list[NodeKey]] = {}
    for key in graph.nodes:
        by_round.setdefault(latest[(False, key)], []).append(key)
    return [sorted(by_round[r], key=graph.label) for r in sorted(by_round)]


# -- subset ------------------------------------------------------------------------------


class Direction(enum.StrEnum):
    #: The packages given and everything they need, to build and to install.
    DEPENDENCIES = "dependencies"
    #: The trees of the top-level requirements that need the packages given (to install
    #: or to build), whole: what a change to them affects, with what those builds need.
    DEPENDENTS = "dependents"


@dataclass(frozen=True)
class Subset:
    graph: DependencyGraph
    #: The top-level requirements the part stands for (``graph.json``'s ``roots``).
    roots: tuple[str, ...]
    #: For DEPENDENTS, the packages that need the ones given; else empty.
    dependents: frozenset[NodeKey]


def subset(graph: LoadedGraph, targets: Collection[NodeKey], direction: Direction) -> Subset:
    """A part of the graph that is a whole graph again: every package in it has its
    build requirements and install closure in it, so the part builds (``build-sequence``)
    and installs on its own."""
    dependents: set[NodeKey] = set()
    if direction is Direction.DEPENDENCIES:
        roots = [
            (key, Requirement(f"{key.name}=={graph.published_version(key)}"))
            for key in sorted(targets)
        ]
        seeds: Iterable[NodeKey] = targets
    else:
        dependents = _reached(targets, lambda k: (e.parent for e in graph.in_edges.get(k, [])))
        roots = [(key, req) for key, req in graph.graph.roots() if key in dependents]
        seeds = dependents
    kept = _reached(seeds, lambda k: (e.child for e in graph.out_edges.get(k, [])))
    return Subset(
        graph.graph.restricted(kept, roots),
        tuple(dict.fromkeys(str(req) for _, req in roots)),
        frozenset(dependents - set(targets)),
    )


def _reached(
    start: Iterable[NodeKey], neighbours: Callable[[NodeKey], Iterable[NodeKey | None]]
) -> set[NodeKey]:
    seen = set(start)
    queue = deque(seen)
    while queue:
        for other in neighbours(queue.popleft()):
            if other is not None and other not in seen:
                seen.add(other)
                queue.append(other)
    return seen


def install_closure(graph: DependencyGraph, keys: Iterable[NodeKey]) -> set[NodeKey]:
    """``keys`` and everything they need to install (install edges alone)."""
    children: dict[NodeKey, list[NodeKey]] = {}
    for parent, child, kind, _ in graph.edges():
        if kind is EdgeKind.INSTALL:
            children.setdefault(parent, []).append(child)
    return _reached(keys, lambda k: children.get(k, []))
