"""``bootstrapper bootstrap``: resolve, build from source and publish a tree."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..allowlist import AllowedProjects, read_allowed_projects
from ..bootstrap import Bootstrapper, Options, Result
from ..credentials import redact_text
from ..errors import BootstrapError, UsageError
from ..failures import FAILURES_FILE, summary
from ..http import HttpClient, HttpLimits
from ..index import PYPI_SIMPLE
from ..interpreters import Interpreter, find_all
from ..isolation import isolation_prefix, readonly_view_problem
from ..outputlock import locked_output_dir
from ..patches import patched_packages
from ..plugins import Plugins
from ..profiling import PROFILE_FILE, Profile
from ..profiling import summary as profile_summary
from ..progress import TeeReporter
from ..reqfile import RequirementSet, parse_requirement, read_file
from ..resolve import parse_constraints
from ..sandbox import end_running_backends
from ..settings import Settings
from ..timeline import RunRecorder
from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    absolute_path,
    add_dask_option,
    add_http_options,
    add_release_age_options,
    add_sandbox_options,
    add_settings_options,
    add_unpack_options,
    dask_cluster,
    http_limits,
    jobs_for,
    release_age_from,
    sandbox_from,
    settings_layers,
    unpack_limits,
)
from .internal_error import internal_error
from .provenance_command import add_sign_key_option, signer_from
from .run_record import RunRecord, progress_reporter, recorded_run

if TYPE_CHECKING:
    from ..remote import DaskCluster

RUN_LOG = "bootstrap.log"
#: File-system refusals that say "the place you chose cannot take this", not "a bug".
WRITE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def register(commands: Any) -> None:
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
        type=absolute_path,
        metavar="FILE",
        help="read requirements from FILE",
    )
    boot.add_argument(
        "-c",
        "--constraint",
        dest="constraint_files",
        action="append",
        default=[],
        type=absolute_path,
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
        type=absolute_path,
        default=None,
        metavar="DIR",
        help="where wheels, the index, logs and the graph go (default ./bootstrap-output)",
    )
    boot.add_argument(
        "--pre",
        action="store_true",
        help="allow pre-release versions (otherwise only when nothing else "
        "matches or a requirement names one)",
    )
    add_run_options(boot)
    add_release_age_options(boot)
    boot.set_defaults(handler=run, private_dir=lambda args: output_dir_of(args) / ".work")


def add_run_options(boot: argparse.ArgumentParser) -> None:
    """The options of how a run builds (every one but what it resolves), which
    ``update`` takes too."""
    boot.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="how many builds run at once (default: the number of CPUs; with --dask, the "
        "cluster's worker threads)",
    )
    boot.add_argument(
        "--keep-work",
        action="store_true",
        help="keep unpacked sources and build environments under DIR/.work",
    )
    boot.add_argument(
        "--keep-going",
        action="store_true",
        help="build everything that does not depend on a failure, publish the requirements "
        "whose whole closure was built, list the failures in DIR/failures.json, exit 1",
    )
    boot.add_argument(
        "--fallback-prebuilt",
        action="store_true",
        help="with --keep-going: for a package that cannot be built, publish the index's "
        "wheel of the same version (hash-checked), still listed as a failure",
    )
    boot.add_argument(
        "--each",
        action="store_true",
        help="resolve each top-level requirement on its own (its own closure, e.g. "
        "'torch==2.1.1' 'torch==2.2.*'), build and publish them all into the one index; "
        "DIR/constraints/ holds one constraints file per requirement",
    )
    boot.add_argument(
        "--allowed-projects",
        type=absolute_path,
        metavar="FILE",
        help="the review gate: build only the projects FILE lists (one name per line, "
        "# starts a comment); a run that needs another stops before building it, naming "
        "each such project and what pulled it in (with --keep-going, each fails alone)",
    )
    boot.add_argument(
        "--python",
        dest="pythons",
        action="append",
        default=[],
        metavar="VERSION_OR_PATH",
        help="build for this Python (a version such as 3.12, found on PATH, by uv or in "
        "pyenv, or an interpreter's path); repeat it to build one index for several: "
        "compiled packages are built for each, pure ones once (default: the Python "
        "bootstrapper runs under)",
    )
    add_sign_key_option(boot)
    add_settings_options(boot)
    add_sandbox_options(boot)
    add_dask_option(boot)
    add_http_options(boot)
    add_unpack_options(boot)
    boot.add_argument(
        "--no-network-isolation",
        action="store_true",
        help="let builds reach the network (by default each backend call runs in an empty "
        "network namespace where the machine allows it)",
    )
    boot.add_argument(
        "--profile",
        action="store_true",
        help="record where the run's time goes (index pages, downloads, environments, "
        "hooks, publishing) in DIR/logs/profile.json and print a short table",
    )
    verbosity = boot.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="also log debug details to the terminal"
    )


def requirement_set(args: argparse.Namespace) -> RequirementSet:
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


class RedactingFormatter(logging.Formatter):
    """Log lines without URL credentials, whoever wrote them: the run log is published
    beside the wheels, and an exception's message or traceback may quote a URL whole."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class TerminalFormatter(RedactingFormatter):
    """Log lines for ``--verbose``: the message, never a traceback (the run log has it)."""

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept


