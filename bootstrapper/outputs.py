"""The run's summary files: graph.json, build-order.json, and constraints.txt (or, when
each top-level requirement was resolved on its own, one constraints file per requirement
in DIR/constraints/)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from .fsutil import write_text_if_changed
from .graph import DependencyGraph, NodeKey
from .pythons import MarkedPin
from .records import BuildRecord


def build_order_entries(order: Iterable[tuple[NodeKey, BuildRecord]]) -> list[dict[str, Any]]:
    """One entry per wheel, in build order, with what it was built from and with (and
    by which Python)."""
    return [
        {
            "name": key.name,
            "version": str(key.version),
            "wheel": record.wheel,
            "wheel_sha256": record.wheel_sha256,
            "sdist": record.sdist,
            "sdist_sha256": record.sdist_sha256,
            "upstream_sha256": record.source_sha256,
            "vendored": record.vendored,
            "source_url": record.source_url,
            "build_backend": record.build_backend,
            "build_system_requires": list(record.build_system_requires),
            "backend_requires": list(record.backend_requires),
            "build_requires": [f"{w.name}=={w.version}" for w in record.build_env],
            "build_env": [
                {"name": w.name, "version": w.version, "wheel": w.filename, "sha256": w.sha256}
                for w in record.build_env
            ],
            "rebuild": record.rebuild,
            "plan": record.plan,
            "python": record.python_label,
            **({"fallback": record.fallback} if record.fallback else {}),
            **({"resources": record.resources} if record.resources else {}),
            # what build-sequence repeats after the build (the wheel built, the exclusions)
            **({"repair": record.repair} if record.repair else {}),
            # exclusive / cores / memory, so that build-sequence schedules it the same way
            **({"scheduling": record.cores["settings"]} if "settings" in record.cores else {}),
        }
        for key, record in order
    ]


def constraints_text(pins: Iterable[tuple[str, Version] | MarkedPin]) -> str:
    """``name==version`` lines, sorted by name, one per project (or, for a run for
    several Pythons, one per version with the marker of the Pythons it is for)."""
    lines = []
    for name, version, *marker in sorted(pins, key=lambda p: (p[0], p[1])):
        limit = f"; {marker[0]}" if marker and marker[0] else ""
        lines.append(f"{name}=={version}{limit}\n")
    return "".join(lines)


def line_per_item(document: dict[str, Any] | list[Any]) -> str:
    """JSON with each item of the document's lists on a line of its own: a diff between
    two runs shows the nodes and edges that changed. (Written by the C encoder: with
    ``indent``, the json module falls back to Python, about 20 times slower.)"""

    def items(values: list[Any], indent: str) -> str:
        if not values:
            return "[]"
        inner = ",\n".join(indent + "  " + json.dumps(v) for v in values)
        return "[\n" + inner + "\n" + indent + "]"

    if isinstance(document, list):
        return items(document, "") + "\n"
    fields = ",\n".join(
        f"  {json.dumps(key)}: "
        + (items(value, "  ") if isinstance(value, list) else json.dumps(value))
        for key, value in document.items()
    )
    return "{\n" + fields + "\n}\n"


def write_outputs(
    output_dir: Path,
    roots: Sequence[str],
    graph: DependencyGraph,
    order: Iterable[tuple[NodeKey, BuildRecord]],
) -> None:
    """Write graph.json and build-order.json atomically (each reader sees an old or a new
    file); one that holds the same bytes already is left as it is."""
    write_text_if_changed(output_dir / "graph.json", line_per_item(graph.to_json(roots)))
    write_text_if_changed(
        output_dir / "build-order.json", line_per_item(build_order_entries(order))
    )


#: With ``--each``: one constraints file per top-level requirement, and their index.
CONSTRAINTS_DIR = "constraints"
CONSTRAINTS_INDEX = "index.json"


def write_constraints(
    output_dir: Path,
    closures: Sequence[tuple[str, Iterable[tuple[str, Version] | MarkedPin]]],
    *,
    each: bool,
) -> list[Path]:
    """The constraints of the run: ``constraints.txt`` for the one closure, or with
    ``each`` a file per requirement in ``DIR/constraints/`` (named by
    :func:`constraints_file_names`, listed in its ``index.json``). The other form, left
    by an earlier run, is removed: it no longer describes the index. Returns the file of
    each requirement, in order."""
    single = output_dir / "constraints.txt"
    directory = output_dir / CONSTRAINTS_DIR
    if not each:
        text = constraints_text(closures[0][1]) if closures else ""
        write_text_if_changed(single, text)
        shutil.rmtree(directory, ignore_errors=True)
        return [single] * len(closures)
    names = constraints_file_names([requirement for requirement, _ in closures])
    files = [directory / name for name in names]
    for (_, pins), path in zip(closures, files, strict=True):
        write_text_if_changed(path, constraints_text(pins))
    index = [
        {"requirement": requirement, "constraints": name}
        for (requirement, _), name in zip(closures, names, strict=True)
    ]
    write_text_if_changed(directory / CONSTRAINTS_INDEX, line_per_item(index))
    wanted = {*names, CONSTRAINTS_INDEX}
    for stale in directory.iterdir():
        if stale.name not in wanted and stale.is_file():
            stale.unlink()
    single.unlink(missing_ok=True)
    return files


def constraints_file_names(requirements: Sequence[str]) -> list[str]:
    """A file name for each requirement: lower case, each run of characters other than
    letters, digits and dots made one ``-`` (``torch==2.1.1`` -> ``torch-2.1.1.txt``,
    ``torch==2.2.*`` -> ``torch-2.2.txt``); a name taken already by an earlier
    requirement gets ``-2``, ``-3``..."""
    names: list[str] = []
    for requirement in requirements:
        stem = re.sub(r"[^a-z0-9.]+", "-", requirement.lower()).strip("-.") or "requirement"
        name, n = f"{stem}.txt", 1
        while name in names:
            n += 1
            name = f"{stem}-{n}.txt"
        names.append(name)
    return names
