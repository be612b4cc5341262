"""HTTP access with connection reuse, retries with backoff, and verified downloads."""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import http.client
import logging
import math
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import certifi

from . import fsutil
from .credentials import Credentials, origin, split_credentials
from .errors import FetchError, HashMismatchError
from .fsutil import replacing
from .pageget import ConnectTimeout, PageGetter, TooManyRedirects, UndecodableError, decode

if TYPE_CHECKING:
    # Imported where a download, a range or a proxied page needs it: a re-run whose
    # pages come through the page getter does not pay for importing it.
    import httpx

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The answers whose ``Retry-After`` says how long to wait before the next try.
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: The longest wait a ``Retry-After`` gets, whatever it asks: past it, try anyway.
MAX_RETRY_AFTER = 3600.0
#: Hash algorithms strong enough to trust a download with, strongest first.
TRUSTED_HASHES = ("sha512", "sha384", "sha256")
MAX_REDIRECTS = 20
USER_AGENT = "bootstrapper/0.1 (+https://pypi.org/project/bootstrapper/)"


@dataclass(frozen=True)
class Fetched:
    """The answer to a GET, its body read and decoded."""

    status_code: int
    #: Where the answer came from, redirects followed.
    url: str
    #: Header names in lower case (a repeated header's values joined by ", ").
    headers: Mapping[str, str]
    content: bytes


def _fetched(status: int, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> Fetched:
    kept: dict[str, str] = {}
    for key, value in headers:
        key = key.lower()
        if key not in _DROPPED_HEADERS:
            kept[key] = f"{kept[key]}, {value}" if key in kept else value
    return Fetched(status, url, kept, body)


@dataclass(frozen=True)
class HttpLimits:
    """How long bootstrapper waits on a server, and how often it tries again.

    ``timeout`` bounds connecting and every wait for bytes; a response that brings less
    than ``min_progress`` bytes in ``timeout`` seconds (a trickle) is stalled too. A URL
    gets at most ``retries`` more tries after the first, and no try starts once
    ``budget`` seconds have passed since the first; a page (not a download, which may
    legitimately take long while it makes progress) must also be complete by then. A 429
    or 503 with ``Retry-After`` is tried again after the wait it asks for (at most
    :data:`MAX_RETRY_AFTER`), or not at all when that wait ends past the budget.
    """

    timeout: float = 10.0
    retries: int = 4
    budget: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    min_progress: int = 1024

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2**attempt)))


