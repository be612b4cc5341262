"""An upstream wheel's METADATA read with HTTP range requests, when the index serves no
PEP 658 metadata: a few KB of the wheel, never the whole of it; a server that ignores
ranges, or a file that is no zip, falls back to the next source."""

from __future__ import annotations

import io
import logging
import struct
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import sys_tags
from packaging.utils import NormalizedName
from packaging.version import Version

from bootstrapper.candidates import Release, releases
from bootstrapper.errors import FetchError
from bootstrapper.http import ByteRange, HttpClient, RangeNotServedError
from bootstrapper.index import IndexClient
from bootstrapper.metadata import CoreMetadata, parse_metadata
from bootstrapper.metasource import MetadataOracle
from bootstrapper.remotezip import (
    TAIL_BYTES,
    RemoteZipError,
    find_end_record,
    read_remote_wheel_metadata,
)
from bootstrapper.sources import SourceStore

from .support import FixtureIndex, IndexFile, Project, wheel_of

METADATA = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: bar>=2\n\n"

# -- pure reading, over bytes in memory ----------------------------------------------


class InMemory:
    """A file served by ranges from memory, counting what was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[int | None, int]] = []

    def get_range(self, url: str, first: int | None, length: int) -> ByteRange:
        self.requests.append((first, length))
        start = max(0, len(self.data) - length) if first is None else first
        return ByteRange(start, self.data[start : start + length], len(self.data))


def make_zip(
    members: Sequence[tuple[str, bytes, int]], *, comment: bytes = b""
) -> bytes:  # (name, data, compress_type)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, method in members:
            zf.writestr(name, data, compress_type=method)
        zf.comment = comment
    return buffer.getvalue()


def as_zip64(data: bytes) -> bytes:
    """``data`` (a zip) with zip64 end records, and 0xFFFF.. in the classic one, as
    writers do for huge wheels."""
    at = data.rfind(b"PK\x05\x06")
    _, _, _, _, entries, size, offset, _ = struct.unpack_from("<4s4H2LH", data, at)
    zip64_end = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:at] + zip64_end + locator + end


PADDING = bytes(range(256)) * 2048  # 512 KiB, stored: a wheel much bigger than its tail


@pytest.mark.parametrize(
    "wheel",
    [
        pytest.param(
            make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_STORED)]), id="stored"
        ),
        pytest.param(
            make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED)]),
            id="deflated",
        ),
        pytest.param(
            make_zip(
                [
                    ("foo/blob.bin", PADDING, zipfile.ZIP_STORED),
                    ("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED),
                    ("foo-1.0.dist-info/RECORD", b"", zipfile.ZIP_DEFLATED),
                ]
            ),
            id="big-wheel",
        ),
        pytest.param(
            make_zip(
                [
                    ("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED),
                    ("foo/blob.bin", PADDING, zipfile.ZIP_STORED),
                ]
            ),
            id="metadata-first",
        ),
        pytest.param(
            make_zip(
                [
                    ("foo/blob.bin", PADDING, zipfile.ZIP_STORED),
                    ("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED),
                ]
                + [(f"foo/m{i:05}.py", b"", zipfile.ZIP_STORED) for i in range(2000)]
            ),
            id="directory-beyond-the-tail",
        ),
        pytest.param(
            as_zip64(
                make_zip(
                    [
                        ("foo/blob.bin", PADDING, zipfile.ZIP_STORED),
                        ("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED),
                    ]
                )
            ),
            id="zip64",
        ),
        pytest.param(
            make_zip(
                [("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED)],
                comment=b"PK\x05\x06 a comment that looks like an end record",
            ),
            id="comment",
        ),
        pytest.param(
            make_zip(
                [
                    ("bar-1.0.dist-info/METADATA", b"other", zipfile.ZIP_STORED),
                    ("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_STORED),
                ]
            ),
            id="two-dist-infos",
        ),
    ],
)
def test_metadata_read_by_ranges(wheel: bytes) -> None:
    if b"a comment" not in wheel:  # which fools Python's own zipfile
        assert zipfile.ZipFile(io.BytesIO(wheel)).read("foo-1.0.dist-info/METADATA") == METADATA
    source = InMemory(wheel)
    member = read_remote_wheel_metadata(source, "https://x/foo.whl", "foo-1.0-py3-none-any.whl")
    assert member.data == METADATA
    assert member.requests == len(source.requests) <= 3
    # Never more than the tail and the (small) central directory with what precedes it.
    assert member.fetched <= min(len(wheel), 2 * TAIL_BYTES + 150_000)


def test_a_small_wheel_is_read_in_one_request() -> None:
    source = InMemory(make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_DEFLATED)]))
    read_remote_wheel_metadata(source, "https://x/foo.whl", "foo-1.0-py3-none-any.whl")
    assert source.requests == [(None, TAIL_BYTES)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip at all" * 100, "no end of central directory record"),
        (make_zip([("foo/__init__.py", b"", zipfile.ZIP_STORED)]), "0 .dist-info/METADATA"),
        (
            make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_BZIP2)]),
            "compression method 12",
        ),
        # The central directory's CRC no longer matches the member.
        (
            make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_STORED)]).replace(
                b"bar>=2", b"bar>=3"
            ),
            "does not match its size and CRC",
        ),
        # An end record pointing past the end of the file.
        (
            make_zip([("foo-1.0.dist-info/METADATA", METADATA, zipfile.ZIP_STORED)])[:-6]
            + struct.pack("<LH", 0x7FFFFFFF, 0),
            "past the end",
        ),
    ],
)
def test_what_is_not_a_readable_wheel_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(RemoteZipError, match=message):
        read_remote_wheel_metadata(InMemory(data), "https://x/foo.whl", "foo-1.0-py3-none-any.whl")


def test_end_record_of_a_file_too_short() -> None:
    with pytest.raises(RemoteZipError):
        find_end_record(b"PK\x05\x06", 0)


# -- against a real local HTTP server ------------------------------------------------


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient() as client:
        yield client


def oracle_for(index: FixtureIndex, http: HttpClient, tmp_path: Path) -> MetadataOracle:
    client = IndexClient(index.url, http)
    sources = SourceStore(http, tmp_path / "downloads", tmp_path / "sdists")
    return MetadataOracle(client, sources, list(sys_tags()), ranges=http)


def release_of(index: FixtureIndex, http: HttpClient, name: str) -> Release:
    page = IndexClient(index.url, http).project_page(name)
    return releases(page, Version(".".join(map(str, sys.version_info[:3]))))[0]


class Builds:
    """The last resort, counted: a build that says what a built wheel would."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        self.built.append(str(release))
        text = f"Metadata-Version: 2.1\nName: {release.name}\nVersion: {release.version}\n\n"
        return parse_metadata(text.encode(), "built")


