"""Client for a PEP 503 / PEP 691 simple index.

Parsing is pure (:func:`parse_json_page`, :func:`parse_html_page`); :class:`IndexClient`
does the HTTP, caches project pages for the run and fetches independent pages
concurrently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from .credentials import redact_url
from .errors import FetchError, IndexAccessError, UnknownProjectError
from .http import HttpClient, verify_bytes

logger = logging.getLogger(__name__)

PYPI_SIMPLE = "https://pypi.org/simple/"
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclass(frozen=True)
class DistFile:
    """One file listed on a project page."""

    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    #: ``None`` when the index serves no PEP 658 metadata file; otherwise its hashes
    #: (possibly empty when the index gave none).
    metadata_hashes: Mapping[str, str] | None = field(default=None, hash=False, compare=False)
    #: When the file was uploaded (PEP 700, JSON pages only; aware, UTC); ``None`` when
    #: the index does not say.
    upload_time: datetime | None = field(default=None, hash=False, compare=False)

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def metadata_url(self) -> str:
        return self.url + ".metadata"


@dataclass(frozen=True)
class ProjectPage:
    name: NormalizedName
    url: str
    files: tuple[DistFile, ...]


#: The schemes a page may link files with, by the scheme of the page: an index on the
#: network must not make us read local files (or anything but the network).
_LINK_SCHEMES = {
    "http": frozenset({"http", "https"}),
    "https": frozenset({"http", "https"}),
    "file": frozenset({"file", "http", "https"}),
}


def _link(name: NormalizedName, page_url: str, base_url: str, href: str) -> str:
    """``href`` resolved against ``base_url``, if a page at ``page_url`` may link it."""
    url = urllib.parse.urljoin(base_url, href)
    page_scheme = urllib.parse.urlsplit(page_url).scheme.lower()
    link_scheme = urllib.parse.urlsplit(url).scheme.lower()
    allowed = _LINK_SCHEMES.get(page_scheme, frozenset({"http", "https"}))
    if link_scheme not in allowed:
        link = redact_url(url.partition("#")[0])
        raise IndexAccessError(
            f"the index page of {name} links {link!r}; an index at {page_scheme}: may link "
            f"only {' and '.join(sorted(allowed))} files, so the page is refused",
            package=name,
            details=f"page: {redact_url(page_url)}",
        )
    return url


def _hash_fragment(url: str) -> tuple[str, dict[str, str]]:
    base, _, fragment = url.partition("#")
    hashes: dict[str, str] = {}
    if "=" in fragment:
        algorithm, _, value = fragment.partition("=")
        hashes[algorithm.lower()] = value
    return base, hashes


def _metadata_attr(value: Any) -> Mapping[str, str] | None:
    """Decode PEP 658/714 ``core-metadata`` in either its JSON or its HTML form."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return {str(k).lower(): str(v) for k, v in value.items()}
    if isinstance(value, str):
        if value.lower() == "true" or value == "":
            return {}
        algorithm, sep, digest = value.partition("=")
        return {algorithm.lower(): digest} if sep else {}
    return None


def parse_json_page(name: NormalizedName, page_url: str, data: bytes) -> ProjectPage:
    """Parse a PEP 691 JSON project page."""
    try:
        return ProjectPage(name=name, url=page_url, files=tuple(_json_files(name, data, page_url)))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IndexAccessError(
            f"malformed JSON index page for {name} at {page_url}: {type(e).__name__}: {e}"
        ) from e


def _json_files(name: NormalizedName, data: bytes, page_url: str) -> list[DistFile]:
    document = json.loads(data)
    raw_files = document["files"]
    if not isinstance(raw_files, list):
        raise TypeError(f"'files' is {type(raw_files).__name__}, not a list")
    files = []
    for raw in raw_files:
        yanked = raw.get("yanked", False)
        files.append(
            DistFile(
                filename=raw["filename"],
                url=_link(name, page_url, page_url, raw["url"]),
                hashes={k.lower(): v for k, v in (raw.get("hashes") or {}).items()},
                requires_python=raw.get("requires-python") or None,
                yanked=bool(yanked) or isinstance(yanked, str),
                yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
                metadata_hashes=_metadata_attr(
                    raw.get("core-metadata", raw.get("dist-info-metadata"))
                ),
                upload_time=parse_upload_time(raw.get("upload-time")),
            )
        )
    return files


