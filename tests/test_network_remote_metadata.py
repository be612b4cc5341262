"""Reading the METADATA of a real, large wheel on PyPI with range requests."""

from __future__ import annotations

import pytest
from packaging.utils import NormalizedName

from bootstrapper.http import ByteRange, HttpClient
from bootstrapper.index import PYPI_SIMPLE, IndexClient
from bootstrapper.metadata import parse_metadata
from bootstrapper.remotezip import read_remote_wheel_metadata

pytestmark = pytest.mark.network


class Counted:
    """The client's range requests, with what they brought."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self.requests = 0
        self.bytes = 0

    def get_range(self, url: str, first: int | None, length: int) -> ByteRange:
        piece = self._http.get_range(url, first, length)
        self.requests += 1
        self.bytes += len(piece.data)
        return piece


def test_numpy_wheel_metadata_by_range_requests() -> None:
    with HttpClient() as http:
        index = IndexClient(PYPI_SIMPLE, http)
        try:
            page = index.project_page(NormalizedName("numpy"))
        finally:
            index.close()
        (wheel,) = [
            f
            for f in page.files
            if f.filename
            == "numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        ]
        counted = Counted(http)
        member = read_remote_wheel_metadata(counted, wheel.url, wheel.filename)

    metadata = parse_metadata(member.data, wheel.filename)
    assert (metadata.name, str(metadata.version)) == ("numpy", "2.2.6")
    assert str(metadata.requires_python) == ">=3.10"
    # A 16 MB wheel; its METADATA read with a few requests and a few hundred KB at most.
    assert member.total > 10_000_000
    assert counted.requests == member.requests <= 3
    assert counted.bytes == member.fetched < 400_000
