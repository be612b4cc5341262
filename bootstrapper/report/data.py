"""What ``report.html`` shows, gathered from an output directory: the run log
(``logs/run.json``), the build records and the files beside them.

This is the report's only I/O; :mod:`.page` draws the page from a :class:`ReportData`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..eta import record_duration
from ..failures import FALLBACK_PREBUILT, Status
from ..graph import NodeKey
from ..metadiff import DIFF_FILE, MetadataDiff, read_diffs
from ..records import RECORD_SUFFIX, BuildRecord, records_in
from ..single_build import PREBUILT_BACKEND
from ..timeline import Outcome, PackageTimes, RunLog


class Shown(enum.StrEnum):
    """A package's status as the report shows it."""

    FAILED = "failed"
    BLOCKED = "blocked"
    UNFINISHED = "unfinished"
    BUILT = "built"
    #: The index's wheel, taken because the build failed (--fallback-prebuilt).
    FALLBACK = "fallback"
    #: The index's wheel, as the package's ``prebuilt: true`` setting asks.
    PREBUILT = "pre-built"
    REUSED = "reused"


@dataclass(frozen=True)
class FileLink:
    """A file of the output directory: its name, and its URL relative to the report
    (None when it is not where the report can link it)."""

    name: str
    href: str | None
    size: int | None = None


@dataclass(frozen=True)
class PackageRow:
    key: NodeKey
    status: Shown
    times: PackageTimes | None
    #: The wheel's build time: this run's, or for a reused wheel the one its record tells.
    build_seconds: float | None = None
    #: Whether ``build_seconds`` is from an earlier run (the wheel was reused).
    earlier: bool = False
    wheel: FileLink | None = None
    record: FileLink | None = None
    log: FileLink | None = None


@dataclass(frozen=True)
class ReportData:
    run: RunLog
    rows: tuple[PackageRow, ...]
    #: The relative link of each log path the run log names (failures, the run's error).
    log_links: Mapping[str, str] = field(default_factory=dict)
    #: How this run's wheels' metadata compares with the upstream wheels' (None: the
    #: command compared nothing, as build-sequence).
    metadata_diffs: tuple[MetadataDiff, ...] | None = None

    def row(self, key: NodeKey) -> PackageRow | None:
        return next((r for r in self.rows if r.key == key), None)


def href(path: Path, base: Path) -> str | None:
    """``path`` as a URL relative to ``base`` (the report's directory), when it is inside.

    A path spelled under ``base`` (as the report's own are: ``base / "wheels" / ...``)
    is taken as it is; any other is resolved first, to see where it really is."""
    if path.is_absolute() and base.is_absolute() and ".." not in path.parts:
        try:
            relative = path.relative_to(base)
        except ValueError:
            pass
        else:
            return "/".join(quote(part) for part in relative.parts)
    try:
        relative = path.resolve().relative_to(base.resolve())
    except (ValueError, OSError):
        return None
    return "/".join(quote(part) for part in relative.parts)


def collect(output_dir: Path, run: RunLog) -> ReportData:
    """The report's data: ``run`` and what the output directory holds of its packages."""
    wheels_dir = output_dir / "wheels"
    records = _records((output_dir / ".work" / "built", wheels_dir))
    failures = {(f.name, f.version): f for f in run.failures if f.version is not None}
    keys = {p.key for p in run.packages} | {e.child for e in run.edges}
    keys |= {e.parent for e in run.edges if e.parent is not None}
    times = {p.key: p for p in run.packages}
    rows = []
    for key in sorted(keys):
        found = records.get(key)
        failure = failures.get((key.name, str(key.version)))
        record = found[1] if found else None
        status = _status(times.get(key), record, failure.status if failure else None)
        package = times.get(key)
        build = package.build_seconds() if package is not None else None
        earlier = False
        if status in (Shown.REUSED, Shown.PREBUILT) and record is not None and build is None:
            build, earlier = record_duration(record), True
        if status in (Shown.FAILED, Shown.BLOCKED, Shown.UNFINISHED):
            record = None  # a stored wheel of this version is not this run's
        log = output_dir / "logs" / f"{key.name}-{key.version}.log"
        rows.append(
            PackageRow(
                key=key,
                status=status,
                times=package,
                build_seconds=build,
                earlier=earlier,
                wheel=_wheel(record, found[0] if found else None, wheels_dir, output_dir),
                record=_record_link(record, wheels_dir, output_dir),
                log=FileLink(log.name, href(log, output_dir)) if log.is_file() else None,
            )
        )
    logs = [str(f.log) for f in run.failures if f.log is not None]
    if run.error is not None and run.error.log is not None:
        logs.append(run.error.log)
    links = {}
    for text in logs:
        link = href(Path(text), output_dir) if Path(text).is_file() else None
        if link is not None:
            links[text] = link
    return ReportData(run, tuple(rows), links, _diffs(output_dir, rows))