def setup_logging(log_file: Path, verbose: bool) -> list[logging.Handler]:
    """The run log (and with ``verbose`` the terminal) for this run's log records; the
    caller removes the handlers returned when the run ends."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bootstrapper")
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    # Warnings raised in this process (a plugin's, a library's) belong in the log.
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
        console.setFormatter(TerminalFormatter())
        root.addHandler(console)
        return [handler, console]
    return [handler]


def exit_interrupted(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: stop at once. Every result is written atomically and scratch space is
    cleaned by the next run, so there is nothing to unwind; a re-run resumes."""
    sys.stderr.write("\ninterrupted; run the same command again to continue where it stopped\n")
    sys.stderr.flush()
    logging.shutdown()
    # Each backend runs in its own process group (so that a timeout can end it whole),
    # which a terminal's Ctrl-C does not reach.
    end_running_backends()
    # Our builds run in our process group. When we lead it (as a shell job does), end
    # them too: the signal may have reached only us. Otherwise the group is our caller's,
    # which is not ours to signal.
    if os.getpgrp() == os.getpid():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(os.getpgrp(), signal.SIGTERM)
    os._exit(EXIT_INTERRUPTED)


class IsolationProbes:
    """The probes of what isolation this machine allows, each a process started at once
    in a thread of its own, so that they run while the rest of the run is set up."""

    def __init__(self, args: argparse.Namespace) -> None:
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")
        self._network: Future[list[str] | None] | None = (
            None if args.no_network_isolation else pool.submit(isolation_prefix)
        )
        # Its answer is cached: sandbox_from finds it there.
        self._view = None if args.no_filesystem_isolation else pool.submit(readonly_view_problem)
        pool.shutdown(wait=False)

    def network(self) -> list[str] | None:
        return None if self._network is None else self._network.result()

    def wait(self) -> None:
        if self._view is not None:
            self._view.result()


def optional_isolation(
    disabled: bool, quiet: bool, probe: Callable[[], list[str] | None] = isolation_prefix
) -> list[str]:
    """For a bootstrap: isolate builds where possible, say so where not."""
    if disabled:
        return []
    prefix = probe()
    if prefix is None and not quiet:
        print(
            "note: builds are not cut off the network: this machine cannot make a network "
            "namespace (unshare)",
            file=sys.stderr,
        )
    return prefix or []


