"""``bootstrapper serve``: a small read-only HTTP server over an output directory.

Index pages (a directory holding ``index.html`` and/or ``index.json``) are answered in the
form the client's ``Accept`` asks for (PEP 691, :mod:`.negotiation`); every other file is
served as it is, with single byte ranges. Nothing outside the directory is ever served:
not through ``..``, an encoded slash or a symbolic link that leads out, and no hidden
file or directory (``.work``, half-written ``.*.tmp`` files) either.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import socket
import socketserver
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from packaging.utils import canonicalize_name

from . import __version__
from .negotiation import Form, choose, choose_by_format
from .simple_json import JSON_MEDIA_TYPE, JSON_PAGE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
HTML_PAGE = "index.html"

#: The index directories whose project pages may be asked for by an unnormalized name
#: (``/simple/Foo_Bar/``): they are redirected to the normalized one, as PyPI does.
_INDEXES = ("simple", "sdists")
_CHUNK = 1 << 16

#: Media types by file name ending; anything else is served as bytes (never with a
#: ``Content-Encoding``: a ``.tar.gz`` is the file, not gzip-compressed ``.tar``).
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".patch": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}


def media_type_of(path: Path) -> str:
    if path.name == JSON_PAGE:
        return JSON_MEDIA_TYPE
    return _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class Answer:
    """What to answer a request with: a file (possibly a page in the form chosen), a
    redirect or an error."""

    status: HTTPStatus
    file: Path | None = None
    media_type: str = "text/plain; charset=utf-8"
    location: str | None = None
    message: str = ""
    #: Whether the answer depends on ``Accept`` (a negotiated page, or a 406).
    negotiated: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _segments(path: str) -> list[str] | None:
    """The decoded segments of a request path, or ``None`` for one that may name nothing
    here: a segment that decodes to a slash, a backslash or NUL (smuggled separators),
    one that starts with a dot (``..``, ``.work``, hidden files), an empty one inside the
    path (``a//b``), or bytes that are not UTF-8. A final empty segment means a
    directory (``/simple/``)."""
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    segments = []
    for i, part in enumerate(parts):
        try:
            segment = urllib.parse.unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if segment == "" and i != len(parts) - 1:
            return None
        if any(c in segment for c in "/\\\0") or segment.startswith("."):
            return None
        segments.append(segment)
    return segments


class Site:
    """What each URL of a served directory answers (everything but the HTTP itself)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def _inside(self, path: Path) -> Path | None:
        """``path`` with its links resolved, if that is still in the directory and
        hidden nowhere in it; ``None`` otherwise."""
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            return None
        if any(part.startswith(".") for part in real.relative_to(self.root).parts):
            return None
        return real

    def answer(self, target: str, accept: str | None) -> Answer:
        """The answer to ``GET target`` (a request target: path and query)."""
        split = urllib.parse.urlsplit(target)
        segments = _segments(split.path)
        if segments is None:
            return Answer(HTTPStatus.NOT_FOUND, message="not found")
        candidate = self.root.joinpath(*segments)
        real = self._inside(candidate)
        if real is None or not real.exists():
            return self._unnormalized(segments, split.query) or Answer(
                HTTPStatus.NOT_FOUND, message="not found"
            )
        if real.is_dir():
            if segments and segments[-1] != "":
                location = urllib.parse.urlunsplit(("", "", split.path + "/", split.query, ""))
                return Answer(HTTPStatus.MOVED_PERMANENTLY, location=location)
            return self._page(real, split.query, accept)
        if not real.is_file():
            return Answer(HTTPStatus.NOT_FOUND, message="not found")
        return Answer(HTTPStatus.OK, file=real, media_type=media_type_of(real))

    def _unnormalized(self, segments: list[str], query: str) -> Answer | None:
        """A redirect from a project page asked for by an unnormalized name."""
        if len(segments) < 2 or segments[0] not in _INDEXES:
            return None
        name = canonicalize_name(segments[1])
        if name == segments[1] or self._inside(self.root / segments[0] / name) is None:
            return None
        if not (self.root / segments[0] / name).is_dir():
            return None
        path = "/".join(["", segments[0], name, *(segments[2:] or [""])])
        return Answer(
            HTTPStatus.MOVED_PERMANENTLY,
            location=urllib.parse.urlunsplit(("", "", urllib.parse.quote(path), query, "")),
        )

    def _page(self, directory: Path, query: str, accept: str | None) -> Answer:
        pages = {Form.HTML: directory / HTML_PAGE, Form.JSON: directory / JSON_PAGE}
        available = [
            form
            for form, page in pages.items()
            if self._inside(page) is not None and page.is_file()
        ]
        if not available:
            return Answer(HTTPStatus.NOT_FOUND, message="not found (no index page here)")
        # A '+' is the one in the media type's name (...v1+json), never a space.
        formats = urllib.parse.parse_qs(query.replace("+", "%2B")).get("format")
        choice = choose_by_format(formats[0], available) if formats else choose(accept, available)
        if choice is None:
            offered = ", ".join(_offered(available))
            return Answer(
                HTTPStatus.NOT_ACCEPTABLE,
                message=f"this page is served as: {offered}",
                negotiated=True,
            )
        media_type = choice.media_type
        if choice.form is Form.HTML:
            media_type += "; charset=utf-8"
        return Answer(
            HTTPStatus.OK,
            file=pages[choice.form],
            media_type=media_type,
            negotiated=True,
            # Pages change with every run that publishes: ask again before reusing one.
            headers={"Cache-Control": "no-cache"},
        )


def _offered(available: list[Form]) -> list[str]:
    offered = []
    if Form.HTML in available:
        offered += ["text/html", "application/vnd.pypi.simple.v1+html"]
    if Form.JSON in available:
        offered.append(JSON_MEDIA_TYPE)
    return offered


class RangeNotSatisfiable(Exception):
    """A byte range that starts past the end of the file (HTTP 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last; inclusive) a ``Range`` header asks of a file of
    ``size`` bytes, or ``None`` to serve the whole file (a header this server does not
    honour: another unit, several ranges, a malformed one); raises RangeNotSatisfiable
    for a range past the end."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":  # the last N bytes
            suffix = int(last_text)
            if suffix < 0:
                return None
            if suffix == 0 or size == 0:
                raise RangeNotSatisfiable(header)
            return max(size - suffix, 0), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0:
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    if last < first:
        return None
    return first, min(last, size - 1)


class _Handler(BaseHTTPRequestHandler):
    server: IndexServer
    protocol_version = "HTTP/1.1"
    server_version = f"bootstrapper/{__version__}"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        answer = self.server.site.answer(self.path, self.headers.get("Accept"))
        if answer.file is None:
            self._send_bare(answer, body=body)
            return
        try:
            stream = answer.file.open("rb")
        except OSError:
            self._send_bare(Answer(HTTPStatus.NOT_FOUND, message="not found"), body=body)
            return
        with stream:
            self._send_file(answer, stream, body=body)

    def _send_bare(self, answer: Answer, *, body: bool) -> None:
        content = (answer.message + "\n").encode() if answer.message else b""
        self.send_response(answer.status)
        if answer.location is not None:
            self.send_header("Location", answer.location)
        if answer.negotiated:
            self.send_header("Vary", "Accept")
        self.send_header("Content-Type", answer.media_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self._log(answer.status, len(content), answer.media_type)
        if body:
            self.wfile.write(content)

    def _send_file(self, answer: Answer, stream: BinaryIO, *, body: bool) -> None:
        stat = os.fstat(stream.fileno())
        size = stat.st_size
        status, first, length = HTTPStatus.OK, 0, size
        requested = self.headers.get("Range")
        # A range of a negotiated page would mix the forms; If-Range is not honoured.
        if requested and not answer.negotiated and self.headers.get("If-Range") is None:
            try:
                wanted = parse_range(requested, size)
            except RangeNotSatisfiable:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._log(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, 0, "")
                return
            if wanted is not None:
                first, last = wanted
                status, length = HTTPStatus.PARTIAL_CONTENT, last + 1 - first
        self.send_response(status)
        self.send_header("Content-Type", answer.media_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if status is HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{first + length - 1}/{size}")
        if answer.negotiated:
            self.send_header("Vary", "Accept")
        else:
            self.send_header("Accept-Ranges", "bytes")
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._log(status, length, answer.media_type)
        if not body:
            return
        stream.seek(first)
        left = length
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:  # the file shrank while it was sent: the client sees it short
                self.close_connection = True
                return
            self.wfile.write(chunk)
            left -= len(chunk)

    def _log(self, status: int, length: int, media_type: str) -> None:
        self.server.log(
            f'{self.address_string()} "{_printable(self.requestline)}" {int(status)} {length} '
            f"{media_type.split(';')[0] or '-'}"
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # every answer is logged by _log, with its media type

    def log_message(self, format: str, *args: Any) -> None:
        # What the base class reports itself: malformed requests, unsupported methods.
        self.server.log(f"{self.address_string()} {_printable(format % args)}")

    def handle(self) -> None:
        # The client went away mid-answer: nothing to tell anyone.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a request line is the client's to
    write, and the log goes to a terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class IndexServer(ThreadingHTTPServer):
    """A threaded HTTP server over ``root``; ``log`` gets one line per request."""

    daemon_threads = True
    #: The backlog a client's connection pool can fill (socketserver's 5 drops bursts).
    request_queue_size = 128

    def __init__(self, root: Path, host: str, port: int, log: Callable[[str], None]) -> None:
        self.site = Site(root)
        self.log = log
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # Not HTTPServer's: it asks the resolver for the host's full name, which can
        # hang where DNS does not answer; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"
