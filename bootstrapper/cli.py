"""The command line: the only layer that prints or exits."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from packaging.markers import default_environment
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import __version__
from .bootstrap import Bootstrapper, Options
from .builder import make_plan
from .errors import BootstrapError, UsageError
from .http import HttpClient
from .index import PYPI_SIMPLE
from .isolation import isolation_prefix, required_isolation
from .job import WheelIndex, build_one
from .patches import find_patches, patched_packages
from .plugins import Plugins
from .progress import StreamReporter
from .reqfile import RequirementSet, parse_requirement, read_file
from .resolve import parse_constraints
from .sequence import SequenceBuilder, compare, read_build_order
from .settings import Settings, default_layers, recipes_dir, unique_dirs
from .wheeledit import WheelEdit, edit_wheel

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
RUN_LOG = "bootstrap.log"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bootstrapper",
        description="Rebuild a whole Python dependency tree from source into a static index.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    boot = commands.add_parser(
        "bootstrap",
        help="resolve, build from source and publish a dependency tree",
        description="Resolve the install closure of REQUIREMENTs jointly, build every wheel "
        "of it (and of its build tools) from source in isolated environments, and write a "
        "static simple index to the output directory.",
    )
    boot.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENT",
        help="a PEP 508 requirement, e.g. 'requests' or 'torch>=2'",
    )
    boot.add_argument(
        "-r",
        "--requirement",
        dest="requirement_files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="read requirements from FILE",
    )
    boot.add_argument(
        "-c",
        "--constraint",
        dest="constraint_files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="constrain the versions of the install closure with FILE",
    )
    boot.add_argument(
        "--index-url",
        default=PYPI_SIMPLE,
        metavar="URL",
        help=f"source index (PEP 503/691), default {PYPI_SIMPLE}",
    )
    boot.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where wheels, the index, logs and the graph go (default ./bootstrap-output)",
    )
    boot.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="how many builds run at once (default: the number of CPUs)",
    )
    boot.add_argument(
        "--pre",
        action="store_true",
        help="allow pre-release versions (otherwise only when nothing else "
        "matches or a requirement names one)",
    )
    boot.add_argument(
        "--keep-work",
        action="store_true",
        help="keep unpacked sources and build environments under DIR/.work",
    )
    _add_settings_options(boot)
    boot.add_argument(
        "--no-network-isolation",
        action="store_true",
        help="let builds reach the network (by default each backend call runs in an empty "
        "network namespace where the machine allows it)",
    )
    verbosity = boot.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="also log debug details to the terminal"
    )
    _add_wheel_commands(commands)
    _add_settings_commands(commands)
    _add_sequence_commands(commands)
    _add_build_command(commands)
    return parser


def _add_sequence_commands(commands: Any) -> None:
    sequence = commands.add_parser(
        "build-sequence",
        help="rebuild a recorded build order from its archived sources, offline",
        description="Rebuild every package of BUILD_ORDER (a bootstrap's build-order.json) "
        "from the archived sources, with exactly the recorded build environments, settings "
        "and patches, into OUTPUT_DIR's index. Builds have no network; independent ones run "
        "concurrently; wheels already present and valid are kept unless --force.",
    )
    sequence.add_argument("build_order", type=Path, metavar="BUILD_ORDER")
    sequence.add_argument("--output-dir", type=Path, required=True, metavar="DIR")
    _add_rebuild_options(sequence)
    sequence.add_argument("--force", action="store_true", help="rebuild every wheel")
    verify = commands.add_parser(
        "verify",
        help="rebuild wheels and check they are byte-identical",
        description="Rebuild the wheels of BUILD_ORDER (or only the --only ones) in a scratch "
        "directory and compare each with the one beside BUILD_ORDER: identical, or the first "
        "file that differs. Exit status 1 if any differs.",
    )
    verify.add_argument("build_order", type=Path, metavar="BUILD_ORDER")
    verify.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="rebuild only this package (repeatable)",
    )
    verify.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="rebuild into DIR and keep it (default: a temporary directory)",
    )
    _add_rebuild_options(verify)


def _add_build_command(commands: Any) -> None:
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
    build.add_argument("--sources", required=True, metavar="DIR_OR_URL")
    build.add_argument("--wheels", required=True, metavar="INDEX")
    build.add_argument("--output-dir", type=Path, required=True, metavar="DIR")
    _add_settings_options(build)
    build.add_argument(
        "--no-network-isolation", action="store_true", help="build with network access"
    )
    build.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _build(args: argparse.Namespace) -> int:
    try:
        version = Version(args.version)
    except InvalidVersion:
        raise UsageError(f"invalid version {args.version!r}") from None
    settings, patch_layers = _settings_layers(args)
    isolation = required_isolation(not args.no_network_isolation)
    output_dir: Path = args.output_dir.absolute()
    environment = {k: str(v) for k, v in default_environment().items()}
    with HttpClient() as http:
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
                plan_for=functools.partial(make_plan, settings, patch_layers, args.variant),
                isolation=isolation,
                environment=environment,
            )
        finally:
            wheels.close()
    if not args.quiet:
        print(
            f"built {result.wheel.name} with "
            f"{', '.join(f'{w.name}=={w.version}' for w in result.build_env) or 'nothing'}; "
            f"index: {output_dir / 'simple'}",
            file=sys.stderr,
        )
    print(result.wheel)
    return EXIT_OK


def _add_rebuild_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sources",
        type=Path,
        metavar="DIR",
        help="the source archives (default: sdists/ beside BUILD_ORDER)",
    )
    parser.add_argument(
        "--patches",
        type=Path,
        metavar="DIR",
        help="the archived patches (default: patches/ beside BUILD_ORDER)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, metavar="N")
    parser.add_argument(
        "--no-network-isolation",
        action="store_true",
        help="build with network access (where no network namespace can be made, this is required)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _sequence(args: argparse.Namespace, output_dir: Path, entries: Any, force: bool) -> Any:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    base = args.build_order.parent
    reporter = StreamReporter(
        sys.stderr, live=sys.stderr.isatty() and not args.quiet, quiet=args.quiet
    )
    try:
        return SequenceBuilder(
            entries,
            sources_dir=(args.sources or base / "sdists").absolute(),
            patches_dir=(args.patches or base / "patches").absolute(),
            output_dir=output_dir.absolute(),
            jobs=args.jobs,
            isolation=required_isolation(not args.no_network_isolation),
            force=force,
            reporter=reporter,
        ).run()
    finally:
        reporter.close()


def _build_sequence(args: argparse.Namespace) -> int:
    entries = read_build_order(args.build_order)
    rebuilt = _sequence(args, args.output_dir, entries, args.force)
    built = sum(1 for r in rebuilt if not r.skipped)
    if not args.quiet:
        print(
            f"rebuilt {built} wheels, kept {len(rebuilt) - built} already valid; index: "
            f"{args.output_dir.absolute() / 'simple'}",
            file=sys.stderr,
        )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    entries = read_build_order(args.build_order)
    wanted = {canonicalize_name(n) for n in args.only}
    unknown = wanted - {e.name for e in entries}
    if unknown:
        raise UsageError(f"not in {args.build_order}: {', '.join(sorted(unknown))}")
    selected = [e for e in entries if not wanted or e.name in wanted]
    originals = args.build_order.parent / "wheels"
    with tempfile.TemporaryDirectory(prefix="bootstrapper-verify-") as tmp:
        output = args.keep or Path(tmp)
        # What is not rebuilt is taken as recorded, for the build environments.
        for entry in entries:
            if entry not in selected and (originals / entry.wheel).is_file():
                (output / "wheels").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(originals / entry.wheel, output / "wheels" / entry.wheel)
        rebuilt = _sequence(args, output, selected, True)
        results = compare(originals, rebuilt)
    differing = 0
    for entry, difference in results:
        if difference is None:
            print(f"identical  {entry.wheel}")
        else:
            differing += 1
            print(f"DIFFERS    {entry.wheel}: {difference}")
    print(f"{len(results) - differing} of {len(results)} wheels identical")
    return EXIT_FAILURE if differing else EXIT_OK


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overrides-dir",
        type=Path,
        default=Path("overrides"),
        metavar="DIR",
        help="per-package settings: DIR/settings/<name>.yaml and DIR/settings.yaml "
        "(default ./overrides; layered over bootstrapper's own recipes)",
    )
    parser.add_argument(
        "--patches-dir",
        type=Path,
        default=Path("patches"),
        metavar="DIR",
        help="per-package patches: DIR/<name>/*.patch, DIR/<name>/<version>/*.patch "
        "(default ./patches; layered over bootstrapper's own recipes)",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help="merge each package's 'variants: NAME' settings over its base; the default "
        "output directory becomes ./bootstrap-output-NAME",
    )


def _add_settings_commands(commands: Any) -> None:
    settings = commands.add_parser("settings", help="per-package settings")
    sub = settings.add_subparsers(
        dest="settings_command", metavar="COMMAND", parser_class=_Parser, required=True
    )
    check = sub.add_parser(
        "check",
        help="validate the settings and show what applies to a package",
        description="Validate every settings file (all problems are reported, with file "
        "and line) and, given a PACKAGE and VERSION, print the settings and patches that "
        "apply to it.",
    )
    check.add_argument("package", nargs="?", metavar="PACKAGE")
    check.add_argument("version", nargs="?", metavar="VERSION")
    _add_settings_options(check)


def _settings_layers(args: argparse.Namespace) -> tuple[Settings, list[Path]]:
    settings = Settings(default_layers(args.overrides_dir))
    variants = settings.variants()
    if args.variant is not None and args.variant not in variants:
        raise UsageError(
            f"unknown variant {args.variant!r}"
            + (f" (the settings define: {', '.join(sorted(variants))})" if variants else "")
        )
    return settings, unique_dirs([args.patches_dir, recipes_dir() / "patches"])


def _settings_check(args: argparse.Namespace) -> int:
    settings, patch_layers = _settings_layers(args)
    print(
        f"settings OK: {len(settings.packages)} packages configured in "
        f"{', '.join(str(p) for p in settings.layers) or 'no directory'}"
    )
    if args.package is None:
        return EXIT_OK
    if args.version is None:
        raise UsageError("give the VERSION too, e.g. 'settings check torch 2.5.1'")
    try:
        version = Version(args.version)
    except InvalidVersion:
        raise UsageError(f"invalid version {args.version!r}") from None
    name = canonicalize_name(args.package)
    package = settings.for_package(name, args.variant)
    patches = find_patches(patch_layers, name, version, args.variant)
    report = {
        "package": name,
        "version": str(version),
        "variant": args.variant,
        "settings": package.to_json(version),
        "env-expanded": package.expanded_env(version, os.environ),
        "patches": [p.to_json() for p in patches],
        "wheel-version": str(package.wheel_edit(version).new_version(version)),
    }
    print(json.dumps(report, indent=2))
    return EXIT_OK


def _add_wheel_commands(commands: Any) -> None:
    wheel = commands.add_parser("wheel", help="work on wheel files")
    wheel_commands = wheel.add_subparsers(
        dest="wheel_command", metavar="COMMAND", parser_class=_Parser, required=True
    )
    edit = wheel_commands.add_parser(
        "edit",
        help="rewrite a wheel's requirements and rebuild number",
        description="Rewrite WHEEL: drop or add Requires-Dist entries and stamp a rebuild "
        "number. METADATA, WHEEL, the dist-info name and RECORD (hashes and sizes) are "
        "regenerated; every other file is kept byte for byte.",
    )
    edit.add_argument("wheel", type=Path, metavar="WHEEL")
    edit.add_argument(
        "--remove-requires",
        action="append",
        default=[],
        metavar="NAME",
        help="drop every Requires-Dist naming NAME (an error if there is none)",
    )
    edit.add_argument(
        "--add-requires",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="add a Requires-Dist (markers allowed)",
    )
    scheme = edit.add_mutually_exclusive_group()
    scheme.add_argument(
        "--build-tag",
        type=int,
        metavar="N",
        help="set the PEP 427 build tag: pkg-1.4-N-py3-none-any.whl",
    )
    scheme.add_argument("--post", type=int, metavar="N", help="make the version 1.4.postN")
    scheme.add_argument("--local", metavar="LABEL", help="make the version 1.4+LABEL")
    edit.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where the new wheel goes (default: beside WHEEL)",
    )


def _wheel_edit(args: argparse.Namespace) -> int:
    if not args.wheel.is_file():
        raise UsageError(f"no such wheel: {args.wheel}")
    for number in (args.build_tag, args.post):
        if number is not None and number < 1:
            raise UsageError("a rebuild number must be at least 1")
    scheme, rebuild = "build-tag", 0
    if args.build_tag is not None:
        rebuild = args.build_tag
    elif args.post is not None:
        scheme, rebuild = "post", args.post
    elif args.local is not None:
        scheme = "local"
    edit = WheelEdit(
        remove_requires=frozenset(canonicalize_name(n) for n in args.remove_requires),
        add_requires=tuple(parse_requirement(r, "--add-requires") for r in args.add_requires),
        rebuild=rebuild,
        scheme=scheme,
        local=args.local,
    )
    output_dir: Path = args.output_dir or args.wheel.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    result = edit_wheel(args.wheel, output_dir, edit)
    print(result)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "wheel":
            return _wheel_edit(args)
        if args.command == "settings":
            return _settings_check(args)
        if args.command == "build-sequence":
            return _build_sequence(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "build":
            return _build(args)
        return _bootstrap(args)
    except UsageError as e:
        print(f"bootstrapper: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except BootstrapError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(
            "\ninterrupted; run the same command again to continue where it stopped",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _requirement_set(args: argparse.Namespace) -> RequirementSet:
    wanted = RequirementSet()
    for text in args.requirements:
        wanted.requirements.append(parse_requirement(text))
    for path in args.requirement_files:
        read_file(path, wanted, constraints=False)
    for path in args.constraint_files:
        read_file(path, wanted, constraints=True)
    if not wanted.requirements:
        raise UsageError("nothing to bootstrap: give a REQUIREMENT or -r FILE")
    return wanted


def _setup_logging(log_file: Path, verbose: bool) -> logging.Handler:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bootstrapper")
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    # Backends' warnings (re-emitted by pyproject_hooks) belong in the log, not on screen.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    logging.getLogger("py.warnings").propagate = False
    if not any(
        isinstance(h, logging.NullHandler) for h in logging.getLogger("py.warnings").handlers
    ):
        logging.getLogger("py.warnings").addHandler(logging.NullHandler())
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.DEBUG)
        root.addHandler(console)
    return handler


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: stop at once. Every result is written atomically and scratch space is
    cleaned by the next run, so there is nothing to unwind; a re-run resumes."""
    sys.stderr.write("\ninterrupted; run the same command again to continue where it stopped\n")
    sys.stderr.flush()
    logging.shutdown()
    os._exit(EXIT_INTERRUPTED)