def publish(index: FixtureIndex, tmp_path: Path, project: Project, wheel: bytes) -> str:
    """``project`` as an sdist (whose PKG-INFO is not static) and a wheel, without PEP 658
    metadata; the wheel's file name."""
    index.add(project, tmp_path / "sdists")
    filename = f"{project.name}-{project.version}-py3-none-any.whl"
    index.add_file(project.name, IndexFile(filename, wheel))
    return filename


def test_metadata_is_read_from_the_wheel_by_ranges(
    index: FixtureIndex, http: HttpClient, tmp_path: Path
) -> None:
    project = Project("bigwheel", "1.0", dependencies=["dep>=1"])
    wheel = wheel_of(project, padding=4 * 1024 * 1024)
    filename = publish(index, tmp_path, project, wheel)
    oracle = oracle_for(index, http, tmp_path)
    builds = Builds()

    metadata = oracle.metadata(release_of(index, http, "bigwheel"), (), builds)

    assert [str(r) for r in metadata.requires_dist] == ["dep>=1"]
    assert builds.built == []
    assert oracle.origin(NormalizedName("bigwheel"), Version("1.0")) == (
        "upstream wheel METADATA (range requests)"
    )
    # Two requests (the tail, then the member) and a few KB of a 4 MB wheel; the sdist
    # was not even downloaded.
    index.settled(filename)
    assert len(index.range_requests[filename]) <= 2
    assert index.served[filename] < 100_000 < len(wheel) // 40
    assert not any(r.endswith(".tar.gz") for r in index.requests)


