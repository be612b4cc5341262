"""Read one member of a remote zip (a wheel's METADATA) with a few HTTP range requests.

A wheel's central directory sits at its end, and its ``.dist-info`` files usually just
before it, so the last 64 KiB of a wheel often hold everything needed: one request. Else
the central directory and then the member are asked for, each bounded. Parsing is pure
(:func:`find_end_record`, :func:`parse_central_directory`, :func:`member_data`);
:func:`read_remote_wheel_metadata` does the fetching through a :class:`RangeSource`.

What comes back is only a hint for resolution (no hash covers it): the bootstrap checks
it against the wheel it builds.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .errors import FetchError
from .http import ByteRange

logger = logging.getLogger(__name__)

#: The first request: the end of the file (the end records, and often much more).
TAIL_BYTES = 64 * 1024
#: The largest central directory read (torch's, some 15,000 entries, is ~2 MB).
MAX_CENTRAL_DIRECTORY = 32 * 1024 * 1024
#: The largest METADATA read, compressed or not (long READMEs make it ~100 KB at most).
MAX_MEMBER = 8 * 1024 * 1024

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL_ENTRY = b"PK\x01\x02"
_CENTRAL_ENTRY_SIZE = 46
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30
_STORED, _DEFLATED = 0, 8


class RemoteZipError(FetchError):
    """The remote file is not a zip we can read a member of."""


class RangeSource(Protocol):
    def get_range(self, url: str, first: int | None, length: int) -> ByteRange:
        """``length`` bytes from ``first`` (the last ``length`` when None)."""


@dataclass(frozen=True)
class CentralDirectory:
    """Where the central directory is: ``size`` bytes at ``offset``, ``entries`` long."""

    offset: int
    size: int
    entries: int


@dataclass(frozen=True)
class ZipEntry:
    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


def find_end_record(tail: bytes, tail_start: int) -> CentralDirectory | int:
    """The central directory the end record(s) in ``tail`` (the file's last bytes, from
    offset ``tail_start``) point at; or, for a zip64 file whose zip64 end record lies
    before ``tail``, that record's offset (read it and call :func:`parse_zip64_end`)."""
    at = tail.rfind(_EOCD, 0, max(0, len(tail) - _EOCD_SIZE + 4))
    # A comment may hold the signature too; the real record's comment ends the file.
    while at >= 0:
        (comment_length,) = struct.unpack_from("<H", tail, at + 20)
        if at + _EOCD_SIZE + comment_length == len(tail):
            break
        at = tail.rfind(_EOCD, 0, at)
    if at < 0:
        raise RemoteZipError("no end of central directory record: not a zip file")
    _, disk, cd_disk, _, entries, size, offset, _ = struct.unpack_from("<4s4H2LH", tail, at)
    if disk != 0 or cd_disk != 0:
        raise RemoteZipError("a zip split over several disks")
    locator = at - _ZIP64_LOCATOR_SIZE
    if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
        _, _, zip64_offset, _ = struct.unpack_from("<4sLQL", tail, locator)
        relative = zip64_offset - tail_start
        if 0 <= relative <= len(tail) - _ZIP64_EOCD_SIZE:
            return parse_zip64_end(tail[relative : relative + _ZIP64_EOCD_SIZE])
        return int(zip64_offset)
    return CentralDirectory(offset, size, entries)


def parse_zip64_end(record: bytes) -> CentralDirectory:
    """The central directory a zip64 end of central directory record points at."""
    if len(record) < _ZIP64_EOCD_SIZE or record[:4] != _ZIP64_EOCD:
        raise RemoteZipError("the zip64 locator points at no zip64 end record")
    entries, size, offset = struct.unpack_from("<3Q", record, 32)
    return CentralDirectory(offset, size, entries)


def parse_central_directory(data: bytes) -> list[ZipEntry]:
    """The entries of a central directory (zip64 sizes and offsets included)."""
    entries = []
    at = 0
    while at + _CENTRAL_ENTRY_SIZE <= len(data) and data[at : at + 4] == _CENTRAL_ENTRY:
        (
            flags,
            method,
            crc,
            compressed_size,
            size,
            name_length,
            extra_length,
            comment_length,
            header_offset,
        ) = struct.unpack_from("<8xHH4xLLLHHH8xL", data, at)
        name_end = at + _CENTRAL_ENTRY_SIZE + name_length
        extra = data[name_end : name_end + extra_length]
        if len(extra) != extra_length:
            raise RemoteZipError("the central directory ends inside an entry")
        raw_name = data[at + _CENTRAL_ENTRY_SIZE : name_end]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        compressed_size, size, header_offset = _zip64_fields(
            extra, compressed_size, size, header_offset
        )
        entries.append(ZipEntry(name, method, crc, compressed_size, size, header_offset))
        at = name_end + extra_length + comment_length
    if at != len(data):
        raise RemoteZipError(f"the central directory is malformed at byte {at}")
    return entries


def _zip64_fields(extra: bytes, compressed: int, size: int, offset: int) -> tuple[int, int, int]:
    """The real sizes and offset of an entry whose 32-bit fields say 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            try:
                size = next(values) if size == 0xFFFFFFFF else size
                compressed = next(values) if compressed == 0xFFFFFFFF else compressed
                offset = next(values) if offset == 0xFFFFFFFF else offset
            except StopIteration:
                raise RemoteZipError("a zip64 extra field too short for its entry") from None
        at += 4 + length
    return compressed, size, offset


def metadata_entry(entries: list[ZipEntry], wheel_filename: str) -> ZipEntry:
    """The ``*.dist-info/METADATA`` of the wheel's own project among ``entries``."""
    try:
        name, _, _, _ = parse_wheel_filename(wheel_filename)
    except InvalidWheelFilename as e:
        raise RemoteZipError(f"{wheel_filename!r} is not a wheel name") from e
    found = [
        e for e in entries if e.name.count("/") == 1 and e.name.endswith(".dist-info/METADATA")
    ]
    own = [
        e
        for e in found
        if canonicalize_name(e.name.split("/")[0][: -len(".dist-info")].rpartition("-")[0]) == name
    ]
    if len(own) == 1:
        return own[0]
    if len(found) == 1:
        return found[0]
    raise RemoteZipError(f"{len(found)} .dist-info/METADATA members, not one")


