"""``bootstrapper serve``: PEP 691 negotiation, files served read-only and never from
outside DIR, byte ranges, the command line (a free port, Ctrl-C, usage errors)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from bootstrapper.cli import main
from bootstrapper.negotiation import HTML_V1, TEXT_HTML, Choice, Form, choose
from bootstrapper.publish import IndexWriter
from bootstrapper.serve import IndexServer, RangeNotSatisfiable, parse_range
from bootstrapper.simple_json import JSON_MEDIA_TYPE
from bootstrapper.wheelfile import read_wheel_metadata

from .conftest import installed, pip_from, standard_tree, uv_install
from .support import FixtureIndex, Project, wait_for, wheel_of

JSON = Choice(Form.JSON, JSON_MEDIA_TYPE)
HTML = Choice(Form.HTML, TEXT_HTML)
HTML1 = Choice(Form.HTML, HTML_V1)
BOTH = [Form.HTML, Form.JSON]

UV_ACCEPT = f"{JSON_MEDIA_TYPE}, {HTML_V1};q=0.2, text/html;q=0.01"
PIP_ACCEPT = f"{JSON_MEDIA_TYPE}, {HTML_V1}; q=0.1, text/html; q=0.01"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "available", "expected"),
    [
        (UV_ACCEPT, BOTH, JSON),
        (PIP_ACCEPT, BOTH, JSON),
        (UV_ACCEPT, [Form.HTML], HTML1),  # an older output directory: no JSON pages
        (BROWSER, BOTH, HTML),
        (None, BOTH, HTML),
        ("", BOTH, HTML),
        ("*/*", BOTH, HTML),
        ("*/*", [Form.JSON], JSON),
        ("application/*", BOTH, HTML1),
        (f"{JSON_MEDIA_TYPE};q=0.5, text/html;q=0.6", BOTH, HTML),
        (f"text/html, {JSON_MEDIA_TYPE}", BOTH, HTML),  # a tie: the client's order
        (f"{JSON_MEDIA_TYPE}, text/html", BOTH, JSON),
        ("application/vnd.pypi.simple.latest+json", BOTH, JSON),
        ("application/vnd.pypi.simple.latest+html", BOTH, HTML1),
        (f"*/*, {JSON_MEDIA_TYPE};q=0", BOTH, HTML),  # the specific range wins
        (f"text/html;q=0, {HTML_V1};q=0, */*;q=0.1", BOTH, JSON),
        ("application/json", BOTH, None),
        ("text/plain, image/png", BOTH, None),
        (JSON_MEDIA_TYPE, [Form.HTML], None),
        (f"{JSON_MEDIA_TYPE};q=zero, text/html;q=0.1", BOTH, HTML),
        ("Text/HTML", BOTH, HTML),
        ("garbage, ,;q=1", BOTH, None),
    ],
)
def test_negotiation(accept: str | None, available: list[Form], expected: Choice | None) -> None:
    assert choose(accept, available) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-1000", (90, 99)),
        ("bytes=99-99", (99, 99)),
        ("bytes=0-9,20-29", None),  # several ranges: the whole file
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=a-b", None),
        ("bytes=5", None),
    ],
)
def test_byte_ranges(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=200-300"])
def test_unsatisfiable_byte_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def make_output(root: Path) -> Path:
    """A published output directory: two projects, and what a run keeps beside them."""
    out = root / "out"
    (out / "wheels").mkdir(parents=True)
    built = root / "built"
    built.mkdir()
    wheels = []
    for name, version in [("lib", "1.0"), ("Other_Name", "2.0")]:
        wheel = built / f"{name}-{version}-py3-none-any.whl"
        wheel.write_bytes(wheel_of(Project(name, version), padding=5000))
        wheels.append(wheel)
    IndexWriter(out).publish((w, read_wheel_metadata(w), None) for w in wheels)
    (out / "graph.json").write_text("{}\n")
    (out / ".work").mkdir()
    (out / ".work" / "secret").write_text("private\n")
    (out / "simple" / ".index.html.x.tmp").write_text("half written")
    return out


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """Raw HTTP, so that a path goes to the server exactly as written (``..`` too)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, method: str = "GET", **headers: str) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for key, value in headers.items():
                connection.putheader(key.replace("_", "-"), value)
            connection.endheaders()
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Client, list[str]]]:
    out = make_output(tmp_path)
    lines: list[str] = []
    server = IndexServer(out, "127.0.0.1", 0, lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield out, Client(server.server_address[1]), lines
    finally:
        server.shutdown()
        server.server_close()


def test_pages_are_served_in_the_form_asked_for(served: tuple[Path, Client, list[str]]) -> None:
    out, client, log = served
    page = client.get("/simple/lib/", Accept=UV_ACCEPT)
    assert page.status == 200
    assert page.headers["content-type"] == JSON_MEDIA_TYPE
    assert page.headers["vary"] == "Accept"
    assert page.body == (out / "simple" / "lib" / "index.json").read_bytes()
    assert json.loads(page.body)["name"] == "lib"
    line = f'"GET /simple/lib/ HTTP/1.1" 200 {len(page.body)} {JSON_MEDIA_TYPE}'
    wait_for(lambda: bool(log) and line in log[-1], timeout=10)  # logged after the answer

    html = client.get("/simple/lib/", Accept=BROWSER)
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["vary"] == "Accept"
    assert html.body == (out / "simple" / "lib" / "index.html").read_bytes()
    assert client.get("/simple/").body == (out / "simple" / "index.html").read_bytes()
    root = client.get("/simple/", Accept=JSON_MEDIA_TYPE)
    assert json.loads(root.body)["projects"] == [{"name": "lib"}, {"name": "other-name"}]
    assert client.get("/simple/lib/", Accept=HTML_V1).headers["content-type"] == (
        f"{HTML_V1}; charset=utf-8"
    )
    by_format = client.get(f"/simple/lib/?format={JSON_MEDIA_TYPE}", Accept="text/html")
    assert by_format.headers["content-type"] == JSON_MEDIA_TYPE

    refused = client.get("/simple/lib/", Accept="application/json")
    assert refused.status == 406
    assert refused.headers["vary"] == "Accept"
    assert JSON_MEDIA_TYPE in refused.body.decode()
    assert client.get("/simple/lib/?format=application/json").status == 406


def test_head_answers_as_get_without_a_body(served: tuple[Path, Client, list[str]]) -> None:
    _, client, _ = served
    get = client.get("/simple/lib/", Accept=JSON_MEDIA_TYPE)
    head = client.get("/simple/lib/", "HEAD", Accept=JSON_MEDIA_TYPE)
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert head.headers["content-type"] == JSON_MEDIA_TYPE
    assert client.get("/simple/lib/", "POST").status == 501  # read-only


def test_files_are_served_whole_or_by_range(served: tuple[Path, Client, list[str]]) -> None:
    out, client, _ = served
    wheel = out / "wheels" / "lib-1.0-py3-none-any.whl"
    data = wheel.read_bytes()
    whole = client.get(f"/wheels/{wheel.name}")
    assert whole.status == 200 and whole.body == data
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.headers["accept-ranges"] == "bytes"
    metadata = client.get(f"/wheels/{wheel.name}.metadata")
    assert metadata.body == read_wheel_metadata(wheel)

    tail = client.get(f"/wheels/{wheel.name}", Range="bytes=-100")
    assert tail.status == 206 and tail.body == data[-100:]
    assert tail.headers["content-range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    middle = client.get(f"/wheels/{wheel.name}", Range="bytes=10-19")
    assert middle.status == 206 and middle.body == data[10:20]
    past = client.get(f"/wheels/{wheel.name}", Range=f"bytes={len(data)}-")
    assert past.status == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    # The JSON page's size and hash are those of the file served.
    entry = json.loads(client.get("/simple/lib/", Accept=JSON_MEDIA_TYPE).body)["files"][0]
    assert entry["size"] == len(data)
    assert entry["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_directories_and_names_are_redirected(served: tuple[Path, Client, list[str]]) -> None:
    _, client, _ = served
    slash = client.get("/simple/lib")
    assert slash.status == 301 and slash.headers["location"] == "/simple/lib/"
    for asked in ("/simple/Other_Name/", "/simple/other.name/", "/simple/OTHER-NAME"):
        moved = client.get(asked)
        assert moved.status == 301, asked
        assert moved.headers["location"] == "/simple/other-name/"
    assert client.get("/simple/missing/").status == 404
    assert client.get("/").status == 404  # no listing of DIR
    assert client.get("/wheels/").status == 404


def test_nothing_outside_the_directory_is_served(
    served: tuple[Path, Client, list[str]], tmp_path: Path
) -> None:
    out, client, _ = served
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours\n")
    (out / "wheels" / "link.whl").symlink_to(outside)
    (out / "elsewhere").symlink_to(tmp_path)
    (out / "wheels" / "to-work").symlink_to(out / ".work")
    (out / "inside.json").symlink_to(out / "graph.json")
    for path in [
        "/../outside.txt",
        "/simple/../../outside.txt",
        "/simple/%2e%2e/%2e%2e/outside.txt",
        "/simple%2f..%2f..%2foutside.txt",
        "/simple/..%2f..%2foutside.txt",
        "/simple/..%5c..%5coutside.txt",
        "/wheels/link.whl",
        "/elsewhere/outside.txt",
        "/.work/secret",
        "/%2ework/secret",
        "/wheels/to-work/secret",
        "/simple/.index.html.x.tmp",
        "/simple//lib/",
        "/simple/%ff/",
        "/graph.json%00.txt",
        "outside.txt",
    ]:
        answer = client.get(path)
        assert answer.status in (400, 404), path
        assert b"not yours" not in answer.body and b"private" not in answer.body, path
    # A link that stays inside is followed.
    assert client.get("/inside.json").body == b"{}\n"
    assert client.get("/graph.json").headers["content-type"] == "application/json"


def serve_command(
    cwd: Path, *args: str, stderr: IO[str] | int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """``bootstrapper serve`` in ``cwd``, with Ctrl-C as a terminal delivers it. A test
    run started in the background by a shell without job control has SIGINT ignored,
    and an ignored signal stays ignored in a child (the server would never stop); one
    this process handles is the default again in the child."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "bootstrapper", "serve", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    finally:  # the child runs its own program by the time Popen returns
        signal.signal(signal.SIGINT, previous)


def started(process: subprocess.Popen[str]) -> str:
    """The base URL a ``serve`` process printed when it began to listen."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("serving "), line + (process.stderr.read() if process.stderr else "")
    return line.split(" at ", 1)[1].split("/simple/", 1)[0]


def test_serve_command_from_a_working_directory_stops_on_ctrl_c(tmp_path: Path) -> None:
    out = make_output(tmp_path)
    out.rename(tmp_path / "bootstrap-output")  # the default DIR, relative to the cwd
    process = serve_command(tmp_path, "--port", "0")
    try:
        base = started(process)
        port = int(base.rsplit(":", 1)[1])
        assert base == f"http://127.0.0.1:{port}"
        reply = Client(port).get("/simple/lib/", Accept=UV_ACCEPT)
        assert reply.status == 200 and reply.headers["content-type"] == JSON_MEDIA_TYPE
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert '"GET /simple/lib/ HTTP/1.1" 200' in stderr
    assert stderr.rstrip().endswith("stopped")


def test_serve_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert "holds no index" in capsys.readouterr().err
    out = make_output(tmp_path)
    assert main(["serve", str(out), "--port", "70000"]) == 2
    assert "not a port number" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(out), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1 port {port}" in err
    assert "--port 0" in err


def test_serve_listens_on_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    out = make_output(tmp_path)
    try:
        server = IndexServer(out, "::1", 0, lambda line: None)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert server.url.startswith("http://[::1]:")
            connection = http.client.HTTPConnection("::1", server.server_address[1], timeout=10)
            connection.request("GET", "/simple/")
            assert connection.getresponse().status == 200
            connection.close()
        finally:
            server.shutdown()


def test_requests_answered_together_are_logged_one_line_each(tmp_path: Path) -> None:
    """The log is written from the threads that answer: no two lines run together."""
    out = make_output(tmp_path)
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = serve_command(tmp_path, out.name, "--port", "0", stderr=stderr)
    try:
        port = int(started(process).rsplit(":", 1)[1])

        def ask(_: int) -> int:
            return Client(port).get("/simple/lib/", Accept=UV_ACCEPT).status

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(ask, range(200))) == {200}
        line = re.compile(r'127\.0\.0\.1 "GET /simple/lib/ HTTP/1\.1" 200 \d+ \S+')
        wait_for(lambda: len(log.read_text().splitlines()) >= 200, timeout=20)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    lines = log.read_text().splitlines()
    assert lines[-1] == "stopped"
    assert [x for x in lines[:-2] if not line.fullmatch(x)] == []
    assert len(lines[:-2]) == 200


def test_pip_and_uv_install_through_serve_and_a_bootstrap_reads_its_json(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """One run's output, served, is what other machines install from (pip and uv, both
    asking for JSON) and rebuild from (its sources, JSON pages with upload times)."""
    tree = [
        *standard_tree(),
        Project("top", dependencies=["app", "host[more]"]),
        Project("host", optional={"more": ["via-extra"]}),
        Project("via-extra", "3.0"),
    ]
    index.add_all(tree, tmp_path / "upstream")
    run = bootstrap("top")
    assert run.code == 0, run.stderr
    wheels = {p.name: sha256_of(p) for p in (run.output / "wheels").glob("*.whl")}
    assert len(wheels) == 10

    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = serve_command(run.output.parent, run.output.name, "--port", "0", stderr=stderr)
    try:
        base = started(process)
        uv = uv_install(f"{base}/simple/", tmp_path / "uv-venv", "top")
        assert uv.returncode == 0, uv.stderr
        assert installed(tmp_path / "uv-venv")["via-extra"] == "3.0"
        assert json_pages_served(log, wanted=JSON_WANTED) >= JSON_WANTED

        seen = log.stat().st_size
        pip = pip_from(f"{base}/simple/", tmp_path / "pip-venv", "top")
        assert pip.returncode == 0, pip.stderr
        assert installed(tmp_path / "pip-venv")["via-extra"] == "3.0"
        assert json_pages_served(log, seen, wanted=JSON_WANTED) >= JSON_WANTED

        # The sources, served as JSON with upload times: --exclude-newer can be honoured
        # (an index without upload times refuses it), and a cut-off before the run
        # leaves nothing to build.
        code = main(
            [
                "bootstrap",
                "--index-url",
                f"{base}/sdists/",
                "--output-dir",
                str(tmp_path / "rebuilt"),
                "--exclude-newer",
                "2000-01-01",
                "top",
            ]
        )
        assert code == 1
        assert "no version of top satisfies" in capsys.readouterr().err
        code = main(
            [
                "bootstrap",
                "--index-url",
                f"{base}/sdists/",
                "--output-dir",
                str(tmp_path / "rebuilt"),
                "--exclude-newer",
                (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
                "top",
            ]
        )
        assert code == 0
        rebuilt = {p.name: sha256_of(p) for p in (tmp_path / "rebuilt" / "wheels").glob("*.whl")}
        assert rebuilt == wheels
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 130


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


JSON_WANTED = frozenset({"top", "host", "via-extra", "libtwo"})


def json_pages_served(log: Path, since: int = 0, *, wanted: frozenset[str]) -> set[str]:
    """The projects whose page the server's log shows it served as JSON (after the
    first ``since`` bytes of the log). The server logs a request after it answered, so
    a client can be done before its last lines are written: wait up to 10 s for
    ``wanted`` to appear, then return what is there."""

    def found() -> set[str]:
        pages = set()
        for line in log.read_bytes()[since:].decode().splitlines():
            match = re.search(r'"GET /simple/([^/ ]+)/ HTTP/1.1" 200 \d+ (\S+)$', line)
            if match and match[2] == JSON_MEDIA_TYPE:
                pages.add(match[1])
        return pages

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: found() >= wanted, timeout=10)
    return found()


def test_the_log_escapes_what_a_client_wrote(served: tuple[Path, Client, list[str]]) -> None:
    _, client, log = served
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as raw:
        raw.sendall(b"GET /\x1b[2J HTTP/1.1\r\nHost: here\r\nConnection: close\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 404")
    # The server logs the request after it answered: wait for the line.
    wait_for(lambda: any("404" in line for line in log), timeout=10)
    assert '"GET /\\x1b[2J HTTP/1.1" 404' in log[-1]
    assert not any("\x1b" in line for line in log)
