"""The run's own record, ``DIR/logs/run.json``: what ran when, on which job slot, how
long it waited for one, and how the run ended.

:class:`RunRecorder` listens to the run like any progress reporter (and to the job
slots, through :class:`~bootstrapper.progress.SlotWatch`); :meth:`RunRecorder.run_log`
freezes what it heard into a :class:`RunLog`, the data ``report.html`` is drawn from.
Times are seconds since the run started, from a monotonic clock.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import BootstrapError
from .failures import Failure, RunReport, Status
from .fsutil import atomic_write_text
from .graph import NodeKey

RUN_FILE = "run.json"
SCHEMA = 1


class Outcome(enum.StrEnum):
    """What became of a package in this run."""

    BUILT = "built"
    REUSED = "reused"
    FAILED = "failed"
    #: Not built: a package its build needed failed.
    BLOCKED = "blocked"
    #: Queued, never finished (the run stopped first).
    UNFINISHED = "unfinished"


@dataclass(frozen=True)
class SlotSpan:
    """One time a package held a job slot (``slot`` counts from 0)."""

    slot: int
    asked: float
    taken: float
    #: None: still held when the run ended.
    given_back: float | None

    @property
    def waited(self) -> float:
        return self.taken - self.asked


@dataclass(frozen=True)
class Phase:
    """A step the package began (``discovering build requirements``, ``building``)."""

    what: str
    at: float


@dataclass(frozen=True)
class PackageTimes:
    key: NodeKey
    queued: float | None
    outcome: Outcome
    ended: float | None = None
    phases: tuple[Phase, ...] = ()
    spans: tuple[SlotSpan, ...] = ()
    #: Asked for a slot at this time and never got one.
    still_waiting: float | None = None
    #: The Dask worker that built it.
    where: str | None = None

    def build_seconds(self) -> float | None:
        """From the start of the build proper to its end."""
        building = [p.at for p in self.phases if p.what.startswith("building")]
        if not building or self.ended is None:
            return None
        return self.ended - building[-1]

    def slot_wait(self) -> float:
        return sum(span.waited for span in self.spans)


@dataclass(frozen=True)
class Edge:
    """A dependency: ``parent`` (None for a top-level requirement) needs ``child``."""

    parent: NodeKey | None
    child: NodeKey
    kind: str
    requirement: str


@dataclass(frozen=True)
class RunError:
    """What stopped a run that did not finish."""

    message: str
    package: str | None = None
    chain: tuple[str, ...] = ()
    details: str | None = None
    log: str | None = None


@dataclass(frozen=True)
class RunLog:
    command: str
    #: Wall-clock time the run started (UTC, ISO 8601).
    started_at: str
    duration: float
    jobs: int
    requirements: tuple[str, ...]
    #: "succeeded" or "failed".
    status: str
    error: RunError | None = None
    #: Every package failure: with --keep-going the run's report, else what was seen.
    failures: tuple[Failure, ...] = ()
    #: With --keep-going: the requirements published, and those not (with what they miss).
    published: tuple[str, ...] | None = None
    not_published: tuple[tuple[str, tuple[str, ...]], ...] = ()
    packages: tuple[PackageTimes, ...] = ()
    edges: tuple[Edge, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": self.command,
            "started_at": self.started_at,
            "duration": round(self.duration, 3),
            "jobs": self.jobs,
            "requirements": list(self.requirements),
            "status": self.status,
            "error": _error_json(self.error),
            "failures": [f.to_json() for f in self.failures],
            "published": list(self.published) if self.published is not None else None,
            "not_published": [
                {"requirement": r, "missing": list(missing)} for r, missing in self.not_published
            ],
            "packages": [_package_json(p) for p in self.packages],
            "edges": [
                {
                    "from": str(e.parent) if e.parent else None,
                    "to": str(e.child),
                    "kind": e.kind,
                    "requirement": e.requirement,
                }
                for e in self.edges
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunLog:
        """The log ``to_json`` wrote (ValueError, KeyError or TypeError when it is not one)."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported run log schema {data.get('schema')!r}")
        error = data.get("error")
        return cls(
            command=str(data["command"]),
            started_at=str(data["started_at"]),
            duration=float(data["duration"]),
            jobs=int(data["jobs"]),
            requirements=tuple(data["requirements"]),
            status=str(data["status"]),
            error=(
                RunError(
                    message=str(error["message"]),
                    package=error.get("package"),
                    chain=tuple(error.get("chain", ())),
                    details=error.get("details"),
                    log=error.get("log"),
                )
                if error
                else None
            ),
            failures=tuple(_failure(f) for f in data.get("failures", ())),
            published=(tuple(data["published"]) if data.get("published") is not None else None),
            not_published=tuple(
                (str(n["requirement"]), tuple(n["missing"])) for n in data.get("not_published", ())
            ),
            packages=tuple(_package(p) for p in data.get("packages", ())),
            edges=tuple(
                Edge(
                    parse_key(e["from"]) if e.get("from") else None,
                    parse_key(e["to"]),
                    str(e["kind"]),
                    str(e["requirement"]),
                )
                for e in data.get("edges", ())
            ),
        )


