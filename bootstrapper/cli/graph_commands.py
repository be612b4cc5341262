"""``graph why|duplicates|subset|rounds|to-dot``: questions asked of a finished run's
``DIR/graph.json``. They only read DIR: no lock, no network."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..graph import NodeKey
from ..graph_dot import Drawing, dot_text, drawing, render_svg
from ..graphquery import (
    ANSWER_SCHEMA,
    DEFAULT_MAX_CHAINS,
    GRAPH_FILE,
    Direction,
    Duplicate,
    Edge,
    LoadedGraph,
    Selection,
    Step,
    Why,
    duplicates,
    load_graph,
    rounds,
    subset,
    why,
)
from ..subsetdir import write_subset
from . import metadiff_command
from .common import EXIT_OK, Parser, absolute_path


def register(commands: Any) -> None:
    graph = commands.add_parser(
        "graph",
        help="ask a finished run's graph.json why a package is there, and more",
        description="Questions asked of DIR/graph.json (--output-dir DIR, default "
        "./bootstrap-output). Read-only: no lock, no network. --json gives each answer "
        "as a JSON document for scripts.",
    )
    sub = graph.add_subparsers(
        dest="graph_command", metavar="COMMAND", parser_class=Parser, required=True
    )

    why_parser = sub.add_parser(
        "why",
        help="every chain of requirements from a top-level requirement to a package",
        description="List the chains of requirements that lead from a top-level "
        "requirement to NAME (any version, or VERSION), each step with its kind and "
        "requirement: the shortest first, simple paths only (install cycles end), at most "
        "--max-chains, with how many were left out.",
    )
    why_parser.add_argument("name", metavar="NAME")
    why_parser.add_argument("version", nargs="?", metavar="VERSION")
    _add_selection(
        why_parser,
        install="only chains of install requirements: how NAME is installed with the "
        "top-level requirements",
        build="only chains with at least one build requirement: which builds need NAME",
    )
    why_parser.add_argument(
        "--max-chains",
        type=_positive,
        default=DEFAULT_MAX_CHAINS,
        metavar="N",
        help=f"list at most N chains, the shortest first (default {DEFAULT_MAX_CHAINS})",
    )
    _add_common(why_parser)
    why_parser.set_defaults(handler=run_why)

    dup = sub.add_parser(
        "duplicates",
        help="projects present in several versions, and whether one would do",
        description="List every project present in more than one version, each "
        "requirement on it (who needs it, the kind and the requirement) with the present "
        "versions that requirement accepts, and the versions every one of them accepts.",
    )
    _add_common(dup)
    dup.set_defaults(handler=run_duplicates)

    part = sub.add_parser(
        "subset",
        help="the part of the graph a package needs, or that needs it",
        description="Cut a part out of the graph, complete (every package in it comes with "
        "its build requirements and install closure): with --dependencies (the default) "
        "NAME and everything it needs; with --dependents the trees of the top-level "
        "requirements that need NAME. Without -o, print the part's graph.json; with -o "
        "OUT, write OUT as an output directory of its own (graph.json, build-order.json, "
        "constraints.txt, wheels/ and simple/, sdists/, patches/) that build-sequence, "
        "verify, pip and these commands use as they use DIR.",
    )
    part.add_argument("name", metavar="NAME")
    part.add_argument("version", nargs="?", metavar="VERSION")
    direction = part.add_mutually_exclusive_group()
    direction.add_argument(
        "--dependencies",
        dest="direction",
        action="store_const",
        const=Direction.DEPENDENCIES,
        help="NAME and everything it needs to build and to install (the default)",
    )
    direction.add_argument(
        "--dependents",
        dest="direction",
        action="store_const",
        const=Direction.DEPENDENTS,
        help="the whole trees of the top-level requirements that need NAME, to install "
        "or to build: what a change to NAME affects",
    )
    part.add_argument(
        "-o",
        "--into",
        type=absolute_path,
        metavar="OUT",
        help="write the part as the output directory OUT (new or empty) instead of "
        "printing its graph.json",
    )
    _add_common(part)
    part.set_defaults(handler=run_subset, direction=Direction.DEPENDENCIES)

    rounds_parser = sub.add_parser(
        "rounds",
        help="the build in rounds of packages that can build at the same time",
        description="Group the packages in rounds: a package is in the first round after "
        "its build requirements and their install closures (its build environment); the "
        "packages of one round can all build at once.",
    )
    _add_common(rounds_parser)
    rounds_parser.set_defaults(handler=run_rounds)

    dot = sub.add_parser(
        "to-dot",
        help="the graph in Graphviz's DOT language, or rendered as SVG",
        description="Print the graph in Graphviz's DOT language (one box per package, "
        "one arrow per kind of requirement, styled by kind), or render it to an SVG file "
        "with Graphviz's dot (--svg).",
    )
    _add_selection(
        dot,
        install="only the install closure of the top-level requirements",
        build="only the build edges and the packages they join",
    )
    dot.add_argument(
        "--svg",
        type=absolute_path,
        metavar="FILE",
        help="render to FILE with Graphviz's dot (which must be installed) instead of printing DOT",
    )
    _add_common(dot)
    dot.set_defaults(handler=run_to_dot)
    metadiff_command.register(sub)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        type=absolute_path,
        default="bootstrap-output",
        metavar="DIR",
        help="the output directory of a bootstrap, whose graph.json is read "
        "(default ./bootstrap-output)",
    )
    parser.add_argument(
        "--json", action="store_true", help="answer with a JSON document (for scripts)"
    )


def _add_selection(parser: argparse.ArgumentParser, *, install: str, build: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--install-only",
        dest="selection",
        action="store_const",
        const=Selection.INSTALL,
        help=install,
    )
    group.add_argument(
        "--build-only", dest="selection", action="store_const", const=Selection.BUILD, help=build
    )
    parser.set_defaults(selection=Selection.ALL)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _load(args: argparse.Namespace) -> LoadedGraph:
    return load_graph(args.output_dir / GRAPH_FILE)


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2))


def _answer(graph: LoadedGraph, command: str, **fields: Any) -> dict[str, Any]:
    return {"schema": ANSWER_SCHEMA, "command": command, "graph": str(graph.path), **fields}


# -- why ---------------------------------------------------------------------------------


def run_why(args: argparse.Namespace) -> int:
    graph = _load(args)
    targets = graph.find(args.name, args.version)
    answer = why(graph, targets, args.selection, args.max_chains)
    if args.json:
        _print_json(
            _answer(
                graph,
                "why",
                name=targets[0].name,
                versions=[graph.version_label(k) for k in targets],
                selection=str(args.selection),
                total=answer.total,
                shown=len(answer.chains),
                left_out=answer.left_out,
                chains=[[_step_json(graph, step) for step in chain] for chain in answer.chains],
            )
        )
        return EXIT_OK
    print(_why_text(graph, answer))
    return EXIT_OK


def _step_json(graph: LoadedGraph, step: Step) -> dict[str, Any]:
    return {
        "node": graph.label(step.node),
        "edges": [{"kind": str(e.kind), "requirement": e.requirement} for e in step.edges],
    }


_WHAT = {
    Selection.ALL: "chain",
    Selection.INSTALL: "chain of install requirements",
    Selection.BUILD: "chain with a build requirement",
}
_WHAT_PLURAL = {
    Selection.ALL: "chains",
    Selection.INSTALL: "chains of install requirements",
    Selection.BUILD: "chains with a build requirement",
}


def _why_text(graph: LoadedGraph, answer: Why) -> str:
    name = answer.targets[0].name
    versions = ", ".join(graph.version_label(k) for k in answer.targets)
    what = f"{name} ({versions})"
    if answer.total == 0:
        flag = {Selection.INSTALL: "--install-only", Selection.BUILD: "--build-only"}
        return f"no {_WHAT[answer.selection]} leads from the top-level requirements to {what}" + (
            f"; try without {flag[answer.selection]}" if answer.selection in flag else ""
        )
    if answer.total is None:
        count = f"Many {_WHAT_PLURAL[answer.selection]} (more than can be counted) lead"
    elif answer.total == 1:
        count = f"1 {_WHAT[answer.selection]} leads"
    else:
        count = f"{answer.total} {_WHAT_PLURAL[answer.selection]} lead"
    lines = [f"{count} from the top-level requirements to {what}:"]
    for number, chain in enumerate(answer.chains, 1):
        lines.append("")
        width = max(len(graph.label(step.node)) for step in chain)
        for i, step in enumerate(chain):
            lead = f"{number}." if i == 0 else ""
            lines.append(
                f"{lead:<4}{graph.label(step.node):<{width}}  {_edges_text(step.edges)}".rstrip()
            )
    left_out = answer.left_out
    if left_out is None or left_out > 0:
        lines.append("")
        many = "more (too many to count)" if left_out is None else f"{left_out} more"
        shown = (
            f"showing the {len(answer.chains)} shortest"
            if answer.chains
            else "none found within the search's bound"
        )
        lines.append(
            f"{shown}; {many} left out: raise --max-chains, or narrow the question "
            "(a VERSION, --install-only, --build-only)"
        )
    return "\n".join(lines)


def _edges_text(edges: Sequence[Edge]) -> str:
    return "; ".join(
        f"{'top-level' if e.parent is None else e.kind}: {e.requirement}" for e in edges
    )


# -- duplicates --------------------------------------------------------------------------


def run_duplicates(args: argparse.Namespace) -> int:
    graph = _load(args)
    found = duplicates(graph)
    if args.json:
        _print_json(
            _answer(graph, "duplicates", projects=[_duplicate_json(graph, d) for d in found])
        )
        return EXIT_OK
    if not found:
        print(f"no project is in {graph.path} in more than one version")
        return EXIT_OK
    blocks = [_duplicate_text(graph, d) for d in found]
    print("\n\n".join(blocks))
    print(f"\n{len(found)} project{'s' if len(found) != 1 else ''} in several versions")
    return EXIT_OK


def _duplicate_json(graph: LoadedGraph, duplicate: Duplicate) -> dict[str, Any]:
    return {
        "name": duplicate.name,
        "versions": [graph.version_label(k) for k in duplicate.versions],
        "needs": [
            {
                "from": None if n.edge.parent is None else graph.label(n.edge.parent),
                "to": graph.label(n.edge.child),
                "kind": str(n.edge.kind),
                "requirement": n.edge.requirement,
                "satisfied_by": [graph.version_label(k) for k in n.satisfied_by],
            }
            for n in duplicate.needs
        ],
        "satisfy_all": [graph.version_label(k) for k in duplicate.satisfy_all],
    }


def _duplicate_text(graph: LoadedGraph, duplicate: Duplicate) -> str:
    versions = [graph.version_label(k) for k in duplicate.versions]
    every = [graph.version_label(k) for k in duplicate.satisfy_all]
    if not every:
        verdict = "no one version satisfies every requirement"
    elif len(every) == 1:
        verdict = f"{every[0]} satisfies every requirement"
    else:
        verdict = f"each of {', '.join(every)} satisfies every requirement"
    rows = [
        (
            graph.version_label(n.edge.child),
            "top-level requirement"
            if n.edge.parent is None
            else f"{graph.label(n.edge.parent)} ({n.edge.kind})",
            n.edge.requirement,
            "satisfied by "
            + (", ".join(graph.version_label(k) for k in n.satisfied_by) or "none present"),
        )
        for n in duplicate.needs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{duplicate.name}: {len(versions)} versions ({', '.join(versions)}); {verdict}"]
    lines.extend(
        f"  {v:<{widths[0]}}  <- {who:<{widths[1]}}  {req:<{widths[2]}}  {ok}"
        for v, who, req, ok in rows
    )
    return "\n".join(lines)


# -- subset ------------------------------------------------------------------------------


def run_subset(args: argparse.Namespace) -> int:
    graph = _load(args)
    targets = graph.find(args.name, args.version)
    part = subset(graph, targets, args.direction)
    if args.into is None:
        # The part is JSON already (a graph.json): --json changes nothing.
        _print_json(part.graph.to_json(part.roots))
        return EXIT_OK
    written = write_subset(args.output_dir, args.into, part)
    nodes = part.graph.nodes()
    if args.json:
        _print_json(
            _answer(
                graph,
                "subset",
                directory=str(written.directory),
                direction=str(args.direction),
                roots=list(part.roots),
                packages=[n.label for n in nodes],
                dependents=sorted(graph.label(k) for k in part.dependents),
            )
        )
        return EXIT_OK
    named = ", ".join(graph.label(k) for k in targets)
    what = (
        f"{named} and everything it needs"
        if args.direction is Direction.DEPENDENCIES
        else f"the trees of {', '.join(part.roots)}, which need {named}"
    )
    print(
        f"wrote {written.directory}: {written.packages} packages ({what}), "
        f"{written.sources} source archives, {written.patches} patches"
    )
    print(
        f"rebuild it with: bootstrapper build-sequence {written.directory / 'build-order.json'} "
        "--output-dir OUT"
    )
    return EXIT_OK


# -- rounds ------------------------------------------------------------------------------


def run_rounds(args: argparse.Namespace) -> int:
    graph = _load(args)
    found = rounds(graph)
    if args.json:
        _print_json(_answer(graph, "rounds", rounds=[[graph.label(k) for k in r] for r in found]))
        return EXIT_OK
    for number, members in enumerate(found, 1):
        print(f"round {number} ({len(members)}): {', '.join(graph.label(k) for k in members)}")
    total = sum(len(r) for r in found)
    widest = max((len(r) for r in found), default=0)
    print(f"{total} packages in {len(found)} rounds; at most {widest} at once")
    return EXIT_OK


# -- to-dot ------------------------------------------------------------------------------


def run_to_dot(args: argparse.Namespace) -> int:
    graph = _load(args)
    picture = drawing(graph, args.selection)
    text = dot_text(graph, picture)
    if args.svg is not None:
        render_svg(text, args.svg)
        if not args.json:
            print(
                f"wrote {args.svg} ({len(picture.nodes)} packages, {len(picture.edges)} "
                "requirements)",
                file=sys.stderr,
            )
    if args.json:
        _print_json(_drawing_json(graph, picture, args.selection, args.svg))
    elif args.svg is None:
        sys.stdout.write(text)
    return EXIT_OK


def _drawing_json(
    graph: LoadedGraph, picture: Drawing, selection: Selection, svg: Path | None
) -> dict[str, Any]:
    return _answer(
        graph,
        "to-dot",
        selection=str(selection),
        nodes=[_node_json(graph, k) for k in picture.nodes],
        edges=[
            {
                "from": graph.label(e.parent) if e.parent is not None else None,
                "to": graph.label(e.child),
                "kind": str(e.kind),
                "requirement": e.requirement,
            }
            for e in picture.edges
        ],
        dot=dot_text(graph, picture),
        svg=str(svg) if svg is not None else None,
    )


def _node_json(graph: LoadedGraph, key: NodeKey) -> dict[str, Any]:
    return {
        "id": graph.label(key),
        "name": key.name,
        "version": graph.version_label(key),
        "top_level": [e.requirement for e in graph.roots.get(key, [])],
    }
