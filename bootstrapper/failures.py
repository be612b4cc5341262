"""``--keep-going`` bookkeeping: which package failed, which were blocked by a failure,
which top-level requirements can still be published whole, and ``failures.json``.

One error object travels from the package whose step raised it up through every package
that waited on that package (the scheduler re-raises it, it is never copied), so the
object's identity tells where a failure arose from where it merely arrived.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .errors import BootstrapError
from .fsutil import atomic_write_text
from .graph import NodeKey
from .resolve import Resolution, applies

FAILURES_FILE = "failures.json"
SCHEMA = 1
#: The ``fallback`` value of a package whose failed build the index's wheel stands in for.
FALLBACK_PREBUILT = "prebuilt"


class Status(enum.StrEnum):
    #: Its own resolution, download, preparation or build failed.
    FAILED = "failed"
    #: Not built: something its build environment needs failed.
    BLOCKED = "blocked"
    #: A top-level requirement that could not be resolved (not a package's build).
    UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class Failure:
    name: str
    #: ``None`` for a top-level requirement that never resolved to a version.
    version: str | None
    status: Status
    chain: tuple[str, ...]
    error: str
    details: str | None = None
    log: Path | None = None
    #: For a blocked package: the failures (``name==version``) that stopped it.
    blocked_by: tuple[str, ...] = ()
    #: ``"prebuilt"`` when the index's wheel was published instead.
    fallback: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": str(self.status),
            "chain": list(self.chain),
            "error": self.error,
            "details": self.details,
            "log": str(self.log) if self.log is not None else None,
            "blocked_by": list(self.blocked_by),
            "fallback": self.fallback,
        }


class FailureLog:
    """Failures as the run meets them; used from the event loop's thread only."""

    def __init__(self) -> None:
        # id(error) -> (error, origin); the error is kept so that its id stays unique.
        self._origins: dict[int, tuple[BootstrapError, NodeKey]] = {}
        self._packages: dict[NodeKey, Failure] = {}
        self._roots: dict[str, Failure] = {}
        self._root_blockers: dict[str, NodeKey] = {}

    def origin(self, error: BaseException) -> NodeKey | None:
        """The package where ``error`` arose, if it arose in a package."""
        entry = self._origins.get(id(error))
        return entry[1] if entry is not None and entry[0] is error else None

    def package_failed(self, key: NodeKey, chain: Sequence[str], error: BootstrapError) -> Failure:
        """``key`` could not be built because of ``error``: its own failure, or one it
        inherited from a package its build needs."""
        origin = self.origin(error)
        if origin is not None and origin != key:
            failure = Failure(
                name=key.name,
                version=str(key.version),
                status=Status.BLOCKED,
                chain=tuple(chain),
                error=f"not built: its build needs {origin.name} {origin.version}, which failed",
                blocked_by=(str(origin),),
            )
        else:
            self._origins[id(error)] = (error, key)
            failure = Failure(
                name=key.name,
                version=str(key.version),
                status=Status.FAILED,
                chain=error.chain or tuple(chain),
                error=error.message,
                details=error.details,
                log=error.log_path,
            )
        self._packages[key] = failure
        return failure

    def root_failed(self, requirement: Requirement, error: BootstrapError) -> None:
        """A top-level requirement could not be resolved (with the others or alone)."""
        origin = self.origin(error)
        if origin is not None:
            # A release it needs has no cheap metadata and failed to build.
            self._root_blockers[str(requirement)] = origin
        else:
            self._roots[str(requirement)] = Failure(
                name=str(requirement),
                version=None,
                status=Status.UNRESOLVED,
                chain=error.chain,
                error=error.message,
                details=error.details,
                log=error.log_path,
            )

    def fell_back(self, key: NodeKey, fallback: str) -> None:
        self._packages[key] = dataclasses.replace(self._packages[key], fallback=fallback)

    def failure(self, key: NodeKey) -> Failure | None:
        return self._packages.get(key)

    def root_failure(self, requirement: Requirement) -> Failure | NodeKey | None:
        """Why ``requirement`` did not resolve: its own failure, or the package whose
        failed build kept it from resolving."""
        return self._roots.get(str(requirement)) or self._root_blockers.get(str(requirement))

    def blockers(self, keys: Iterable[NodeKey]) -> list[NodeKey]:
        """The failed packages behind the failures of ``keys``."""
        found: list[NodeKey] = []
        for key in keys:
            failure = self._packages.get(key)
            if failure is None:
                continue
            if failure.status is Status.BLOCKED:
                found.extend(
                    k for k in self._packages if str(k) in failure.blocked_by and k not in found
                )
            if key not in found:
                found.append(key)
        return found


