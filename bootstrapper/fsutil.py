"""Small file-system helpers: atomic writes and hashing (with a stat-keyed cache)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_CHUNK = 1 << 20


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


#: size, inode, device, mtime and ctime (nanoseconds).
FileState = tuple[int, int, int, int, int]


def file_state(stat: os.stat_result) -> FileState:
    """What a change of a file changes (``stat`` is its status): its size, inode, device,
    mtime and ctime. The file, not the path: a hard link is the same file, and adding one
    changes the ctime of both; ctime cannot be set back by a writer."""
    return (stat.st_size, stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns)


#: Where a run keeps the digests it used, in its private directory (``DIR/.work``).
HASHES_FILE = "hashes.json"


class HashCache:
    """sha256 digests of files already hashed, keyed by what a change of the file would
    change: its size, inode, device, mtime and ctime (ctime cannot be set back by
    a writer, so a rewrite that restores the mtime is still seen).

    A run can keep the digests it used in its private directory (:meth:`kept_in`), so
    that the next run does not read every stored wheel and source again to learn what
    it knew (a re-run of a tree with torch would hash gigabytes). An entry is only ever
    used when every part of its key matches the file as it is now."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._digests: dict[FileState, str] = {}
        self._limit = limit
        #: The entries looked up or made since the last :meth:`kept_in` began.
        self._used: set[FileState] = set()

    @staticmethod
    def _key(path: Path) -> FileState:
        # Publishing links each wheel into DIR/wheels: the same file, the same digest.
        return file_state(os.stat(path))

    def sha256(self, path: Path) -> str:
        key = self._key(path)
        with self._lock:
            found = self._digests.get(key)
            if found is not None:
                self._used.add(key)
                return found
        digest = hash_file(path, "sha256")
        # Only if the file did not change while it was read.
        if self._key(path) == key:
            with self._lock:
                if len(self._digests) >= self._limit:
                    self._digests.clear()
                self._digests[key] = digest
                self._used.add(key)
        return digest

    def known(self, path: Path) -> tuple[FileState, str] | None:
        """The key and digest of ``path`` as it is now, if hashed already."""
        try:
            key = self._key(path)
        except OSError:
            return None
        with self._lock:
            digest = self._digests.get(key)
        return None if digest is None else (key, digest)

    def relinked(self, path: Path, before: tuple[FileState, str]) -> None:
        """``path`` was hashed as ``before`` and has just gained or lost a hard link, by
        this process (a copy made by linking, a build's scratch directory removed): that
        changed its ctime only, so the digest stands for its new key."""
        key, digest = before
        try:
            now = self._key(path)
        except OSError:
            return
        if now[:4] == key[:4]:
            with self._lock:
                self._digests[now] = digest
                self._used.add(now)

    def remember(self, path: Path, digest: str) -> None:
        """``path`` was just written by this process, and ``digest`` is the sha256 of the
        bytes written (hashed as they were streamed to it)."""
        try:
            key = self._key(path)
        except OSError:
            return
        with self._lock:
            self._digests[key] = digest
            self._used.add(key)

    @contextmanager
    def kept_in(self, path: Path) -> Iterator[None]:
        """Take the digests kept in ``path`` (a file of the run's private directory), and
        keep there at the end the ones used meanwhile (so it holds one run's files, not
        every file ever seen); a missing or unreadable file is an empty one."""
        loaded = self._load(path)
        with self._lock:
            self._digests.update(loaded)
            self._used = set()
        try:
            yield
        finally:
            with self._lock:
                kept = {key: self._digests[key] for key in self._used if key in self._digests}
            if kept != loaded:
                entries = [[*key, digest] for key, digest in sorted(kept.items())]
                with suppress(OSError):
                    atomic_write_text(path, json.dumps({"schema": 1, "sha256": entries}) + "\n")

    @staticmethod
    def _load(path: Path) -> dict[FileState, str]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            loaded: dict[FileState, str] = {}
            for *parts, digest in data["sha256"]:
                if len(parts) != 5 or not _is_sha256(digest):
                    raise ValueError(parts)
                size, ino, dev, mtime, ctime = (int(part) for part in parts)
                loaded[(size, ino, dev, mtime, ctime)] = digest
            return loaded
        except (OSError, ValueError, KeyError, TypeError):
            return {}


def _is_sha256(value: object) -> bool:
    # Checked for every digest a run keeps (thousands): no loop in Python over each one.
    return isinstance(value, str) and len(value) == 64 and not value.strip("0123456789abcdef")


#: The process's hash cache: every sha256 of a file goes through it (files here are
#: hashed by several steps: downloads, builds, the store, publishing).
HASHES = HashCache()


def kept_hashes(path: Path) -> AbstractContextManager[None]:
    """The process's hash cache, taking and keeping digests in ``path`` (see
    :meth:`HashCache.kept_in`)."""
    return HASHES.kept_in(path)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, hashed once for as long as the file is unchanged."""
    return HASHES.sha256(path)


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file (its descriptor and path) in ``path``'s directory, made first
    if missing, readable by all: what replaces ``path`` is published (wheels, pages)
    and a web server running as another user must read it."""
    prefix, suffix = f".{path.name}.", ".tmp"
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o644)  # mkstemp makes it 0600
    return fd, Path(name)


