"""Where a run's time goes: timings taken at a few points, summed per section.

A :class:`Profile` is ambient for the process while it is active, as a logging handler
is: the points that time themselves call :func:`timed`, which costs one attribute read
when no profile is active. Process-wide rather than a context variable because a run's
work happens in thread pools of several parts (the scheduler's, speculation, downloads),
none of which would carry a context along.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: The sections a summary lists first, in this order (others follow, by time spent).
SECTIONS = (
    "resolution (with waits)",
    "metadata (with builds)",
    "index pages",
    "downloads",
    "unpacking",
    "environments",
    "hook get_requires_for_build_wheel",
    "hook build_wheel",
    "finishing",
    "store lookups",
    "publishing",
    "outputs",
    "install check",
)
PROFILE_FILE = "profile.json"


class _Active:
    """The one profile being recorded in this process, if any."""

    lock = threading.Lock()
    profile: Profile | None = None


@dataclass
class Section:
    seconds: float = 0.0
    calls: int = 0
    #: When, in seconds since the profile started, the section was first entered and
    #: last left: where in the run it lies (a tail after the builds, say).
    first: float = float("inf")
    last: float = 0.0


class Profile:
    """Seconds spent (summed over threads) and calls made, per section; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sections: dict[str, Section] = {}
        self._counts: dict[str, int] = {}
        self._started = time.perf_counter()
        self._cpu_started = _cpu_times()

    def add(self, section: str, started: float, ended: float) -> None:
        """Add a call of ``section`` from ``started`` to ``ended`` (``time.perf_counter()``
        readings)."""
        with self._lock:
            entry = self._sections.setdefault(section, Section())
            entry.seconds += ended - started
            entry.calls += 1
            entry.first = min(entry.first, started - self._started)
            entry.last = max(entry.last, ended - self._started)

    def count(self, what: str, n: int = 1) -> None:
        """Count an event that takes no measurable time of its own (e.g. a reuse)."""
        with self._lock:
            self._counts[what] = self._counts.get(what, 0) + n

    @contextmanager
    def active(self) -> Iterator[Profile]:
        """Make this the process's ambient profile within the block (one at a time)."""
        with _Active.lock:
            if _Active.profile is not None:
                raise RuntimeError("another profile is being recorded in this process")
            _Active.profile = self
        try:
            yield self
        finally:
            with _Active.lock:
                _Active.profile = None

    def to_json(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._started
        cpu = {k: v - self._cpu_started[k] for k, v in _cpu_times().items()}
        with self._lock:
            sections = dict(self._sections)
            counts = dict(self._counts)
        ordered = [s for s in SECTIONS if s in sections] + sorted(
            (s for s in sections if s not in SECTIONS), key=lambda s: -sections[s].seconds
        )
        return {
            "schema": 1,
            "wall_seconds": round(wall, 4),
            "cpu_seconds": {k: round(v, 4) for k, v in cpu.items()},
            "sections": {
                name: {
                    "seconds": round(sections[name].seconds, 4),
                    "calls": sections[name].calls,
                    "ms_per_call": round(1000 * sections[name].seconds / sections[name].calls, 2),
                    "first": round(max(sections[name].first, 0.0), 3),
                    "last": round(sections[name].last, 3),
                }
                for name in ordered
            },
            "counts": counts,
        }

    def write(self, path: Path) -> dict[str, Any]:
        """Write the profile as JSON to ``path``; returns what was written."""
        data = self.to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return data


def summary(data: dict[str, Any]) -> str:
    """A short table of a profile's JSON, for the terminal."""
    wall = data["wall_seconds"]
    cpu = data["cpu_seconds"]
    width = max([len("section"), *(len(name) for name in data["sections"])])
    lines = [
        f"profile: {wall:.2f} s wall; CPU {cpu['self']:.2f} s in bootstrapper, "
        f"{cpu['children']:.2f} s in subprocesses",
        f"  {'section':<{width}} {'seconds':>8} {'calls':>6} {'ms/call':>8} {'from':>7} {'to':>7}",
    ]
    for name, entry in data["sections"].items():
        seconds, calls, each = entry["seconds"], entry["calls"], entry["ms_per_call"]
        lines.append(
            f"  {name:<{width}} {seconds:8.2f} {calls:6d} {each:8.1f}"
            f" {entry['first']:7.2f} {entry['last']:7.2f}"
        )
    if data["counts"]:
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in sorted(data["counts"].items())))
    lines.append(
        "  (seconds are summed over threads; sections may overlap; from/to: seconds since "
        "the start of the run)"
    )
    return "\n".join(lines)


@contextmanager
def timed(section: str) -> Iterator[None]:
    """Add the block's duration to ``section`` of the ambient profile, if any."""
    profile = _Active.profile
    if profile is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        profile.add(section, started, time.perf_counter())


def timed_call(section: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, its duration added to ``section`` of the ambient profile."""
    with timed(section):
        return fn(*args, **kwargs)


def count(what: str, n: int = 1) -> None:
    """Count an event in the ambient profile, if any."""
    profile = _Active.profile
    if profile is not None:
        profile.count(what, n)


def _cpu_times() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "self": own.ru_utime + own.ru_stime,
        "children": children.ru_utime + children.ru_stime,
    }