def install_closure(
    requirement: Requirement, install: Resolution, environment: Mapping[str, str]
) -> set[NormalizedName]:
    """The projects ``requirement`` alone needs at install time within ``install``: its
    extras followed exactly, not the union of every extra any root asked for."""
    wanted: dict[NormalizedName, set[str]] = {}
    queue: list[tuple[NormalizedName, frozenset[str]]] = [
        (canonicalize_name(requirement.name), frozenset(requirement.extras))
    ]
    while queue:
        name, extras = queue.pop()
        if name not in install.pins:
            continue
        seen = wanted.get(name)
        if seen is not None and extras <= seen:
            continue
        wanted[name] = (seen or set()) | extras
        for dependency in install.metadata[name].requires_dist:
            if applies(dependency, environment, extras):
                queue.append((canonicalize_name(dependency.name), frozenset(dependency.extras)))
    return set(wanted)


@dataclass(frozen=True)
class Publication:
    """What a keep-going run can publish: the top-level requirements whose whole closure
    (install closure, and the build environments of each member, recursively) was built."""

    published: tuple[Requirement, ...]
    #: Each withheld requirement with the packages of its closure that have no wheel.
    withheld: tuple[tuple[Requirement, tuple[NodeKey, ...]], ...]
    keys: frozenset[NodeKey]
    #: Every package the accepted requirements need, built or not.
    wanted: frozenset[NodeKey]


def plan_publication(
    roots: Sequence[Requirement],
    install: Resolution,
    environment: Mapping[str, str],
    built: Collection[NodeKey],
    needs: Mapping[NodeKey, Collection[NodeKey]],
) -> Publication:
    """Publish a requirement only with everything it needs, so the index never links a
    missing dependency; packages shared with a withheld requirement are still published."""
    published: list[Requirement] = []
    withheld: list[tuple[Requirement, tuple[NodeKey, ...]]] = []
    keys: set[NodeKey] = set()
    wanted: set[NodeKey] = set()
    for root in roots:
        closure = _with_build_needs(
            (
                NodeKey(name, install.pins[name].version)
                for name in install_closure(root, install, environment)
            ),
            needs,
        )
        wanted |= closure
        missing = tuple(sorted(closure - set(built)))
        if missing:
            withheld.append((root, missing))
        else:
            published.append(root)
            keys |= closure
    return Publication(tuple(published), tuple(withheld), frozenset(keys), frozenset(wanted))


def merge_publications(parts: Iterable[Publication]) -> Publication:
    """The publication of requirements planned one closure at a time (``--each``)."""
    published: list[Requirement] = []
    withheld: list[tuple[Requirement, tuple[NodeKey, ...]]] = []
    keys: set[NodeKey] = set()
    wanted: set[NodeKey] = set()
    for part in parts:
        published.extend(part.published)
        withheld.extend(part.withheld)
        keys |= part.keys
        wanted |= part.wanted
    return Publication(tuple(published), tuple(withheld), frozenset(keys), frozenset(wanted))


def _with_build_needs(
    start: Iterable[NodeKey], needs: Mapping[NodeKey, Collection[NodeKey]]
) -> set[NodeKey]:
    found: set[NodeKey] = set()
    queue = list(start)
    while queue:
        key = queue.pop()
        if key not in found:
            found.add(key)
            queue.extend(needs.get(key, ()))
    return found