class _Batch:
    """Files written to temporary names, to be synced to the disk together and then
    renamed into place, in the order they were written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moves: list[tuple[Path, Path]] = []

    def add(self, tmp: Path, path: Path) -> None:
        with self._lock:
            self._moves.append((tmp, path))

    def commit(self) -> None:
        with self._lock:
            moves, self._moves = self._moves, []
        _sync_files([tmp for tmp, _ in moves])
        for tmp, path in moves:
            os.replace(tmp, path)

    def discard(self) -> None:
        with self._lock:
            moves, self._moves = self._moves, []
        for tmp, _ in moves:
            with suppress(FileNotFoundError):
                tmp.unlink()


class _Batches(threading.local):
    current: _Batch | None = None


_batches = _Batches()


@contextmanager
def synced_together() -> Iterator[None]:
    """Within the block, the atomic writes (:func:`atomic_open` and what uses it) of
    this thread and of the workers it starts with :func:`each_at_once` go to temporary
    names; when it ends, they are synced to the disk at once, then each renamed into
    place. As safe as syncing each file before its rename (no file is ever seen
    half-written, even after a crash), with one sync of the file system instead of one
    per file. Until the block ends, the files are not where they are going: read none of
    them back inside it. If it fails, none is. (:func:`replacing` and the copies made
    with it are never deferred.)"""
    outer, batch = _batches.current, _Batch()
    _batches.current = batch
    try:
        yield
    except BaseException:
        batch.discard()
        raise
    else:
        batch.commit()
    finally:
        _batches.current = outer


def _sync_files(paths: Sequence[Path]) -> None:
    """Put the contents of ``paths`` on the disk: one ``syncfs`` per file system where
    the C library has it (Linux), else one fsync per file."""
    syncfs = _syncfs()
    if syncfs is not None:
        devices = {os.stat(parent).st_dev: parent for parent in {p.parent for p in paths}}
        for directory in devices.values():
            fd = os.open(directory, os.O_RDONLY)
            try:
                synced = syncfs(fd) == 0
            finally:
                os.close(fd)
            if not synced:
                break  # a file system that refuses: each file, as without syncfs
        else:
            return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: a few milliseconds, for the processes that publish

    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function


@contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block ends without an
    exception, so readers never see a half-written file; it is removed otherwise. Never
    deferred by :func:`synced_together`: what fills it (a link, a copy, a download) is
    not synced, and a caller may look at ``path`` at once (the hash cache does)."""
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    with _removed_on_failure(tmp):
        yield tmp
        os.replace(tmp, path)


@contextmanager
def atomic_open(path: Path) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` atomically, once it is on
    the disk (in a :func:`synced_together` block, when the block ends)."""
    batch = _batches.current
    fd, tmp = _temporary_beside(path)
    with _removed_on_failure(tmp):
        with open(fd, "wb") as f:
            yield f
            if batch is None:
                f.flush()
                os.fsync(fd)
        if batch is None:
            os.replace(tmp, path)
        else:
            batch.add(tmp, path)  # synced and renamed when the batch ends


#: How many files a batch writes at once. Their time goes to the file system (making
#: each, syncing it to the disk), which overlaps across files.
WRITERS = 8


def each_at_once(fn: Callable[[T], R], items: Iterable[T], *, workers: int = WRITERS) -> list[R]:
    """``[fn(item) for item in items]``, run by up to ``workers`` threads; the first
    failure (in the items' order) is raised once every call has ended."""
    todo = list(items)
    if len(todo) < 2 or workers < 2:
        return [fn(item) for item in todo]
    batch = _batches.current

    def call(item: T) -> R:
        _batches.current = batch  # the caller's batch, if any, is the workers' too
        try:
            return fn(item)
        finally:
            _batches.current = None

    with ThreadPoolExecutor(min(workers, len(todo)), thread_name_prefix="writer") as pool:
        futures = [pool.submit(call, item) for item in todo]
    return [future.result() for future in futures]


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


def atomic_copy(src: Path, dest: Path, *, link: bool = True) -> None:
    """Copy (hard-link when possible, unless ``link`` is false) ``src`` to ``dest``
    atomically. A file the user keeps editing (a patch, a plugin's archive) is copied:
    a link would change with it, and what a build used must stay as it was."""
    known = HASHES.known(src)
    with replacing(dest) as tmp:
        tmp.unlink()
        try:
            if not link:
                raise OSError("a copy was asked for")
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
            return
    if known is not None:
        HASHES.relinked(src, known)


def sweep_temporary_files(directory: Path, *, recursive: bool = False) -> None:
    """Remove what a killed process left of its atomic writes (``.NAME.XXXX.tmp``) and
    downloads (``.NAME.XXXX.part``) in ``directory`` (one walk: DIR/simple holds a
    directory per project)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                sweep_temporary_files(Path(entry.path), recursive=True)
        elif fnmatchcase(entry.name, ".*.tmp") or fnmatchcase(entry.name, ".*.part"):
            with suppress(FileNotFoundError):
                os.unlink(entry.path)


def copy_unless_identical(
    src: Path, dest: Path, sha256: str | None = None, *, link: bool = True
) -> None:
    """Make ``dest`` a copy of ``src`` (atomically), unless it already is one: the same
    file (a hard link, when ``link`` allows one) or the same bytes. ``sha256`` is
    ``src``'s, when known."""
    if dest.exists():
        same = os.path.samefile(src, dest)
        if same and link:
            return
        if not same and sha256_file(dest) == (sha256 or sha256_file(src)):
            return
    atomic_copy(src, dest, link=link)


def empty_dir(directory: Path) -> None:
    """Make ``directory`` exist and hold nothing, keeping the directory itself (a mount
    elsewhere may refer to it)."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