def _optional_isolation(disabled: bool, quiet: bool) -> list[str]:
    """For a bootstrap: isolate builds where possible, say so where not."""
    if disabled:
        return []
    prefix = isolation_prefix()
    if prefix is None and not quiet:
        print(
            "note: builds are not cut off the network: this machine cannot make a network "
            "namespace (unshare)",
            file=sys.stderr,
        )
    return prefix or []


def _bootstrap(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    wanted = _requirement_set(args)
    settings, patch_layers = _settings_layers(args)
    default_output = f"bootstrap-output-{args.variant}" if args.variant else "bootstrap-output"
    output_dir: Path = (args.output_dir or Path(default_output)).absolute()
    run_log = output_dir / "logs" / RUN_LOG
    handler = _setup_logging(run_log, args.verbose)
    reporter = StreamReporter(
        sys.stderr, live=sys.stderr.isatty() and not args.quiet, quiet=args.quiet
    )
    options = Options(
        output_dir=output_dir,
        index_url=args.index_url,
        jobs=args.jobs,
        allow_prereleases=args.pre,
        keep_work=args.keep_work,
        variant=args.variant,
        isolation=tuple(_optional_isolation(args.no_network_isolation, args.quiet)),
    )
    started = time.monotonic()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, _exit_interrupted) if in_main_thread else None
    try:
        with HttpClient() as http:
            bootstrapper = Bootstrapper(
                options,
                http,
                reporter,
                settings=settings,
                patch_layers=patch_layers,
                plugins=Plugins.discover(),
            )
            result = bootstrapper.run(wanted.requirements, parse_constraints(wanted.constraints))
    except BootstrapError as e:
        logging.getLogger("bootstrapper").error("%s", e.render())
        if e.log_path is None:
            e.log_path = run_log
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        logging.getLogger("bootstrapper").exception("internal error")
        raise BootstrapError(
            f"internal error ({type(e).__name__}: {e}); this is a bug in bootstrapper",
            log_path=run_log,
        ) from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        reporter.close()
        logging.getLogger("bootstrapper").removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        handler.close()
    in_tree = {key.name for key in result.built}
    for name in sorted(patched_packages([args.patches_dir]) - in_tree):
        print(
            f"warning: {args.patches_dir / name} has patches for {name}, which is not in the tree",
            file=sys.stderr,
        )
    built = sum(1 for w in result.built.values() if not w.reused)
    reused = len(result.built) - built
    if not args.quiet:
        print(
            f"bootstrapped {len(result.install.pins)} packages for install "
            f"({len(result.built)} wheels: {built} built, {reused} reused) "
            f"in {time.monotonic() - started:.1f}s\n"
            f"index: {output_dir / 'simple'}\n"
            f"install with: pip install --index-url {(output_dir / 'simple').as_uri()}/ "
            + " ".join(str(r) for r in wanted.requirements),
            file=sys.stderr,
        )
    return EXIT_OK
