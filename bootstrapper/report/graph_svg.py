"""The dependency graph drawn as inline SVG: a layered layout, written for the report.

Each package sits in a column by its build round: packages that need nothing are in
column 0, and every other package one column right of the farthest thing it needs
(cycles, which install dependencies may form, are broken where a depth-first walk meets
them). Within a column, packages are ordered by the mean position of their neighbours,
a few sweeps each way, which untangles most edges. Columns grow downwards and the
drawing scrolls; every node and edge carries a ``<title>`` with its full text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

#: Sizes in pixels.
COLUMN = 236
NODE_WIDTH = 164
ROW = 24
NODE_HEIGHT = 18
MARGIN = 12
#: Characters of a name shown in a node (the title has all of it).
LABEL_CHARS = 24
SWEEPS = 4


@dataclass(frozen=True)
class Layout:
    """Each node's column and row, and the drawing's size in columns and rows."""

    position: Mapping[str, tuple[int, int]]
    columns: int
    rows: int


def layers(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: 0 if it needs nothing, else one more than the farthest node it
    needs, over the edges (parent, child) that do not close a cycle."""
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        if parent in children and child in children and child not in children[parent]:
            children[parent].append(child)
    layer: dict[str, int] = {}
    on_path: set[str] = set()
    for root in sorted(nodes):
        if root in layer:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path.add(root)
        while stack:
            node, next_child = stack[-1]
            kids = children[node]
            if next_child < len(kids):
                stack[-1] = (node, next_child + 1)
                child = kids[next_child]
                if child not in layer and child not in on_path:
                    on_path.add(child)
                    stack.append((child, 0))
                continue
            stack.pop()
            on_path.discard(node)
            # Children still on the path close a cycle: that edge is left out.
            below = [layer[c] for c in kids if c in layer]
            layer[node] = 1 + max(below) if below else 0
    return layer


def layout(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
    """Columns by :func:`layers`; rows ordered by the barycentre of neighbours."""
    column = layers(nodes, edges)
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for node in sorted(nodes):
        columns[column[node]].append(node)
    neighbours_left: dict[str, list[str]] = {n: [] for n in nodes}
    neighbours_right: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        if parent in column and child in column and column[parent] > column[child]:
            neighbours_left[parent].append(child)
            neighbours_right[child].append(parent)
    row = {n: i for members in columns for i, n in enumerate(members)}

    def reorder(members: list[str], neighbours: Mapping[str, list[str]]) -> None:
        def centre(node: str) -> float:
            near = neighbours[node]
            return sum(row[n] for n in near) / len(near) if near else row[node]

        members.sort(key=lambda n: (centre(n), n))
        for i, n in enumerate(members):
            row[n] = i

    for _ in range(SWEEPS):
        for members in columns[1:]:
            reorder(members, neighbours_left)
        for members in reversed(columns[:-1]):
            reorder(members, neighbours_right)
    height = max((len(m) for m in columns), default=0)
    position = {}
    for c, members in enumerate(columns):
        offset = (height - len(members)) // 2  # centred: short columns sit mid-height
        for r, node in enumerate(members):
            position[node] = (c, r + offset)
    return Layout(position, len(columns), height)


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def graph_svg(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, str, str]],
    *,
    status: Mapping[str, str],
    top_level: Iterable[str] = (),
    titles: Mapping[str, str] | None = None,
    highlighted: Collection[tuple[str, str]] = (),
) -> str:
    """The graph of ``nodes`` (``name==version``) and ``edges`` (parent, child, kind,
    requirement) as an ``<svg>`` element; ``status`` names each node's CSS class, and
    the ``highlighted`` edges (parent, child) are drawn as failing."""
    places = layout(nodes, [(p, c) for p, c, _, _ in edges])
    width = MARGIN * 2 + max(places.columns - 1, 0) * COLUMN + NODE_WIDTH
    height = MARGIN * 2 + max(places.rows, 1) * ROW
    roots = set(top_level)
    titles = titles or {}

    def anchor(node: str, side: str) -> tuple[float, float]:
        c, r = places.position[node]
        x = MARGIN + c * COLUMN + (NODE_WIDTH if side == "right" else 0)
        return x, MARGIN + r * ROW + NODE_HEIGHT / 2

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="dependency graph of {len(nodes)} packages">',
        '<g class="edges">',
    ]
    for parent, child, kind, requirement in edges:
        if parent not in places.position or child not in places.position:
            continue
        # From the needing package's left side to the needed one's right side.
        x1, y1 = anchor(parent, "left")
        x2, y2 = anchor(child, "right")
        bend = max(abs(x1 - x2) / 2, 40.0)
        kind_class = "build" if kind.startswith("build") else "install"
        if (parent, child) in highlighted:
            kind_class += " failing"
        parts.append(
            f'<path class="edge {kind_class}" data-from="{escape(parent)}" '
            f'data-to="{escape(child)}" d="M{x1:.0f},{y1:.0f} C{x1 - bend:.0f},{y1:.0f} '
            f'{x2 + bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}">'
            f"<title>{escape(parent)} needs {escape(child)} ({escape(kind)}: "
            f"{escape(requirement)})</title></path>"
        )
    parts.append("</g>")
    parts.append('<g class="nodes">')
    for node in sorted(places.position):
        c, r = places.position[node]
        x, y = MARGIN + c * COLUMN, MARGIN + r * ROW
        name = node.partition("==")[0]
        classes = f"node {escape(status.get(node, 'unknown'))}" + (" root" if name in roots else "")
        title = titles.get(node, node)
        parts.append(
            f'<g class="{classes}" data-key="{escape(node)}" tabindex="0">'
            f"<title>{escape(title)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + NODE_HEIGHT - 5}">{escape(_label(node))}</text></g>'
        )
    parts.append("</g></svg>")
    return "".join(parts)
