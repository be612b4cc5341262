"""Bounded, clear HTTP: servers that hang, trickle, loop or lie about their encoding end in
one clear message within the configured bounds, never in an internal error."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.errors import FetchError
from bootstrapper.http import HttpClient, HttpLimits

from .misbehaving_server import MisbehavingServer, elapsed

SMALL = HttpLimits(timeout=0.5, retries=10, budget=2.0, backoff=0.1)


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as running:
        yield running


def test_a_hanging_page_fails_within_the_budget(server: MisbehavingServer) -> None:
    start = time.monotonic()
    with HttpClient(SMALL) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/hang/simple/x/")
    took = elapsed(start)
    assert 1.5 < took < 3.0, took
    assert caught.value.message.startswith(f"cannot fetch {server.url}/hang/simple/x/: ")
    assert "no answer within 0.5s (ReadTimeout)" in caught.value.message
    assert len(server.requests) < 10  # the budget, not the retries, ended it


def test_retries_bound_the_tries(server: MisbehavingServer) -> None:
    limits = HttpLimits(timeout=0.2, retries=1, budget=60.0, backoff=0.1)
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/hang/simple/x/")
    assert "(2 tries in " in caught.value.message
    assert len(server.requests) == 2


def test_a_trickling_page_is_a_stall(server: MisbehavingServer) -> None:
    # A byte every 0.2s never trips the read timeout; the progress check ends it.
    limits = HttpLimits(timeout=0.5, retries=0, budget=30.0)
    start = time.monotonic()
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/trickle/simple/x/")
    assert elapsed(start) < 2.0
    assert "stalled: " in caught.value.message
    assert "(less than 1024 in 0.5s)" in caught.value.message


def test_a_trickling_download_is_a_stall(server: MisbehavingServer, tmp_path: Path) -> None:
    limits = HttpLimits(timeout=0.5, retries=1, budget=30.0, backoff=0.1)
    start = time.monotonic()
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.download(
            f"{server.url}/trickle/x-1.0.tar.gz", tmp_path / "x.tar.gz", {}, require_hash=False
        )
    assert elapsed(start) < 3.0
    assert caught.value.message.startswith(f"cannot download {server.url}/trickle/x-1.0.tar.gz")
    assert "stalled" in caught.value.message and "(2 tries in " in caught.value.message
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_a_silent_download_ends_at_the_timeout(server: MisbehavingServer, tmp_path: Path) -> None:
    limits = HttpLimits(timeout=0.5, retries=0, budget=30.0)
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.download(
            f"{server.url}/silent-trickle/x.tar.gz", tmp_path / "x.tar.gz", {}, require_hash=False
        )
    assert "no answer within 0.5s (ReadTimeout)" in caught.value.message


def test_a_download_is_not_cut_by_the_budget_while_it_progresses(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    # 1.5s for 15 bytes, three times the budget; with a floor of one byte per timeout it
    # makes progress, and only the floor may end a download that moves.
    limits = HttpLimits(timeout=0.5, retries=0, budget=0.5, min_progress=1)
    sha = hashlib.sha256(b"x" * 15).hexdigest()
    with HttpClient(limits) as http:
        got = http.download(
            f"{server.url}/short-trickle/x.tar.gz", tmp_path / "x.tar.gz", {"sha256": sha}
        )
    assert got == sha


def test_a_redirect_loop_is_a_clear_error(server: MisbehavingServer) -> None:
    with HttpClient(SMALL) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/loop/simple/x/")
    assert caught.value.message == (
        f"cannot fetch {server.url}/loop/simple/x/: too many redirects (more than 20, the "
        f"last to {server.url}/loop/simple/x/); the server sends it round in a loop"
    )
    assert len(server.requests) == 21  # not retried


def test_a_page_with_a_false_content_encoding_is_a_clear_error(
    server: MisbehavingServer,
) -> None:
    with HttpClient(SMALL) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/bad-gzip/simple/x/")
    assert caught.value.message.startswith(
        f"cannot fetch {server.url}/bad-gzip/simple/x/: the server says its answer is "
        "Content-Encoding 'gzip', but it does not decode as that ("
    )
    assert len(server.requests) == 1


def test_a_download_keeps_the_bytes_a_server_labels_gzip(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    tarball = gzip.compress(b"pretend this is a tar", mtime=0)
    server.files["x-1.0.tar.gz"] = tarball
    sha = hashlib.sha256(tarball).hexdigest()
    with HttpClient(SMALL) as http:
        got = http.download(
            f"{server.url}/labelled-gzip/x-1.0.tar.gz", tmp_path / "x.tar.gz", {"sha256": sha}
        )
    assert got == sha
    assert (tmp_path / "x.tar.gz").read_bytes() == tarball


def bootstrap_cli(
    capsys: pytest.CaptureFixture[str], index_url: str, out: Path, *options: str
) -> tuple[int, str]:
    code = main(["bootstrap", "--index-url", index_url, "--output-dir", str(out), *options, "x"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("hang", "no answer within 0.5s (ReadTimeout) ("),
        ("trickle", "stalled: "),
        ("loop", "too many redirects (more than 20"),
        ("bad-gzip", "Content-Encoding 'gzip', but it does not decode as that"),
    ],
)
def test_bootstrap_against_a_misbehaving_index(
    server: MisbehavingServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    prefix: str,
    expected: str,
) -> None:
    start = time.monotonic()
    code, err = bootstrap_cli(
        capsys,
        f"{server.url}/{prefix}/simple/",
        tmp_path / "out",
        "--http-timeout",
        "0.5",
        "--http-budget",
        "2",
    )
    assert elapsed(start) < 5.0
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert f"error: cannot fetch {server.url}/{prefix}/simple/x/: " in err
    assert expected in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--http-timeout", "0", "--http-timeout must be more than 0 seconds"),
        ("--http-retries", "-1", "--http-retries must be 0 or more"),
        ("--http-budget", "-3", "--http-budget must be more than 0 seconds"),
        ("--http-timeout", "soon", "argument --http-timeout: invalid float value: 'soon'"),
    ],
)
def test_http_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    code, err = bootstrap_cli(capsys, "http://127.0.0.1:9/", tmp_path / "out", option, value)
    assert code == 2
    assert f"bootstrapper: error: {message}" in err
