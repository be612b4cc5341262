"""Per-package overhead: shared build environments, the hash cache, the profile."""

from __future__ import annotations

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
