"""Safe unpacking of source archives, which are treated as hostile.

Every member is checked before anything is written: no absolute paths, no ``..``, no
links that point outside the tree, no devices, and no more bytes than the bounds allow
(a decompression bomb). One bad member refuses the whole archive.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UnsafeArchiveError, UnsafeArchiveSizeError

MiB = 1 << 20
GiB = 1 << 30
#: Below this many unpacked bytes the ratio is not checked: a tiny sdist is mostly tar
#: padding and compresses far better than any source tree.
RATIO_FLOOR = 1 * MiB


@dataclass(frozen=True)
class UnpackLimits:
    """How much one source archive may unpack to: ``max_size`` bytes in all, and at most
    ``max_ratio`` times the archive's own size."""

    max_size: int = 8 * GiB
    max_ratio: float = 200.0

    def check(self, archive: Path, unpacked: int, packed: int) -> None:
        if unpacked > self.max_size:
            raise UnsafeArchiveSizeError(
                f"{archive.name}: unpacks to more than {human_size(self.max_size)} "
                "(--max-unpack-size); refused before anything was written. If the source "
                "is genuinely that large, raise --max-unpack-size"
            )
        if unpacked > RATIO_FLOOR and unpacked > self.max_ratio * packed:
            raise UnsafeArchiveSizeError(
                f"{archive.name}: unpacks to more than {self.max_ratio:g} times its own "
                f"{human_size(packed)} (--max-unpack-ratio): a decompression bomb, or data "
                "that compresses like one; refused before anything was written. If the "
                "source is genuine, raise --max-unpack-ratio"
            )


DEFAULT_UNPACK_LIMITS = UnpackLimits()


def human_size(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:g} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """``"8G"``, ``"500M"``, ``"64K"`` or a number of bytes."""
    units = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    value = float(number) * factor
    if not value > 0:
        raise ValueError(f"not a positive size: {text!r}")
    return int(value)


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


def unpack(archive: Path, dest: Path, limits: UnpackLimits = UnpackLimits()) -> Path:
    """Unpack ``archive`` into the empty-or-new directory ``dest`` and return the source
    root (the single top-level directory, as sdists have, or ``dest`` itself)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _unpack_zip(archive, dest, limits)
        else:
            _unpack_tar(archive, dest, limits)
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


def _check_compression(archive: Path, limits: UnpackLimits) -> None:
    """Read a compressed archive to its end, counting: its checksum is verified (tarfile
    stops at the end-of-archive marker and would never notice corrupted trailing data),
    and a bomb is refused before a byte of it is written."""
    opener: Any = {
        ".gz": gzip.open,
        ".tgz": gzip.open,
        ".bz2": bz2.open,
        ".xz": lzma.open,
    }.get(archive.suffix)
    if opener is None:
        return
    packed = archive.stat().st_size
    unpacked = 0
    with opener(archive, "rb") as stream:
        while chunk := stream.read(1 << 20):
            unpacked += len(chunk)
            limits.check(archive, unpacked, packed)


def _unpack_tar(archive: Path, dest: Path, limits: UnpackLimits) -> None:
    _check_compression(archive, limits)
    with tarfile.open(archive) as tar:
        members = _validated_tar_members(archive, tar)
        # What the headers declare (a sparse member is written at its full size).
        limits.check(archive, sum(m.size for m in members if m.isfile()), archive.stat().st_size)
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


def _unpack_zip(archive: Path, dest: Path, limits: UnpackLimits) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # zipfile never reads more than a member's declared size, so the headers bound it.
        limits.check(archive, sum(i.file_size for i in infos), archive.stat().st_size)
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