def test_a_server_ignoring_ranges_is_left_before_the_body(
    index: FixtureIndex, http: HttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index.ranges = "ignore"
    big = Project("big", "1.0", dependencies=["dep"])
    # Bigger than what the two sockets' buffers take before the client has read any.
    filename = publish(index, tmp_path, big, wheel_of(big, padding=48 * 1024 * 1024))
    other = Project("other", "1.0", dependencies=["dep"])
    other_wheel = publish(index, tmp_path, other, wheel_of(other))
    oracle = oracle_for(index, http, tmp_path)
    builds = Builds()

    with caplog.at_level(logging.INFO, logger="bootstrapper"):
        oracle.metadata(release_of(index, http, "big"), (), builds)
        oracle.metadata(release_of(index, http, "other"), (), builds)

    # Fell back to the next source (here a build: the PKG-INFO is not static).
    assert builds.built == ["big==1.0", "other==1.0"]
    assert "serves no range requests" in caplog.text
    index.settled(filename)
    assert filename not in index.sent_whole
    # The server is not asked for ranges again.
    assert len(index.range_requests[filename]) == 1
    assert other_wheel not in index.range_requests


def test_a_wheel_that_is_no_zip_falls_back_with_a_log_line(
    index: FixtureIndex, http: HttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = Project("broken", "1.0", dependencies=["dep"], pkg_info_version="2.2")
    filename = publish(index, tmp_path, project, b"this is no zip file\n" * 500)
    oracle = oracle_for(index, http, tmp_path)
    builds = Builds()

    with caplog.at_level(logging.INFO, logger="bootstrapper"):
        metadata = oracle.metadata(release_of(index, http, "broken"), (), builds)

    assert f"cannot read the METADATA of {filename} remotely" in caplog.text
    assert "no end of central directory record" in caplog.text
    # The next source answered: the sdist's static PKG-INFO.
    assert builds.built == []
    assert [str(r) for r in metadata.requires_dist] == ["dep"]
    assert oracle.origin(NormalizedName("broken"), Version("1.0")) == "sdist PKG-INFO"


def test_range_requests_over_http(index: FixtureIndex, http: HttpClient, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    index.add_file("blob", IndexFile("blob-1.0-py3-none-any.whl", data))
    url = index.url.replace("/simple/", "/files/blob-1.0-py3-none-any.whl")

    assert http.get_range(url, None, 100) == ByteRange(len(data) - 100, data[-100:], len(data))
    assert http.get_range(url, 10, 5) == ByteRange(10, data[10:15], len(data))
    # More than there is: what there is.
    assert http.get_range(url, None, 100_000) == ByteRange(0, data, len(data))
    index.ranges = "ignore"
    with pytest.raises(RangeNotServedError, match="HTTP 200 to a range request"):
        http.get_range(url, 10, 5)
    with pytest.raises(RangeNotServedError, match="HTTP 200 to a range request"):
        http.get_range(url, None, 100)
    # ...unless the whole file is no more than was asked for.
    assert http.get_range(url, None, 100_000) == ByteRange(0, data, len(data))


def test_range_requests_of_a_local_file(http: HttpClient, tmp_path: Path) -> None:
    path = tmp_path / "blob.whl"
    path.write_bytes(b"0123456789")
    assert http.get_range(path.as_uri(), None, 3) == ByteRange(7, b"789", 10)
    assert http.get_range(path.as_uri(), 2, 3) == ByteRange(2, b"234", 10)
    with pytest.raises(FetchError):
        http.get_range(path.as_uri(), 20, 3)


def test_bootstrap_resolves_with_range_read_metadata_then_checks_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """The wheel's METADATA (read by ranges) says libone needs phantom; the built wheel
    does not: the bootstrap re-resolves, as with any cheap metadata."""
    index.add_all([Project("app", "1.0", dependencies=["libone"])], tmp_path / "sdists")
    libone = Project("libone", "1.0")
    publish(index, tmp_path, libone, wheel_of(libone, requires=["phantom"]))
    index.add(Project("phantom", "1.0"), tmp_path / "sdists")

    run = bootstrap("app")

    assert run.code == 0, run.stderr
    assert "re-resolving" in run.stderr
    assert "resolved with upstream wheel METADATA (range requests)" in run.stderr
    constraints = (run.output / "constraints.txt").read_text().split()
    assert constraints == ["app==1.0", "libone==1.0"]
