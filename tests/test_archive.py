"""Unit tests for bootstrapper.archive: safe unpacking of hostile sdists."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrapper.archive import MiB, UnpackLimits, parse_size, read_member, unpack
from bootstrapper.errors import UnsafeArchiveError, UnsafeArchiveSizeError

PKG_INFO = b"Metadata-Version: 2.2\nName: pkg\nVersion: 1.0\n"


@dataclass(frozen=True)
class Member:
    """One archive member to write: a file, directory, link or special file."""

    name: str
    data: bytes = b""
    kind: str = "file"  # file, dir, symlink, hardlink, chr, blk, fifo
    target: str = ""
    mode: int = 0o644


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    return Member(name, data, mode=mode)


def write_tar(path: Path, members: Sequence[Member], mode: str = "w:gz") -> Path:
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = types[member.kind]
            info.mode = member.mode
            info.linkname = member.target
            if member.kind == "file":
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return path


def write_zip(path: Path, members: Sequence[Member]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for member in members:
            if member.kind == "dir":
                info = zipfile.ZipInfo(member.name.rstrip("/") + "/")
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                zf.writestr(info, b"")
            elif member.kind == "symlink":
                info = zipfile.ZipInfo(member.name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, member.target.encode())
            else:
                info = zipfile.ZipInfo(member.name)
                info.external_attr = (stat.S_IFREG | member.mode) << 16
                zf.writestr(info, member.data)
    return path


def snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(archives dir, destination, a directory outside the destination with a secret)."""
    archives = tmp_path / "archives"
    archives.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not touch")
    return archives, tmp_path / "work" / "dest", outside


GOOD_MEMBERS = [
    Member("pkg-1.0", kind="dir", mode=0o755),
    file("pkg-1.0/PKG-INFO", PKG_INFO),
    file("pkg-1.0/pyproject.toml", b"[build-system]\nrequires = []\n"),
    Member("pkg-1.0/src", kind="dir", mode=0o755),
    file("pkg-1.0/src/mod.py", b"VALUE = 1\n"),
    file("pkg-1.0/run.sh", b"#!/bin/sh\n", mode=0o4775),  # set-uid must not survive
    file("pkg-1.0/private.txt", b"p", mode=0o600),
]


def check_good_tree(root: Path, dest: Path) -> None:
    assert root == dest / "pkg-1.0"
    assert (root / "PKG-INFO").read_bytes() == PKG_INFO
    assert (root / "src" / "mod.py").read_text() == "VALUE = 1\n"
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "private.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "src" / "mod.py").stat().st_mode) == 0o644


# -- good archives ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar.bz2", ".tar"])
def test_unpack_tar_returns_top_directory(layout: tuple[Path, Path, Path], suffix: str) -> None:
    archives, dest, _ = layout
    mode = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar": "w"}[suffix]
    archive = write_tar(archives / f"pkg-1.0{suffix}", GOOD_MEMBERS, mode)
    check_good_tree(unpack(archive, dest), dest)


