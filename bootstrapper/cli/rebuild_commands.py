"""The job commands: ``build`` one package, ``build-sequence`` a recorded chain,
``verify`` that rebuilds are byte-identical."""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..builder import make_plan
from ..errors import UsageError
from ..graph import NodeKey
from ..http import HttpClient
from ..interpreters import current, find_all
from ..isolation import required_isolation
from ..job import WheelIndex, build_one
from ..outputlock import locked_output_dir
from ..plugins import Plugins
from ..progress import TeeReporter
from ..sbom.index import read_graph, write_index_sbom
from ..sequence import (
    OrderEntry,
    SequenceBuilder,
    SequenceError,
    compare,
    interpreters_for,
    read_build_order,
)
from ..signing import Signer
from ..single_build import BuildConfig
from ..timeline import Edge, RunRecorder
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    absolute_path,
    add_dask_option,
    add_http_options,
    add_sandbox_options,
    add_settings_options,
    add_unpack_options,
    dask_cluster,
    http_limits,
    jobs_for,
    location,
    sandbox_from,
    settings_layers,
    unpack_limits,
)
from .provenance_command import add_sign_key_option, signer_from
from .run_record import RunRecord, progress_reporter, recorded_run


def register_sequence(commands: Any) -> None:
    sequence = commands.add_parser(
        "build-sequence",
        help="rebuild a recorded build order from its archived sources, offline",
        description="Rebuild every package of BUILD_ORDER (a bootstrap's build-order.json) "
        "from the archived sources, with exactly the recorded build environments, settings "
        "and patches, into OUTPUT_DIR's index. Builds have no network; independent ones run "
        "concurrently; wheels already present and valid are kept unless --force.",
    )
    sequence.add_argument("build_order", type=absolute_path, metavar="BUILD_ORDER")
    sequence.add_argument("--output-dir", type=absolute_path, required=True, metavar="DIR")
    add_rebuild_options(sequence)
    sequence.add_argument("--force", action="store_true", help="rebuild every wheel")
    add_sign_key_option(sequence)
    sequence.set_defaults(
        handler=run_build_sequence, private_dir=lambda args: args.output_dir / ".work"
    )
    verify = commands.add_parser(
        "verify",
        help="rebuild wheels and check they are byte-identical",
        description="Rebuild the wheels of BUILD_ORDER (or only the --only ones) in a scratch "
        "directory and compare each with the one beside BUILD_ORDER: identical, or the first "
        "file that differs. Exit status 1 if any differs.",
    )
    verify.add_argument("build_order", type=absolute_path, metavar="BUILD_ORDER")
    verify.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="rebuild only this package (repeatable)",
    )
    verify.add_argument(
        "--keep",
        type=absolute_path,
        metavar="DIR",
        help="rebuild into DIR and keep it (default: a temporary directory)",
    )
    add_rebuild_options(verify)
    verify.set_defaults(
        handler=run_verify, private_dir=lambda args: args.keep / ".work" if args.keep else None
    )


def register_build(commands: Any) -> None:
    build = commands.add_parser(
        "build",
        help="build one package version as a job (sources and build tools given)",
        description="Build NAME VERSION from the source archives in SOURCES (a directory "
        "such as a bootstrap's sdists/, or an index URL), taking build requirements only "
        "from the wheel index WHEELS (a directory of wheels, a simple index directory, or "
        "a URL), and publish the wheel into OUTPUT_DIR's index. Nothing else is fetched: "
        "a build requirement missing from WHEELS is an error.",
    )
    build.add_argument("name", metavar="NAME")
    build.add_argument("version", metavar="VERSION")
    build.add_argument("--sources", type=location, required=True, metavar="DIR_OR_URL")
    build.add_argument("--wheels", type=location, required=True, metavar="INDEX")
    build.add_argument("--output-dir", type=absolute_path, required=True, metavar="DIR")
    add_settings_options(build)
    add_sandbox_options(build)
    add_http_options(build)
    add_unpack_options(build)
    build.add_argument(
        "--no-network-isolation", action="store_true", help="build with network access"
    )
    add_keep_work_option(build)
    build.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    build.set_defaults(handler=run_build, private_dir=lambda args: args.output_dir / ".work")


