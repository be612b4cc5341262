"""What every command shares: the parser class, exit statuses, path arguments, settings
options."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..archive import DEFAULT_UNPACK_LIMITS, UnpackLimits, human_size, parse_size
from ..errors import UsageError
from ..http import HttpLimits
from ..isolation import readonly_view_problem
from ..releaseage import ReleaseAge, parse_days, parse_timestamp
from ..sandbox import DEFAULT_BUILD_TIMEOUT, Sandbox, cancelled_on_interrupt
from ..settings import Settings, default_layers, recipes_dir, unique_dirs

if TYPE_CHECKING:
    from ..remote import DaskCluster

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def absolute_path(text: str) -> Path:
    """An argparse ``type`` for every path a user gives: made absolute once, at parse
    time, so that nothing later depends on the working directory (``patch`` runs inside
    the unpacked source, builds in their own directories). String defaults go through it
    too, so ``./patches`` and ``./bootstrap-output`` are pinned when the command starts."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text).absolute()


def location(text: str) -> str:
    """An argparse ``type`` for DIR_OR_URL: a URL as given, a directory made absolute."""
    if "://" in text:
        return text
    return str(absolute_path(text))


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overrides-dir",
        type=absolute_path,
        default="overrides",
        metavar="DIR",
        help="per-package settings: DIR/settings/<name>.yaml and DIR/settings.yaml "
        "(default ./overrides; layered over bootstrapper's own recipes)",
    )
    parser.add_argument(
        "--patches-dir",
        type=absolute_path,
        default="patches",
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


def settings_layers(args: argparse.Namespace) -> tuple[Settings, list[Path]]:
    settings = Settings(default_layers(args.overrides_dir))
    variants = settings.variants()
    if args.variant is not None and args.variant not in variants:
        raise UsageError(
            f"unknown variant {args.variant!r}"
            + (f" (the settings define: {', '.join(sorted(variants))})" if variants else "")
        )
    return settings, unique_dirs([args.patches_dir, recipes_dir() / "patches"])


def _variable_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(f"not an environment variable name: {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return seconds


def add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pass-env",
        action="append",
        default=[],
        type=_variable_name,
        metavar="NAME",
        help="pass this variable of your environment to builds (repeatable; builds see "
        "only an allow-list otherwise); the build record keeps the name, not the value",
    )
    parser.add_argument(
        "--build-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"end a backend call (and every process it started) that runs longer "
        f"(default {DEFAULT_BUILD_TIMEOUT} = {DEFAULT_BUILD_TIMEOUT // 3600} hours; a "
        "package's 'build-timeout:' setting wins)",
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=None,
        metavar="N",
        help="how many cores the builds share (default: every CPU this process may use); "
        "a jobserver and MAX_JOBS-style variables keep them from using more",
    )
    parser.add_argument(
        "--no-filesystem-isolation",
        action="store_true",
        help="let builds write anywhere you can (by default, where Linux namespaces "
        "allow, a build can write only its own source tree, output and scratch "
        "directories; the output directory, your home and the rest are read-only)",
    )


def sandbox_from(args: argparse.Namespace) -> Sandbox:
    pass_env = tuple(dict.fromkeys(args.pass_env))
    if args.cores is not None and args.cores < 1:
        raise UsageError("--cores must be at least 1")
    view = readonly_view(disabled=args.no_filesystem_isolation, quiet=args.quiet)
    if args.build_timeout is None:
        return Sandbox(pass_env=pass_env, readonly_view=view, cores=args.cores)
    return Sandbox(
        pass_env=pass_env,
        timeout=args.build_timeout,
        timeout_origin="--build-timeout",
        readonly_view=view,
        cores=args.cores,
    )


def readonly_view(*, disabled: bool, quiet: bool) -> bool:
    """Whether builds get a read-only view of the machine: where it is possible, unless
    the user turned it off; where it is not, say so once."""
    if disabled:
        return False
    problem = readonly_view_problem()
    if problem is not None and not quiet:
        print(
            "note: builds can write outside their work directories: this machine cannot "
            f"give them a read-only view ({problem})",
            file=sys.stderr,
        )
    return problem is None


def add_http_options(parser: argparse.ArgumentParser) -> None:
    defaults = HttpLimits()
    parser.add_argument(
        "--http-timeout",
        type=float,
        default=defaults.timeout,
        metavar="SECONDS",
        help="longest wait to connect or for the next bytes of an answer; a download "
        f"bringing less than {defaults.min_progress} bytes in that time is stalled too "
        f"(default {defaults.timeout:g})",
    )
    parser.add_argument(
        "--http-retries",
        type=int,
        default=defaults.retries,
        metavar="N",
        help=f"tries after the first on a transient failure (default {defaults.retries})",
    )
    parser.add_argument(
        "--http-budget",
        type=float,
        default=defaults.budget,
        metavar="SECONDS",
        help="total time for one URL, all its tries together: no try starts after it, and "
        f"a page must be complete by then (default {defaults.budget:g})",
    )


def http_limits(args: argparse.Namespace) -> HttpLimits:
    if not args.http_timeout > 0:
        raise UsageError("--http-timeout must be more than 0 seconds")
    if args.http_retries < 0:
        raise UsageError("--http-retries must be 0 or more")
    if not args.http_budget > 0:
        raise UsageError("--http-budget must be more than 0 seconds")
    return HttpLimits(timeout=args.http_timeout, retries=args.http_retries, budget=args.http_budget)


def size(text: str) -> int:
    """An argparse ``type`` for a size: ``8G``, ``500M``, ``64K`` or bytes."""
    try:
        return parse_size(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (give bytes, or a number with K, M, G or T)"
        ) from None


def add_unpack_options(parser: argparse.ArgumentParser) -> None:
    defaults = DEFAULT_UNPACK_LIMITS
    parser.add_argument(
        "--max-unpack-size",
        type=size,
        default=defaults.max_size,
        metavar="SIZE",
        help="refuse a source archive that unpacks to more than SIZE (e.g. 20G; default "
        f"{human_size(defaults.max_size)})",
    )
    parser.add_argument(
        "--max-unpack-ratio",
        type=float,
        default=defaults.max_ratio,
        metavar="N",
        help="refuse a source archive that unpacks to more than N times its own size "
        f"(default {defaults.max_ratio:g})",
    )


def unpack_limits(args: argparse.Namespace) -> UnpackLimits:
    if not args.max_unpack_ratio >= 1:
        raise UsageError("--max-unpack-ratio must be at least 1")
    return UnpackLimits(max_size=args.max_unpack_size, max_ratio=args.max_unpack_ratio)


def add_dask_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run every package build as a task on the Dask cluster whose scheduler is at "
        "ADDRESS (tcp://HOST:PORT); resolution, the graph and the index stay here. Needs "
        "'bootstrapper[dask]' here and on the workers; --jobs then defaults to the "
        "cluster's worker threads",
    )


