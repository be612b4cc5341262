"""The private store of built wheels and their build records (``DIR/.work/built``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .errors import BootstrapError
from .fsutil import atomic_copy, replacing, sha256_file
from .metadata import CoreMetadata, parse_metadata
from .profiling import timed
from .records import RECORD_SUFFIX, BuildRecord, records_in
from .wheelfile import read_wheel_metadata

Key = tuple[NormalizedName, Version]
#: The folder of the run's private directory where each stored wheel's METADATA is kept
#: (``metadata_dir`` of :class:`WheelStore`).
KEPT_METADATA_DIR = "metadata"


class WheelStore:
    """Finds the wheel built earlier for a version, and proves it intact before reuse.

    Published wheels (``DIR/wheels``) are searched too, so a run can reuse them even if the
    private work directory was removed.
    """

    def __init__(
        self,
        built_dir: Path,
        published_dir: Path,
        *,
        accepts: Callable[[str], bool] | None = None,
        metadata_dir: Path | None = None,
    ) -> None:
        self.built_dir = built_dir
        self._dirs = (built_dir, published_dir)
        #: Which wheels (by file name) this store finds: those of the target interpreter,
        #: when several share the directories (``--python``); None finds every one.
        self._accepts = accepts
        #: Where each wheel's METADATA is kept by the wheel's sha256, once read from its
        #: zip (see :func:`_read_kept`): a re-run then reads one small file per wheel.
        self._metadata_dir = metadata_dir
        self._lock = threading.Lock()
        # Several wheels of a version when they were built for several interpreters.
        self._records: dict[Key, list[tuple[Path, BuildRecord]]] | None = None
        # Wheels already proven intact in this run, with the (size, mtime) they had then:
        # resolution and the build step both look a version up, and a wheel can be large.
        self._verified: dict[Path, tuple[int, int]] = {}
        # The METADATA of wheels read in this run, with the file's state when read:
        # resolution, the reuse and publishing each need it.
        self._metadata: dict[Path, tuple[tuple[int, int, int, int], bytes, CoreMetadata]] = {}

    def _scan(self) -> dict[Key, list[tuple[Path, BuildRecord]]]:
        found: dict[Key, dict[str, tuple[Path, BuildRecord]]] = {}
        for wheel, record in records_in(self._dirs):  # the private store first: it wins
            # A repaired wheel is not a build: the wheel it was made from is kept beside
            # it, and that one is what a re-run may reuse (and repair again, or not).
            accepted = self._accepts is None or self._accepts(wheel.name)
            if wheel.is_file() and accepted and not record.repaired:
                # Keyed by the source version: a rebuild scheme may have changed the
                # wheel's. Of one file name, the private store's stands.
                key = (canonicalize_name(record.name), Version(record.version))
                found.setdefault(key, {}).setdefault(wheel.name, (wheel, record))
        return {key: list(by_name.values()) for key, by_name in found.items()}

    def lookup(
        self, name: NormalizedName, version: Version, *, wheel: str | None = None
    ) -> tuple[Path, BuildRecord] | None:
        """The earlier wheel of this version and its record, if its bytes still match:
        of several builds, the latest one, or the one named ``wheel``."""
        with timed("store lookups"):
            return self._lookup(name, version, wheel)

    def _lookup(
        self, name: NormalizedName, version: Version, wanted: str | None
    ) -> tuple[Path, BuildRecord] | None:
        with self._lock:
            if self._records is None:
                self._records = self._scan()
            entries = self._records.get((name, version), ())
            entry = _latest(e for e in entries if wanted is None or e[0].name == wanted)
        if entry is None:
            return None
        wheel, record = entry
        try:
            stat = wheel.stat()
            seen = (stat.st_size, stat.st_mtime_ns)
            with self._lock:
                proven = self._verified.get(wheel) == seen
            if not proven:
                if sha256_file(wheel) != record.wheel_sha256:
                    return None
                with self._lock:
                    self._verified[wheel] = seen
        except OSError:
            return None
        return entry

    def metadata(self, wheel: Path) -> tuple[bytes, CoreMetadata]:
        """The ``METADATA`` of ``wheel``, as bytes and parsed; read again only if the file
        changed since."""
        stat = wheel.stat()
        state = (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
        with self._lock:
            found = self._metadata.get(wheel)
        if found is not None and found[0] == state:
            return found[1], found[2]
        data = self._read_metadata(wheel)
        parsed = parse_metadata(data, wheel.name)
        with self._lock:
            self._metadata[wheel] = (state, data, parsed)
        return data, parsed

    def _read_metadata(self, wheel: Path) -> bytes:
        if self._metadata_dir is None:
            return read_wheel_metadata(wheel)
        digest = sha256_file(wheel)
        data = _read_kept(self._metadata_dir / f"{digest}.metadata")
        if data is None:
            data = read_wheel_metadata(wheel)
            self._keep_metadata(digest, data)
        return data

    def _keep_metadata(self, digest: str, data: bytes) -> None:
        if self._metadata_dir is not None:
            with suppress(OSError):
                _keep(self._metadata_dir / f"{digest}.metadata", data)

    def add(self, wheel: Path, record: BuildRecord, *, metadata: bytes | None = None) -> Path:
        """Keep a freshly built wheel and its record; returns the stored wheel's path.
        ``metadata``: the wheel's METADATA, when the caller has read it (it is kept too,
        so that publishing and the next run need not open the wheel for it)."""
        dest = self.built_dir / wheel.name
        # The record first: a run killed in between leaves a record with no wheel (or an
        # older wheel its hash does not match), never a wheel without the record that
        # proves it. Either way the next run builds it again.
        record.write(dest.with_name(dest.name + RECORD_SUFFIX))
        atomic_copy(wheel, dest)
        # Hashed where it is kept (while its bytes are still in the page cache), so the
        # digest kept for the next run is this file's: a re-run does not read it again.
        if sha256_file(dest) != record.wheel_sha256:
            raise BootstrapError(
                f"{dest} does not hold the bytes of the wheel just built (sha256 differs "
                "from its build record); is something else writing there?",
                package=record.name,
            )
        if metadata is not None:
            self._keep_metadata(record.wheel_sha256, metadata)
        key = (canonicalize_name(record.name), Version(record.version))
        with self._lock:
            self._verified.pop(dest, None)
            if self._records is not None:
                kept = [e for e in self._records.get(key, ()) if e[0].name != dest.name]
                self._records[key] = [*kept, (dest, record)]
        return dest

    @staticmethod
    def record_path(wheel: Path) -> Path:
        return wheel.with_name(wheel.name + RECORD_SUFFIX)


def _latest(entries: Iterable[tuple[Path, BuildRecord]]) -> tuple[Path, BuildRecord] | None:
    found: tuple[Path, BuildRecord] | None = None
    for entry in entries:
        if found is None or _newer(entry[1], found[1]):
            found = entry
    return found


def _newer(record: BuildRecord, than: BuildRecord) -> bool:
    """Of two builds of one version, the later one; on a tie (the times have one-second
    resolution), the higher rebuild."""
    return (record.finished, record.rebuild) >= (than.finished, than.rebuild)


def _keep(path: Path, data: bytes) -> None:
    """Keep ``data`` at ``path``, after a line with its own sha256: written without a
    flush to the disk (a cache, written once per wheel), so a reader checks it whole."""
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    with replacing(path) as tmp:
        tmp.write_bytes(b"sha256=" + digest + b"\n" + data)


def _read_kept(path: Path) -> bytes | None:
    """What :func:`_keep` kept at ``path``; None when there is nothing, or what is there
    is not whole (a crash before the disk had it all)."""
    try:
        kept = path.read_bytes()
    except OSError:
        return None
    head, _, data = kept.partition(b"\n")
    if head != b"sha256=" + hashlib.sha256(data).hexdigest().encode("ascii"):
        return None
    return data
