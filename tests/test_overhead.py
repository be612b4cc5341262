"""Per-package overhead: shared build environments, the hash cache, the profile."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import isolation
from bootstrapper.fsutil import HashCache, write_if_changed

from .support import FixtureIndex, Project

needs_view = pytest.mark.skipif(
    isolation.readonly_view_problem() is not None,
    reason=f"no read-only view here: {isolation.readonly_view_problem()}",
)


def _env_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "== build environment" in line]


def _shared_envs(output: Path) -> list[Path]:
    return sorted((output / ".work" / "envs" / ".shared").iterdir())


@needs_view
def test_packages_with_the_same_build_set_share_one_environment(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    sdists = tmp_path / "sdists"
    # tool-a and tool-b are built with nothing; user-1 and user-2 both with tool-a.
    index.add(Project("tool-a"), sdists)
    index.add(Project("tool-b"), sdists)
    for name in ("user-1", "user-2"):
        index.add(Project(name, build_requires=["tool-a"], backend="tool_a"), sdists)
    index.add(Project("user-3", build_requires=["tool-b"], backend="tool_b"), sdists)
    backend = (Path(__file__).parent / "fixtures" / "fixture_backend.py").read_text()
    for name in ("tool-a", "tool-b"):
        # A package whose module is a copy of the fixture backend.
        index.projects[name].clear()
        module = name.replace("-", "_")
        project = Project(name, tool={"modules": [module]}, files={f"src/{module}.py": backend})
        index.add(project, sdists)

    run = bootstrap("--keep-work", "user-1", "user-2", "user-3")

    assert run.code == 0, run.stderr
    logs = run.output / "logs"
    used = {
        name: {line.split()[3].rstrip(":") for line in _env_lines(logs / f"{name}-1.0.log")}
        for name in ("tool-a", "tool-b", "user-1", "user-2", "user-3")
    }
    # Discovery and build of every package, and the two users of tool-a: one env each.
    assert all(len(envs) == 1 for envs in used.values()), used
    assert used["user-1"] == used["user-2"]
    assert used["user-1"] != used["user-3"]
    assert used["tool-a"] == used["tool-b"]  # both built with nothing
    assert len(used["tool-a"] | used["user-1"] | used["user-3"]) == 3
    assert [p.name for p in _shared_envs(run.output)] == sorted(
        used["tool-a"] | used["user-1"] | used["user-3"]
    )


@needs_view
def test_a_build_cannot_change_a_shared_environment(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    index.add(Project("writer", tool={"try-writes": str(elsewhere)}), tmp_path / "sdists")
    index.add(Project("reader"), tmp_path / "sdists")

    run = bootstrap("--keep-work", "writer", "reader")

    assert run.code == 0, run.stderr
    wheel = run.output / "wheels" / "writer-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        seen = json.loads(zf.read("writer_writes.json"))
    assert seen["build-env"] == "Read-only file system"
    [env] = _shared_envs(run.output)
    assert not (env / "planted.txt").exists()
    assert not list(env.rglob("planted.txt"))


@needs_view
def test_shared_environments_are_removed_after_the_run_unless_work_is_kept(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("one"), tmp_path / "sdists")
    index.add(Project("two"), tmp_path / "sdists")

    run = bootstrap("one", "two")

    assert run.code == 0, run.stderr
    shared = run.output / ".work" / "envs" / ".shared"
    assert not shared.exists() or not list(shared.iterdir())


def test_without_the_view_each_package_has_its_own_environment(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("one"), tmp_path / "sdists")
    index.add(Project("two"), tmp_path / "sdists")

    run = bootstrap("--no-filesystem-isolation", "--keep-work", "one", "two")

    assert run.code == 0, run.stderr
    envs = run.output / ".work" / "envs"
    assert sorted(p.name for p in envs.iterdir() if not p.name.startswith(".")) == [
        "one-1.0",
        "two-1.0",
    ]


def test_hash_cache_answers_again_until_size_or_mtime_change(tmp_path: Path) -> None:
    cache = HashCache()
    path = tmp_path / "file"
    path.write_bytes(b"one")
    first = cache.sha256(path)
    assert cache.sha256(path) == first
    stat = path.stat()

    # Same size, other bytes, the mtime put back: the ctime still tells.
    path.write_bytes(b"two")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = cache.sha256(path)
    assert second != first

    # Another size.
    path.write_bytes(b"three")
    assert cache.sha256(path) not in (first, second)

    # Another mtime, same bytes: hashed again, same answer.
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert cache.sha256(path) == cache.sha256(path)


def test_hash_cache_does_not_hash_an_unchanged_file_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bootstrapper import fsutil

    calls: list[Path] = []
    real = fsutil.hash_file

    def counting(path: Path, algorithm: str = "sha256") -> str:
        calls.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(fsutil, "hash_file", counting)
    cache = HashCache()
    path = tmp_path / "file"
    path.write_bytes(b"data")
    cache.sha256(path)
    cache.sha256(path)
    assert calls == [path]
    path.write_bytes(b"other data")
    cache.sha256(path)
    assert calls == [path, path]


def counting_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files whose bytes are read to hash them, from now on (by the cache, or by a
    module that hashes directly)."""
    from bootstrapper import fsutil, sources

    calls: list[Path] = []
    real = fsutil.hash_file

    def counting(path: Path, algorithm: str = "sha256") -> str:
        calls.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(fsutil, "hash_file", counting)
    monkeypatch.setattr(sources, "hash_file", counting)
    return calls