@contextmanager
def dask_cluster(address: str | None, quiet: bool) -> Iterator[DaskCluster | None]:
    """The cluster of ``--dask`` (None without it: Dask is not even imported), whose
    tasks of this run are cancelled on interrupt and when the run ends."""
    if address is None:
        yield None
        return
    from ..remote import DaskCluster

    cluster = DaskCluster(address)
    if not quiet:
        workers = cluster.workers()
        names = ", ".join(sorted(str(w.get("name", "?")) for w in workers)) or "none yet"
        print(
            f"building on the Dask cluster at {address}: {len(workers)} workers ({names})",
            file=sys.stderr,
        )
    try:
        with cancelled_on_interrupt(cluster.cancel):
            yield cluster
    finally:
        cluster.close()


def jobs_for(args: argparse.Namespace, cluster: DaskCluster | None) -> int:
    """``--jobs``, else as many builds as the cluster has worker threads, else CPUs."""
    if args.jobs is not None:
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        return int(args.jobs)
    if cluster is not None:
        return max(1, sum(int(w.get("nthreads", 1)) for w in cluster.workers()))
    return os.cpu_count() or 1


def _timestamp(text: str) -> datetime.datetime:
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _days(text: str) -> float:
    try:
        return parse_days(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_release_age_options(parser: argparse.ArgumentParser, *, recorded: bool = False) -> None:
    """``--exclude-newer`` and ``--min-release-age``; ``recorded``: for a command that
    otherwise takes the run's own ``--min-release-age`` from ``DIR/run.json``."""
    instead = " (instead of the run's own release age)" if recorded else ""
    parser.add_argument(
        "--exclude-newer",
        type=_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="leave out every file the index says was uploaded after TIMESTAMP (RFC 3339 "
        "with a time zone, e.g. 2024-05-01T12:00:00Z; a date alone means 00:00 UTC that "
        f"day){instead}; needs an index that gives upload times (PEP 700)",
    )
    parser.add_argument(
        "--min-release-age",
        type=_days,
        default=None,
        metavar="DAYS",
        help=f"leave out every file uploaded less than DAYS days ago{instead}; needs an "
        "index that gives upload times (PEP 700)",
    )


def release_age_from(
    args: argparse.Namespace, now: datetime.datetime | None = None
) -> ReleaseAge | None:
    """The release age the command line asks for, with its cut-off as of ``now``."""
    return ReleaseAge.of(
        now or datetime.datetime.now(datetime.UTC), args.exclude_newer, args.min_release_age
    )
