"""GET of small documents (index pages, core metadata) over kept-alive HTTP/1.1
connections of the standard library.

A run asks the index for hundreds of pages, and through httpx each one cost about 0.7 ms
of CPU, most of it in layers a page does not need (cookies, auth flows, event hooks, two
response models). This path does what a page needs and nothing else: one request on a
pooled connection, redirects followed, the answer's bytes as they come, and gzip or
deflate undone. Hosts reached through a proxy (HTTP(S)_PROXY or ALL_PROXY set) it leaves
to httpx.
"""

from __future__ import annotations

import base64
import http.client
import threading
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from ssl import SSLContext

#: The answers that send a GET elsewhere (by their Location).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 16

Origin = tuple[str, str, int]


class ConnectTimeout(TimeoutError):
    """No connection within the time limit (any other TimeoutError is a read's)."""


class TooManyRedirects(Exception):
    """Redirects beyond the limit; the last one led to ``url``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class UndecodableError(Exception):
    """The answer's bytes are not in the Content-Encoding it names."""

    def __init__(self, encoding: str, reason: str) -> None:
        super().__init__(reason)
        self.encoding = encoding


class Answer:
    """An answer whose headers are read: its body is read once, by :meth:`chunks`, and
    :meth:`close` gives the connection back to the pool if the body was read whole."""

    def __init__(
        self,
        url: str,
        status: int,
        headers: list[tuple[str, str]],
        response: http.client.HTTPResponse,
        release: Callable[[bool], None],
    ) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self._response = response
        self._release = release
        self._done = False

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")

    def chunks(self) -> Iterator[bytes]:
        # read1: what one read brings (a trickle is seen as such), not a full chunk.
        while chunk := self._response.read1(_CHUNK):
            yield chunk
        self._done = True

    def close(self) -> None:
        reusable = self._done and not self._response.will_close
        # The answer closed (not its socket): only then does the connection take another
        # request.
        self._response.close()
        self._release(reusable)


def decode(body: bytes, encoding: str) -> bytes:
    """``body`` without its Content-Encoding (identity, gzip or deflate)."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "x-gzip"):
            return _whole(zlib.decompressobj(16 + zlib.MAX_WBITS), body)
        if encoding == "deflate":
            # zlib-wrapped, as the RFC says, or raw, as some servers send it.
            try:
                return _whole(zlib.decompressobj(zlib.MAX_WBITS), body)
            except zlib.error:
                return _whole(zlib.decompressobj(-zlib.MAX_WBITS), body)
    except zlib.error as e:
        raise UndecodableError(encoding, str(e)) from None
    raise UndecodableError(encoding, "an encoding bootstrapper does not know")


def _whole(decompressor: zlib._Decompress, body: bytes) -> bytes:
    data = decompressor.decompress(body) + decompressor.flush()
    if not decompressor.eof:
        raise zlib.error("the compressed data ends early")
    return data


class PageGetter:
    """Pooled connections per origin, shared by every thread of a run."""

    def __init__(
        self, context: Callable[[], SSLContext], user_agent: str, *, max_idle: int = 16
    ) -> None:
        #: The TLS trust, asked for when an https connection is first made.
        self._context = context
        self._user_agent = user_agent
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        # As httpx reads them, once: the proxies the environment names.
        self._proxies = urllib.request.getproxies_environment()

    def handles(self, url: str) -> bool:
        """Whether this path may fetch ``url``: http or https, with no proxy named for
        that scheme (NO_PROXY's rules are httpx's to apply)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        return not (self._proxies.get(parts.scheme) or self._proxies.get("all"))

    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        credentials_for: Callable[[str], tuple[str, str] | None],
        max_redirects: int,
    ) -> Answer | None:
        """The answer to a GET of ``url`` (redirects followed: its ``url`` is the last),
        its headers read; None when a redirect leads where this path does not go.
        Raises OSError or http.client.HTTPException when an exchange fails, and
        TooManyRedirects. Each URL gets the credentials ``credentials_for`` gives it."""
        for _ in range(max_redirects + 1):
            answer = self._get_one(url, headers, timeout, credentials_for(url))
            location = answer.header("location") if answer.status in REDIRECTS else ""
            if not location:
                return answer
            # The rest of a redirect's (short) body, so that its connection is kept.
            for _chunk in answer.chunks():
                pass
            answer.close()
            url = urllib.parse.urljoin(url, location)
            if not self.handles(url):
                return None
        raise TooManyRedirects(url)

    def _get_one(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        credentials: tuple[str, str] | None,
    ) -> Answer:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname is not None
        origin = (parts.scheme, parts.hostname, parts.port or _default_port(parts.scheme))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {
            "User-Agent": self._user_agent,
            "Accept-Encoding": "gzip, deflate",
            **headers,
        }
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode("ascii")
            sent["Authorization"] = f"Basic {token}"
        connection, reused = self._take(origin, timeout)
        while True:
            try:
                connection.request("GET", target, headers=sent)
                response = connection.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if not reused:
                    raise
                # The server closed a kept-alive connection meanwhile: one new connection.
                connection, reused = self._new(origin, timeout), False
            except BaseException:
                connection.close()
                raise

        def release(reusable: bool) -> None:
            if reusable:
                self._give_back(origin, connection)
            else:
                connection.close()

        return Answer(url, response.status, response.getheaders(), response, release)

    def _take(self, origin: Origin, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            connection = idle.pop() if idle else None
        if connection is None:
            return self._new(origin, timeout), False
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection, True

    def _new(self, origin: Origin, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection = (
            http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context())
            if scheme == "https"
            else http.client.HTTPConnection(host, port, timeout=timeout)
        )
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise ConnectTimeout(f"no connection to {host}:{port} within {timeout:g}s") from None
        except BaseException:
            connection.close()
            raise
        return connection

    def _give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                with suppress(OSError):
                    connection.close()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