def test_hashes_kept_for_the_next_run_are_used_only_while_the_file_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / ".work" / "hashes.json"
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"one")
    two.write_bytes(b"two")
    first = HashCache()
    with first.kept_in(kept):
        digests = {path: first.sha256(path) for path in (one, two)}
    assert kept.is_file()

    calls = counting_hashes(monkeypatch)
    later = HashCache()  # the next run's process
    with later.kept_in(kept):
        assert later.sha256(one) == digests[one]
        assert calls == []
        # Other bytes of the same size, the mtime put back: read again.
        stat = two.stat()
        two.write_bytes(b"TWO")
        os.utime(two, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert later.sha256(two) != digests[two]
        assert calls == [two]
    # Only what that run used is kept: "one" as it was, "two" as it is now.
    entries = json.loads(kept.read_text())["sha256"]
    assert sorted(entry[1] for entry in entries) == sorted(p.stat().st_ino for p in (one, two))
    assert sorted(entry[-1] for entry in entries) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (one, two)
    )


def test_a_hard_link_made_by_atomic_copy_keeps_what_was_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing links each wheel into DIR/wheels; that changes the file's ctime, not
    its bytes, and both names are known without reading them again."""
    from bootstrapper import fsutil

    monkeypatch.setattr(fsutil, "HASHES", HashCache())
    src, dest = tmp_path / "built.whl", tmp_path / "wheels" / "built.whl"
    src.write_bytes(b"wheel bytes")
    digest = fsutil.sha256_file(src)
    calls = counting_hashes(monkeypatch)
    fsutil.atomic_copy(src, dest)
    assert src.stat().st_ino == dest.stat().st_ino
    assert fsutil.sha256_file(dest) == fsutil.sha256_file(src) == digest
    assert calls == []


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"schema": 1}',
        '{"schema": 1, "sha256": [[1, 2, 3, 4, 5, "not-a-digest"]]}',
        '{"schema": 1, "sha256": [[1, 2]]}',
    ],
)
def test_an_unreadable_hash_file_is_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    kept = tmp_path / "hashes.json"
    kept.write_text(content)
    path = tmp_path / "file"
    path.write_bytes(b"data")
    calls = counting_hashes(monkeypatch)
    cache = HashCache()
    with cache.kept_in(kept):
        assert cache.sha256(path) == hashlib.sha256(b"data").hexdigest()
    assert calls == [path]
    assert json.loads(kept.read_text())["sha256"][0][-1] == hashlib.sha256(b"data").hexdigest()


def test_a_rerun_reads_no_stored_wheel_or_source_again(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the last run hashed (or wrote, hashing it as it went: downloads, stored
    wheels) is known to the next one (another process: another cache), as long as the
    files are unchanged; a changed wheel is still found out."""
    from bootstrapper import fsutil

    from .conftest import standard_tree

    index.add_all(standard_tree(), tmp_path / "sdists")
    assert bootstrap("app").code == 0
    assert (tmp_path / "out" / ".work" / "hashes.json").is_file()
    for _ in range(2):
        monkeypatch.setattr(fsutil, "HASHES", HashCache())
        calls = counting_hashes(monkeypatch)
        again = bootstrap("app")
        assert again.code == 0, again.stderr
        assert "7 reused" in again.stderr
        assert calls == []

    wheel = tmp_path / "out" / ".work" / "built" / "libone-1.4-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[-30] ^= 0xFF  # same size, other bytes
    stat = wheel.stat()
    wheel.write_bytes(bytes(data))
    os.utime(wheel, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(fsutil, "HASHES", HashCache())
    third = bootstrap("app")
    assert third.code == 0, third.stderr
    assert "1 built, 6 reused" in third.stderr
    assert wheel in calls


def test_write_if_changed_leaves_the_same_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    assert write_if_changed(path, b"one")
    before = path.stat()
    assert not write_if_changed(path, b"one")
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert write_if_changed(path, b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_ino != before.st_ino  # replaced by a rename, not written in place
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_profile_is_written_with_its_sections(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("app", dependencies=["lib"]), tmp_path / "sdists")
    index.add(Project("lib"), tmp_path / "sdists")

    run = bootstrap("--profile", "app")

    assert run.code == 0, run.stderr
    profile = json.loads((run.output / "logs" / "profile.json").read_text())
    assert profile["schema"] == 1
    assert profile["wall_seconds"] > 0
    assert set(profile["cpu_seconds"]) == {"self", "children"}
    sections = profile["sections"]
    for section in (
        "index pages",
        "downloads",
        "unpacking",
        "environments",
        "hook get_requires_for_build_wheel",
        "hook build_wheel",
        "finishing",
        "publishing",
    ):
        assert section in sections, section
        assert sections[section]["calls"] >= 1
    assert sections["hook build_wheel"]["calls"] == 2
    for entry in sections.values():  # where in the run: within it, in order
        assert 0 <= entry["first"] <= entry["last"] <= profile["wall_seconds"]
    # Publishing follows the builds it publishes.
    assert sections["publishing"]["first"] >= sections["hook build_wheel"]["last"]
    assert "profile:" in run.stderr
    assert "hook build_wheel" in run.stderr


def test_packages_with_the_same_build_requirements_share_one_resolution(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """On a re-run every package's pipeline starts at once: the set of their common
    build requirements is resolved once, not once per package."""
    names = [f"lib{i}" for i in range(6)]
    index.add(Project("app", dependencies=names), tmp_path / "sdists")
    for name in names:
        index.add(Project(name), tmp_path / "sdists")
    assert bootstrap("app").code == 0

    run = bootstrap("--profile", "app")

    assert run.code == 0, run.stderr
    assert "7 reused" in run.stderr
    sections = json.loads((run.output / "logs" / "profile.json").read_text())["sections"]
    # The top-level set, and the (empty) build requirements of all seven packages.
    assert sections["resolution (with waits)"]["calls"] == 2


def test_no_profile_without_the_option(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add(Project("lib"), tmp_path / "sdists")

    run = bootstrap("lib")

    assert run.code == 0, run.stderr
    assert not (run.output / "logs" / "profile.json").exists()


def test_files_written_through_replacing_are_readable_by_others(tmp_path: Path) -> None:
    """Published wheels and pages are served by web servers running as other users."""
    from bootstrapper.fsutil import replacing

    target = tmp_path / "wheel.whl"
    # As wheel normalizing and editing do: a zip written to the temporary path.
    with replacing(target) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("x", "y")
    assert target.stat().st_mode & 0o777 == 0o644
