"""The graph drawn: Graphviz DOT text, and an SVG rendered by Graphviz's ``dot``."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BootstrapError
from .fsutil import atomic_write_bytes
from .graph import EdgeKind, NodeKey
from .graphquery import Edge, LoadedGraph, Selection, install_closure

#: How each kind of edge is drawn; the legend under the drawing says the same.
EDGE_STYLES = {
    EdgeKind.INSTALL: "",
    EdgeKind.BUILD_SYSTEM: 'style=dashed, color="#1f5fbf"',
    EdgeKind.BUILD_BACKEND: 'style=dashed, color="#2e8b57"',
    EdgeKind.BUILD_SDIST: 'style=dotted, color="#8a8a8a"',
}
LEGEND = (
    "solid: install; dashed blue: build-system; dashed green: build-backend; "
    "dotted grey: build-sdist; double border: a top-level requirement"
)
INSTALL_HINT = "apt-get install graphviz, dnf install graphviz or brew install graphviz"


class RenderError(BootstrapError):
    """The drawing could not be rendered (no Graphviz, or Graphviz failed)."""


@dataclass(frozen=True)
class Drawing:
    nodes: tuple[NodeKey, ...]
    edges: tuple[Edge, ...]


def drawing(graph: LoadedGraph, selection: Selection = Selection.ALL) -> Drawing:
    """The nodes and edges drawn: all; the install closure of the top-level requirements
    with its install edges (``INSTALL``: what installing them brings); or the build
    edges and the nodes they join (``BUILD``)."""
    edges = [e for e in graph.edges if e.parent is not None]
    if selection is Selection.INSTALL:
        keep = install_closure(graph.graph, graph.roots)
        edges = [e for e in edges if e.kind is EdgeKind.INSTALL and e.parent in keep]
    elif selection is Selection.BUILD:
        edges = [e for e in edges if e.kind.is_build]
        keep = {e.child for e in edges} | {e.parent for e in edges if e.parent is not None}
    else:
        keep = set(graph.nodes)
    return Drawing(tuple(sorted(keep)), tuple(edges))


def dot_text(graph: LoadedGraph, picture: Drawing) -> str:
    """``picture`` as a Graphviz digraph: one box per package (``name==version``), one
    arrow per kind of requirement between two packages (its requirements as tooltip)."""
    lines = [
        "digraph bootstrap {",
        '  graph [rankdir=LR, labelloc=b, fontname="Helvetica", fontsize=10,',
        f"         label={_quote(LEGEND)}];",
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for key in picture.nodes:
        attrs = []
        if key in graph.roots:
            texts = ", ".join(e.requirement for e in graph.roots[key])
            attrs = ["peripheries=2", f"tooltip={_quote('top-level: ' + texts)}"]
        lines.append(f"  {_quote(graph.label(key))}{_attributes(attrs)};")
    grouped: dict[tuple[NodeKey, NodeKey, EdgeKind], list[str]] = {}
    for edge in picture.edges:
        assert edge.parent is not None
        grouped.setdefault((edge.parent, edge.child, edge.kind), []).append(edge.requirement)
    for (parent, child, kind), requirements in sorted(grouped.items()):
        attrs = [a for a in [EDGE_STYLES[kind]] if a]
        attrs.append(f"tooltip={_quote(f'{kind}: ' + ', '.join(requirements))}")
        lines.append(
            f"  {_quote(graph.label(parent))} -> {_quote(graph.label(child))}{_attributes(attrs)};"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attributes(attrs: list[str]) -> str:
    return f" [{', '.join(attrs)}]" if attrs else ""


def render_svg(dot: str, dest: Path) -> None:
    """Render ``dot`` to ``dest`` (written atomically) with Graphviz's ``dot``."""
    program = shutil.which("dot")
    if program is None:
        raise RenderError(
            f"cannot write {dest}: Graphviz's 'dot' program is not installed (there is no "
            f"'dot' on PATH); install Graphviz ({INSTALL_HINT}) and run the same command "
            "again, or render the text of 'bootstrapper graph to-dot' where Graphviz is"
        )
    try:
        result = subprocess.run(
            [program, "-Tsvg"], input=dot.encode(), capture_output=True, check=False
        )
    except OSError as e:
        raise RenderError(f"cannot run {program}: {e.strerror or e}") from None
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RenderError(
            f"Graphviz's dot could not render {dest} (exit status {result.returncode})",
            details="\n".join(said) or None,
        )
    try:
        atomic_write_bytes(dest, result.stdout)
    except OSError as e:
        blocked = next((p for p in dest.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocked} is a file, not a directory" if blocked else e.strerror or e
        raise RenderError(f"cannot write {dest}: {reason}") from None