def test_unpack_zip_returns_top_directory(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    archive = write_zip(archives / "pkg-1.0.zip", GOOD_MEMBERS)
    check_good_tree(unpack(archive, dest), dest)


def test_unpack_tar_without_directory_entries(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    archive = write_tar(
        archives / "pkg-1.0.tar.gz",
        [file("pkg-1.0/PKG-INFO", PKG_INFO), file("pkg-1.0/a/b/c.txt", b"c")],
    )
    root = unpack(archive, dest)
    assert root == dest / "pkg-1.0"
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"c"


def test_unpack_zip_without_directory_entries(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    archive = write_zip(
        archives / "pkg-1.0.zip",
        [file("pkg-1.0/PKG-INFO", PKG_INFO), file("pkg-1.0/a/b/c.txt", b"c")],
    )
    root = unpack(archive, dest)
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"c"


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_unpack_several_top_level_entries_returns_destination(
    layout: tuple[Path, Path, Path], suffix: str
) -> None:
    archives, dest, _ = layout
    members = [file("setup.py", b""), file("pkg/__init__.py", b"")]
    path = archives / f"a{suffix}"
    archive = write_tar(path, members) if suffix == ".tar.gz" else write_zip(path, members)
    assert unpack(archive, dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["pkg", "setup.py"]


def test_unpack_single_top_level_file_returns_destination(
    layout: tuple[Path, Path, Path],
) -> None:
    archives, dest, _ = layout
    archive = write_tar(archives / "a.tar.gz", [file("only.txt")])
    assert unpack(archive, dest) == dest


def test_unpack_replaces_existing_destination(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("old")
    archive = write_tar(archives / "pkg-1.0.tar.gz", GOOD_MEMBERS)
    root = unpack(archive, dest)
    assert not (dest / "stale.txt").exists()
    assert [p.name for p in dest.iterdir()] == ["pkg-1.0"]
    assert root == dest / "pkg-1.0"


def test_unpack_tar_keeps_symlinks_inside_the_tree(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    archive = write_tar(
        archives / "pkg-1.0.tar.gz",
        [
            file("pkg-1.0/PKG-INFO", PKG_INFO),
            file("pkg-1.0/src/mod.py", b"VALUE = 1\n"),
            Member("pkg-1.0/link.py", kind="symlink", target="src/mod.py"),
            Member("pkg-1.0/src/up", kind="symlink", target="../PKG-INFO"),
            Member("pkg-1.0/hard.py", kind="hardlink", target="pkg-1.0/src/mod.py"),
        ],
    )
    root = unpack(archive, dest)
    assert (root / "link.py").is_symlink()
    assert (root / "link.py").read_text() == "VALUE = 1\n"
    assert (root / "src" / "up").read_bytes() == PKG_INFO
    assert (root / "hard.py").read_text() == "VALUE = 1\n"


def test_unpack_tolerates_dot_slash_prefix(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    archive = write_tar(archives / "pkg-1.0.tar.gz", [file("./pkg-1.0/PKG-INFO", PKG_INFO)])
    root = unpack(archive, dest)
    assert (root / "PKG-INFO").read_bytes() == PKG_INFO


# -- hostile archives -------------------------------------------------------------------


def assert_refused(archive: Path, dest: Path, root: Path, *sentinels: Path) -> None:
    """``unpack`` refuses ``archive``, leaves no destination and writes nothing else."""
    before = snapshot(root)
    secret = root / "outside" / "secret"
    with pytest.raises(UnsafeArchiveError) as info:
        unpack(archive, dest)
    assert archive.name in info.value.message
    assert not dest.exists()
    for sentinel in sentinels:
        assert not sentinel.exists(), sentinel
        assert not sentinel.is_symlink(), sentinel
    # Nothing new anywhere under the test's root, except the destination's parent.
    assert snapshot(root) - before <= {dest.parent}
    assert secret.read_text() == "do not touch"
    assert secret.stat().st_nlink == 1


@pytest.mark.parametrize("writer", ["tar", "zip"])
def test_refuses_absolute_member_path(layout: tuple[Path, Path, Path], writer: str) -> None:
    archives, dest, outside = layout
    target = outside / "evil.txt"
    members = [file("pkg-1.0/PKG-INFO", PKG_INFO), file(str(target), b"pwned")]
    archive = (
        write_tar(archives / "a.tar.gz", members)
        if writer == "tar"
        else write_zip(archives / "a.zip", members)
    )
    assert_refused(archive, dest, outside.parent, target)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "../../outside/evil.txt",
        "pkg-1.0/../../evil.txt",
        "pkg-1.0/../../../outside/evil.txt",
        "..",
    ],
)
@pytest.mark.parametrize("writer", ["tar", "zip"])
def test_refuses_parent_directory_member(
    layout: tuple[Path, Path, Path], writer: str, name: str
) -> None:
    archives, dest, outside = layout
    members = [file("pkg-1.0/PKG-INFO", PKG_INFO), file(name, b"pwned")]
    archive = (
        write_tar(archives / "a.tar.gz", members)
        if writer == "tar"
        else write_zip(archives / "a.zip", members)
    )
    root = outside.parent
    assert_refused(
        archive, dest, root, root / "evil.txt", outside / "evil.txt", root / "work" / "evil.txt"
    )


@pytest.mark.parametrize(
    "name", ["..\\evil.txt", "pkg-1.0\\..\\..\\evil.txt", "C:\\evil.txt", "\\evil.txt"]
)
def test_zip_refuses_windows_style_escapes(layout: tuple[Path, Path, Path], name: str) -> None:
    archives, dest, outside = layout
    archive = write_zip(archives / "a.zip", [file("pkg-1.0/PKG-INFO", PKG_INFO), file(name)])
    root = outside.parent
    assert_refused(archive, dest, root, root / "evil.txt", root / "work" / "evil.txt")


@pytest.mark.parametrize("target", ["../../outside", "../../etc", "../../../../../../../etc"])
def test_tar_refuses_relative_symlink_outside(layout: tuple[Path, Path, Path], target: str) -> None:
    archives, dest, outside = layout
    archive = write_tar(
        archives / "a.tar.gz",
        [
            file("pkg-1.0/PKG-INFO", PKG_INFO),
            Member("pkg-1.0/link", kind="symlink", target=target),
            # Written through the link if it were created.
            file("pkg-1.0/link/evil.txt", b"pwned"),
        ],
    )
    assert_refused(archive, dest, outside.parent, outside / "evil.txt")


def test_tar_refuses_top_level_symlink_to_parent(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, outside = layout
    archive = write_tar(
        archives / "a.tar.gz",
        [Member("up", kind="symlink", target=".."), file("up/outside/evil.txt", b"pwned")],
    )
    assert_refused(archive, dest, outside.parent, outside / "evil.txt")


@pytest.mark.parametrize("target", ["/etc", "<outside>"])
def test_tar_refuses_absolute_symlink(layout: tuple[Path, Path, Path], target: str) -> None:
    archives, dest, outside = layout
    target = str(outside) if target == "<outside>" else target
    archive = write_tar(
        archives / "a.tar.gz",
        [
            file("pkg-1.0/PKG-INFO", PKG_INFO),
            Member("pkg-1.0/link", kind="symlink", target=target),
            file("pkg-1.0/link/evil.txt", b"pwned"),
        ],
    )
    assert_refused(archive, dest, outside.parent, outside / "evil.txt")


def test_tar_refuses_symlink_chain_escaping(layout: tuple[Path, Path, Path]) -> None:
    # Each link looks harmless on its own; together pkg/a/b/c is the destination's parent.
    archives, dest, outside = layout
    archive = write_tar(
        archives / "a.tar.gz",
        [
            Member("pkg/a", kind="symlink", target="."),
            Member("pkg/a/b", kind="symlink", target=".."),
            Member("pkg/a/b/c", kind="symlink", target=".."),
            file("pkg/a/b/c/outside/evil.txt", b"pwned"),
        ],
    )
    assert_refused(archive, dest, outside.parent, outside / "evil.txt")


@pytest.mark.parametrize("target", ["../outside/secret", "pkg-1.0/../../outside/secret", "<abs>"])
def test_tar_refuses_hard_link_outside(layout: tuple[Path, Path, Path], target: str) -> None:
    archives, dest, outside = layout
    secret = outside / "secret"
    # dest is <root>/work/dest, so the link target is relative to dest.
    target = {
        "../outside/secret": "../../outside/secret",
        "pkg-1.0/../../outside/secret": "pkg-1.0/../../../outside/secret",
        "<abs>": str(secret),
    }[target]
    archive = write_tar(
        archives / "a.tar.gz",
        [
            file("pkg-1.0/PKG-INFO", PKG_INFO),
            Member("pkg-1.0/stolen", kind="hardlink", target=target),
        ],
    )
    assert_refused(archive, dest, outside.parent)


@pytest.mark.parametrize("kind", ["chr", "blk", "fifo"])
def test_tar_refuses_special_files(layout: tuple[Path, Path, Path], kind: str) -> None:
    archives, dest, outside = layout
    archive = write_tar(
        archives / "a.tar.gz",
        [file("pkg-1.0/PKG-INFO", PKG_INFO), Member("pkg-1.0/dev", kind=kind)],
    )
    assert_refused(archive, dest, outside.parent)


@pytest.mark.parametrize("target", ["../../outside", "/etc", "src"])
def test_zip_refuses_symlinks(layout: tuple[Path, Path, Path], target: str) -> None:
    archives, dest, outside = layout
    archive = write_zip(
        archives / "a.zip",
        [
            file("pkg-1.0/PKG-INFO", PKG_INFO),
            Member("pkg-1.0/link", kind="symlink", target=target),
            file("pkg-1.0/link/evil.txt", b"pwned"),
        ],
    )
    assert_refused(archive, dest, outside.parent, outside / "evil.txt")


def test_one_bad_member_refuses_the_whole_tar(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, outside = layout
    archive = write_tar(
        archives / "a.tar.gz",
        [*GOOD_MEMBERS, file("../evil.txt"), file("pkg-1.0/after.txt")],
    )
    assert_refused(archive, dest, outside.parent, outside.parent / "work" / "evil.txt")


def test_one_bad_member_refuses_the_whole_zip(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, outside = layout
    archive = write_zip(archives / "a.zip", [*GOOD_MEMBERS, file("../evil.txt")])
    assert_refused(archive, dest, outside.parent, outside.parent / "work" / "evil.txt")


def test_refused_archive_removes_preexisting_destination(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    dest.mkdir(parents=True)
    (dest / "stale").write_text("old")
    archive = write_tar(archives / "a.tar.gz", [file("/abs.txt")])
    with pytest.raises(UnsafeArchiveError):
        unpack(archive, dest)
    assert not dest.exists()


# -- corrupt archives -------------------------------------------------------------------


def good_tar_bytes(tmp: Path) -> bytes:
    return write_tar(tmp / "scratch.tar.gz", GOOD_MEMBERS).read_bytes()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("pkg-1.0.tar.gz", "garbage"),
        ("pkg-1.0.tar.gz", "empty"),
        ("pkg-1.0.tar.gz", "truncated"),
        ("pkg-1.0.tar.gz", "zip-named-tar"),
        ("pkg-1.0.zip", "garbage"),
        ("pkg-1.0.zip", "empty"),
        ("pkg-1.0.zip", "truncated"),
        ("pkg-1.0.zip", "tar-named-zip"),
    ],
)
def test_corrupt_archive_is_refused(
    layout: tuple[Path, Path, Path], tmp_path: Path, name: str, make: str
) -> None:
    archives, dest, outside = layout
    good_zip = write_zip(tmp_path / "scratch.zip", GOOD_MEMBERS).read_bytes()
    good_tar = good_tar_bytes(tmp_path)
    good = good_zip if name.endswith(".zip") else good_tar
    content = {
        "garbage": b"this is not an archive at all\n" * 50,
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "zip-named-tar": good_zip,
        "tar-named-zip": good_tar,
    }[make]
    archive = archives / name
    archive.write_bytes(content)
    assert_refused(archive, dest, outside.parent)


def test_corrupted_gzip_payload_is_refused(layout: tuple[Path, Path, Path]) -> None:
    archives, dest, _ = layout
    payload = random.Random(0).randbytes(64 * 1024)  # incompressible: stored as is
    archive = write_tar(
        archives / "pkg-1.0.tar.gz",
        [file("pkg-1.0/PKG-INFO", PKG_INFO), file("pkg-1.0/blob", payload)],
    )
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError):
        unpack(archive, dest)


# -- read_member ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_read_member_returns_top_level_pkg_info(tmp_path: Path, suffix: str) -> None:
    members = [
        file("pkg-1.0/sub/PKG-INFO", b"nested"),
        file("pkg-1.0/PKG-INFO", PKG_INFO),
        file("pkg-1.0/setup.py", b""),
    ]
    path = tmp_path / f"pkg-1.0{suffix}"
    archive = write_tar(path, members) if suffix == ".tar.gz" else write_zip(path, members)
    assert read_member(archive, "PKG-INFO") == PKG_INFO
    assert read_member(archive, "setup.py") == b""


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_read_member_absent_returns_none(tmp_path: Path, suffix: str) -> None:
    members = [
        file("pkg-1.0/setup.py", b""),
        file("pkg-1.0/sub/PKG-INFO", b"nested only"),
        file("PKG-INFO", b"at the root, not in the top directory"),
    ]
    path = tmp_path / f"pkg-1.0{suffix}"
    archive = write_tar(path, members) if suffix == ".tar.gz" else write_zip(path, members)
    assert read_member(archive, "PKG-INFO") is None


def test_read_member_ignores_non_file_tar_members(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "pkg-1.0.tar.gz",
        [
            Member("pkg-1.0/PKG-INFO", kind="symlink", target="/etc/passwd"),
            file("pkg-1.0/setup.py", b""),
        ],
    )
    assert read_member(archive, "PKG-INFO") is None


def test_read_member_does_not_unpack(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "pkg-1.0.tar.gz", GOOD_MEMBERS)
    before = snapshot(tmp_path)
    assert read_member(archive, "PKG-INFO") == PKG_INFO
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_read_member_corrupt_archive_raises(tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / f"pkg-1.0{suffix}"
    archive.write_bytes(b"garbage" * 100)
    with pytest.raises(UnsafeArchiveError) as info:
        read_member(archive, "PKG-INFO")
    assert archive.name in info.value.message


# -- bounds: decompression bombs are refused before anything is written ----------------

BOMB_SIZE = 64 * MiB


def write_bomb(path: Path) -> Path:
    """``bomb-1.0/zeros``: 64 MiB of zeros, a few tens of KiB once compressed."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("bomb-1.0/PKG-INFO", PKG_INFO)
            zf.writestr("bomb-1.0/zeros", bytes(BOMB_SIZE))
        return path
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bomb-1.0/zeros")
        info.size = BOMB_SIZE
        tar.addfile(info, io.BytesIO(bytes(BOMB_SIZE)))
    return path


@pytest.mark.parametrize("name", ["bomb-1.0.tar.gz", "bomb-1.0.zip"])
def test_a_bomb_is_refused_by_its_ratio(tmp_path: Path, name: str) -> None:
    archive = write_bomb(tmp_path / name)
    assert archive.stat().st_size < 200 * 1024
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveSizeError) as caught:
        unpack(archive, dest, UnpackLimits(max_ratio=100))
    assert caught.value.message.startswith(f"{name}: unpacks to more than 100 times its own ")
    assert "(--max-unpack-ratio): a decompression bomb" in caught.value.message
    assert not dest.exists()  # nothing was written, so nothing is left


@pytest.mark.parametrize("name", ["bomb-1.0.tar.gz", "bomb-1.0.zip"])
def test_a_bomb_is_refused_by_the_total_size(tmp_path: Path, name: str) -> None:
    archive = write_bomb(tmp_path / name)
    with pytest.raises(UnsafeArchiveSizeError) as caught:
        unpack(archive, tmp_path / "dest", UnpackLimits(max_size=16 * MiB, max_ratio=1e9))
    assert caught.value.message == (
        f"{name}: unpacks to more than 16.0 MiB (--max-unpack-size); refused before "
        "anything was written. If the source is genuinely that large, raise "
        "--max-unpack-size"
    )


def test_a_plain_tar_is_bounded_by_its_headers(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "big-1.0.tar", [file("big-1.0/a", bytes(3 * MiB))], mode="w")
    with pytest.raises(UnsafeArchiveSizeError):
        unpack(archive, tmp_path / "dest", UnpackLimits(max_size=2 * MiB))
    assert unpack(archive, tmp_path / "dest", UnpackLimits(max_size=4 * MiB)).name == "big-1.0"


def test_the_default_limits_let_a_bomb_like_archive_within_them_pass(tmp_path: Path) -> None:
    archive = write_bomb(tmp_path / "bomb-1.0.tar.gz")
    root = unpack(archive, tmp_path / "dest", UnpackLimits(max_ratio=1e6))
    assert (root / "zeros").stat().st_size == BOMB_SIZE


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024), ("64K", 64 << 10), ("500M", 500 << 20), ("8G", 8 << 30), ("1.5GiB", 3 << 29)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1M", "0", "lots"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        parse_size(text)
