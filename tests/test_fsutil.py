"""Writing many files at once: synced together, renamed into place only when all are on
the disk; and the writer threads that share a batch."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bootstrapper import fsutil
from bootstrapper.fsutil import (
    atomic_copy,
    atomic_write_text,
    each_at_once,
    synced_together,
    write_text_if_changed,
)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*.tmp"))


def test_files_written_together_appear_only_when_the_batch_ends(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("old")
    source = tmp_path / "source.bin"
    source.write_bytes(b"wheel")
    with synced_together():
        atomic_write_text(tmp_path / "old.txt", "new")
        atomic_write_text(tmp_path / "sub" / "page.html", "page")  # a new directory too
        atomic_copy(source, tmp_path / "copy.bin")
        assert (tmp_path / "old.txt").read_text() == "old"
        assert not (tmp_path / "sub" / "page.html").exists()
        # A copy is in place at once: a link is never half written, and the hash cache
        # must see the ctime its rename gives the file.
        assert (tmp_path / "copy.bin").read_bytes() == b"wheel"
    assert (tmp_path / "old.txt").read_text() == "new"
    assert (tmp_path / "sub" / "page.html").read_text() == "page"
    assert (tmp_path / "copy.bin").read_bytes() == b"wheel"
    assert (tmp_path / "sub" / "page.html").stat().st_mode & 0o777 == 0o644
    assert _leftovers(tmp_path) == []


def test_a_failed_batch_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), synced_together():
        atomic_write_text(tmp_path / "old.txt", "new")
        atomic_write_text(tmp_path / "fresh.txt", "fresh")
        raise RuntimeError("the run was interrupted")
    assert (tmp_path / "old.txt").read_text() == "old"
    assert not (tmp_path / "fresh.txt").exists()
    assert _leftovers(tmp_path) == []


def test_writer_threads_write_into_their_callers_batch_only(tmp_path: Path) -> None:
    names = [f"page-{i}.html" for i in range(20)]
    seen_during: list[bool] = []
    with synced_together():
        each_at_once(lambda name: atomic_write_text(tmp_path / name, name), names)
        seen_during.extend((tmp_path / name).exists() for name in names)
    assert seen_during == [False] * 20
    assert [(tmp_path / n).read_text() for n in names] == names
    # Outside a batch, a worker's write is in place when it returns.
    each_at_once(lambda name: atomic_write_text(tmp_path / "now" / name, name), names[:4])
    assert all((tmp_path / "now" / n).is_file() for n in names[:4])


def test_another_thread_is_not_drawn_into_a_batch(tmp_path: Path) -> None:
    """A build thread writing its record while publishing runs must not wait for it."""
    outside_wrote = threading.Event()

    def elsewhere() -> None:
        atomic_write_text(tmp_path / "record.json", "{}")
        outside_wrote.set()

    with synced_together():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert outside_wrote.is_set()
        assert (tmp_path / "record.json").read_text() == "{}"


def test_each_at_once_keeps_order_and_raises_the_first_failure_after_all_ended(
    tmp_path: Path,
) -> None:
    assert each_at_once(lambda n: n * n, range(10)) == [n * n for n in range(10)]
    done: list[int] = []

    def work(n: int) -> int:
        if n in (3, 7):
            raise ValueError(f"item {n}")
        done.append(n)
        return n

    with pytest.raises(ValueError, match="item 3"):
        each_at_once(work, range(10))
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 8, 9]


@pytest.mark.parametrize("syncfs", ["missing", "refusing"])
def test_without_a_working_syncfs_each_file_is_synced(
    syncfs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    refusing = lambda fd: -1  # noqa: E731
    monkeypatch.setattr(fsutil, "_syncfs", lambda: None if syncfs == "missing" else refusing)
    with synced_together():
        for name in ("a", "b", "c"):
            write_text_if_changed(tmp_path / name, name)
    assert len(synced) == 3
    assert [(tmp_path / n).read_text() for n in "abc"] == ["a", "b", "c"]


def test_a_batch_syncs_once_per_file_system_where_syncfs_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = fsutil._syncfs()
    if real is None:
        pytest.skip("no syncfs in this C library")

    def counting(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(fsutil, "_syncfs", lambda: counting)
    with synced_together():
        for i in range(30):
            atomic_write_text(tmp_path / f"d{i % 5}" / f"f{i}", str(i))
    assert len(calls) == 1
    assert (tmp_path / "d4" / "f29").read_text() == "29"