def run_options(
    args: argparse.Namespace,
    output_dir: Path,
    jobs: int,
    probes: IsolationProbes,
) -> Options:
    """The run's options (once the isolation probes have answered)."""
    probes.wait()
    return Options(
        output_dir=output_dir,
        index_url=args.index_url,
        jobs=jobs,
        allow_prereleases=args.pre,
        keep_work=args.keep_work,
        variant=args.variant,
        isolation=tuple(optional_isolation(args.no_network_isolation, args.quiet, probes.network)),
        keep_going=args.keep_going,
        fallback_prebuilt=args.fallback_prebuilt,
        sandbox=sandbox_from(args),
        unpack_limits=unpack_limits(args),
        allowed=allowed_projects(args),
        each=args.each,
        release_age=release_age_from(args),
        signer=signer_from(args),
        pythons=pythons_from(args),
    )


def pythons_from(args: argparse.Namespace) -> tuple[Interpreter, ...]:
    """``--python``, each found and asked what it is (a UsageError says which could
    not be)."""
    pythons = find_all(args.pythons)
    if args.dask and any(not p.is_current() for p in pythons):
        raise UsageError(
            "--python with --dask: Dask workers build with their own Python; run one "
            "bootstrap per Python, each with workers of that Python"
        )
    return pythons


def allowed_projects(args: argparse.Namespace) -> AllowedProjects | None:
    """``--allowed-projects``, read (a UsageError names every bad line)."""
    path: Path | None = args.allowed_projects
    return None if path is None else read_allowed_projects(path)


def output_dir_of(args: argparse.Namespace) -> Path:
    """``--output-dir``, or its default for the ``--variant``."""
    if args.output_dir is not None:
        return Path(args.output_dir)
    return absolute_path(f"bootstrap-output-{args.variant}" if args.variant else "bootstrap-output")


def run(args: argparse.Namespace, wanted: RequirementSet | None = None) -> int:
    """The bootstrap of ``wanted`` (by default, what the command line asks for)."""
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.fallback_prebuilt and not args.keep_going:
        raise UsageError("--fallback-prebuilt needs --keep-going")
    allowed_projects(args)  # a bad list is a usage error before anything starts
    signer_from(args)  # and so is a key that cannot sign
    pythons_from(args)  # and an interpreter that cannot be found
    probes = IsolationProbes(args)
    limits = http_limits(args)
    wanted = wanted or requirement_set(args)
    settings, patch_layers = settings_layers(args)
    output_dir = output_dir_of(args)
    with locked_output_dir(output_dir), dask_cluster(args.dask, args.quiet) as cluster:
        return run_locked(args, wanted, settings, patch_layers, output_dir, limits, cluster, probes)


def run_locked(
    args: argparse.Namespace,
    wanted: RequirementSet,
    settings: Settings,
    patch_layers: list[Path],
    output_dir: Path,
    limits: HttpLimits,
    cluster: DaskCluster | None = None,
    probes: IsolationProbes | None = None,
) -> int:
    """The run, once this process holds ``output_dir``; its run log and report are
    written when it ends, succeeded or failed."""
    jobs = jobs_for(args, cluster)
    recorder = RunRecorder("bootstrap", [redact_text(str(r)) for r in wanted.requirements], jobs)
    with recorded_run(output_dir, recorder, quiet=args.quiet) as record:
        return run_recorded(
            args,
            wanted,
            settings,
            patch_layers,
            output_dir,
            limits,
            cluster,
            probes,
            recorder,
            record,
        )


