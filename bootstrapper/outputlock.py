"""One run per output directory: an OS-level lock on ``DIR/.work/lock``.

``fcntl.flock`` locks belong to the open file, so the kernel drops the lock when the
holder exits, however it exits (``kill -9`` included): no stale lock to clean up. The
file holds the holder's PID, for the message a second run prints.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputDirInUseError, UnusableOutputDirError

LOCK_FILE = Path(".work") / "lock"


@contextmanager
def locked_output_dir(output_dir: Path, option: str = "--output-dir") -> Iterator[Path]:
    """Hold ``output_dir`` for this process for the duration of the block.

    Creates the directory. Raises :class:`UnusableOutputDirError` when it cannot be
    used at all and :class:`OutputDirInUseError` when another process holds it."""
    lock_path = output_dir / LOCK_FILE
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise unusable_output_dir(output_dir, e, option) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            raise OutputDirInUseError(
                f"{output_dir} is in use by "
                + (f"process {holder}" if holder else "another process")
                + "; wait for that run to end, or give this one another "
                + option
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield output_dir
    finally:
        # Closing the file releases the lock; the file stays (removing it would let a
        # third process lock a new file while a second still waits on the old one).
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def unusable_output_dir(
    output_dir: Path, error: OSError, option: str = "--output-dir"
) -> UnusableOutputDirError:
    """The message for an output directory the file system refuses, saying what to do."""
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next(
            (p for p in (output_dir, *output_dir.parents) if p.exists() and not p.is_dir()),
            output_dir,
        )
        why = f"{blocker} is a file, not a directory"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"cannot write in it ({error.strerror})"
    else:
        why = f"{error.strerror or error}"
    return UnusableOutputDirError(
        f"cannot use {output_dir} as the output directory: {why}; give {option} a directory "
        "you can write to (or a path where one can be made)"
    )
