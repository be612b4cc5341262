"""``find-updates`` and ``update``: newer releases for a finished run, and a run that
takes them into the same output directory."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.version import Version

from ..errors import UsageError
from ..finder import IndexFinder
from ..http import HttpClient
from ..index import IndexClient
from ..releaseage import ReleaseAge, format_timestamp
from ..reqfile import RequirementSet
from ..runrecord import RUN_FILE, RunRecord, read_run_record
from ..settings import Settings, default_layers
from ..updates import RunGraph, RunRequest, find_updates, read_graph, render_table, version_changes
from . import bootstrap_command
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    absolute_path,
    add_http_options,
    add_release_age_options,
    http_limits,
    release_age_from,
)


def register_find_updates(commands: Any) -> None:
    find = commands.add_parser(
        "find-updates",
        help="list newer releases of the projects of a finished run",
        description="For every project of the run that made DIR, list the newer releases "
        "on the index, whether the run's top-level requirements and constraints allow "
        "them (or which one holds them back), and which top-level requirements each "
        "affects. Reads DIR only.",
    )
    _add_dir_options(find)
    find.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (for a scheduler to act on)",
    )
    find.add_argument(
        "--overrides-dir",
        type=absolute_path,
        default="overrides",
        metavar="DIR",
        help="per-package settings, as for the bootstrap (default ./overrides): which "
        "packages take the index's wheel (prebuilt) or their source from elsewhere",
    )
    add_release_age_options(find, recorded=True)
    add_http_options(find)
    find.set_defaults(handler=run_find_updates, private_dir=lambda args: args.dir / ".work")


def register_update(commands: Any) -> None:
    update = commands.add_parser(
        "update",
        help="bootstrap the newer releases of a finished run into its output directory",
        description="Run the bootstrap that made DIR again, with the same top-level "
        "requirements, constraints, index, --pre and variant (from DIR/run.json), so that "
        "newer releases are resolved and built. Earlier wheels stay in the index; "
        "graph.json and build-order.json describe the new run.",
    )
    _add_dir_options(update)
    bootstrap_command.add_run_options(update)
    add_release_age_options(update, recorded=True)
    update.set_defaults(handler=run_update, private_dir=lambda args: args.dir / ".work")


def _add_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir",
        type=absolute_path,
        metavar="DIR",
        help="the output directory of a bootstrap (e.g. ./bootstrap-output)",
    )
    parser.add_argument(
        "--index-url",
        default=None,
        metavar="URL",
        help="the source index (default: the one the run used, from DIR/run.json)",
    )


@dataclass(frozen=True)
class _Run:
    """What to ask the index again: the run's record, or what is assumed without one."""

    graph: RunGraph
    requirements: tuple[Requirement, ...]
    constraints: tuple[Requirement, ...]
    index_url: str
    pre: bool
    variant: str | None
    #: Each top-level requirement was resolved on its own (``--each``).
    each: bool
    #: The run's own minimum release age, reused unless the command line gives one.
    min_release_age_days: float | None
    #: The Pythons the run built for (``--python``); empty: the one it ran under.
    pythons: tuple[str, ...] = ()


def _the_run(args: argparse.Namespace) -> _Run:
    directory: Path = args.dir
    graph = read_graph(directory)
    record = read_run_record(directory)
    if record is None:
        return _assumed(args, graph)
    if record.index_credentials and args.index_url is None:
        _note(
            f"the index URL of the run carried credentials, which {RUN_FILE} does not keep; "
            "if the index asks for them, give --index-url with them"
        )
    return _Run(
        graph=graph,
        requirements=record.requirements,
        constraints=record.constraints,
        index_url=args.index_url or record.index_url,
        pre=record.pre,
        variant=record.variant,
        each=record.each,
        min_release_age_days=_recorded_age(record),
        pythons=record.pythons,
    )


def _recorded_age(record: RunRecord) -> float | None:
    return record.release_age.min_release_age_days if record.release_age else None