def local_data_offset(header: bytes, entry: ZipEntry) -> int:
    """How far past its local header ``entry``'s data starts (the local extra field may
    differ from the central one)."""
    if len(header) < _LOCAL_HEADER_SIZE or header[:4] != _LOCAL_HEADER:
        raise RemoteZipError(f"no local header where the central directory puts {entry.name}")
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    return int(_LOCAL_HEADER_SIZE + name_length + extra_length)


def member_data(raw: bytes, entry: ZipEntry) -> bytes:
    """The uncompressed bytes of ``entry`` (stored or deflated), CRC-checked."""
    if entry.method == _STORED:
        data = raw
    elif entry.method == _DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, entry.size + 1)
        except zlib.error as e:
            raise RemoteZipError(f"{entry.name} does not inflate: {e}") from None
    else:
        raise RemoteZipError(f"{entry.name} uses compression method {entry.method}")
    if len(data) != entry.size or zlib.crc32(data) != entry.crc:
        raise RemoteZipError(f"{entry.name} does not match its size and CRC")
    return data


class _Bytes:
    """What has been fetched of one remote file; fetches only what it lacks."""

    def __init__(self, source: RangeSource, url: str) -> None:
        self._source = source
        self._url = url
        self._pieces: list[ByteRange] = []
        self.requests = 0
        self.fetched = 0
        self.total = 0

    def tail(self, length: int) -> ByteRange:
        piece = self._fetch(None, length)
        self.total = piece.total
        return piece

    def read(self, first: int, length: int) -> bytes:
        if first < 0 or first + length > self.total:
            raise RemoteZipError(
                f"bytes {first}-{first + length - 1} lie outside the {self.total}-byte file"
            )
        for piece in self._pieces:
            if piece.start <= first and first + length <= piece.start + len(piece.data):
                return piece.data[first - piece.start : first - piece.start + length]
        self._fetch(first, length)
        return self.read(first, length)

    def _fetch(self, first: int | None, length: int) -> ByteRange:
        piece = self._source.get_range(self._url, first, length)
        self.requests += 1
        self.fetched += len(piece.data)
        # Pieces that touch become one, so a read may span what two requests brought.
        pieces = sorted([*self._pieces, piece], key=lambda p: p.start)
        merged = [pieces[0]]
        for p in pieces[1:]:
            last = merged[-1]
            end = last.start + len(last.data)
            if p.start <= end:
                extra = p.data[end - p.start :]
                merged[-1] = ByteRange(last.start, last.data + extra, last.total)
            else:
                merged.append(p)
        self._pieces = merged
        return piece


@dataclass(frozen=True)
class RemoteMember:
    data: bytes
    requests: int
    fetched: int
    total: int


def read_remote_wheel_metadata(source: RangeSource, url: str, filename: str) -> RemoteMember:
    """The METADATA of the wheel at ``url``, read by range requests; raises FetchError
    (a :class:`~bootstrapper.http.RangeNotServedError` when ranges are not served, a
    :class:`RemoteZipError` for what is not a readable wheel)."""
    remote = _Bytes(source, url)
    tail = remote.tail(TAIL_BYTES)
    location = find_end_record(tail.data, tail.start)
    if isinstance(location, int):
        location = parse_zip64_end(remote.read(location, _ZIP64_EOCD_SIZE))
    if location.size > MAX_CENTRAL_DIRECTORY:
        raise RemoteZipError(f"a central directory of {location.size} bytes")
    if location.offset + location.size > remote.total:
        raise RemoteZipError("the central directory lies past the end of the file")
    if location.offset < tail.start and location.offset + location.size > tail.start:
        # Read what precedes the tail only, and from a little further back: the
        # .dist-info files usually lie just before the directory.
        first = max(0, location.offset - TAIL_BYTES)
        remote.read(first, tail.start - first)
    directory = remote.read(location.offset, location.size)
    entries = parse_central_directory(directory)
    if len(entries) != location.entries:
        raise RemoteZipError(
            f"the central directory lists {len(entries)} entries, the end record says "
            f"{location.entries}"
        )
    entry = metadata_entry(entries, filename)
    if entry.compressed_size > MAX_MEMBER or entry.size > MAX_MEMBER:
        raise RemoteZipError(f"{entry.name} is {entry.size} bytes, more than read remotely")
    # The local extra field is usually as long as the central one; read a little more in
    # case it is not, so that one request does.
    guess = _LOCAL_HEADER_SIZE + len(entry.name.encode()) + 64 + entry.compressed_size
    length = min(guess, remote.total - entry.header_offset)
    chunk = remote.read(entry.header_offset, length)
    start = local_data_offset(chunk, entry)
    raw = chunk[start : start + entry.compressed_size]
    if len(raw) < entry.compressed_size:
        raw = remote.read(entry.header_offset + start, entry.compressed_size)
    data = member_data(raw, entry)
    logger.debug(
        "read %s of %s with %d range requests (%d of %d bytes)",
        entry.name,
        filename,
        remote.requests,
        remote.fetched,
        remote.total,
    )
    return RemoteMember(data, remote.requests, remote.fetched, remote.total)
