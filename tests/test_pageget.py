"""Pages through the standard library's HTTP/1.1: kept-alive connections, encodings,
redirects, a server that closes a kept connection, and proxies left to httpx."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import ssl
import subprocess
import threading
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.errors import FetchError
from bootstrapper.http import HttpClient, HttpLimits
from bootstrapper.pageget import PageGetter, UndecodableError, decode

PAGE = b'{"meta": {"api-version": "1.1"}, "name": "x", "files": []}' * 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    #: Close the connection after each answer (as an HTTP/1.0 server does).
    close_each = False
    requests: list[tuple[str, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers.items())))
        path = urllib.parse.urlsplit(self.path).path  # absolute in a proxy's request
        body, headers = PAGE, {"Content-Type": "application/vnd.pypi.simple.v1+json"}
        if path.startswith("/gzip/"):
            body, headers["Content-Encoding"] = gzip.compress(PAGE), "gzip"
        elif path.startswith("/deflate/"):
            body, headers["Content-Encoding"] = zlib.compress(PAGE), "deflate"
        elif path.startswith("/moved/"):
            self.send_response(301)
            self.send_header("Location", "/simple/" + path.removeprefix("/moved/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _serving(tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """The test server on a free port of 127.0.0.1, over TLS with ``tls``."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    with _serving() as httpd:
        yield httpd


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_pages_share_kept_alive_connections(server: _Server) -> None:
    with HttpClient() as http:
        for n in range(10):
            response = http.get(_url(server, f"/simple/p{n}/"))
            assert response.status_code == 200
            assert response.content == PAGE
    assert server.connections == 1
    _, headers = server.requests[0]
    assert headers["User-Agent"].startswith("bootstrapper/")
    assert "gzip" in headers["Accept-Encoding"]


def test_a_server_that_closes_each_connection_gets_a_new_one(server: _Server) -> None:
    server.close_each = True
    with HttpClient() as http:
        for n in range(3):
            assert http.get(_url(server, f"/simple/p{n}/")).content == PAGE
    assert server.connections == 3


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_encoded_pages_are_decoded(server: _Server, encoding: str) -> None:
    with HttpClient() as http:
        response = http.get(_url(server, f"/{encoding}/x/"))
    assert response.content == PAGE
    assert "content-encoding" not in response.headers


def test_a_redirect_is_followed_and_the_page_is_where_it_led(server: _Server) -> None:
    with HttpClient() as http:
        response = http.get(_url(server, "/moved/x/"))
    assert response.content == PAGE
    assert str(response.url) == _url(server, "/simple/x/")
    assert [path for path, _ in server.requests] == ["/moved/x/", "/simple/x/"]
    assert server.connections == 1


def test_credentials_go_to_their_origin_only(server: _Server) -> None:
    port = server.server_address[1]
    with HttpClient() as http:
        http.remember(f"http://user:secret@127.0.0.1:{port}/simple/")
        http.get(_url(server, "/simple/x/"))
        http.get(f"http://localhost:{port}/simple/y/")  # another origin: none sent
    (_, first), (_, second) = server.requests
    assert first["Authorization"] == "Basic dXNlcjpzZWNyZXQ="
    assert "Authorization" not in second


def test_a_dead_port_is_a_fetch_error_after_the_tries() -> None:
    with (
        HttpClient(HttpLimits(retries=1, backoff=0.01)) as http,
        pytest.raises(FetchError) as caught,
    ):
        http.get("http://127.0.0.1:9/simple/x/")
    assert "ConnectionRefusedError" in caught.value.message


def test_a_proxy_in_the_environment_leaves_pages_to_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    getter = PageGetter(ssl.create_default_context, "agent")
    assert not getter.handles("https://pypi.org/simple/x/")
    assert getter.handles("http://127.0.0.1/simple/x/")
    assert not getter.handles("file:///tmp/simple/x/")


def test_decode_refuses_what_is_not_in_its_encoding() -> None:
    assert decode(b"plain", "") == b"plain"
    assert decode(zlib.compress(b"z")[2:-4], "deflate") == b"z"  # raw deflate, as some send
    with pytest.raises(UndecodableError):
        decode(b"not gzip", "gzip")
    with pytest.raises(UndecodableError):
        decode(gzip.compress(PAGE)[:-20], "gzip")  # cut short
    with pytest.raises(UndecodableError):
        decode(b"x", "br")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    """The same server over TLS, with a self-signed certificate for 127.0.0.1 (its
    PEM is the CA bundle that trusts it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _serving(context) as httpd:
        yield httpd, cert


def test_https_trusts_the_bundle_of_ssl_cert_file_on_both_paths(
    tls_server: tuple[_Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    base = f"https://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with HttpClient(HttpLimits(retries=0)) as http:
        assert http.get(f"{base}/simple/x/").content == PAGE  # the page getter
        digest = hashlib.sha256(PAGE).hexdigest()
        assert http.download(f"{base}/x.whl", tmp_path / "x.whl", {"sha256": digest}) == digest
    assert (tmp_path / "x.whl").read_bytes() == PAGE  # by httpx


def test_https_refuses_a_certificate_nothing_trusts(
    tls_server: tuple[_Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # certifi's bundle
    with (
        HttpClient(HttpLimits(retries=0)) as http,
        pytest.raises(FetchError) as caught,
    ):
        http.get(f"https://127.0.0.1:{server.server_address[1]}/simple/x/")
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert server.requests == []


def test_a_page_through_a_proxy_is_fetched_by_httpx_with_the_same_answer(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server answers as a forward proxy would: a request in absolute form.
    monkeypatch.setenv("HTTP_PROXY", _url(server, ""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with HttpClient(HttpLimits(retries=0)) as http:
        response = http.get("http://index.invalid/gzip/x/")
    assert response.status_code == 200
    assert response.content == PAGE  # decoded, as the page getter decodes it
    assert response.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert "content-encoding" not in response.headers
    assert response.url == "http://index.invalid/gzip/x/"
    assert [path for path, _ in server.requests] == ["http://index.invalid/gzip/x/"]
