"""The private store of built wheels: records found once, a wheel's METADATA read once
while the file is unchanged."""

from __future__ import annotations

from pathlib import Path

from bootstrapper.store import WheelStore

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