@dataclass(frozen=True)
class RunReport:
    """The outcome of a keep-going run, for failures.json and the summary line."""

    failures: tuple[Failure, ...]
    published: tuple[str, ...]
    not_published: tuple[tuple[str, tuple[str, ...]], ...]
    published_wheels: int
    wanted_wheels: int

    @property
    def ok(self) -> bool:
        return not self.failures and not self.not_published

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "failures": [f.to_json() for f in self.failures],
            "published": list(self.published),
            "not_published": [
                {"requirement": requirement, "missing": list(missing)}
                for requirement, missing in self.not_published
            ],
            "wheels": {"published": self.published_wheels, "wanted": self.wanted_wheels},
        }


def make_report(
    log: FailureLog,
    roots: Sequence[Requirement],
    publication: Publication,
    published_wheels: int,
) -> RunReport:
    """Every failure that matters to the requirements: those in their closures (fallbacks
    included), what blocked them, and top-level requirements that did not resolve."""
    missing_of = dict(publication.withheld)
    not_published: list[tuple[str, tuple[str, ...]]] = []
    involved: list[NodeKey] = [k for k in sorted(publication.wanted) if log.failure(k)]
    unresolved: list[Failure] = []
    for root in roots:
        if root in publication.published:
            continue
        reason = log.root_failure(root)
        if root in missing_of:
            missing = missing_of[root]
        elif isinstance(reason, NodeKey):
            missing = (reason,)
        else:
            missing = ()
            if reason is not None:
                unresolved.append(reason)
        involved.extend(missing)
        not_published.append((str(root), tuple(str(k) for k in missing)))
    failures: dict[NodeKey, Failure] = {}
    for key in log.blockers(involved):
        failure = log.failure(key)
        if failure is not None:
            failures.setdefault(key, failure)
    ordered = sorted(
        failures.values(), key=lambda f: (f.status is not Status.FAILED, f.name, f.version or "")
    )
    return RunReport(
        failures=(*ordered, *unresolved),
        published=tuple(str(r) for r in publication.published),
        not_published=tuple(not_published),
        published_wheels=published_wheels,
        wanted_wheels=len(publication.wanted | set(failures)),
    )


def write_report(output_dir: Path, report: RunReport) -> Path:
    """``DIR/failures.json`` (atomically)."""
    path = output_dir / FAILURES_FILE
    atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n")
    return path


def remove_report(output_dir: Path) -> None:
    """A run without failures leaves no stale failures.json behind."""
    (output_dir / FAILURES_FILE).unlink(missing_ok=True)


def summary(report: RunReport, path: Path) -> str:
    """One paragraph for the terminal: what failed, what was published, what was not."""
    failed = [f for f in report.failures if f.status is not Status.BLOCKED]
    blocked = [f for f in report.failures if f.status is Status.BLOCKED]
    parts = []
    if failed:
        noun = "package" if len(failed) == 1 else "packages"
        verb = "failed"
        items = ", ".join(f"{f.label} ({_short(f)})" for f in failed)
        parts.append(f"{len(failed)} {noun} {verb} (see {path}): {items}")
    if blocked:
        items = ", ".join(
            f"{f.label} (by {', '.join(f.blocked_by)}{_fallback_note(f)})" for f in blocked
        )
        parts.append(f"{len(blocked)} blocked by those failures: {items}")
    published = ", ".join(report.published) or "nothing"
    parts.append(
        f"published {report.published_wheels} of {report.wanted_wheels} wheels for: {published}"
    )
    if report.not_published:
        parts.append("not published: " + ", ".join(r for r, _ in report.not_published))
    return "; ".join(parts)


def _short(failure: Failure) -> str:
    text = failure.error.splitlines()[0] if failure.error else "failed"
    prefix = f"{failure.name}: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    if len(text) > 100:
        text = text[:97] + "..."
    return text + _fallback_note(failure)


def _fallback_note(failure: Failure) -> str:
    return "; took the index's wheel instead" if failure.fallback == FALLBACK_PREBUILT else ""