def parse_upload_time(value: Any) -> datetime | None:
    """A PEP 700 ``upload-time`` (ISO 8601, UTC: ``2024-05-01T12:00:00.123456Z``), or
    ``None`` when it is missing or is not a timestamp with a time zone: a file whose
    upload time cannot be read counts as one the index gives none for."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def parse_html_page(name: NormalizedName, page_url: str, data: bytes) -> ProjectPage:
    """Parse a PEP 503 HTML project page (with PEP 592/658/714 attributes)."""
    parser = _AnchorParser()
    parser.feed(data.decode("utf-8", errors="replace"))
    parser.close()
    base_url = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, hashes = _hash_fragment(_link(name, page_url, base_url, href))
        filename = text or urllib.parse.unquote(url.rsplit("/", 1)[-1])
        yanked = attrs.get("data-yanked")
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        has_metadata = "data-core-metadata" in attrs or "data-dist-info-metadata" in attrs
        files.append(
            DistFile(
                filename=filename,
                url=url,
                hashes=hashes,
                requires_python=attrs.get("data-requires-python") or None,
                yanked="data-yanked" in attrs,
                yanked_reason=yanked or None,
                metadata_hashes=_metadata_attr(metadata or "true") if has_metadata else None,
            )
        )
    return ProjectPage(name=name, url=page_url, files=tuple(files))


class IndexClient:
    """Reads project pages from one index; thread-safe, one fetch per project per run."""

    def __init__(self, index_url: str, http: HttpClient, *, max_workers: int = 8) -> None:
        # The credentials stay in the client; this URL is safe to show.
        index_url = http.remember(index_url)
        self.index_url = index_url if index_url.endswith("/") else index_url + "/"
        self._http = http
        self._lock = threading.Lock()
        self._pages: dict[NormalizedName, Future[ProjectPage]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="index")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def project_url(self, name: NormalizedName) -> str:
        return urllib.parse.urljoin(self.index_url, f"{name}/")

    def _future(self, name: NormalizedName) -> Future[ProjectPage]:
        with self._lock:
            future = self._pages.get(name)
            if future is None:
                future = self._pool.submit(self._fetch_page, name)
                self._pages[name] = future
            return future

    def prefetch(self, names: Iterable[str]) -> None:
        """Start fetching pages that will probably be needed soon."""
        for name in names:
            self._future(canonicalize_name(name))

    def project_page(self, name: str) -> ProjectPage:
        return self._future(canonicalize_name(name)).result()

    def _fetch_page(self, name: NormalizedName) -> ProjectPage:
        url = self.project_url(name)
        logger.debug("fetching %s", url)
        try:
            response = self._http.get(url, headers={"Accept": ACCEPT})
        except FetchError as e:
            raise IndexAccessError(e.message, package=name) from e
        if response.status_code == 404:
            raise UnknownProjectError(f"{name} is not on the index {self.index_url}", package=name)
        if response.status_code != 200:
            raise IndexAccessError(
                f"cannot read the index page of {name}: HTTP {response.status_code} from {url}",
                package=name,
            )
        page_url = self._http.remember(str(response.url))
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == JSON_CONTENT_TYPE:
            page = parse_json_page(name, page_url, response.content)
        else:
            page = parse_html_page(name, page_url, response.content)
        # A link's own credentials go to the client too, so none travels in a DistFile
        # (and from there into records, errors or logs).
        files = tuple(dataclasses.replace(f, url=self._http.remember(f.url)) for f in page.files)
        return dataclasses.replace(page, files=files)

    def fetch_metadata(self, file: DistFile) -> bytes:
        """The PEP 658 core metadata served beside ``file``, hash-checked."""
        response = self._http.get(file.metadata_url)
        if response.status_code != 200:
            raise FetchError(
                f"cannot fetch metadata {file.metadata_url}: HTTP {response.status_code}"
            )
        verify_bytes(response.content, file.metadata_hashes or {}, file.filename + ".metadata")
        return response.content