def run_build(args: argparse.Namespace) -> int:
    try:
        version = Version(args.version)
    except InvalidVersion:
        raise UsageError(f"invalid version {args.version!r}") from None
    settings, patch_layers = settings_layers(args)
    isolation = required_isolation(not args.no_network_isolation)
    output_dir: Path = args.output_dir
    environment = {k: str(v) for k, v in default_environment().items()}
    limits = http_limits(args)
    with locked_output_dir(output_dir), HttpClient(limits) as http:
        wheels = WheelIndex(
            args.wheels, http, output_dir / ".work" / "build-requirements", list(sys_tags())
        )
        try:
            result = build_one(
                name=args.name,
                version=version,
                sources=args.sources,
                wheels=wheels,
                output_dir=output_dir,
                http=http,
                settings_for=lambda name: settings.for_package(name, args.variant),
                plan_for=functools.partial(make_plan, settings, patch_layers, args.variant),
                environment=environment,
                config=BuildConfig(tuple(isolation), sandbox_from(args), unpack_limits(args)),
                plugins=Plugins.discover(),
                keep_work=args.keep_work,
            )
        finally:
            wheels.close()
    if not args.quiet:
        print(
            f"{'kept' if result.reused else 'built'} {result.path.name} with "
            f"{', '.join(f'{w.name}=={w.version}' for w in result.record.build_env) or 'nothing'}; "
            f"index: {output_dir / 'simple'}",
            file=sys.stderr,
        )
    print(result.path)
    return EXIT_OK


def add_rebuild_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sources",
        type=absolute_path,
        metavar="DIR",
        help="the source archives (default: sdists/ beside BUILD_ORDER)",
    )
    parser.add_argument(
        "--patches",
        type=absolute_path,
        metavar="DIR",
        help="the archived patches (default: patches/ beside BUILD_ORDER)",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="builds at once (default: the number of CPUs; with --dask, the cluster's "
        "worker threads)",
    )
    parser.add_argument(
        "--no-network-isolation",
        action="store_true",
        help="build with network access (where no network namespace can be made, this is required)",
    )
    parser.add_argument(
        "--python",
        dest="pythons",
        action="append",
        default=[],
        metavar="PATH",
        help="the interpreter to rebuild with for the entries built with its Python "
        "version (each entry names its Python; by default it is looked for on PATH, by uv "
        "and in pyenv); repeatable",
    )
    add_sandbox_options(parser)
    add_unpack_options(parser)
    add_keep_work_option(parser)
    add_dask_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def add_keep_work_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep unpacked sources and build environments under OUTPUT_DIR/.work",
    )


def sequence(
    args: argparse.Namespace,
    output_dir: Path,
    entries: Any,
    force: bool,
    *,
    record: bool = False,
    signer: Signer | None = None,
) -> Any:
    """Rebuild ``entries`` into ``output_dir``; with ``record``, write its run log and
    report there when it ends, succeeded or failed; ``signer`` signs the provenance."""
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    base = args.build_order.parent
    pythons = find_all(args.pythons)
    if args.dask and (
        any(not i.is_current() for i in pythons)
        or any(e.python not in ("", current().label) for e in entries)
    ):
        raise UsageError(
            "--dask rebuilds with the workers' own Python: give a build order of that "
            "Python alone (this one names "
            + ", ".join(sorted({e.python for e in entries if e.python}))
            + ")"
        )
    interpreters = interpreters_for(entries, {i.label: i for i in pythons})
    with locked_output_dir(output_dir), dask_cluster(args.dask, args.quiet) as cluster:
        jobs = jobs_for(args, cluster)
        recorder = RunRecorder("build-sequence", jobs=jobs)
        reporter = progress_reporter(args.quiet, [output_dir / "wheels"], jobs)
        recording = (
            recorded_run(output_dir, recorder, quiet=args.quiet)
            if record
            else nullcontext(RunRecord(output_dir, recorder))
        )
        with recording as run_record:
            run_record.edges = build_edges(entries)
            try:
                built = SequenceBuilder(
                    entries,
                    sources_dir=args.sources or base / "sdists",
                    patches_dir=args.patches or base / "patches",
                    output_dir=output_dir,
                    jobs=jobs,
                    isolation=required_isolation(not args.no_network_isolation),
                    sandbox=sandbox_from(args),
                    force=force,
                    reporter=TeeReporter(reporter, recorder),
                    unpack_limits=unpack_limits(args),
                    plugins=Plugins.discover(),
                    keep_work=args.keep_work,
                    cluster=cluster,
                    slot_watch=recorder,
                    signer=signer,
                    pythons=interpreters,
                ).run()
            finally:
                reporter.close()
            if record:
                # The dependencies are those of the run that recorded the build order.
                write_index_sbom(output_dir, read_graph(base / "graph.json"))
            return built


