"""Safe unpacking of source archives, which are treated as hostile.

Every member is checked before anything is written: no absolute paths, no ``..``, no
links that point outside the tree, no devices. One bad member refuses the whole archive.
"""

from __future__ import annotations

import bz2
import gzip
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UnsafeArchiveError

# Python >= 3.11.4 refuses unsafe members itself; older ones rely on our own checks.
_FILTER_ERROR: type[Exception] = getattr(tarfile, "FilterError", UnsafeArchiveError)


def _check_name(archive: Path, name: str) -> str:
    """The member name as a safe relative posix path, or an error naming it."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive.name}: member name with a NUL byte: {name!r}")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    normalized = posixpath.normpath(name.replace("\\", "/"))
    if normalized == ".." or normalized.startswith("../") or ".." in PurePosixPath(name).parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} points outside the archive")
    return normalized


def _check_link(archive: Path, member: tarfile.TarInfo, name: str) -> None:
    target = member.linkname
    if target.startswith("/") or "\x00" in target:
        raise UnsafeArchiveError(
            f"{archive.name}: link {member.name!r} -> {target!r} points outside the archive"
        )
    # A symlink's target is relative to the link's directory; a hard link's to the root.
    base = posixpath.dirname(name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive.name}: link {member.name!r} -> {target!r} points outside the archive"
        )


def _validated_tar_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        name = _check_name(archive, member.name)
        if member.issym() or member.islnk():
            _check_link(archive, member, name)
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(
                f"{archive.name}: member {member.name!r} is a device, FIFO or other special file"
            )
        members.append(member)
    return members


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into the empty-or-new directory ``dest`` and return the source
    root (the single top-level directory, as sdists have, or ``dest`` itself)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _unpack_zip(archive, dest)
        else:
            _unpack_tar(archive, dest)
    except UnsafeArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except _FILTER_ERROR as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchiveError(f"{archive.name}: unsafe member: {e}") from e
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive: {e}") from e
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _check_compression(archive: Path) -> None:
    """Read a compressed archive to its end so its checksum is verified: tarfile stops at
    the end-of-archive marker and would never notice corrupted trailing data."""
    opener: Any = {".gz": gzip.open, ".tgz": gzip.open, ".bz2": bz2.open}.get(archive.suffix)
    if opener is None:
        return
    with opener(archive, "rb") as stream:
        while stream.read(1 << 20):
            pass


def _unpack_tar(archive: Path, dest: Path) -> None:
    _check_compression(archive)
    with tarfile.open(archive) as tar:
        members = _validated_tar_members(archive, tar)
        for member in members:
            # Never keep set-uid bits or odd permissions from a downloaded archive.
            if member.isfile():
                member.mode = 0o755 if member.mode & 0o111 else 0o644
            elif member.isdir():
                member.mode = 0o755
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4; members were checked above
            tar.extractall(dest, members=members)


def _unpack_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(
                    f"{archive.name}: member {info.filename!r} is a symbolic link"
                )
        for info in infos:
            target = dest / _check_name(archive, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = info.external_attr >> 16
            target.chmod(0o755 if mode & 0o111 else 0o644)


def read_member(archive: Path, wanted: str) -> bytes | None:
    """The bytes of ``<top>/<wanted>`` in an sdist (e.g. ``PKG-INFO``), without
    unpacking it; ``None`` if absent."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if _is_top_member(name, wanted):
                        return zf.read(name)
            return None
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile() and _is_top_member(member.name, wanted):
                    f = tar.extractfile(member)
                    return f.read() if f else None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive: {e}") from e
    return None


def _is_top_member(name: str, wanted: str) -> bool:
    parts = PurePosixPath(name).parts
    return len(parts) == 2 and parts[1] == wanted
