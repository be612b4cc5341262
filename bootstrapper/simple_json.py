"""The PEP 691 JSON pages of a static index, with the PEP 700 fields (``versions``, file
``size`` and ``upload-time``), written beside the HTML pages as ``index.json``.

Building a page is pure (:func:`project_page`, :func:`root_page`); the only thing read
from the disk is the page as it was (:func:`published_times`), because a file's
``upload-time`` is when the index first listed it, and a page keeps that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

#: The file name of a JSON page, beside ``index.html`` in the same directory.
JSON_PAGE = "index.json"
#: PEP 691's JSON media type (version 1 of the API).
JSON_MEDIA_TYPE = "application/vnd.pypi.simple.v1+json"
#: 1.1: the PEP 700 fields are there.
API_VERSION = "1.1"


@dataclass(frozen=True)
class IndexedFile:
    """One file as a project page lists it."""

    filename: str
    #: Relative to the page's own URL (PEP 691 allows it).
    url: str
    version: Version
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str | None = None
    #: The sha256 of the PEP 658 metadata file served beside it, when there is one.
    metadata_sha256: str | None = None


def format_upload_time(moment: datetime) -> str:
    """PEP 700's form: ISO 8601 in UTC with a ``Z``, to the microsecond (as PyPI gives it)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _file_entry(file: IndexedFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": file.url,
        "hashes": {"sha256": file.sha256},
    }
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if file.metadata_sha256 is not None:
        metadata = {"sha256": file.metadata_sha256}
        # PEP 714's name, and PEP 691's original one for the clients that read only it.
        entry["core-metadata"] = metadata
        entry["data-dist-info-metadata"] = metadata
    entry["yanked"] = False
    entry["size"] = file.size
    entry["upload-time"] = format_upload_time(file.upload_time)
    return entry


def project_page(name: NormalizedName, files: Iterable[IndexedFile]) -> str:
    """The JSON project page of ``name`` listing ``files`` (in file name order)."""
    listed = sorted(files, key=lambda f: f.filename)
    document = {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "versions": [str(v) for v in sorted({f.version for f in listed})],
        "files": [_file_entry(f) for f in listed],
    }
    return _dumps(document)


def root_page(projects: Iterable[NormalizedName]) -> str:
    """The JSON root page: one entry per project (normalized names)."""
    document = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": name} for name in sorted(set(projects))],
    }
    return _dumps(document)


def _dumps(document: Mapping[str, Any]) -> str:
    # One file per line: a page stays readable (and diffable) without a JSON viewer.
    return json.dumps(document, indent=1) + "\n"


def published_times(page: Path) -> dict[tuple[str, str], datetime]:
    """The upload times a JSON page gives, by (file name, sha256): the same bytes under
    the same name keep the time they were first listed with. A missing or unreadable
    page gives none."""
    try:
        document = json.loads(page.read_bytes())
        times: dict[tuple[str, str], datetime] = {}
        for entry in document["files"]:
            moment = datetime.fromisoformat(entry["upload-time"])
            if moment.tzinfo is not None:
                times[(entry["filename"], entry["hashes"]["sha256"])] = moment
        return times
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def first_listed(
    times: Mapping[tuple[str, str], datetime], filename: str, sha256: str, written: Path
) -> datetime:
    """When a file was first listed: as the page said already, or else when ``written``
    (a file only publishing writes, and never rewrites with the same bytes) was written."""
    known = times.get((filename, sha256))
    if known is not None:
        return known
    return datetime.fromtimestamp(written.stat().st_mtime, UTC)