def build_edges(entries: Sequence[OrderEntry]) -> list[Edge]:
    """What each entry's build environment held, as the edges of the sequence's graph."""
    return [
        Edge(
            entry.key,
            NodeKey(canonicalize_name(wheel.name), Version(wheel.version)),
            "build-env",
            f"{wheel.name}=={wheel.version}",
        )
        for entry in entries
        for wheel in entry.build_env
    ]


def run_build_sequence(args: argparse.Namespace) -> int:
    signer = signer_from(args)  # a key that cannot sign is a usage error before any build
    entries = read_build_order(args.build_order)
    rebuilt = sequence(args, args.output_dir, entries, args.force, record=True, signer=signer)
    built = sum(1 for r in rebuilt if not r.reused)
    if not args.quiet:
        print(
            f"rebuilt {built} wheels, kept {len(rebuilt) - built} already valid; index: "
            f"{args.output_dir / 'simple'}",
            file=sys.stderr,
        )
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    entries = read_build_order(args.build_order)
    wanted = {canonicalize_name(n) for n in args.only}
    unknown = wanted - {e.name for e in entries}
    if unknown:
        raise UsageError(f"not in {args.build_order}: {', '.join(sorted(unknown))}")
    selected = [e for e in entries if not wanted or e.name in wanted]
    if not selected:
        # A run whose requirements were all filtered out by their markers builds nothing.
        print(f"nothing to verify: {args.build_order} lists no packages")
        return EXIT_OK
    originals = args.build_order.parent / "wheels"
    if not originals.is_dir():
        raise SequenceError(
            f"cannot verify {args.build_order}: there is no {originals} with the wheels to "
            "compare the rebuilds with; give the build-order.json of a complete bootstrap "
            "output directory"
        )
    # Found now, not after an hour of rebuilding the others.
    missing = [e.wheel for e in selected if not (originals / e.wheel).is_file()]
    if missing:
        named = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SequenceError(
            f"cannot verify {args.build_order}: {originals} lacks {len(missing)} of the "
            f"wheels to compare the rebuilds with ({named}); give the build-order.json of a "
            "complete bootstrap output directory, or --only the packages it has"
        )
    with tempfile.TemporaryDirectory(prefix="bootstrapper-verify-") as tmp:
        output = args.keep or Path(tmp)
        # What is not rebuilt is taken as recorded, for the build environments.
        for entry in entries:
            # The wheel built, not the repaired one: that is what build environments held.
            if entry not in selected and (originals / entry.built_wheel).is_file():
                (output / "wheels").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(
                    originals / entry.built_wheel, output / "wheels" / entry.built_wheel
                )
        rebuilt = sequence(args, output, selected, True)
        results = compare(originals, rebuilt)
    differing = 0
    for wheel, difference in results:
        if difference is None:
            print(f"identical  {wheel}")
        else:
            differing += 1
            print(f"DIFFERS    {wheel}: {difference}")
    print(f"{len(results) - differing} of {len(results)} wheels identical")
    return EXIT_FAILURE if differing else EXIT_OK
