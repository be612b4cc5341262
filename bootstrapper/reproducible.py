"""What makes a rebuild give the same bytes: a stable build environment and a normalized
wheel archive."""

from __future__ import annotations

import base64
import calendar
import csv
import functools
import gzip
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .fsutil import replacing

#: The earliest time a zip file can hold (1980-01-01), and the default epoch.
ZIP_EPOCH = 315532800
UMASK = 0o022

#: Variables every build gets, so that locale, time zone and hashing don't vary.
FIXED_ENVIRONMENT = {
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
}


#: Where C and C++ compilers record the paths of a build's work directory (its sources,
#: build environments and temporary files), so that no object file depends on it.
BUILD_ROOT = "/bootstrapper-build"
#: Where the path map goes: setuptools, meson, autotools and make's rules add
#: ``CPPFLAGS`` to every C and C++ compile. ``CFLAGS`` would reach CMake too, but it
#: replaces autoconf's default ``-g -O2``.
FLAG_VARIABLES = ("CPPFLAGS",)


def path_map_flags(work: Sequence[Path], theirs: Mapping[str, str]) -> dict[str, str]:
    """``CPPFLAGS`` that maps the work directory (each of its spellings in ``work``: as
    given, and without symbolic links, as the compiler's working directory reads) to
    :data:`BUILD_ROOT` in what the compiler writes (debug information, ``__FILE__``),
    followed by ``theirs`` (the package's or the user's own)."""
    ours = [shlex.quote(f"-ffile-prefix-map={path}={BUILD_ROOT}") for path in dict.fromkeys(work)]
    return {name: " ".join([*ours, theirs.get(name, "")]).strip() for name in FLAG_VARIABLES}


