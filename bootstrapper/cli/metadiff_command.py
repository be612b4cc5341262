"""``graph metadata-diff``: where the metadata of the wheels we built differs from the
upstream wheels of the same versions, and which differences our settings made."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from packaging.tags import sys_tags
from packaging.version import InvalidVersion, Version

from ..errors import UsageError
from ..graph import NodeKey
from ..graphquery import ANSWER_SCHEMA, GRAPH_FILE, LoadedGraph, load_graph
from ..http import HttpClient
from ..index import PYPI_SIMPLE, IndexClient
from ..metadata import CoreMetadata, parse_metadata
from ..metadiff import MetadataDiff, diff_run, read_diffs
from ..publish import METADATA_SUFFIX
from ..records import RECORD_SUFFIX, read_record
from ..runrecord import read_run_record
from .common import EXIT_OK, absolute_path, add_http_options, http_limits


def register(sub: Any) -> None:
    diff = sub.add_parser(
        "metadata-diff",
        help="where our wheels' metadata differs from the upstream wheels' of the same version",
        description="For each package of the run (or each NAME), compare the metadata of "
        "the wheel we built with that of the index's wheel of the same version "
        "(requirements added or missing, Requires-Python, extras), and say which "
        "differences the package's settings (requires: add/remove) made. Reads DIR and "
        "the index: the upstream wheel's METADATA is read from its PEP 658 file or by a "
        "few range requests, never by downloading the wheel.",
    )
    diff.add_argument("names", nargs="*", metavar="NAME", help="only these projects")
    diff.add_argument(
        "--output-dir",
        type=absolute_path,
        default="bootstrap-output",
        metavar="DIR",
        help="the output directory of a bootstrap (default ./bootstrap-output)",
    )
    diff.add_argument(
        "--index-url",
        default=None,
        metavar="URL",
        help="the index whose wheels to compare with (default: the one the run used, from "
        f"DIR/run.json; else {PYPI_SIMPLE})",
    )
    diff.add_argument(
        "--all", action="store_true", help="also list the packages that do not differ"
    )
    diff.add_argument(
        "--json", action="store_true", help="answer with a JSON document (for scripts)"
    )
    add_http_options(diff)
    diff.set_defaults(handler=run_metadata_diff)


def run_metadata_diff(args: argparse.Namespace) -> int:
    graph = load_graph(args.output_dir / GRAPH_FILE)
    keys = (
        [key for name in args.names for key in graph.find(name)]
        if args.names
        else sorted(node.key for node in graph.graph.nodes())
    )
    ours = [_our_wheel(graph, args.output_dir, key) for key in keys]
    record = read_run_record(args.output_dir)
    index_url = args.index_url or (record.index_url if record else PYPI_SIMPLE)
    with HttpClient(limits=http_limits(args)) as http:
        index = IndexClient(index_url, http)
        try:
            index.prefetch(key.name for key in keys)
            diffs = diff_run(
                [(metadata, key.version, sha256, plan) for key, metadata, sha256, plan in ours],
                index,
                http,
                list(sys_tags()),
                read_diffs(args.output_dir),
            )
        finally:
            index.close()
    if args.json:
        print(
            json.dumps(
                {
                    "schema": ANSWER_SCHEMA,
                    "command": "metadata-diff",
                    "graph": str(graph.path),
                    "index": index.index_url,
                    "packages": [d.to_json() for d in diffs],
                },
                indent=2,
            )
        )
    else:
        print(render(diffs, show_all=args.all))
    return EXIT_OK


def _our_wheel(
    graph: LoadedGraph, output_dir: Path, key: NodeKey
) -> tuple[NodeKey, CoreMetadata, str, dict[str, Any]]:
    """The metadata of the wheel the run published for ``key`` (under its source
    version), its sha256 and its build plan."""
    node = graph.graph.node(key)
    wheel = output_dir / "wheels" / node.wheel
    metadata_file = wheel.with_name(wheel.name + METADATA_SUFFIX)
    try:
        metadata = parse_metadata(metadata_file.read_bytes(), metadata_file.name)
    except OSError as e:
        raise UsageError(
            f"cannot read {metadata_file} ({e.strerror}): is {output_dir} the output of a "
            "whole run?"
        ) from None
    record = read_record(wheel.with_name(wheel.name + RECORD_SUFFIX))
    source = node.extra.get("source_version", str(key.version))
    try:
        version = Version(str(source))
    except InvalidVersion:
        version = key.version
    return (
        NodeKey(key.name, version),
        metadata,
        record.wheel_sha256 if record else "",
        dict(record.plan) if record else {},
    )


def render(diffs: list[MetadataDiff], *, show_all: bool) -> str:
    """The differences for a person: one block per package that differs."""
    lines: list[str] = []
    differ = [d for d in diffs if d.differs]
    unknown = [d for d in diffs if d.note is not None]
    by_settings = sum(1 for d in differ for c in (*d.added, *d.missing) if c.by_settings)
    for diff in diffs:
        label = f"{diff.name} {diff.version}"
        if diff.note is not None:
            if show_all:
                lines.append(f"{label}: not compared: {diff.note}")
            continue
        if not diff.differs:
            if show_all:
                lines.append(f"{label}: same as {diff.upstream_wheel}")
            continue
        lines.append(f"{label} (against {diff.upstream_wheel}):")
        for change in diff.missing:
            lines.append(
                f"  - {change.text}{' (removed by its settings)' if change.by_settings else ''}"
            )
        for change in diff.added:
            lines.append(
                f"  + {change.text}{' (added by its settings)' if change.by_settings else ''}"
            )
        if diff.requires_python is not None:
            ours, theirs = diff.requires_python
            lines.append(
                f"  Requires-Python: {ours or '(none)'} here, {theirs or '(none)'} upstream"
            )
        if diff.extras_missing:
            lines.append(f"  extras only upstream: {', '.join(diff.extras_missing)}")
        if diff.extras_added:
            lines.append(f"  extras only here: {', '.join(diff.extras_added)}")
    compared = len(diffs) - len(unknown)
    summary = (
        f"{len(differ)} of {compared} compared package(s) differ from their upstream "
        f"wheels ({by_settings} requirement change(s) made by settings)"
    )
    if unknown:
        summary += f"; {len(unknown)} not compared" + ("" if show_all else " (--all lists them)")
    lines.append(summary)
    return "\n".join(lines)
