"""Releases of a project on the source index, filtered for the target interpreter."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from packaging.utils import NormalizedName
from packaging.version import Version

from .candidates import Release, releases
from .index import IndexClient


class IndexFinder:
    """The ``ReleaseFinder`` over an :class:`IndexClient`, memoized for the run."""

    def __init__(self, index: IndexClient, python_version: Version) -> None:
        self._index = index
        self._python = python_version
        self._lock = threading.Lock()
        self._releases: dict[NormalizedName, list[Release]] = {}

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        with self._lock:
            cached = self._releases.get(name)
        if cached is not None:
            return cached
        found = releases(self._index.project_page(name), self._python)
        with self._lock:
            self._releases[name] = found
        return found

    def has_files(self, name: NormalizedName) -> bool:
        return bool(self._index.project_page(name).files)

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        self._index.prefetch(names)