def parse_key(text: str) -> NodeKey:
    """``name==version`` as a key."""
    name, _, version = text.partition("==")
    return NodeKey(canonicalize_name(name), Version(version))


def write_run_log(path: Path, log: RunLog) -> None:
    atomic_write_text(path, json.dumps(log.to_json(), indent=1) + "\n")


def read_run_log(path: Path) -> RunLog | None:
    """The run log at ``path``; None when there is none or it cannot be read."""
    try:
        return RunLog.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class _Package:
    queued: float | None = None
    outcome: Outcome = Outcome.UNFINISHED
    ended: float | None = None
    phases: list[Phase] = field(default_factory=list)
    spans: list[SlotSpan] = field(default_factory=list)
    asked: float | None = None
    taken: tuple[int, float, float] | None = None
    where: str | None = None


class RunRecorder:
    """A :class:`~bootstrapper.progress.Reporter` and
    :class:`~bootstrapper.progress.SlotWatch` that keeps the times of everything it is
    told; thread-safe (builds finish in worker threads)."""

    def __init__(
        self,
        command: str,
        requirements: Sequence[str] = (),
        jobs: int = 1,
        *,
        clock: Any = time.monotonic,
        wall_clock: Any = time.time,
    ) -> None:
        self._clock = clock
        self._start = clock()
        self._started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall_clock()))
        self._command = command
        self._requirements = tuple(requirements)
        self.jobs = jobs
        self._lock = threading.Lock()
        self._packages: dict[NodeKey, _Package] = {}
        #: Slots in use, by number: the package holding each.
        self._lanes: dict[int, NodeKey] = {}
        #: The packages' failures as seen: (error, the package it arose in).
        self._failures: dict[NodeKey, Failure] = {}
        self._origins: dict[int, tuple[BootstrapError, NodeKey]] = {}
        self._edges: tuple[Edge, ...] = ()

    def _now(self) -> float:
        return float(self._clock() - self._start)

    def _package(self, key: NodeKey) -> _Package:
        return self._packages.setdefault(key, _Package())

    # -- Reporter --------------------------------------------------------------------

    def queued(self, key: NodeKey) -> None:
        with self._lock:
            package = self._package(key)
            if package.queued is None:
                package.queued = self._now()

    def resolving(self, what: str, chain: Sequence[str]) -> None:
        pass

    def resolved(self, keys: Collection[NodeKey]) -> None:
        pass

    def started(self, key: NodeKey, what: str) -> None:
        with self._lock:
            self._package(key).phases.append(Phase(what, self._now()))

    def finished(self, key: NodeKey, reused: bool, where: str | None = None) -> None:
        with self._lock:
            package = self._package(key)
            package.ended = self._now()
            package.outcome = Outcome.REUSED if reused else Outcome.BUILT
            package.where = where

    def failed(self, key: NodeKey, error: BootstrapError) -> None:
        with self._lock:
            package = self._package(key)
            package.ended = self._now()
            seen = self._origins.get(id(error))
            origin = seen[1] if seen is not None and seen[0] is error else None
            if origin is not None and origin != key:
                package.outcome = Outcome.BLOCKED
                self._failures[key] = Failure(
                    name=key.name,
                    version=str(key.version),
                    status=Status.BLOCKED,
                    chain=(),
                    error=f"not built: its build needs {origin.name} {origin.version}, "
                    "which failed",
                    blocked_by=(str(origin),),
                )
                return
            self._origins[id(error)] = (error, key)
            package.outcome = Outcome.FAILED
            self._failures[key] = Failure(
                name=key.name,
                version=str(key.version),
                status=Status.FAILED,
                chain=error.chain,
                error=error.message,
                details=error.details,
                log=error.log_path,
            )

    def message(self, text: str) -> None:
        pass

    # -- SlotWatch -------------------------------------------------------------------

    def slot_asked(self, key: NodeKey) -> None:
        with self._lock:
            self._package(key).asked = self._now()

    def slot_taken(self, key: NodeKey) -> None:
        with self._lock:
            now = self._now()
            package = self._package(key)
            lane = next(i for i in range(len(self._lanes) + 1) if i not in self._lanes)
            self._lanes[lane] = key
            package.taken = (lane, package.asked if package.asked is not None else now, now)
            package.asked = None

    def slot_given_back(self, key: NodeKey) -> None:
        with self._lock:
            package = self._package(key)
            if package.taken is None:
                return
            lane, asked, taken = package.taken
            package.spans.append(SlotSpan(lane, asked, taken, self._now()))
            package.taken = None
            self._lanes.pop(lane, None)

    # -- the run's end ----------------------------------------------------------------

    def dependencies(self, edges: Iterable[Edge]) -> None:
        """The run's dependency graph, as far as it got."""
        with self._lock:
            self._edges = tuple(edges)

    def run_log(
        self,
        *,
        error: BootstrapError | None = None,
        report: RunReport | None = None,
    ) -> RunLog:
        """What the run did, once it is over: stopped by ``error``, or finished (with
        --keep-going, with its ``report``)."""
        with self._lock:
            now = self._now()
            packages = []
            for key, package in sorted(self._packages.items()):
                spans = list(package.spans)
                if package.taken is not None:
                    lane, asked, taken = package.taken
                    spans.append(SlotSpan(lane, asked, taken, None))
                packages.append(
                    PackageTimes(
                        key=key,
                        queued=package.queued,
                        outcome=package.outcome,
                        ended=package.ended,
                        phases=tuple(package.phases),
                        spans=tuple(spans),
                        still_waiting=package.asked,
                        where=package.where,
                    )
                )
            seen_failures = tuple(
                sorted(
                    self._failures.values(),
                    key=lambda f: (f.status is not Status.FAILED, f.name, f.version or ""),
                )
            )
        failed = error is not None or (report is not None and not report.ok)
        failures = report.failures if report is not None else seen_failures
        chains = [f.chain for f in failures] + ([error.chain] if error is not None else [])
        return RunLog(
            command=self._command,
            started_at=self._started_at,
            duration=now,
            jobs=self.jobs,
            requirements=self._requirements,
            status="failed" if failed else "succeeded",
            error=(
                RunError(
                    message=error.message,
                    package=error.package,
                    chain=error.chain,
                    details=error.details,
                    log=str(error.log_path) if error.log_path else None,
                )
                if error is not None
                else None
            ),
            failures=failures,
            published=report.published if report is not None else None,
            not_published=report.not_published if report is not None else (),
            packages=tuple(packages),
            edges=self._edges + chain_edges(chains, [p.key for p in packages], self._edges),
        )


