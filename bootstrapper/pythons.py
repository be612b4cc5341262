"""A run for several Pythons (``--python``): what each interpreter's part of the run
made, joined into the one graph, build order and constraints file of the index.

Pure: the parts come in as values, the joined documents go out as values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from .failures import RunReport
from .graph import DependencyGraph, NodeKey
from .records import BuildRecord

#: A ``name==version`` pin, and the marker that limits it to some Pythons (or None).
MarkedPin = tuple[str, Version, str | None]


def python_marker(labels: Iterable[str]) -> str:
    """The marker of the Pythons ``labels`` names (``3.12``): ``python_version == "3.12"``
    or ``python_version == "3.11" or python_version == "3.12"``."""
    return " or ".join(f'python_version == "{label}"' for label in labels)


def joined_pins(parts: Sequence[tuple[str, Iterable[tuple[str, Version]]]]) -> list[MarkedPin]:
    """One pin per project where every Python pinned the same version; otherwise each
    version with the marker of the Pythons that pinned it (pip and uv read markers in a
    constraints file, so one file serves every Python)."""
    by_name: dict[str, dict[Version, list[str]]] = {}
    for label, pins in parts:
        for name, version in pins:
            by_name.setdefault(name, {}).setdefault(version, []).append(label)
    everyone = [label for label, _ in parts]
    joined: list[MarkedPin] = []
    for name, versions in sorted(by_name.items()):
        for version, labels in sorted(versions.items()):
            joined.append((name, version, None if labels == everyone else python_marker(labels)))
    return joined


def joined_graph(parts: Sequence[tuple[str, DependencyGraph]]) -> DependencyGraph:
    """The union of each Python's graph: one node per project version, listing every
    wheel built of it (``wheels``: one per Python for a compiled project, one for all
    for a pure one); the edges and roots of every Python."""
    graph = DependencyGraph()
    wheels: dict[NodeKey, list[dict[str, Any]]] = {}
    for label, part in parts:
        for node in part.nodes():
            entry = {
                "python": label,
                "wheel": node.wheel,
                "wheel_sha256": node.extra.get("wheel_sha256"),
            }
            listed = wheels.setdefault(node.key, [])
            if not any(w["wheel"] == node.wheel for w in listed):
                listed.append(entry)
            if node.key not in graph:
                graph.add_node(node)
        for parent, child, kind, text in part.edges():
            graph.add_edge(parent, child, kind, Requirement(text))
        for key, requirement in part.roots():
            graph.add_root(key, requirement)
    for key, listed in wheels.items():
        node = graph.node(key)
        graph.add_node(dataclasses.replace(node, extra={**node.extra, "wheels": listed}))
    return graph


def joined_order(
    parts: Sequence[tuple[Sequence[NodeKey], Mapping[NodeKey, BuildRecord]]],
) -> list[tuple[NodeKey, BuildRecord]]:
    """Each Python's build order in turn, a wheel listed once: a pure wheel built for
    an earlier Python serves the later ones as it is. Every entry still comes after
    what it needs: a later Python's builds need its own earlier entries, or pure wheels
    listed before."""
    seen: set[str] = set()
    order: list[tuple[NodeKey, BuildRecord]] = []
    for keys, records in parts:
        for key in keys:
            record = records[key]
            if record.wheel in seen:
                continue
            seen.add(record.wheel)
            order.append((key, record))
    return order


def joined_report(parts: Sequence[tuple[str, RunReport | None]]) -> RunReport | None:
    """One keep-going report of every Python's part: each failure says which Python it
    was for; a requirement published for some Pythons only says for which."""
    reports = [(label, report) for label, report in parts if report is not None]
    if not reports:
        return None
    everyone = [label for label, _ in reports]

    def for_pythons(item: str, labels: list[str]) -> str:
        return item if labels == everyone else f"{item} (Python {', '.join(labels)})"

    published: dict[str, list[str]] = {}
    not_published: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for label, report in reports:
        for requirement in report.published:
            published.setdefault(requirement, []).append(label)
        for item in report.not_published:
            not_published.setdefault(item, []).append(label)
    return RunReport(
        failures=tuple(
            dataclasses.replace(failure, error=f"(Python {label}) {failure.error}")
            for label, report in reports
            for failure in report.failures
        ),
        published=tuple(for_pythons(r, labels) for r, labels in published.items()),
        not_published=tuple(
            (for_pythons(requirement, labels), missing)
            for (requirement, missing), labels in not_published.items()
        ),
        published_wheels=sum(report.published_wheels for _, report in reports),
        wanted_wheels=sum(report.wanted_wheels for _, report in reports),
    )
