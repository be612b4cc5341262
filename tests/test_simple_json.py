"""The PEP 691 JSON pages (with the PEP 700 fields) beside the HTML pages of DIR/simple and
DIR/sdists: what they say, that bootstrapper's own index client reads them as the HTML,
and that a file's upload time is when it was first published, whatever happens later."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from bootstrapper.index import parse_html_page, parse_json_page
from bootstrapper.publish import IndexWriter, SourceIndexWriter
from bootstrapper.simple_json import format_upload_time
from bootstrapper.wheelfile import read_wheel_metadata

from .support import Project, wheel_of


def built(tmp: Path, name: str, version: str, *requires: str, python: str | None = None) -> Path:
    tmp.mkdir(exist_ok=True)
    wheel = tmp / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
    lines += [f"Requires-Dist: {r}\n" for r in requires]
    lines += [f"Requires-Python: {python}\n"] if python else []
    metadata = "".join(lines).encode() + b"\n"
    wheel.write_bytes(wheel_of(Project(name, version), metadata=metadata))
    return wheel


def publish(out: Path, *wheels: Path) -> None:
    (out / "wheels").mkdir(parents=True, exist_ok=True)
    IndexWriter(out).publish((w, read_wheel_metadata(w), None) for w in wheels)


def page(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_project_and_root_pages_carry_the_pep_691_and_700_fields(tmp_path: Path) -> None:
    out = tmp_path / "out"
    wheels = [
        built(tmp_path / "b", "My.Lib", "1.0", python=">=3.8"),
        built(tmp_path / "b", "My.Lib", "1.1rc1"),
        built(tmp_path / "b", "app", "2.0", "my.lib"),
    ]
    before = datetime.now(UTC).replace(microsecond=0)
    publish(out, *wheels)
    after = datetime.now(UTC)

    assert page(out / "simple" / "index.json") == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "app"}, {"name": "my-lib"}],
    }
    lib = page(out / "simple" / "my-lib" / "index.json")
    assert lib["meta"] == {"api-version": "1.1"}
    assert lib["name"] == "my-lib"
    assert lib["versions"] == ["1.0", "1.1rc1"]
    first = lib["files"][0]
    wheel = out / "wheels" / wheels[0].name
    metadata = (out / "wheels" / (wheel.name + ".metadata")).read_bytes()
    assert first["filename"] == wheel.name
    assert first["url"] == f"../../wheels/{wheel.name}"
    assert first["hashes"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    assert first["requires-python"] == ">=3.8"
    assert first["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert first["data-dist-info-metadata"] == first["core-metadata"]
    assert first["yanked"] is False
    assert first["size"] == wheel.stat().st_size
    uploaded = datetime.fromisoformat(first["upload-time"])
    assert first["upload-time"].endswith("Z")
    assert before <= uploaded <= after
    assert "requires-python" not in lib["files"][1]


def test_the_index_client_reads_the_json_page_as_it_reads_the_html_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    publish(
        out,
        built(tmp_path / "b", "lib", "1.0", python=">=3.9"),
        built(tmp_path / "b", "lib", "2.0"),
    )
    url = "http://index.example/simple/lib/"
    name = canonicalize_name("lib")
    from_json = parse_json_page(name, url, (out / "simple" / "lib" / "index.json").read_bytes())
    from_html = parse_html_page(name, url, (out / "simple" / "lib" / "index.html").read_bytes())
    assert from_json.files == from_html.files  # file name, URL, requires-python, yanked
    for j, h in zip(from_json.files, from_html.files, strict=True):
        assert j.url == f"http://index.example/wheels/{j.filename}"
        assert j.hashes == h.hashes and j.metadata_hashes == h.metadata_hashes
        assert j.upload_time is not None and h.upload_time is None


def test_upload_times_stay_what_they_were_when_first_published(tmp_path: Path) -> None:
    out, tmp = tmp_path / "out", tmp_path / "b"
    old = built(tmp, "lib", "1.0")
    publish(out, old)
    json_page = out / "simple" / "lib" / "index.json"
    first = page(json_page)["files"][0]["upload-time"]
    stamp = json_page.stat().st_mtime_ns

    time.sleep(0.01)
    publish(out, old)  # a re-run: nothing changed, nothing is rewritten
    assert json_page.stat().st_mtime_ns == stamp

    time.sleep(0.01)
    publish(out, old, built(tmp, "lib", "1.1"))  # a new release rewrites the page ...
    files = {f["filename"]: f["upload-time"] for f in page(json_page)["files"]}
    assert files["lib-1.0-py3-none-any.whl"] == first  # ... but keeps the old file's time
    assert files["lib-1.1-py3-none-any.whl"] > first
    assert page(json_page)["versions"] == ["1.0", "1.1"]

    # A copy of the directory that lost the files' times (cp without -p) keeps them too:
    # the page says when each file was first listed.
    for metadata in (out / "wheels").glob("*.metadata"):
        os.utime(metadata, (0, 0))
    publish(out, old, built(tmp, "lib", "1.2"))
    again = {f["filename"]: f["upload-time"] for f in page(json_page)["files"]}
    assert again["lib-1.0-py3-none-any.whl"] == first
    assert again["lib-1.1-py3-none-any.whl"] == files["lib-1.1-py3-none-any.whl"]


def test_a_lost_json_page_is_made_again_with_the_time_of_first_publication(
    tmp_path: Path,
) -> None:
    # An output directory from before the JSON pages: its next run writes them, and the
    # wheels already there keep the time their metadata file was published.
    out = tmp_path / "out"
    wheel = built(tmp_path / "b", "lib", "1.0")
    publish(out, wheel)
    metadata = out / "wheels" / (wheel.name + ".metadata")
    published = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    os.utime(metadata, (published.timestamp(), published.timestamp()))
    (out / "simple" / "lib" / "index.json").unlink()
    (out / "simple" / "index.json").unlink()

    publish(out, wheel)
    entry = page(out / "simple" / "lib" / "index.json")["files"][0]
    assert entry["upload-time"] == "2026-01-02T03:04:05.678000Z"
    assert (out / "simple" / "index.json").is_file()


def test_a_rebuilt_wheel_of_the_same_name_is_a_new_upload(tmp_path: Path) -> None:
    out = tmp_path / "out"
    publish(out, built(tmp_path / "b", "lib", "1.0"))
    first = page(out / "simple" / "lib" / "index.json")["files"][0]
    time.sleep(0.01)
    publish(out, built(tmp_path / "c", "lib", "1.0", "dep"))  # other bytes, same name
    second = page(out / "simple" / "lib" / "index.json")["files"][0]
    assert second["hashes"] != first["hashes"]
    assert second["upload-time"] > first["upload-time"]


def test_the_source_index_has_json_pages_too(tmp_path: Path) -> None:
    sdists = tmp_path / "sdists"
    archive = Project("Old-Name", "2.0").sdist(sdists)
    SourceIndexWriter(sdists).update([canonicalize_name("old-name")])
    document = page(sdists / "old-name" / "index.json")
    assert document["versions"] == ["2.0"]
    [entry] = document["files"]
    assert entry["filename"] == archive.name
    assert entry["url"] == f"../{archive.name}"
    assert entry["hashes"] == {"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    assert entry["size"] == archive.stat().st_size
    assert "core-metadata" not in entry
    mtime = datetime.fromtimestamp(archive.stat().st_mtime, UTC)
    assert entry["upload-time"] == format_upload_time(mtime)
    assert page(sdists / "index.json")["projects"] == [{"name": "old-name"}]


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 5, 1, 12, 0, tzinfo=UTC), "2026-05-01T12:00:00.000000Z"),
        (datetime.fromisoformat("2026-05-01T14:00:00.5+02:00"), "2026-05-01T12:00:00.500000Z"),
    ],
)
def test_upload_times_are_utc_with_a_z(moment: datetime, text: str) -> None:
    assert format_upload_time(moment) == text
    assert datetime.fromisoformat(text) == moment
