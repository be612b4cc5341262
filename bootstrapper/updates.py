"""Update tracking: which projects of a finished run have newer releases on the index,
which of those the run's top-level requirements and constraints allow, what holds the
others back, and which top-level requirements each one affects.

The analysis is pure: the run's graph comes in as its ``graph.json`` document and the
releases through a callable (the run's finder, in the CLI); :func:`read_graph` is the
one function here that reads a file, and nothing here reads the network.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .candidates import Release, allowed
from .errors import BootstrapError, ReleaseAgeUnsupportedError, UsageError
from .graph import EdgeKind
from .resolve import _exact_pins

SCHEMA = 1
GRAPH_FILE = "graph.json"


class Reach(enum.StrEnum):
    """How a project is part of a run: installed with a top-level requirement, or only
    built with (a build tool or one of its dependencies)."""

    INSTALL = "install"
    BUILD = "build"


@dataclass(frozen=True)
class Edge:
    parent: str | None
    child: str
    kind: EdgeKind
    requirement: str


@dataclass(frozen=True)
class RunGraph:
    """What find-updates needs of a ``graph.json``: each node's project and source
    version by its label (``name==version`` as edges name it), and the edges."""

    nodes: Mapping[str, tuple[NormalizedName, Version]]
    edges: tuple[Edge, ...]
    roots: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> RunGraph:
        """Raises ``ValueError``, ``KeyError`` or ``TypeError`` on a malformed document."""
        nodes: dict[str, tuple[NormalizedName, Version]] = {}
        for node in data["nodes"]:
            label = f"{node['name']}=={node['version']}"
            # The upstream version: the published one may carry a rebuild's .postN.
            nodes[label] = (
                canonicalize_name(node["name"]),
                Version(node.get("source_version") or node["version"]),
            )
        edges = tuple(
            Edge(edge["from"], edge["to"], EdgeKind(edge["kind"]), str(edge["requirement"]))
            for edge in data["edges"]
        )
        return cls(nodes, edges, tuple(str(root) for root in data.get("roots", [])))

    def versions(self) -> dict[NormalizedName, set[Version]]:
        """The source versions of each project in the run."""
        found: dict[NormalizedName, set[Version]] = {}
        for name, version in self.nodes.values():
            found.setdefault(name, set()).add(version)
        return found

    def reached(self) -> tuple[dict[NormalizedName, list[str]], dict[str, set[str]]]:
        """For each project, the top-level requirements it is reached from (by any
        edge); and for each top-level requirement, the nodes of its install closure (by
        install edges only)."""
        children: dict[str, list[Edge]] = {}
        for edge in self.edges:
            if edge.parent is not None:
                children.setdefault(edge.parent, []).append(edge)
        affects: dict[NormalizedName, list[str]] = {}
        closures: dict[str, set[str]] = {}
        for top in (e for e in self.edges if e.parent is None):
            for label in _walk(top.child, children, install_only=False):
                name = self._name(label)
                if name is not None and top.requirement not in affects.get(name, []):
                    affects.setdefault(name, []).append(top.requirement)
            closure = closures.setdefault(top.requirement, set())
            closure |= {
                label
                for label in _walk(top.child, children, install_only=True)
                if label in self.nodes
            }
        return affects, closures

    def _name(self, label: str) -> NormalizedName | None:
        node = self.nodes.get(label)
        return node[0] if node is not None else None


def _walk(start: str, children: Mapping[str, list[Edge]], *, install_only: bool) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for edge in children.get(stack.pop(), []):
            if install_only and edge.kind.is_build:
                continue
            if edge.child not in seen:
                seen.add(edge.child)
                stack.append(edge.child)
    return seen


def read_graph(output_dir: Path) -> RunGraph:
    """``DIR/graph.json``; a directory without one is not a run's output (a usage
    error: the fix is another DIR)."""
    path = output_dir / GRAPH_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"{output_dir} holds no {GRAPH_FILE}: give the output directory of a bootstrap "
            "that finished"
        ) from None
    except OSError as e:
        raise BootstrapError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return RunGraph.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, InvalidVersion) as e:
        raise BootstrapError(
            f"{path} is not a graph this bootstrapper can read ({type(e).__name__}: {e})"
        ) from None


class Origin(enum.StrEnum):
    REQUIREMENT = "requirement"
    CONSTRAINT = "constraint"


@dataclass(frozen=True)
class HeldBack:
    """A top-level requirement or constraint that excludes the newest release."""

    requirement: Requirement
    origin: Origin

    def __str__(self) -> str:
        return f"{self.origin.value} {self.requirement}"


@dataclass(frozen=True)
class Dependent:
    """A package of the run whose requirement on the project excludes its update."""

    parent: str
    requirement: str
    kind: EdgeKind

    def __str__(self) -> str:
        return f"{self.parent} requires {self.requirement}"


@dataclass(frozen=True)
class ProjectUpdate:
    name: NormalizedName
    #: The source versions of the project in the run (more than one when a build
    #: environment needed another).
    current: tuple[Version, ...]
    #: The newest release on the index (that the run could take: with an sdist, or the
    #: wheel a ``prebuilt`` package takes; yanked and pre-releases by the usual rules).
    latest: Version
    #: The newest release newer than the run's that its top-level requirements and
    #: constraints allow; None when they allow none.
    update: Version | None
    held_back_by: tuple[HeldBack, ...]
    #: The run's packages whose requirements exclude ``update`` (or ``latest``): an
    #: update of them may lift the limit, so this is a hint, not a verdict.
    limited_by: tuple[Dependent, ...]
    #: The top-level requirements the project is reached from.
    affects: tuple[str, ...]
    reach: Reach

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current": [str(v) for v in self.current],
            "update": None if self.update is None else str(self.update),
            "latest": str(self.latest),
            "held_back_by": [
                {"requirement": str(h.requirement), "origin": h.origin.value}
                for h in self.held_back_by
            ],
            "limited_by": [
                {"from": d.parent, "requirement": d.requirement, "kind": d.kind.value}
                for d in self.limited_by
            ],
            "affects": list(self.affects),
            "reach": self.reach.value,
        }


@dataclass(frozen=True)
class Problem:
    """A project whose releases could not be learnt."""

    name: NormalizedName
    error: str


@dataclass
class UpdateReport:
    updates: list[ProjectUpdate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_json(self, **context: Any) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            **context,
            "updates": [u.to_json() for u in self.updates],
            "problems": [{"name": p.name, "error": p.error} for p in self.problems],
        }


@dataclass(frozen=True)
class RunRequest:
    """What a run resolved against: its top-level requirements and constraints."""

    requirements: Sequence[Requirement]
    constraints: Sequence[Requirement] = ()
    allow_prereleases: bool = False
    #: Each top-level requirement was resolved on its own (``--each``).
    each: bool = False

    def naming(
        self, name: NormalizedName, requirements: Sequence[Requirement] | None = None
    ) -> list[HeldBack]:
        """The requirements (all of the run's, or ``requirements``) and constraints that
        name ``name``."""
        return [
            HeldBack(r, Origin.REQUIREMENT)
            for r in (self.requirements if requirements is None else requirements)
            if canonicalize_name(r.name) == name
        ] + [
            HeldBack(c, Origin.CONSTRAINT)
            for c in self.constraints
            if canonicalize_name(c.name) == name
        ]


@dataclass(frozen=True)
class _Group:
    """Versions of one project judged together: those of the install closure (of all the
    top-level requirements, or with ``--each`` of one), or those only build
    environments have (which no requirement or constraint bounds)."""

    name: NormalizedName
    versions: tuple[Version, ...]
    top_level: tuple[HeldBack, ...]
    reach: Reach
    #: The top-level requirements it speaks for (None: every one that reaches it).
    roots: tuple[str, ...] | None = None


def _groups(graph: RunGraph, request: RunRequest) -> list[_Group]:
    """The groups of versions to judge, one per project and reach (and with ``--each``,
    per top-level requirement): a version is compared only with what bounds it."""
    _, closures = graph.reached()
    by_requirement = {str(r): r for r in request.requirements}
    parts: list[tuple[str | None, set[str]]] = (
        [(root, labels) for root, labels in closures.items()]
        if request.each
        else [(None, set().union(*closures.values()))]
    )
    groups: list[_Group] = []
    installed: set[str] = set()
    for root, labels in parts:
        installed |= labels
        versions: dict[NormalizedName, set[Version]] = {}
        for label in labels:
            name, version = graph.nodes[label]
            versions.setdefault(name, set()).add(version)
        mine = None
        if root is not None:
            mine = [by_requirement.get(root) or Requirement(root)]
        for name, found in versions.items():
            groups.append(
                _Group(
                    name,
                    tuple(sorted(found)),
                    tuple(request.naming(name, mine)),
                    Reach.INSTALL,
                    None if root is None else (root,),
                )
            )
    built_only: dict[NormalizedName, set[Version]] = {}
    for label, (name, version) in graph.nodes.items():
        if label not in installed:
            built_only.setdefault(name, set()).add(version)
    for name, found in built_only.items():
        groups.append(_Group(name, tuple(sorted(found)), (), Reach.BUILD))
    return sorted(groups, key=lambda g: (g.name, g.reach != Reach.INSTALL, g.roots or ()))


def find_updates(
    graph: RunGraph,
    request: RunRequest,
    releases: Callable[[NormalizedName], Sequence[Release]],
) -> UpdateReport:
    """The projects of ``graph`` with a release newer than the run's, by name.

    Top-level requirements and constraints apply to the install closure only (build
    environments are resolved without them, as in a bootstrap)."""
    report = UpdateReport()
    affects, _ = graph.reached()
    failed: set[NormalizedName] = set()
    for group in _groups(graph, request):
        if group.name in failed:
            continue
        try:
            found = releases(group.name)
        except ReleaseAgeUnsupportedError:
            raise  # the index's, not the project's: one refusal for all
        except BootstrapError as e:
            report.problems.append(Problem(group.name, e.message))
            failed.add(group.name)
            continue
        update = project_update(
            group.name,
            group.versions,
            found,
            group.top_level,
            allow_prereleases=request.allow_prereleases,
        )
        if update is None:
            continue
        target = update.update or update.latest
        report.updates.append(
            ProjectUpdate(
                name=group.name,
                current=update.current,
                latest=update.latest,
                update=update.update,
                held_back_by=update.held_back_by,
                limited_by=_dependents(graph, group.name, target),
                affects=tuple(
                    group.roots if group.roots is not None else affects.get(group.name, ())
                ),
                reach=group.reach,
            )
        )
    return report


@dataclass(frozen=True)
class _Newer:
    current: tuple[Version, ...]
    latest: Version
    update: Version | None
    held_back_by: tuple[HeldBack, ...]


def project_update(
    name: NormalizedName,
    current: Sequence[Version],
    releases: Iterable[Release],
    top_level: Sequence[HeldBack],
    *,
    allow_prereleases: bool,
) -> _Newer | None:
    """Whether ``releases`` hold one newer than every version in ``current``: the newest,
    the newest that ``top_level`` (the requirements and constraints naming the project)
    allow, and those of them that exclude the newest. ``None`` when nothing is newer."""
    candidates = list(releases)
    specifier = SpecifierSet()
    exact: set[Version] = set()
    for item in top_level:
        specifier &= item.requirement.specifier
        exact.update(_exact_pins(item.requirement.specifier))
    permitted = allowed(
        candidates, specifier, exact_pins=frozenset(exact), allow_prereleases=allow_prereleases
    )
    # The newest by the same yanked and pre-release rules, whatever the requirements
    # say (and the newest they allow, if a pre-release they name is newer still).
    usable = allowed(
        candidates, SpecifierSet(), exact_pins=frozenset(), allow_prereleases=allow_prereleases
    )
    newest = max(current)
    latest = max((r[0].version for r in (usable, permitted) if r), default=None)
    if latest is None or latest <= newest:
        return None
    update = next((r.version for r in permitted if r.version > newest), None)
    held = tuple(
        item
        for item in top_level
        if update != latest and not item.requirement.specifier.contains(latest, prereleases=True)
    )
    return _Newer(tuple(current), latest, update, held)


def _dependents(graph: RunGraph, name: NormalizedName, target: Version) -> tuple[Dependent, ...]:
    found: list[Dependent] = []
    for edge in graph.edges:
        child = graph.nodes.get(edge.child)
        if edge.parent is None or child is None or child[0] != name:
            continue
        try:
            requirement = Requirement(edge.requirement)
        except InvalidRequirement:
            continue
        dependent = Dependent(edge.parent, edge.requirement, edge.kind)
        if not requirement.specifier.contains(target, prereleases=True) and dependent not in found:
            found.append(dependent)
    return tuple(found)


# -- for people -------------------------------------------------------------------------


def render_table(report: UpdateReport) -> str:
    """The report for a person: ``no updates`` first when the run's requirements allow
    none, then a table of the newer releases, with what holds each back below it. Never
    ``no updates`` when the releases of a project could not be learnt."""
    complete = not report.problems
    if not report.updates:
        return "no updates\n" if complete else ""
    lines = []
    if complete and all(u.update is None for u in report.updates):
        lines.append(
            "no updates the run's top-level requirements and constraints allow; held back:"
        )
    header = ("PROJECT", "CURRENT", "UPDATE", "LATEST", "AFFECTS")
    rows = [
        (
            u.name,
            ", ".join(str(v) for v in u.current),
            str(u.update) if u.update is not None else "-",
            str(u.latest),
            ", ".join(u.affects) + (" (build)" if u.reach is Reach.BUILD else ""),
        )
        for u in report.updates
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
    for row, update in zip(rows, report.updates, strict=True):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if update.held_back_by:
            held = "; ".join(str(h) for h in update.held_back_by)
            lines.append(f"    {update.latest} held back by {held}")
        target = update.update or update.latest
        lines.extend(f"    {target} excluded by {dependent}" for dependent in update.limited_by)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def version_changes(
    before: RunGraph, after: RunGraph
) -> list[tuple[NormalizedName, tuple[Version, ...], tuple[Version, ...]]]:
    """The projects whose versions differ between two runs' graphs, by name: (name,
    versions before, versions after); an empty tuple where a project is new or gone."""
    old, new = before.versions(), after.versions()
    return [
        (name, tuple(sorted(old.get(name, ()))), tuple(sorted(new.get(name, ()))))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
