"""How long the rest of a run will take, from the build durations earlier runs recorded.

The build records in an output directory say when each build started and finished. A
package's expected build time is its own recorded duration (the same version's, else
the latest version's), or for a package never built here the median of those known. A
package built before at this very version is most often reused, which takes no time:
its expected time is scaled by the share of such packages this run has rebuilt so far,
and until it has decided one, there is no estimate (nothing, rather than a wrong one).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .graph import NodeKey
from .records import BuildRecord, records_in


@dataclass(frozen=True)
class History:
    """Recorded build durations (seconds) by name and version (made by :meth:`of`)."""

    durations: Mapping[NodeKey, float] = field(default_factory=dict)
    #: The duration of each name's latest version.
    by_name: Mapping[NormalizedName, float] = field(default_factory=dict)
    median: float | None = None

    @classmethod
    def of(cls, durations: Mapping[NodeKey, float]) -> History:
        latest: dict[NormalizedName, tuple[Version, float]] = {}
        for key, seconds in durations.items():
            if key.name not in latest or key.version > latest[key.name][0]:
                latest[key.name] = (key.version, seconds)
        known = list(durations.values())
        return cls(
            dict(durations),
            {name: seconds for name, (_, seconds) in latest.items()},
            statistics.median(known) if known else None,
        )

    def __bool__(self) -> bool:
        return bool(self.durations)

    def expected(self, key: NodeKey) -> float | None:
        """The package's expected build time: its version's, its name's, or the median."""
        found = self.durations.get(key)
        if found is not None:
            return found
        return self.by_name.get(key.name, self.median)

    def built_before(self, key: NodeKey) -> bool:
        """Whether this very version was built before (so it may well be reused)."""
        return key in self.durations


def record_duration(record: BuildRecord) -> float | None:
    """Seconds between a record's ``started`` and ``finished``; None when it lacks them."""
    try:
        started = datetime.fromisoformat(record.started)
        finished = datetime.fromisoformat(record.finished)
    except ValueError:
        return None
    seconds = (finished - started).total_seconds()
    return seconds if seconds >= 0 else None


def history_from(records: Iterable[BuildRecord]) -> History:
    """The durations of ``records`` (of a version built more than once, the latest)."""
    found: dict[NodeKey, tuple[str, float]] = {}
    for record in records:
        seconds = record_duration(record)
        if seconds is None or record.fallback is not None:
            continue  # a fallback's record times a download, not a build
        try:
            key = NodeKey(canonicalize_name(record.name), Version(record.version))
        except InvalidVersion:
            continue
        if key not in found or record.finished > found[key][0]:
            found[key] = (record.finished, seconds)
    return History.of({key: seconds for key, (_, seconds) in found.items()})


def read_history(directories: Iterable[Path]) -> History:
    """The build records (``*.whl.build.json``) in ``directories``, as a history (a
    record linked into several of them counts once)."""
    unique = {id(record): record for _, record in records_in(directories)}
    return history_from(list(unique.values()))


def remaining_seconds(
    history: History,
    jobs: int,
    *,
    waiting: Collection[NodeKey],
    running: Mapping[NodeKey, float],
    reused: Collection[NodeKey],
    rebuilt: Collection[NodeKey],
) -> float | None:
    """The expected time until the packages ``waiting`` (not started) and ``running``
    (with the seconds each has run) are done, with ``jobs`` builds at once; None when
    there is no history to tell, or not yet enough of this run to scale it by.

    ``reused`` and ``rebuilt`` are the packages this run has already decided: those
    built before at their version tell how many of the rest will be rebuilt."""
    if not history or not (waiting or running):
        return None
    decided = [k for k in (*reused, *rebuilt) if history.built_before(k)]
    share: float | None = None
    if decided:
        share = sum(1 for k in decided if k in rebuilt) / len(decided)
    costs: list[float] = []
    for key in waiting:
        expected = history.expected(key)
        if expected is None:
            return None
        if history.built_before(key):
            if share is None:
                return None  # reused or rebuilt: nothing tells yet
            expected *= share
        costs.append(expected)
    for key, elapsed in running.items():
        expected = history.expected(key)
        if expected is None:
            return None
        # Running past its estimate: it will take a little longer still, not no time.
        costs.append(max(expected - elapsed, min(expected, elapsed) * 0.1))
    return max(sum(costs) / max(1, jobs), max(costs, default=0.0))


def format_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``: short enough for a status line."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class Forecast:
    """What a progress line needs to say how long the rest of the run will take."""

    history: History
    jobs: int

    def remaining(
        self,
        *,
        waiting: Collection[NodeKey],
        running: Mapping[NodeKey, float],
        reused: Collection[NodeKey],
        rebuilt: Collection[NodeKey],
    ) -> float | None:
        return remaining_seconds(
            self.history,
            self.jobs,
            waiting=waiting,
            running=running,
            reused=reused,
            rebuilt=rebuilt,
        )
