"""setuptools' parallel ``build_ext`` joined to the run's GNU make jobserver, loaded into
a hook's process by the backend's host (:mod:`bootstrapper.hookhost`) when the build
asks for it and the backend imported setuptools.

Like the host, this file imports nothing of bootstrapper and runs on every Python a
build may use.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

# Not typing's: importing it at run time costs a backend's process a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Tokens:
    """Jobs that take turns at a GNU make jobserver (a FIFO holding one token per core):
    the first ``share`` jobs running use the cores the build was promised (its own
    token among them, as make's first job does); every other job holds a token while it
    runs, and takes none while the file ``waiting`` counts builds waiting for one."""

    def __init__(self, fifo: str, share: int, waiting: str) -> None:
        # Read and write ends in one descriptor, as the run's budget opens it: never blocks.
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self._waiting = os.open(waiting, os.O_RDONLY)
        # Wakes the jobs waiting for a token when one of the share's slots frees.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._lock = threading.Lock()
        self._free_in_share = max(1, share)

    def run(self, job: Callable[..., Any], *args: Any) -> Any:
        token = self._take()
        try:
            return job(*args)
        finally:
            self._give(token)

    def _builds_waiting(self) -> bool:
        try:
            count = os.pread(self._waiting, 16, 0).strip()
        except OSError:
            return False
        return count not in (b"", b"0")

    def _take(self) -> bytes:
        """A token (empty: a slot of the share), once one is free."""
        while True:
            with self._lock:
                if self._free_in_share:
                    self._free_in_share -= 1
                    return b""
            waiting = self._builds_waiting()
            if not waiting:
                try:
                    token = os.read(self._fd, 1)
                except BlockingIOError:
                    token = b""
                if token:
                    return token
            # While builds wait, a token in the FIFO is theirs: do not wake for it.
            watched = [self._wake_read] if waiting else [self._fd, self._wake_read]
            ready, _, _ = select.select(watched, [], [], 0.1 if waiting else 1.0)
            if self._wake_read in ready:
                with contextlib.suppress(BlockingIOError):  # another job drained it
                    os.read(self._wake_read, 64)

    def _give(self, token: bytes) -> None:
        if token:
            os.write(self._fd, token)
            return
        with self._lock:
            self._free_in_share += 1
        os.write(self._wake_write, b"!")


def join_build_ext(fifo: str, share: int, most: int, waiting: str) -> bool:
    """Join setuptools' parallel ``build_ext`` (the distutils the backend imported) to
    the run's jobserver: where the build's config file set ``parallel`` to its ``share``
    of the cores, up to ``most`` extensions build at once. Those past the share each
    hold a token while they build, and take none while builds wait for one (``waiting``
    holds the budget's count), so a build starting is never held up by them. A build
    that started beside another thus takes the cores the other leaves when it ends,
    instead of running on its share to the end. Whether it applies (not where distutils
    has no such method, or the FIFO is out of this process's view)."""
    try:
        from distutils.command import build_ext as module
    except ImportError:
        return False
    command = getattr(module, "build_ext", None)
    parallel = getattr(command, "_build_extensions_parallel", None)
    if command is None or parallel is None:
        return False
    try:
        tokens = Tokens(fifo, share, waiting)
    except OSError:  # not in this process's view of the machine: the share stands
        return False

    def joined(self: Any) -> None:
        # A number of the package's own, or one its settings gave, is kept.
        if type(self.parallel) is int and self.parallel == share and most > share:
            self.parallel = most
        if self.parallel is True or self.parallel > share:
            print(
                f"bootstrapper: build_ext builds up to {self.parallel} extensions at once, "
                f"those past its share of {share} with a token of the run's jobserver",
                file=sys.stderr,
                flush=True,
            )
        build = self.build_extension
        self.build_extension = lambda ext: tokens.run(build, ext)
        try:
            parallel(self)
        finally:
            del self.build_extension

    command._build_extensions_parallel = joined
    return True