def run_recorded(
    args: argparse.Namespace,
    wanted: RequirementSet,
    settings: Settings,
    patch_layers: list[Path],
    output_dir: Path,
    limits: HttpLimits,
    cluster: DaskCluster | None,
    probes: IsolationProbes | None,
    recorder: RunRecorder,
    record: RunRecord,
) -> int:
    probes = probes or IsolationProbes(args)
    run_log = output_dir / "logs" / RUN_LOG
    handlers = setup_logging(run_log, args.verbose)
    reporter = progress_reporter(
        args.quiet, [output_dir / ".work" / "built", output_dir / "wheels"], recorder.jobs
    )
    started = time.monotonic()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, exit_interrupted) if in_main_thread else None
    profile = Profile() if args.profile else None
    try:
        # The client (its TLS set-up reads the CA bundle) is made while the probes run.
        with HttpClient(limits) as http, profile.active() if profile else nullcontext():
            bootstrapper = Bootstrapper(
                run_options(args, output_dir, recorder.jobs, probes),
                http,
                TeeReporter(reporter, recorder),
                settings=settings,
                patch_layers=patch_layers,
                plugins=Plugins.discover(),
                cluster=cluster,
                slot_watch=recorder,
            )
            record.graph = bootstrapper.graph
            result = bootstrapper.run(wanted.requirements, parse_constraints(wanted.constraints))
            record.report = result.report
    except BootstrapError as e:
        logging.getLogger("bootstrapper").error("%s", e.render())
        if e.log_path is None:
            e.log_path = run_log
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except OSError as e:
        logging.getLogger("bootstrapper").exception("file-system error")
        if e.filename is None or e.errno not in WRITE_ERRNOS:
            raise internal_error(e, run_log) from None
        raise BootstrapError(
            f"cannot write {e.filename}: {e.strerror}; make room or make it writable "
            "(or give another --output-dir) and run the same command again",
            log_path=run_log,
        ) from None
    except Exception as e:
        logging.getLogger("bootstrapper").exception("internal error")
        raise internal_error(e, run_log) from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        reporter.close()
        if profile is not None:
            # Written whatever the outcome: a failed or interrupted run is profiled too.
            print(
                profile_summary(profile.write(output_dir / "logs" / PROFILE_FILE)), file=sys.stderr
            )
        # Not only the file: an in-process caller (tests, a program calling main) must
        # not find a console handler on a stream it has since closed.
        for handler in handlers:
            logging.getLogger("bootstrapper").removeHandler(handler)
            logging.getLogger("py.warnings").removeHandler(handler)
            handler.close()
    page = record.write()
    named = f"report: {page}\n" if page is not None and not args.quiet else ""
    in_tree = {key.name for key in result.built}
    for name in sorted(patched_packages([args.patches_dir]) - in_tree):
        print(
            f"warning: {args.patches_dir / name} has patches for {name}, which is not in the tree",
            file=sys.stderr,
        )
    if result.report is not None and not result.report.ok:
        print(f"error: {summary(result.report, output_dir / FAILURES_FILE)}", file=sys.stderr)
        print(named, end="", file=sys.stderr)
        if result.report.published:
            print(
                f"index: {output_dir / 'simple'}\n" + install_lines(output_dir, result, args.each),
                file=sys.stderr,
            )
        return EXIT_FAILURE
    built = sum(1 for w in result.wheels if not w.reused)
    reused = len(result.wheels) - built
    if not args.quiet:
        installed = {name for _, closure in result.closures for name in closure.pins}
        pythons = f" for Python {', '.join(result.pythons)}" if len(result.pythons) > 1 else ""
        print(
            f"bootstrapped {len(installed)} packages for install{pythons} "
            f"({len(result.wheels)} wheels: {built} built, {reused} reused) "
            f"in {time.monotonic() - started:.1f}s\n"
            f"index: {output_dir / 'simple'}\n"
            f"{named}" + install_lines(output_dir, result, args.each),
            file=sys.stderr,
        )
    return EXIT_OK


def install_lines(output_dir: Path, result: Result, each: bool) -> str:
    """How to install what the run published, as a shell line to copy: one for the
    closure, or with ``--each`` one per requirement, with its constraints file."""
    index = f"pip install --index-url {(output_dir / 'simple').as_uri()}/"
    if not each:
        return f"install with: {index} " + " ".join(
            shlex.quote(redact_text(str(r))) for r, _ in result.closures
        )
    return "\n".join(
        f"install with: {index} -c {shlex.quote(str(path))} "
        + shlex.quote(redact_text(str(requirement)))
        for (requirement, _), path in zip(result.closures, result.constraints_files, strict=True)
    )