def _assumed(args: argparse.Namespace, graph: RunGraph) -> _Run:
    """A run made before ``run.json`` existed: its roots are in graph.json, its index
    and constraints nowhere."""
    directory: Path = args.dir
    if args.index_url is None:
        raise UsageError(
            f"{directory} has no {RUN_FILE} (it was made by a bootstrapper that did not keep "
            "one), so the index the run used is not known: give it with --index-url"
        )
    marker = directory / ".work" / "variant"
    variant = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    _note(
        f"{directory} has no {RUN_FILE}: taking the top-level requirements of graph.json "
        f"({', '.join(graph.roots) or 'none'}), no constraints and no --pre"
    )
    return _Run(
        graph=graph,
        requirements=tuple(Requirement(root) for root in graph.roots),
        constraints=(),
        index_url=args.index_url,
        pre=False,
        variant=variant or None,
        each=False,
        min_release_age_days=None,
    )


def _release_age(args: argparse.Namespace, run: _Run) -> ReleaseAge | None:
    """The command line's release age, else the run's own minimum age (a fixed
    ``--exclude-newer`` of the run is not reused: it would hide every update)."""
    if args.exclude_newer is not None or args.min_release_age is not None:
        return release_age_from(args)
    return ReleaseAge.of(datetime.datetime.now(datetime.UTC), None, run.min_release_age_days)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def run_find_updates(args: argparse.Namespace) -> int:
    run = _the_run(args)
    settings = Settings(default_layers(args.overrides_dir))
    age = _release_age(args, run)
    with HttpClient(http_limits(args)) as http:
        index = IndexClient(run.index_url, http)
        try:
            finder = IndexFinder(
                index,
                Version(".".join(map(str, sys.version_info[:3]))),
                prebuilt=lambda name: settings.for_package(name, run.variant).prebuilt,
                external_source=lambda name: (
                    settings.for_package(name, run.variant).source is not None
                ),
                tags=list(sys_tags()),
                release_age=age,
            )
            names = sorted(run.graph.versions())
            finder.prefetch(names)
            report = find_updates(
                run.graph,
                RunRequest(run.requirements, run.constraints, run.pre, each=run.each),
                finder.releases,
            )
        finally:
            index.close()
    if args.json:
        document = report.to_json(
            output_dir=str(args.dir),
            index_url=index.index_url,
            uploaded_before=format_timestamp(age.uploaded_before) if age else None,
        )
        print(json.dumps(document, indent=2))
    else:
        print(render_table(report), end="")
    for problem in report.problems:
        print(f"error: {problem.error}", file=sys.stderr)
    if report.problems:
        print(
            f"error: the releases of {len(report.problems)} of {len(names)} projects could "
            "not be learnt: the report is incomplete",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def run_update(args: argparse.Namespace) -> int:
    run = _the_run(args)
    if args.variant is not None and args.variant != run.variant:
        held = f"the {run.variant!r} variant" if run.variant else "no variant"
        raise UsageError(f"{args.dir} was bootstrapped with {held}; an update keeps it")
    args.output_dir = args.dir
    args.index_url = run.index_url
    args.pre = run.pre
    args.variant = run.variant
    args.each = args.each or run.each
    args.pythons = args.pythons or list(run.pythons)
    if args.exclude_newer is None and args.min_release_age is None:
        args.min_release_age = run.min_release_age_days
    wanted = RequirementSet(list(run.requirements), list(run.constraints))
    status = bootstrap_command.run(args, wanted)
    changes = version_changes(run.graph, read_graph(args.dir))
    if args.quiet:
        return status
    for name, before, after in changes:
        old = ", ".join(str(v) for v in before) or "(new)"
        new = ", ".join(str(v) for v in after) or "(no longer in the tree)"
        print(f"{name}: {old} -> {new}")
    if not changes and status == EXIT_OK:
        print("no updates")
    return status
