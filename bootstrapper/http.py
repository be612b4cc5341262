"""HTTP access with connection reuse, retries with backoff, and verified downloads."""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from .credentials import Credentials, origin, split_credentials
from .errors import FetchError, HashMismatchError
from .fsutil import replacing

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Hash algorithms strong enough to trust a download with, strongest first.
TRUSTED_HASHES = ("sha512", "sha384", "sha256")
USER_AGENT = "bootstrapper/0.1 (+https://pypi.org/project/bootstrapper/)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2**attempt)))


class HttpClient:
    """One pooled ``httpx.Client`` shared by every thread of a run.

    Credentials in a URL's userinfo are taken out of it on the way in
    (:meth:`remember`) and kept per origin: every request to that origin sends them, and
    no URL this client hands back, logs or puts in an error carries them.
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        max_connections: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._retry = retry
        self._sleep = sleep
        # trust_env=False: the user's proxy/cert settings for *installers* are not ours to
        # guess at, except the CA bundle, which we honour explicitly below.
        cafile = os.environ.get("SSL_CERT_FILE")
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=cafile) if cafile else True
        )
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            verify=verify,
        )
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
        self._client.close()

    def remember(self, url: str) -> str:
        """``url`` without its userinfo; credentials it carried are kept for its origin
        (scheme, host, port) and sent with every later request there."""
        clean, credentials = split_credentials(url)
        if credentials is not None:
            with self._credentials_lock:
                self._credentials[origin(clean)] = credentials
        return clean

    def _auth(self, url: str) -> httpx.BasicAuth | None:
        with self._credentials_lock:
            credentials = self._credentials.get(origin(url))
        if credentials is None:
            return None
        return httpx.BasicAuth(credentials.username, credentials.password)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET with retries on transient failures; the response body is read. ``file:``
        URLs are read from the disk (a directory means its ``index.html``)."""
        url = self.remember(url)
        if url.startswith("file:"):
            return _read_local(url)
        auth = self._auth(url)
        last_error: str = ""
        for attempt in range(self._retry.attempts):
            try:
                response = self._client.get(url, headers=headers, auth=auth)
            except httpx.TransportError as e:
                last_error = f"{type(e).__name__}: {e}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last_error = f"HTTP {response.status_code}"
            if attempt + 1 < self._retry.attempts:
                delay = self._retry.delay(attempt)
                logger.debug("GET %s failed (%s); retrying in %.1fs", url, last_error, delay)
                self._sleep(delay)
        raise FetchError(f"cannot fetch {url}: {last_error} (after {self._retry.attempts} tries)")

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
        dest.parent.mkdir(parents=True, exist_ok=True)
        auth = self._auth(url)
        last_error = ""
        for attempt in range(self._retry.attempts):
            fd, tmp_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
            tmp = Path(tmp_name)
            try:
                digest = hashlib.new(algorithm)
                sha256 = hashlib.sha256()
                with (
                    os.fdopen(fd, "wb") as out,
                    self._client.stream("GET", url, auth=auth) as response,
                ):
                    if response.status_code in RETRY_STATUSES:
                        raise _Transient(f"HTTP {response.status_code}")
                    if response.status_code != 200:
                        raise FetchError(f"cannot download {url}: HTTP {response.status_code}")
                    for chunk in response.iter_bytes(1 << 20):
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
                return sha256.hexdigest()
            except (_Transient, httpx.TransportError) as e:
                last_error = str(e) or type(e).__name__
            finally:
                tmp.unlink(missing_ok=True)
            if attempt + 1 < self._retry.attempts:
                self._sleep(self._retry.delay(attempt))
        raise FetchError(
            f"cannot download {url}: {last_error} (after {self._retry.attempts} tries)"
        )


class _Transient(Exception):
    pass


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


def _read_local(url: str) -> httpx.Response:
    path = local_path(url)
    if path.is_dir():
        path = path / "index.html"
    request = httpx.Request("GET", url)
    if not path.is_file():
        return httpx.Response(404, request=request)
    content_type = "text/html" if path.suffix == ".html" else "application/octet-stream"
    return httpx.Response(
        200, content=path.read_bytes(), headers={"content-type": content_type}, request=request
    )


def _copy_local(url: str, dest: Path, algorithm: str, expected: str | None) -> str:
    source = local_path(url)
    if not source.is_file():
        raise FetchError(f"cannot read {url}: no such file")
    data = source.read_bytes()
    verify_bytes(data, {algorithm: expected} if expected else {}, dest.name)
    with replacing(dest) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
