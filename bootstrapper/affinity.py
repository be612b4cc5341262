"""bootstrapper's own Python on one core, the programs it starts on all of them.

A run's threads (resolution, index pages, reuse checks, publishing) take turns at one
GIL, and each system call of one of them hands the GIL to another. On several cores
every hand-off wakes a thread on another core and puts the caller to sleep until it
gets the GIL back (a futex round trip each way): a re-run of a 300-package tree on two
cores spent about a quarter of its time so. On one core the caller comes back from its
system call before the woken thread runs, and keeps the GIL. Python code cannot use
more than one core at a time anyway, so the run's own threads lose nothing.

What the run starts (backends and their compilers, probes, uv) must have every core the
process was given: a thread gets the process's whole mask back just before it starts a
child (an audit hook on every way of starting one), and keeps it. Once the run starts
its first backend, every thread gets the whole mask back (:func:`release`): from then on
the builds keep the cores busy, and pinned threads would wait for their one core.

Linux only (``sched_setaffinity``); elsewhere, and on a single CPU, nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

#: The audit events raised, in the thread that does it, just before a child process is
#: made (or the process becomes another program).
SPAWN_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.spawn",
    }
)

_lock = threading.Lock()
#: The CPUs the process was given, while :func:`one_core` is in force; None otherwise.
_given: frozenset[int] | None = None
#: Whether :func:`release` gave every thread the whole mask back already.
_released = False
_hooked = False


def given_cpus() -> frozenset[int]:
    """The CPUs this process may run on: its affinity mask as it was given, even while
    its own threads are pinned to one (empty where the OS has no affinity masks)."""
    given = _given
    if given is not None:
        return given
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset()


@contextmanager
def one_core() -> Iterator[None]:
    """Run the block with the calling thread, and the threads it starts, on the CPU it
    is on now, until :func:`release`; children get every CPU of the process whatever
    happens. A use inside another (or beside it, in another thread) changes nothing."""
    global _given, _hooked, _released
    cpus = given_cpus()
    cpu = _current_cpu()
    with _lock:
        pinned = _given is None and len(cpus) > 1 and cpu in cpus
        if pinned:
            if not _hooked:
                sys.addaudithook(_before_spawn)
                _hooked = True
            _given = cpus
            _released = False
    if not pinned or cpu is None:
        yield
        return
    try:
        _set_mask(0, {cpu})
        yield
    finally:
        with _lock:
            _given = None
        _set_mask(0, cpus)


def release() -> None:
    """Give every thread of the process its whole mask back, for the rest of the
    :func:`one_core` block: the run starts builds now, and their processes will keep
    the cores busy, the pinned core among them, where the run's own threads would then
    wait their turn."""
    global _released
    with _lock:
        given, done, _released = _given, _released, True
    if given is None or done:
        return
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        threads = []
    for tid in threads:
        if tid.isdigit():
            _set_mask(int(tid), given)


def _before_spawn(event: str, args: tuple[Any, ...]) -> None:
    # Whatever the thread's mask now, the child starts with the process's whole one
    # (which this thread keeps: it is most often one that waits for its children).
    if event in SPAWN_EVENTS:
        given = _given
        if given is not None:
            _set_mask(0, given)


def _set_mask(tid: int, cpus: set[int] | frozenset[int]) -> None:
    # Never raises (an audit hook must not): a mask refused leaves the thread as it is.
    with suppress(OSError):
        os.sched_setaffinity(tid, cpus)


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on (``/proc/thread-self/stat``, field 39), so
    that runs started together stay where the kernel spread them."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            stat = f.read()
        return int(stat.rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None
