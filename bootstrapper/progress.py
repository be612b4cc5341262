"""Progress reporting, kept out of the pipeline: the run calls a :class:`Reporter`."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Collection, Sequence
from typing import Protocol, TextIO

from .errors import BootstrapError
from .eta import Forecast, format_duration
from .graph import NodeKey


class Reporter(Protocol):
    def queued(self, key: NodeKey) -> None: ...
    def resolving(self, what: str, chain: Sequence[str]) -> None: ...
    def resolved(self, keys: Collection[NodeKey]) -> None: ...
    def started(self, key: NodeKey, what: str) -> None: ...
    def finished(self, key: NodeKey, reused: bool, where: str | None = None) -> None: ...
    def failed(self, key: NodeKey, error: BootstrapError) -> None: ...
    def message(self, text: str) -> None: ...


class SlotWatch(Protocol):
    """Told when a package asks for a job slot, gets one and gives it back (the run's
    timeline shows which slot each build ran on and how long it waited for one)."""

    def slot_asked(self, key: NodeKey) -> None: ...
    def slot_taken(self, key: NodeKey) -> None: ...
    def slot_given_back(self, key: NodeKey) -> None: ...


class NullSlotWatch:
    def slot_asked(self, key: NodeKey) -> None:
        pass

    def slot_taken(self, key: NodeKey) -> None:
        pass

    def slot_given_back(self, key: NodeKey) -> None:
        pass


class NullReporter:
    def queued(self, key: NodeKey) -> None:
        pass

    def resolving(self, what: str, chain: Sequence[str]) -> None:
        pass

    def resolved(self, keys: Collection[NodeKey]) -> None:
        pass

    def started(self, key: NodeKey, what: str) -> None:
        pass

    def finished(self, key: NodeKey, reused: bool, where: str | None = None) -> None:
        pass

    def failed(self, key: NodeKey, error: BootstrapError) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class TeeReporter:
    """Every event to each of several reporters, in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self._reporters = reporters

    def queued(self, key: NodeKey) -> None:
        for reporter in self._reporters:
            reporter.queued(key)

    def resolving(self, what: str, chain: Sequence[str]) -> None:
        for reporter in self._reporters:
            reporter.resolving(what, chain)

    def resolved(self, keys: Collection[NodeKey]) -> None:
        for reporter in self._reporters:
            reporter.resolved(keys)

    def started(self, key: NodeKey, what: str) -> None:
        for reporter in self._reporters:
            reporter.started(key, what)

    def finished(self, key: NodeKey, reused: bool, where: str | None = None) -> None:
        for reporter in self._reporters:
            reporter.finished(key, reused, where)

    def failed(self, key: NodeKey, error: BootstrapError) -> None:
        for reporter in self._reporters:
            reporter.failed(key, error)

    def message(self, text: str) -> None:
        for reporter in self._reporters:
            reporter.message(text)


class StreamReporter:
    """Line-oriented progress; on a terminal, also a live status line at the bottom
    (with ``forecast``, saying how long the rest will take when earlier runs tell)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        quiet: bool = False,
        forecast: Forecast | None = None,
    ) -> None:
        self._stream = stream
        self._live = live
        self._quiet = quiet
        self._forecast = forecast
        #: When each package first started work in a slot; those reused.
        self._first_started: dict[NodeKey, float] = {}
        self._reused_keys: set[NodeKey] = set()
        #: Packages whose wheel this run is building (not only asking their backend).
        self._building: set[NodeKey] = set()
        self._failed: set[NodeKey] = set()
        self._lock = threading.Lock()
        self._queued: set[NodeKey] = set()
        self._done: set[NodeKey] = set()
        self._reused = 0
        self._resolved: set[NodeKey] = set()
        self._active: dict[NodeKey, tuple[str, float]] = {}
        self._status_shown = False

    def _emit(self, line: str | None) -> None:
        with self._lock:
            if self._live and self._status_shown:
                self._stream.write("\r\x1b[2K")
            if line is not None and not self._quiet:
                self._stream.write(line + "\n")
            if self._live:
                self._stream.write(self._status())
                self._status_shown = True
            self._stream.flush()

    def _status(self) -> str:
        width = shutil.get_terminal_size((100, 20)).columns
        building = ", ".join(str(k) for k in sorted(self._active))
        text = (
            f"[resolved {len(self._resolved)} | built {len(self._done)}/{len(self._queued)}"
            f" ({self._reused} reused) | {len(self._queued) - len(self._done)} remaining]"
            + self._eta()
            + (f" building {building}" if building else "")
        )
        return text[: max(10, width - 1)]

    def _eta(self) -> str:
        """`` ETA 3m05s`` when the forecast can tell, else nothing."""
        if self._forecast is None:
            return ""
        now = time.monotonic()
        seconds = self._forecast.remaining(
            waiting=[
                k
                for k in self._queued
                if k not in self._done and k not in self._active and k not in self._failed
            ],
            running={k: now - self._first_started.get(k, now) for k in self._active},
            reused=self._reused_keys,
            rebuilt=self._building - self._reused_keys,
        )
        return "" if seconds is None else f" ETA {format_duration(seconds)}"

    def queued(self, key: NodeKey) -> None:
        with self._lock:
            self._queued.add(key)
        self._emit(None)

    def resolving(self, what: str, chain: Sequence[str]) -> None:
        if self._live:
            self._emit(None)

    def resolved(self, keys: Collection[NodeKey]) -> None:
        with self._lock:
            self._resolved.update(keys)
        self._emit(None)

    def started(self, key: NodeKey, what: str) -> None:
        with self._lock:
            self._active[key] = (what, time.monotonic())
            self._first_started.setdefault(key, self._active[key][1])
            if what == "building":
                self._building.add(key)
        self._emit(f"{what} {key}" if not self._live else None)

    def finished(self, key: NodeKey, reused: bool, where: str | None = None) -> None:
        with self._lock:
            _, began = self._active.pop(key, ("", time.monotonic()))
            self._done.add(key)
            self._queued.add(key)
            if reused:
                self._reused += 1
                self._reused_keys.add(key)
        if reused:
            self._emit(f"reused {key} (already built, inputs unchanged)")
        else:
            on = f" on {where}" if where else ""
            self._emit(f"built {key} in {time.monotonic() - began:.1f}s{on}")

    def failed(self, key: NodeKey, error: BootstrapError) -> None:
        with self._lock:
            self._active.pop(key, None)
            self._failed.add(key)
        self._emit(f"failed {key}")

    def message(self, text: str) -> None:
        self._emit(text)

    def close(self) -> None:
        with self._lock:
            if self._live and self._status_shown:
                self._stream.write("\r\x1b[2K")
                self._stream.flush()
                self._status_shown = False