def chain_edges(
    chains: Iterable[Sequence[str]], keys: Collection[NodeKey], edges: Collection[Edge]
) -> tuple[Edge, ...]:
    """The steps of failures' chains that ``edges`` lack, as edges of kind ``chain``: a
    run that stopped at a failure never settled the sets whose edges the graph records,
    but the failure's chain says how it was reached."""
    by_name: dict[str, list[NodeKey]] = {}
    for key in keys:
        by_name.setdefault(key.name, []).append(key)
    known = {(e.parent, e.child) for e in edges}
    found: list[Edge] = []
    for chain in chains:
        names = [canonicalize_name(n) for n in chain]
        for parent, child in pairwise(names):
            # A step is drawn only where its names are one package each in this run.
            if len(by_name.get(parent, ())) != 1 or len(by_name.get(child, ())) != 1:
                continue
            step = (by_name[parent][0], by_name[child][0])
            if step not in known:
                known.add(step)
                found.append(Edge(step[0], step[1], "chain", child))
    return tuple(found)


def _error_json(error: RunError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "message": error.message,
        "package": error.package,
        "chain": list(error.chain),
        "details": error.details,
        "log": error.log,
    }


def _failure(data: Mapping[str, Any]) -> Failure:
    return Failure(
        name=str(data["name"]),
        version=data.get("version"),
        status=Status(data["status"]),
        chain=tuple(data.get("chain", ())),
        error=str(data.get("error", "")),
        details=data.get("details"),
        log=Path(data["log"]) if data.get("log") else None,
        blocked_by=tuple(data.get("blocked_by", ())),
        fallback=data.get("fallback"),
    )


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _package_json(package: PackageTimes) -> dict[str, Any]:
    return {
        "name": package.key.name,
        "version": str(package.key.version),
        "queued": _seconds(package.queued),
        "outcome": str(package.outcome),
        "ended": _seconds(package.ended),
        "phases": [{"what": p.what, "at": _seconds(p.at)} for p in package.phases],
        "slots": [
            {
                "slot": s.slot,
                "asked": _seconds(s.asked),
                "taken": _seconds(s.taken),
                "given_back": _seconds(s.given_back),
            }
            for s in package.spans
        ],
        "still_waiting": _seconds(package.still_waiting),
        "where": package.where,
    }


def _package(data: Mapping[str, Any]) -> PackageTimes:
    return PackageTimes(
        key=NodeKey(canonicalize_name(data["name"]), Version(data["version"])),
        queued=data.get("queued"),
        outcome=Outcome(data["outcome"]),
        ended=data.get("ended"),
        phases=tuple(Phase(str(p["what"]), float(p["at"])) for p in data.get("phases", ())),
        spans=tuple(
            SlotSpan(int(s["slot"]), float(s["asked"]), float(s["taken"]), s.get("given_back"))
            for s in data.get("slots", ())
        ),
        still_waiting=data.get("still_waiting"),
        where=data.get("where"),
    )