#: The statuses of a package whose wheel is in this run's index.
PUBLISHED = frozenset({Shown.BUILT, Shown.REUSED, Shown.PREBUILT, Shown.FALLBACK})


def _diffs(output_dir: Path, rows: list[PackageRow]) -> tuple[MetadataDiff, ...] | None:
    """The metadata comparisons of this run's wheels (an earlier run's file may speak of
    wheels this run did not publish: those are left out)."""
    if not (output_dir / DIFF_FILE).is_file():
        return None
    published = {(r.key.name, r.key.version) for r in rows if r.status in PUBLISHED}
    return tuple(d for d in read_diffs(output_dir) if (d.name, d.version) in published)


def _status(
    times: PackageTimes | None, record: BuildRecord | None, failure: Status | None
) -> Shown:
    if record is not None and record.fallback == FALLBACK_PREBUILT and failure is not None:
        return Shown.FALLBACK
    if failure is Status.BLOCKED:
        return Shown.BLOCKED
    if failure is not None:
        return Shown.FAILED
    outcome = times.outcome if times is not None else Outcome.UNFINISHED
    if outcome is Outcome.FAILED:
        return Shown.FAILED
    if outcome is Outcome.BLOCKED:
        return Shown.BLOCKED
    if outcome is Outcome.UNFINISHED:
        return Shown.UNFINISHED
    if record is None:
        return Shown.REUSED if outcome is Outcome.REUSED else Shown.BUILT
    if record.fallback == FALLBACK_PREBUILT:
        return Shown.FALLBACK
    if record.build_backend == PREBUILT_BACKEND:
        return Shown.PREBUILT
    return Shown.REUSED if outcome is Outcome.REUSED else Shown.BUILT


def _records(directories: tuple[Path, ...]) -> dict[NodeKey, tuple[Path, BuildRecord]]:
    """The build records in ``directories`` by source version (the first directory's
    win; of several rebuilds, the latest)."""
    found: dict[NodeKey, tuple[Path, BuildRecord]] = {}
    for wheel, record in records_in(reversed(directories)):
        try:
            key = NodeKey(canonicalize_name(record.name), Version(record.version))
        except InvalidVersion:
            continue
        if key not in found or record.finished >= found[key][1].finished:
            found[key] = (wheel, record)
    return found


def _wheel(
    record: BuildRecord | None, stored: Path | None, wheels_dir: Path, base: Path
) -> FileLink | None:
    if record is None:
        return None
    published = wheels_dir / record.wheel
    for path in (published, stored):
        if path is not None and path.is_file():
            size = os.stat(path).st_size
            return FileLink(record.wheel, href(path, base) if path == published else None, size)
    return FileLink(record.wheel, None)


def _record_link(record: BuildRecord | None, wheels_dir: Path, base: Path) -> FileLink | None:
    if record is None:
        return None
    path = wheels_dir / (record.wheel + RECORD_SUFFIX)
    return FileLink(path.name, href(path, base)) if path.is_file() else None
