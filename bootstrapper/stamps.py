"""Skipping a step that would write what is already there.

A :class:`TreeStamp` remembers, for a step that writes files under some directories,
what the step was given the last time it ran (a digest of its inputs, made by the caller)
and the state it left those directories in: every entry's path, type, size, inode, mtime
and ctime. When both are the same again, running the step would write the same bytes
over the same files, so it can be left out; a file anyone added, removed, touched or
rewrote since (ctime cannot be set back) makes the step run again, and so does a step
that failed half-way, which left the directories in another state than the one recorded.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from .fsutil import atomic_write_text


def tree_state(roots: Sequence[Path]) -> str:
    """A digest of the entries under ``roots`` (recursively, symbolic links not
    followed) and their status; a missing root is an empty one."""
    lines: list[str] = []
    for root in roots:
        lines.append(f"root {root}\n")
        _walk(root, "", lines)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _walk(directory: Path, prefix: str, lines: list[str]) -> None:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # went away as we looked: another state, as it is now
            continue
        name = prefix + entry.name
        lines.append(
            f"{name}\0{stat.S_IFMT(st.st_mode)} {st.st_mode & 0o7777} {st.st_size} "
            f"{st.st_ino} {st.st_dev} {st.st_mtime_ns} {st.st_ctime_ns}\n"
        )
        if stat.S_ISDIR(st.st_mode):
            _walk(Path(entry.path), name + "/", lines)


class TreeStamp:
    """What a step was last given and the state it left ``roots`` in, kept in ``path``."""

    def __init__(self, path: Path, roots: Sequence[Path]) -> None:
        self.path = path
        self.roots = tuple(roots)

    def holds(self, inputs: str) -> bool:
        """Whether the step ran last with ``inputs`` and ``roots`` are as it left them."""
        try:
            kept = self.path.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError):
            return False
        return kept == [inputs, tree_state(self.roots)]

    def record(self, inputs: str) -> None:
        """The step just ran with ``inputs``: remember them, and the state it left."""
        with suppress(OSError):  # a stamp that cannot be kept only costs the next run time
            atomic_write_text(self.path, f"{inputs} {tree_state(self.roots)}\n")
