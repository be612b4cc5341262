"""The private store of built wheels: records found once, a wheel's METADATA read once
while the file is unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest.mock import patch

from bootstrapper.records import BuildRecord
from bootstrapper.store import WheelStore
from bootstrapper.wheelfile import read_wheel_metadata

from .support import Project, wheel_of


def test_metadata_is_read_again_when_the_wheel_changes(tmp_path: Path) -> None:
    store = WheelStore(tmp_path / "built", tmp_path / "wheels")
    wheel = tmp_path / "lib-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel_of(Project("lib", "1.0"), requires=["one"]))
    data, parsed = store.metadata(wheel)
    assert b"Requires-Dist: one" in data
    assert [str(r) for r in parsed.requires_dist] == ["one"]
    assert store.metadata(wheel) == (data, parsed)

    # Replaced by another build of the same name (a new file), then rewritten in place.
    replacement = tmp_path / "replacement.whl"
    replacement.write_bytes(wheel_of(Project("lib", "1.0"), requires=["two"]))
    replacement.replace(wheel)
    assert [str(r) for r in store.metadata(wheel)[1].requires_dist] == ["two"]
    wheel.write_bytes(wheel_of(Project("lib", "1.0"), requires=["three"]))
    assert [str(r) for r in store.metadata(wheel)[1].requires_dist] == ["three"]


def _keeping(tmp_path: Path) -> WheelStore:
    """A store (a new one: as the next run makes) keeping METADATA in ``tmp_path/metadata``."""
    return WheelStore(tmp_path / "built", tmp_path / "wheels", metadata_dir=tmp_path / "metadata")


def test_a_wheels_metadata_is_kept_by_its_digest_for_the_next_run(tmp_path: Path) -> None:
    wheel = tmp_path / "lib-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel_of(Project("lib", "1.0"), requires=["one"]))
    data, _ = _keeping(tmp_path).metadata(wheel)
    (kept,) = (tmp_path / "metadata").iterdir()
    assert kept.name == f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}.metadata"

    # The next run (a new store) takes it from there: the zip is not opened again.
    with patch("bootstrapper.store.read_wheel_metadata", side_effect=AssertionError("read")):
        again, parsed = _keeping(tmp_path).metadata(wheel)
    assert again == data
    assert [str(r) for r in parsed.requires_dist] == ["one"]


def test_kept_metadata_that_is_not_whole_is_read_from_the_wheel_again(tmp_path: Path) -> None:
    wheel = tmp_path / "lib-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel_of(Project("lib", "1.0"), requires=["one", "two"]))
    data, _ = _keeping(tmp_path).metadata(wheel)
    (kept,) = (tmp_path / "metadata").iterdir()
    whole = kept.read_bytes()
    # Cut short after a crash (the second Requires-Dist lost), or emptied.
    for damaged in (whole[: whole.index(b"Requires-Dist: two")], b""):
        kept.write_bytes(damaged)
        again, parsed = _keeping(tmp_path).metadata(wheel)
        assert again == data
        assert [str(r) for r in parsed.requires_dist] == ["one", "two"]
        assert kept.read_bytes() == whole  # kept whole again


def test_a_stored_wheels_metadata_is_kept_from_the_build(tmp_path: Path) -> None:
    built = tmp_path / "scratch" / "lib-1.0-py3-none-any.whl"
    built.parent.mkdir()
    built.write_bytes(wheel_of(Project("lib", "1.0"), requires=["one"]))
    digest = hashlib.sha256(built.read_bytes()).hexdigest()
    record = BuildRecord(
        name="lib",
        version="1.0",
        wheel=built.name,
        wheel_sha256=digest,
        sdist="lib-1.0.tar.gz",
        sdist_sha256="0" * 64,
        source_url="",
        build_backend="in-tree",
        build_system_requires=(),
        backend_requires=(),
        discovery_env=(),
        build_env=(),
        python="3.11",
    )
    store = _keeping(tmp_path)
    (tmp_path / "built").mkdir()
    read = read_wheel_metadata(built)
    stored = store.add(built, record, metadata=read)
    # Publishing (and the next run) take it from the kept copy: the zip is not opened.
    with patch("bootstrapper.store.read_wheel_metadata", side_effect=AssertionError("read")):
        data, parsed = store.metadata(stored)
    assert data == read
    assert [str(r) for r in parsed.requires_dist] == ["one"]
