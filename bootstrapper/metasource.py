"""Where resolution gets a release's dependencies, cheapest trustworthy source first.

1. the wheel this run (or an earlier one, from the same sdist) built from it;
2. the PEP 658 metadata of an upstream wheel of the same version;
3. else that wheel's own METADATA, read with HTTP range requests (a few KB of it);
4. the sdist's PKG-INFO, when PEP 643 says its dependencies are static;
5. otherwise its build, which answers as soon as the backend's
   ``prepare_metadata_for_build_wheel`` did (:meth:`MetadataOracle.record_prepared`),
   else when the wheel is built.

Sources 2 to 5's hook are hints: the bootstrap checks them against the wheel it builds and
re-resolves on a mismatch.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Sequence

from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from .archive import read_member
from .candidates import Release, metadata_wheel
from .errors import BootstrapError
from .http import RangeNotServedError
from .index import DistFile, IndexClient
from .metadata import CoreMetadata, is_static_sdist_metadata, parse_metadata
from .remotezip import RangeSource, read_remote_wheel_metadata
from .sources import SourceStore
from .wheelfile import read_wheel_metadata

logger = logging.getLogger(__name__)

Key = tuple[NormalizedName, Version]
BuildForMetadata = Callable[[Release, Sequence[str]], CoreMetadata]


class MetadataOracle:
    """The ``MetadataSource`` of a run; thread-safe."""

    def __init__(
        self,
        index: IndexClient,
        sources: SourceStore,
        tags: Sequence[Tag],
        stored: Callable[[Release], CoreMetadata | None] | None = None,
        adjust: Callable[[CoreMetadata], CoreMetadata] = lambda metadata: metadata,
        ranges: RangeSource | None = None,
    ) -> None:
        self._index = index
        #: Reads an upstream wheel's METADATA by range requests (None: never).
        self._ranges = ranges
        self._sources = sources
        self._tags = tags
        self._stored = stored
        # What the settings will do to the built wheel (requires edits), applied to the
        # cheap metadata too, so resolution sees the dependencies the wheel will have.
        self._adjust = adjust
        self._lock = threading.Lock()
        self._known: dict[Key, tuple[CoreMetadata, str]] = {}
        self._first_origin: dict[Key, str] = {}
        self._key_locks: defaultdict[Key, threading.Lock] = defaultdict(threading.Lock)
        #: Releases with no cheap metadata: only a build tells.
        self._needs_build: set[Key] = set()
        #: Servers (scheme, host) that did not answer a range request with a range.
        self._no_ranges: set[tuple[str, str]] = set()

    def record_built(self, metadata: CoreMetadata) -> None:
        """A wheel was built: from now on its metadata is the truth for its version."""
        key = (metadata.name, metadata.version)
        with self._lock:
            self._first_origin.setdefault(key, "built wheel")
            self._known[key] = (metadata, "built wheel")

    def record_prepared(self, release: Release, data: bytes) -> CoreMetadata:
        """The backend's ``prepare_metadata_for_build_wheel`` answered for ``release``
        before its build ended: a hint, checked against the wheel as the others are."""
        origin = "prepare_metadata_for_build_wheel"
        metadata = self._adjust(parse_metadata(data, f"{release} ({origin})"))
        self._check_names(release, metadata, origin, ())
        key = (release.name, release.version)
        with self._lock:
            self._first_origin.setdefault(key, origin)
            self._known.setdefault(key, (metadata, origin))
            return self._known[key][0]

    def origin(self, name: NormalizedName, version: Version) -> str:
        """Where the metadata first used for this version came from."""
        with self._lock:
            return self._first_origin.get((name, version), "unknown")

    def metadata(
        self, release: Release, chain: Sequence[str], build: BuildForMetadata
    ) -> CoreMetadata:
        """The metadata of ``release``; ``build`` is the last resort."""
        key = (release.name, release.version)
        found = self.without_build(release, chain)
        if found is not None:
            return found
        logger.debug("%s has no static metadata; building it to learn its dependencies", release)
        metadata = build(release, chain)
        self._check_names(release, metadata, "built wheel", chain)
        with self._lock:
            self._first_origin.setdefault(key, "built wheel")
            self._known.setdefault(key, (metadata, "built wheel"))
            return self._known[key][0]

    def without_build(self, release: Release, chain: Sequence[str] = ()) -> CoreMetadata | None:
        """The metadata of ``release`` if it is known or cheap to learn (no build of
        it); None when only a build can tell."""
        key = (release.name, release.version)
        # One cheap look-up per release even when several threads ask at once. The lock
        # is not held while building: builds are deduplicated by the scheduler, which
        # also turns a package needing itself into a cycle error instead of a deadlock.
        with self._key_lock(key):
            with self._lock:
                entry = self._known.get(key)
                if entry is not None:
                    return entry[0]
                if key in self._needs_build:
                    return None
            found = self._cheap(release)
            if found is None:
                with self._lock:
                    self._needs_build.add(key)
                return None
            metadata, origin = found
            self._check_names(release, metadata, origin, chain)
            with self._lock:
                self._first_origin.setdefault(key, origin)
                self._known.setdefault(key, (metadata, origin))
                return self._known[key][0]

    def is_known(self, name: NormalizedName, version: Version) -> bool:
        """Whether the metadata of this version is at hand (no look-up)."""
        with self._lock:
            return (name, version) in self._known

    @staticmethod
    def _check_names(
        release: Release, metadata: CoreMetadata, origin: str, chain: Sequence[str]
    ) -> None:
        if (metadata.name, metadata.version) != (release.name, release.version):
            raise BootstrapError(
                f"{release}: its metadata ({origin}) names {metadata.name} {metadata.version}",
                package=release.name,
                chain=chain,
            )

    def _key_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._key_locks[key]

    def _cheap(self, release: Release) -> tuple[CoreMetadata, str] | None:
        """Metadata that needs no build, with where it came from; None if there is none."""
        if self._stored is not None:
            stored = self._stored(release)
            if stored is not None:
                return stored, "wheel built by an earlier run"
        if release.external_source:
            # Not what the index's wheels were built from (torch's wheels add CUDA
            # requirements that a build from its source does not have): build it.
            return None
        wheel = metadata_wheel(release, self._tags)
        if wheel is not None:
            try:
                data = self._index.fetch_metadata(wheel)
                metadata = parse_metadata(data, wheel.filename + ".metadata")
                return self._adjust(metadata), "upstream wheel metadata"
            except BootstrapError as e:
                logger.debug("ignoring PEP 658 metadata of %s: %s", wheel.filename, e.message)
        wheel = metadata_wheel(release, self._tags, pep658=False)
        if wheel is not None and not release.prebuilt:
            from_wheel = self._by_ranges(wheel)
            if from_wheel is not None:
                return self._adjust(from_wheel), "upstream wheel METADATA (range requests)"
        if release.prebuilt:
            # The upstream wheel itself (hash-checked; the build step takes it anyway).
            path, _ = self._sources.fetch(release)
            metadata = parse_metadata(read_wheel_metadata(path), path.name)
            return self._adjust(metadata), "upstream wheel"
        sdist, _ = self._sources.fetch(release)
        pkg_info = read_member(sdist, "PKG-INFO")
        if pkg_info is not None:
            try:
                metadata = parse_metadata(pkg_info, f"{sdist.name}/PKG-INFO")
            except BootstrapError as e:
                logger.debug("ignoring PKG-INFO of %s: %s", sdist.name, e.message)
            else:
                if is_static_sdist_metadata(metadata):
                    return self._adjust(metadata), "sdist PKG-INFO"
        return None

    def _by_ranges(self, wheel: DistFile) -> CoreMetadata | None:
        """The METADATA inside the upstream ``wheel``, read by range requests; None when
        the server does not serve ranges or the file is no readable wheel."""
        parts = urllib.parse.urlsplit(wheel.url)
        server = (parts.scheme, parts.netloc)
        with self._lock:
            if self._ranges is None or server in self._no_ranges:
                return None
        try:
            member = read_remote_wheel_metadata(self._ranges, wheel.url, wheel.filename)
            return parse_metadata(member.data, f"{wheel.filename}/METADATA")
        except RangeNotServedError as e:
            logger.info(
                "%s serves no range requests (%s); its wheels' metadata is not read remotely",
                parts.netloc,
                e.message,
            )
            with self._lock:
                self._no_ranges.add(server)
        except BootstrapError as e:
            logger.info("cannot read the METADATA of %s remotely: %s", wheel.filename, e.message)
        return None