@functools.cache
def compiler_maps_paths(compiler: str) -> bool:
    """Whether the C compiler ``compiler`` (a command line, as ``CC`` gives it) takes
    ``-ffile-prefix-map`` (gcc 8 and clang 10 on)."""
    words = shlex.split(compiler)
    if not words or shutil.which(words[0]) is None:
        return False
    try:
        return (
            subprocess.run(
                [*words, "-ffile-prefix-map=/a=/b", "-x", "c", "-c", "-o", os.devnull, os.devnull],
                capture_output=True,
                timeout=60,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def source_date_epoch(sdist: Path) -> int:
    """A stable ``SOURCE_DATE_EPOCH`` for a source archive: its newest member's time,
    which depends only on the archive's bytes."""
    newest = 0
    try:
        if sdist.name.lower().endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                for info in zf.infolist():
                    newest = max(newest, calendar.timegm((*info.date_time, 0, 0, 0)))
        elif not sdist.name.endswith(".whl"):
            with tarfile.open(sdist) as tar:
                for member in tar:
                    newest = max(newest, int(member.mtime))
    except (tarfile.TarError, zipfile.BadZipFile, OSError, OverflowError, ValueError):
        return ZIP_EPOCH
    return max(newest, ZIP_EPOCH)


def _order(name: str) -> tuple[int, str]:
    # Files first, then the .dist-info directory, RECORD last (as installers expect).
    top = name.split("/", 1)[0]
    if top.endswith(".dist-info"):
        return (2, name) if name.endswith("/RECORD") else (1, name)
    return (0, name)


def normalize_wheel(wheel: Path, epoch: int, added: Mapping[str, bytes] | None = None) -> None:
    """Rewrite ``wheel`` in place so that only file contents can vary: entries in a fixed
    order, every timestamp ``epoch``, permissions 0644 or 0755, one compression setting,
    no directory entries. Contents are unchanged, but for the files ``added`` (by path
    in the ``.dist-info`` directory), which RECORD then lists."""
    when = time.gmtime(max(epoch, ZIP_EPOCH))[:6]
    with zipfile.ZipFile(wheel) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist() if not info.is_dir()]
    if added:
        entries = _with_dist_info_files(entries, added, wheel.name)
    entries.sort(key=lambda entry: _order(entry[0].filename))
    with replacing(wheel) as tmp, zipfile.ZipFile(tmp, "w") as out:
        for info, data in entries:
            executable = (info.external_attr >> 16) & 0o111
            clean = zipfile.ZipInfo(info.filename, when)
            clean.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            clean.create_system = 3  # unix, so the permissions are read back
            clean.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(clean, data, compresslevel=6)


def _with_dist_info_files(
    entries: list[tuple[zipfile.ZipInfo, bytes]], added: Mapping[str, bytes], wheel: str
) -> list[tuple[zipfile.ZipInfo, bytes]]:
    """``entries`` with the files ``added`` in their ``.dist-info`` directory (replacing
    any of the same path) and their rows in its RECORD; every other row is kept as it
    is, so only the new files are hashed."""
    records = [
        info.filename
        for info, _ in entries
        if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/RECORD")
    ]
    if len(records) != 1:
        raise ValueError(f"{wheel} has {len(records) or 'no'} .dist-info/RECORD files, not one")
    record_name = records[0]
    dist_info = record_name.rsplit("/", 1)[0]
    paths = {f"{dist_info}/{path}": data for path, data in added.items()}
    kept = [(i, d) for i, d in entries if i.filename not in paths and i.filename != record_name]
    old_rows = next(d for i, d in entries if i.filename == record_name).decode("utf-8")
    rows, own_row = [], f"{record_name},,"
    for line in old_rows.splitlines():
        path = next(csv.reader([line]), [""])[0]
        if path == record_name:
            own_row = line
        elif line and path not in paths:
            rows.append(line)
    for path, data in sorted(paths.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(data)}")
        kept.append((zipfile.ZipInfo(path), data))
    rows.append(own_row)  # last, as it was
    kept.append((zipfile.ZipInfo(record_name), ("\n".join(rows) + "\n").encode("utf-8")))
    return kept


def first_difference(left: Path, right: Path) -> str | None:
    """``None`` when two wheels are byte-identical, else the first thing that differs."""
    if left.read_bytes() == right.read_bytes():
        return None
    with zipfile.ZipFile(left) as a, zipfile.ZipFile(right) as b:
        names_a = [i.filename for i in a.infolist()]
        names_b = [i.filename for i in b.infolist()]
        for name in names_a:
            if name not in names_b:
                return f"{name}: only in {left}"
            if a.read(name) != b.read(name):
                return f"{name}: contents differ"
            if a.getinfo(name).external_attr != b.getinfo(name).external_attr:
                return f"{name}: permissions differ"
            if a.getinfo(name).date_time != b.getinfo(name).date_time:
                return f"{name}: timestamps differ"
        extra = [n for n in names_b if n not in names_a]
        if extra:
            return f"{extra[0]}: only in {right}"
        if names_a != names_b:
            return "the same files in a different order"
    return "the archives differ outside their files (zip metadata)"


def write_tarball(root: Path, prefix: str, dest: Path, epoch: int, skip: set[str]) -> None:
    """Write the tree ``root`` as ``dest`` (.tar.gz, top directory ``prefix``), the same
    bytes for the same tree: sorted members, times ``epoch``, owner 0, modes 0o644/0o755,
    no gzip time stamp. Entries named in ``skip`` are left out; so are special files."""

    def members(directory: Path) -> Iterator[Path]:
        for path in sorted(directory.iterdir(), key=lambda p: p.name):
            if path.name in skip:
                continue
            yield path
            if path.is_dir() and not path.is_symlink():
                yield from members(path)

    with (
        replacing(dest) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in members(root):
            info = tarfile.TarInfo(f"{prefix}/{path.relative_to(root).as_posix()}")
            info.mtime = epoch
            if path.is_symlink():
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(normalized_member(info))
            elif path.is_dir():
                info.type = tarfile.DIRTYPE
                tar.addfile(normalized_member(info))
            elif path.is_file():
                info.size = path.stat().st_size
                info.mode = path.stat().st_mode
                with path.open("rb") as f:
                    tar.addfile(normalized_member(info), f)


def normalized_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``info`` without what varies between machines: owner 0 and no owner names, no
    extended headers, modes 0o755 for directories and executables, else 0o644."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.pax_headers = {}
    if info.isdir():
        info.mode = 0o755
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info
