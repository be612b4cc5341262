"""Source archives: download once, verify against the index's hash, keep."""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from .candidates import Release
from .errors import BootstrapError, FetchError
from .fsutil import atomic_copy, sha256_file
from .http import HttpClient, strongest_hash


class SourceStore:
    """Downloads go to a private cache; :meth:`archive` puts the ones actually built into
    ``DIR/sdists``."""

    def __init__(self, http: HttpClient, downloads_dir: Path, sdists_dir: Path) -> None:
        self._http = http
        self.downloads_dir = downloads_dir
        self.sdists_dir = sdists_dir
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._verified: dict[str, str] = {}

    def _lock(self, filename: str) -> threading.Lock:
        with self._guard:
            return self._locks[filename]

    def fetch(self, release: Release) -> tuple[Path, str]:
        """The verified local sdist of ``release`` and its sha256."""
        file = release.sdist
        with self._lock(file.filename):
            if file.filename in self._verified:
                return self.downloads_dir / file.filename, self._verified[file.filename]
            if strongest_hash(file.hashes) is None:
                raise FetchError(
                    f"the index gives no sha256 for {file.filename}; refusing an unverified "
                    "download",
                    package=release.name,
                )
            dest = self.downloads_dir / file.filename
            sha256 = self._existing(dest, file.hashes)
            if sha256 is None:
                try:
                    sha256 = self._http.download(file.url, dest, file.hashes)
                except BootstrapError as e:
                    e.package = e.package or release.name
                    raise
            self._verified[file.filename] = sha256
            return dest, sha256

    @staticmethod
    def _existing(path: Path, hashes: Mapping[str, str]) -> str | None:
        """The sha256 of an earlier download if it still matches the index, else None."""
        algorithm = strongest_hash(hashes)
        if algorithm is None or not path.is_file():
            return None
        digest = hashlib.new(algorithm)
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != hashes[algorithm].lower():
            path.unlink()
            return None
        return digest.hexdigest() if algorithm == "sha256" else sha256_file(path)

    def archive(self, path: Path) -> Path:
        """Keep ``path`` in ``DIR/sdists`` as a source some build used."""
        dest = self.sdists_dir / path.name
        if not dest.exists() or sha256_file(dest) != sha256_file(path):
            atomic_copy(path, dest)
        return dest
