"""A local HTTP server that misbehaves on purpose, one way per path prefix:

- ``/hang/...``: accepts the connection, reads the request, never answers;
- ``/trickle/...``: promises 4096 bytes and sends one every ``TRICKLE`` seconds;
- ``/silent-trickle/...``: the same, one byte every ``SLOW_TRICKLE`` seconds;
- ``/short-trickle/...``: sends 15 bytes ``x``, one every 0.1 seconds;
- ``/loop/...``: redirects to itself, forever;
- ``/bad-gzip/...``: says ``Content-Encoding: gzip`` and sends bytes that are not;
- ``/labelled-gzip/NAME``: sends ``files[NAME]`` as it is, labelled
  ``Content-Encoding: gzip`` (as some servers label a ``.tar.gz``);
- ``/busy/NAME``: answers the first ``busy.times`` requests for the path with
  ``busy.status`` and, unless it is ``None``, ``Retry-After: busy.retry_after``; then
  sends ``files[NAME]`` (or a small page).
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

TRICKLE = 0.2
SLOW_TRICKLE = 1.5


@dataclass
class Busy:
    """How ``/busy/`` paths answer until they give in."""

    status: int = 503
    retry_after: str | None = "1"
    times: int = 1


class MisbehavingServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        #: When each request arrived (``time.monotonic()``), in the order of ``requests``.
        self.arrivals: list[float] = []
        self.busy = Busy()
        self._busy_seen: Counter[str] = Counter()
        self._stop = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode("latin-1").strip()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path = request_line.split(" ")[1] if " " in request_line else "/"
                outer.requests.append(path)
                outer.arrivals.append(time.monotonic())
                outer._answer(self, path)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: socketserver.StreamRequestHandler, path: str) -> None:
        out = _Closing(handler.wfile)
        try:
            if path.startswith("/hang/"):
                self._stop.wait(120)
            elif path.startswith(("/trickle/", "/silent-trickle/")):
                pause = TRICKLE if path.startswith("/trickle/") else SLOW_TRICKLE
                out.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4096\r\n\r\n"
                )
                out.flush()
                for _ in range(4096):
                    if self._stop.wait(pause):
                        return
                    out.write(b"x")
                    out.flush()
            elif path.startswith("/short-trickle/"):
                out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n")
                out.flush()
                for _ in range(15):
                    time.sleep(0.1)
                    out.write(b"x")
                    out.flush()
            elif path.startswith("/loop/"):
                out.write(
                    f"HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\n\r\n".encode()
                )
            elif path.startswith("/bad-gzip/"):
                body = b"<html>this is not gzip</html>"
                out.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            elif path.startswith("/labelled-gzip/"):
                body = self.files[path.rsplit("/", 1)[1]]
                out.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n"
                    b"Content-Encoding: gzip\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            elif path.startswith("/busy/"):
                self._busy_seen[path] += 1
                if self._busy_seen[path] <= self.busy.times:
                    retry_after = (
                        ""
                        if self.busy.retry_after is None
                        else f"Retry-After: {self.busy.retry_after}\r\n"
                    )
                    out.write(
                        f"HTTP/1.1 {self.busy.status} Busy\r\n{retry_after}"
                        "Content-Length: 0\r\n\r\n".encode()
                    )
                else:
                    body = self.files.get(path.rsplit("/", 1)[1], b"<html>ok</html>")
                    out.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
            else:
                out.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            out.flush()
        except OSError:
            pass  # the client gave up, as it should


class _Closing:
    """Adds ``Connection: close`` to the head of every answer (the handler closes the
    connection after one answer)."""

    def __init__(self, wfile: Any) -> None:
        self._wfile = wfile
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            data = data.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
        self._wfile.write(data)

    def flush(self) -> None:
        self._wfile.flush()


def elapsed(start: float) -> float:
    return time.monotonic() - start
