"""Small file-system helpers: atomic writes and hashing (with a stat-keyed cache)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 digests of files already hashed, keyed by what a change of the file would
    change: its path, size, inode, device, mtime and ctime (ctime cannot be set back by
    a writer, so a rewrite that restores the mtime is still seen)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, int, int, int, int, int], str] = {}
        self._limit = limit

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int, int, int, int]:
        stat = os.stat(path)
        return (
            os.path.abspath(path),
            stat.st_size,
            stat.st_ino,
            stat.st_dev,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
        )

    def sha256(self, path: Path) -> str:
        key = self._key(path)
        with self._lock:
            found = self._digests.get(key)
        if found is not None:
            return found
        digest = hash_file(path, "sha256")
        # Only if the file did not change while it was read.
        if self._key(path) == key:
            with self._lock:
                if len(self._digests) >= self._limit:
                    self._digests.clear()
                self._digests[key] = digest
        return digest


#: The process's hash cache: every sha256 of a file goes through it (files here are
#: hashed by several steps: downloads, builds, the store, publishing).
HASHES = HashCache()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, hashed once for as long as the file is unchanged."""
    return HASHES.sha256(path)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block ends without an
    exception, so readers never see a half-written file; it is removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


@contextmanager
def atomic_open(path: Path) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` atomically."""
    with replacing(path) as tmp, tmp.open("wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
        os.chmod(tmp, 0o644)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` atomically with ``data`` unless it holds exactly that already
    (a re-run leaves unchanged files, and their times, as they were); returns whether
    it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, NotADirectoryError):
        pass
    atomic_write_bytes(path, data)
    return True


def write_text_if_changed(path: Path, text: str) -> bool:
    return write_if_changed(path, text.encode("utf-8"))


def atomic_copy(src: Path, dest: Path) -> None:
    """Copy (hard-link when possible) ``src`` to ``dest`` atomically."""
    with replacing(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)


def sweep_temporary_files(directory: Path, *, recursive: bool = False) -> None:
    """Remove what a killed process left of its atomic writes (``.NAME.XXXX.tmp``) and
    downloads (``.NAME.XXXX.part``) in ``directory``."""
    if not directory.is_dir():
        return
    for pattern in (".*.tmp", ".*.part"):
        for path in directory.rglob(pattern) if recursive else directory.glob(pattern):
            with suppress(FileNotFoundError):
                path.unlink()


def copy_unless_identical(src: Path, dest: Path, sha256: str | None = None) -> None:
    """Make ``dest`` a copy of ``src`` (atomically), unless it already is one: the same
    file (a hard link) or the same bytes. ``sha256`` is ``src``'s, when known."""
    if dest.exists():
        if os.path.samefile(src, dest):
            return
        if sha256_file(dest) == (sha256 or sha256_file(src)):
            return
    atomic_copy(src, dest)


def empty_dir(directory: Path) -> None:
    """Make ``directory`` exist and hold nothing, keeping the directory itself (a mount
    elsewhere may refer to it)."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
