"""Releases of a project on the source index, filtered for the target interpreter."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from .candidates import Release, external_source_releases, prebuilt_releases, releases
from .index import IndexClient, ProjectPage
from .profiling import timed
from .releaseage import ReleaseAge, uploaded_by


class IndexFinder:
    """The ``ReleaseFinder`` over an :class:`IndexClient`, memoized for the run."""

    def __init__(
        self,
        index: IndexClient,
        python_version: Version,
        *,
        prebuilt: Callable[[NormalizedName], bool] = lambda name: False,
        external_source: Callable[[NormalizedName], bool] = lambda name: False,
        tags: Sequence[Tag] = (),
        release_age: ReleaseAge | None = None,
    ) -> None:
        self._index = index
        self._python = python_version
        self._prebuilt = prebuilt
        self._external_source = external_source
        self._tags = tags
        self._release_age = release_age
        self._lock = threading.Lock()
        self._releases: dict[NormalizedName, list[Release]] = {}

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        with self._lock:
            cached = self._releases.get(name)
        if cached is not None:
            return cached
        with timed("index pages"):
            page = self._page(name)
        if self._prebuilt(name):
            found = prebuilt_releases(page, self._python, self._tags)
        elif self._external_source(name):
            found = external_source_releases(page, self._python)
        else:
            found = releases(page, self._python)
        with self._lock:
            self._releases[name] = found
        return found

    def upstream_wheel(self, name: NormalizedName, version: Version) -> Release | None:
        """The index's wheel of ``name`` ``version`` installable here, as a prebuilt
        release (what ``--fallback-prebuilt`` takes when the build fails), within the
        release age like every other file."""
        page = self._page(name)
        for release in prebuilt_releases(page, self._python, self._tags):
            if release.version == version:
                return release
        return None

    def has_files(self, name: NormalizedName) -> bool:
        return bool(self._page(name).files)

    def _page(self, name: NormalizedName) -> ProjectPage:
        """The project's page, without the files the release age leaves out."""
        page = self._index.project_page(name)
        if self._release_age is None:
            return page
        return uploaded_by(page, self._release_age, self._index.index_url)

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        self._index.prefetch(names)