#: What ``get`` returns without a body of its own: decoded already.
_DROPPED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class HttpClient:
    """The run's HTTP, shared by every thread: pages and core metadata through the page
    getter (kept-alive HTTP/1.1 of the standard library); downloads, ranges and pages
    behind a proxy through one pooled ``httpx.Client``, made (and httpx imported) when
    first needed.

    Credentials in a URL's userinfo are taken out of it on the way in
    (:meth:`remember`) and kept per origin: every request to that origin sends them, and
    no URL this client hands back, logs or puts in an error carries them.
    """

    def __init__(
        self,
        limits: HttpLimits = HttpLimits(),
        *,
        max_connections: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = limits
        self._sleep = sleep
        self._max_connections = max_connections
        # Made on first use (a re-run whose index is plain http never needs the CA
        # bundle, whose loading alone costs about 20 ms): see _verify and _httpx.
        self._made_lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._client: httpx.Client | None = None
        #: Pages and metadata: the same trust, without httpx's per-request layers.
        self._pages = PageGetter(self._verify, USER_AGENT, max_idle=max_connections)
        self._credentials: dict[tuple[str, str, int | None], Credentials] = {}
        self._credentials_lock = threading.Lock()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._made_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._pages.close()

    def _verify(self) -> ssl.SSLContext:
        """The one CA trust of both paths: SSL_CERT_FILE's bundle, else certifi's
        (httpx's default), made once."""
        with self._made_lock:
            if self._context is None:
                cafile = os.environ.get("SSL_CERT_FILE") or certifi.where()
                self._context = ssl.create_default_context(cafile=cafile)
            return self._context

    def _httpx(self) -> httpx.Client:
        """The pooled httpx client of downloads, ranges and proxied pages, made once.

        httpx's default trust_env holds: HTTP(S)_PROXY / NO_PROXY reach the index as they
        would reach pip (a platform team's index is often behind one). (These are our
        requests only: a build sees an allow-list, see sandbox.sandbox_environ.)"""
        import httpx

        verify = self._verify()
        with self._made_lock:
            if self._client is None:
                self._client = httpx.Client(
                    # No bound on waiting for one of our own pooled connections: a slot
                    # taken by a long download is not the server's fault.
                    timeout=httpx.Timeout(self._limits.timeout, pool=None),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(
                        max_connections=self._max_connections,
                        max_keepalive_connections=self._max_connections,
                    ),
                    verify=verify,
                )
            return self._client

    def remember(self, url: str) -> str:
        """``url`` without its userinfo; credentials it carried are kept for its origin
        (scheme, host, port) and sent with every later request there."""
        clean, credentials = split_credentials(url)
        if credentials is not None:
            with self._credentials_lock:
                self._credentials[origin(clean)] = credentials
        return clean

    def _basic_credentials(self, url: str) -> tuple[str, str] | None:
        """The user name and password kept for ``url``'s origin, if any."""
        with self._credentials_lock:
            credentials = self._credentials.get(origin(url))
        return None if credentials is None else (credentials.username, credentials.password)

    def _auth(self, url: str) -> httpx.BasicAuth | None:
        import httpx

        credentials = self._basic_credentials(url)
        return None if credentials is None else httpx.BasicAuth(*credentials)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Fetched:
        """GET with retries on transient failures; the response body is read. ``file:``
        URLs are read from the disk (a directory means its ``index.html``)."""
        url = self.remember(url)
        if url.startswith("file:"):
            return _read_local(url)
        retrying = _Tries(self._limits, self._sleep)
        while True:
            try:
                response = self._get_once(url, headers, retrying.deadline)
            except _Transient as e:
                retrying.failed(str(e), retry_after=e.retry_after)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                retrying.failed(
                    f"HTTP {response.status_code}",
                    retry_after=_retry_after(response.status_code, response.headers),
                )
            if not retrying.again():
                raise FetchError(f"cannot fetch {url}: {retrying.summary()}")

    def _get_once(self, url: str, headers: Mapping[str, str] | None, deadline: float) -> Fetched:
        remaining = max(1.0, deadline - time.monotonic())
        if self._pages.handles(url):
            page = self._get_page(url, headers, deadline, min(self._limits.timeout, remaining))
            if page is not None:
                return page
        import httpx

        timeout = httpx.Timeout(min(self._limits.timeout, remaining), pool=None)
        try:
            with self._httpx().stream(
                "GET", url, headers=headers, timeout=timeout, auth=self._auth(url)
            ) as response:
                try:
                    body = b"".join(_watched(response.iter_bytes(), self._limits, deadline))
                except httpx.DecodingError as e:
                    encoding = response.headers.get("content-encoding", "")
                    raise _undecodable(url, encoding, e) from None
                return _fetched(
                    response.status_code,
                    str(response.url),
                    response.headers.multi_items(),
                    body,
                )
        except httpx.HTTPError as e:
            raise _Transient(_describe(e, url, self._limits)) from None

    def _get_page(
        self, url: str, headers: Mapping[str, str] | None, deadline: float, timeout: float
    ) -> Fetched | None:
        """:meth:`_get_once` by the page getter; None for a redirect, left to httpx."""
        try:
            answer = self._pages.get(
                url, headers or {}, timeout, self._basic_credentials, MAX_REDIRECTS
            )
            if answer is None:
                return None
            try:
                body = b"".join(_watched(answer.chunks(), self._limits, deadline))
            finally:
                answer.close()
        except TooManyRedirects as e:
            raise _too_many_redirects(url, e.url) from None
        except TimeoutError as e:  # worded as httpx words it
            kind = "ConnectTimeout" if isinstance(e, ConnectTimeout) else "ReadTimeout"
            raise _Transient(f"no answer within {self._limits.timeout:g}s ({kind})") from None
        except (OSError, http.client.HTTPException) as e:
            raise _Transient(f"{type(e).__name__}: {e}") from None
        try:
            content = decode(body, answer.header("content-encoding"))
        except UndecodableError as e:
            raise _undecodable(url, e.encoding, e) from None
        return _fetched(answer.status, answer.url, answer.headers, content)

    def get_range(self, url: str, first: int | None, length: int) -> ByteRange:
        """``length`` bytes of ``url`` from offset ``first``, or its last ``length`` bytes
        when ``first`` is None (a suffix range), by an HTTP range request.

        Only a 206 answer is read, and no more of it than was asked for: a server that
        ignores ``Range`` (200 with the whole file) or refuses it is left at once, before
        its body, with a :class:`RangeNotServedError`. Transient failures are tried again
        as :meth:`get` does.
        """
        if length <= 0:
            raise ValueError(f"a range of {length} bytes")
        url = self.remember(url)
        if url.startswith("file:"):
            return _read_local_range(url, first, length)
        import httpx

        wanted = f"bytes=-{length}" if first is None else f"bytes={first}-{first + length - 1}"
        headers = {"Range": wanted, "Accept-Encoding": "identity"}
        auth = self._auth(url)
        retrying = _Tries(self._limits, self._sleep)
        while True:
            try:
                return self._get_range_once(url, headers, first, length, retrying.deadline, auth)
            except _Transient as e:
                retrying.failed(str(e), retry_after=e.retry_after)
            except httpx.HTTPError as e:
                retrying.failed(_describe(e, url, self._limits))
            if not retrying.again():
                raise FetchError(f"cannot fetch {wanted} of {url}: {retrying.summary()}")

    def _get_range_once(
        self,
        url: str,
        headers: Mapping[str, str],
        first: int | None,
        length: int,
        deadline: float,
        auth: httpx.BasicAuth | None,
    ) -> ByteRange:
        import httpx

        remaining = max(1.0, deadline - time.monotonic())
        timeout = httpx.Timeout(min(self._limits.timeout, remaining), pool=None)
        with self._httpx().stream(
            "GET", url, headers=headers, timeout=timeout, auth=auth
        ) as response:
            if response.status_code in RETRY_STATUSES:
                raise _Transient(
                    f"HTTP {response.status_code}",
                    retry_after=_retry_after(response.status_code, response.headers),
                )
            size = response.headers.get("content-length", "")
            if (
                response.status_code == 200
                and first in (None, 0)
                and size.isdigit()
                and int(size) <= length
            ):
                # The whole file is no more than was asked for: as good as the range.
                whole = b"".join(_watched(response.iter_raw(), self._limits, deadline))
                if len(whole) != int(size):
                    raise _Transient(f"{len(whole)} of the {size} bytes of the file")
                return ByteRange(0, whole, len(whole))
            if response.status_code != 206:
                # Leaving the block closes the connection unread: a server that sends the
                # whole 500 MB wheel to a range request costs us only its headers.
                raise RangeNotServedError(
                    f"{url}: HTTP {response.status_code} to a range request "
                    f"({headers['Range']}), not 206"
                )
            start, end, total = _content_range(response.headers.get("content-range", ""), url)
            expected_start = first if first is not None else max(0, total - length)
            expected_end = min(expected_start + length, total) - 1
            if (start, end) != (expected_start, expected_end):
                raise RangeNotServedError(
                    f"{url}: asked for {headers['Range']}, the server sent bytes "
                    f"{start}-{end}/{total}"
                )
            body = bytearray()
            for chunk in _watched(response.iter_raw(), self._limits, deadline):
                body += chunk
                if len(body) > end - start + 1:
                    raise RangeNotServedError(f"{url}: more bytes than the range it announced")
            if len(body) != end - start + 1:
                raise _Transient(f"{len(body)} of the {end - start + 1} bytes of a range")
            return ByteRange(start, bytes(body), total)

    def download(
        self, url: str, dest: Path, hashes: Mapping[str, str], *, require_hash: bool = True
    ) -> str:
        """Stream ``url`` into ``dest`` (atomically), verifying the strongest known hash.

        Returns the sha256 of what was written. Nothing is left at ``dest`` if the bytes do
        not match. Without a hash the download is refused, unless ``require_hash`` is
        false (a source URL from the user's own settings).
        """
        url = self.remember(url)
        algorithm = strongest_hash(hashes)
        if algorithm is None and require_hash:
            raise FetchError(
                f"the index gives no sha256 for {url}; refusing an unverified download"
            )
        algorithm = algorithm or "sha256"
        expected = hashes[algorithm].lower() if algorithm in hashes else None
        if url.startswith("file:"):
            return _copy_local(url, dest, algorithm, expected)
        import httpx

        dest.parent.mkdir(parents=True, exist_ok=True)
        auth = self._auth(url)
        retrying = _Tries(self._limits, self._sleep)
        while True:
            fd, tmp_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
            tmp = Path(tmp_name)
            try:
                digest = hashlib.new(algorithm)
                sha256 = hashlib.sha256()
                # The file's own bytes, as the hash was taken of them: no transfer
                # encoding asked for, and none undone (a server that labels a .tar.gz
                # "Content-Encoding: gzip" must not get it unpacked on the way).
                with (
                    os.fdopen(fd, "wb") as out,
                    self._httpx().stream(
                        "GET", url, headers={"Accept-Encoding": "identity"}, auth=auth
                    ) as response,
                ):
                    if response.status_code in RETRY_STATUSES:
                        raise _Transient(
                            f"HTTP {response.status_code}",
                            retry_after=_retry_after(response.status_code, response.headers),
                        )
                    if response.status_code != 200:
                        raise FetchError(f"cannot download {url}: HTTP {response.status_code}")
                    for chunk in _watched(response.iter_raw(), self._limits, None):
                        digest.update(chunk)
                        sha256.update(chunk)
                        out.write(chunk)
                actual = digest.hexdigest()
                if expected is not None and actual != expected:
                    raise hash_mismatch(
                        f"{dest.name}: downloaded bytes", algorithm, expected, actual, url
                    )
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
                # Hashed as it was written: a later look (this run's or the next's, by
                # the kept digests) need not read it again.
                fsutil.HASHES.remember(dest, sha256.hexdigest())
                return sha256.hexdigest()
            except _Transient as e:
                retrying.failed(str(e), retry_after=e.retry_after)
            except httpx.HTTPError as e:
                retrying.failed(_describe(e, url, self._limits))
            finally:
                tmp.unlink(missing_ok=True)
            if not retrying.again():
                raise FetchError(f"cannot download {url}: {retrying.summary()}")


@dataclass(frozen=True)
class ByteRange:
    """Some bytes of a remote file: ``data`` starts at offset ``start`` of ``total``."""

    start: int
    data: bytes
    total: int


class RangeNotServedError(FetchError):
    """The server did not answer a range request with exactly the range (206)."""


def _content_range(value: str, url: str) -> tuple[int, int, int]:
    """``first``, ``last`` and the total length from ``Content-Range: bytes a-b/n``."""
    unit, _, spec = value.strip().partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    try:
        start, end, size = int(first), int(last), int(total)
    except ValueError:
        raise RangeNotServedError(
            f"{url}: a 206 answer with Content-Range {value!r}, not bytes FIRST-LAST/LENGTH"
        ) from None
    if unit.lower() != "bytes" or not 0 <= start <= end < size:
        raise RangeNotServedError(f"{url}: a 206 answer with Content-Range {value!r}")
    return start, end, size


class _Tries:
    """The retry state of one URL: its tries, its time budget, its last error."""

    def __init__(self, limits: HttpLimits, sleep: Callable[[float], None]) -> None:
        self._limits = limits
        self._sleep = sleep
        self.started = time.monotonic()
        self.deadline = self.started + limits.budget
        self.tries = 0
        self.last_error = ""
        self.retry_after: float | None = None
        #: Set when the server asked for a wait the budget cannot give: what it asked.
        self.refused_wait: float | None = None

    def failed(self, error: str, *, retry_after: float | None = None) -> None:
        self.tries += 1
        self.last_error = error
        self.retry_after = retry_after

    def again(self) -> bool:
        """Wait before the next try and say True, or say False when none is left."""
        if self.tries > self._limits.retries:
            return False
        delay = self._limits.delay(self.tries - 1)
        asked = self.retry_after
        # The server said when it can answer again: asking sooner only adds to its load.
        waits_for_server = asked is not None and asked >= delay
        if asked is not None and waits_for_server:
            delay = min(asked, MAX_RETRY_AFTER)
        if time.monotonic() + delay >= self.deadline:
            if waits_for_server:
                self.refused_wait = asked
            return False
        logger.debug("try %d failed (%s); retrying in %.1fs", self.tries, self.last_error, delay)
        self._sleep(delay)
        return True

    def summary(self) -> str:
        tries = "1 try" if self.tries == 1 else f"{self.tries} tries"
        took = time.monotonic() - self.started
        said = f"{self.last_error} ({tries} in {took:.1f}s)"
        asked = self.refused_wait
        if asked is None:
            return said
        if asked > MAX_RETRY_AFTER:
            # Years ahead, or a number of 400 digits: not a wait anyone should budget for.
            return (
                f"{said}, and the server asks to wait {_duration(asked)} before another "
                f"try (Retry-After), more than bootstrapper waits for any server "
                f"({MAX_RETRY_AFTER:g}s); try again later, or use another index"
            )
        left = max(0.0, self.deadline - time.monotonic())
        return (
            f"{said}, and the server asks to wait {_duration(asked)} before another try "
            f"(Retry-After), more than the {left:.1f}s left of this URL's "
            f"{self._limits.budget:g}s budget; to wait for it, raise --http-budget "
            f"(to {math.ceil(took + asked) + 1} or more)"
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 1e9 else "more than 30 years"


def retry_after_seconds(value: str, now: float) -> float | None:
    """How long a ``Retry-After`` header asks to wait, from ``now`` (a ``time.time()``):
    delta-seconds or an HTTP-date (RFC 9110 10.2.3); a date in the past is 0. ``None``
    for a value that is neither. May be huge (even ``inf``); the caller caps it."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime form: HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def _retry_after(status: int, headers: Mapping[str, str]) -> float | None:
    """The wait a 429 or 503 asks for (``headers`` look names up in lower case)."""
    if status not in RETRY_AFTER_STATUSES:
        return None
    value = headers.get("retry-after")
    return None if value is None else retry_after_seconds(value, time.time())


def _watched(
    chunks: Iterator[bytes], limits: HttpLimits, deadline: float | None
) -> Iterator[bytes]:
    """``chunks`` as they come, ending the try when they come too slowly: less than
    ``min_progress`` bytes in ``timeout`` seconds, or not all of them by ``deadline``.
    (Silence itself is ended by httpx's read timeout, which is ``timeout`` too.)"""
    window_start = time.monotonic()
    window_bytes = 0
    for chunk in chunks:
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise _Transient(f"the answer was not complete within {limits.budget:g}s")
        window_bytes += len(chunk)
        if now - window_start >= limits.timeout:
            if window_bytes < limits.min_progress:
                raise _Transient(
                    f"stalled: {window_bytes} bytes in {now - window_start:.1f}s "
                    f"(less than {limits.min_progress} in {limits.timeout:g}s)"
                )
            window_start, window_bytes = now, 0
        yield chunk


def _describe(error: httpx.HTTPError, url: str, limits: HttpLimits) -> str:
    """A failed try in words; raises at once for failures another try cannot mend."""
    import httpx

    if isinstance(error, httpx.TooManyRedirects):
        raise _too_many_redirects(url, str(error.request.url)) from None
    if isinstance(error, httpx.UnsupportedProtocol):
        raise FetchError(f"cannot fetch {url}: {error}") from None
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {limits.timeout:g}s ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


def _too_many_redirects(url: str, last: str) -> FetchError:
    return FetchError(
        f"cannot fetch {url}: too many redirects (more than {MAX_REDIRECTS}, the last "
        f"to {last}); the server sends it round in a loop"
    )


def _undecodable(url: str, encoding: str, error: Exception) -> FetchError:
    return FetchError(
        f"cannot fetch {url}: the server says its answer is "
        f"Content-Encoding {encoding!r}, but it does not decode as that ({error}); "
        "the server is misconfigured (ask its operator, or use another index)"
    )


class _Transient(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def strongest_hash(hashes: Mapping[str, str]) -> str | None:
    """The strongest trusted algorithm present in ``hashes``, if any."""
    for name in TRUSTED_HASHES:
        if name in hashes:
            return name
    return None


def verify_bytes(data: bytes, hashes: Mapping[str, str], what: str) -> None:
    """Check ``data`` against the strongest trusted hash; without one, do nothing."""
    algorithm = strongest_hash(hashes)
    if algorithm is None:
        return
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != hashes[algorithm].lower():
        raise hash_mismatch(f"{what}: bytes", algorithm, hashes[algorithm], actual)


def hash_mismatch(
    what: str, algorithm: str, expected: str, actual: str, url: str | None = None
) -> HashMismatchError:
    """The error for bytes whose hash is not the one the index published."""
    details = f"expected {algorithm}={expected}\ngot      {algorithm}={actual}"
    return HashMismatchError(
        f"{what} do not match the index's {algorithm}",
        details=details + (f"\nurl: {url}" if url else ""),
    )


def local_path(url: str) -> Path:
    """The path a ``file:`` URL names."""
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.request.url2pathname(parsed.path))


def _read_local(url: str) -> Fetched:
    path = local_path(url)
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        return Fetched(404, url, {}, b"")
    content_type = "text/html" if path.suffix == ".html" else "application/octet-stream"
    return Fetched(200, url, {"content-type": content_type}, path.read_bytes())


def _read_local_range(url: str, first: int | None, length: int) -> ByteRange:
    path = local_path(url)
    try:
        with path.open("rb") as f:
            total = os.fstat(f.fileno()).st_size
            start = max(0, total - length) if first is None else first
            if start >= total:
                raise RangeNotServedError(f"{url}: no byte {start} in a {total}-byte file")
            f.seek(start)
            return ByteRange(start, f.read(length), total)
    except OSError as e:
        raise FetchError(f"cannot read {url}: {e.strerror or e}") from None


def _copy_local(url: str, dest: Path, algorithm: str, expected: str | None) -> str:
    source = local_path(url)
    if not source.is_file():
        raise FetchError(f"cannot read {url}: no such file")
    data = source.read_bytes()
    verify_bytes(data, {algorithm: expected} if expected else {}, dest.name)
    with replacing(dest) as tmp:
        tmp.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    fsutil.HASHES.remember(dest, digest)
    return digest
