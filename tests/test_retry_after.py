"""``Retry-After`` on 429 and 503: waited for when the URL's budget allows it, a clear
error at once when it does not, never an absurd wait."""

from __future__ import annotations

import email.utils
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.errors import FetchError
from bootstrapper.http import MAX_RETRY_AFTER, HttpClient, HttpLimits, retry_after_seconds

from .misbehaving_server import Busy, MisbehavingServer, elapsed

#: Backoff alone would try again after 0.1s: a longer gap is the server's asking.
LIMITS = HttpLimits(timeout=0.5, retries=3, budget=3.0, backoff=0.1)
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as running:
        yield running


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("9" * 400, float("inf")),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),  # IMF-fixdate
        ("Tuesday, 14-Nov-23 22:13:50 GMT", 30.0),  # RFC 850
        ("Tue Nov 14 22:13:50 2023", 30.0),  # asctime, GMT without saying so
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: no wait
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - NOW),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def gap(server: MisbehavingServer) -> float:
    """The time between the first two requests the server saw."""
    first, second = server.arrivals[:2]
    return second - first


@pytest.mark.parametrize("status", [503, 429])
def test_a_page_waits_as_long_as_the_server_asks(server: MisbehavingServer, status: int) -> None:
    server.busy = Busy(status=status, retry_after="1")
    start = time.monotonic()
    with HttpClient(LIMITS) as http:
        response = http.get(f"{server.url}/busy/x/")
    assert response.status_code == 200
    assert len(server.requests) == 2
    assert 1.0 <= gap(server) < 1.5
    assert elapsed(start) < 2.0


def test_an_http_date_is_waited_for(server: MisbehavingServer) -> None:
    # Dates have whole seconds: two seconds ahead is a wait of one to two.
    server.busy = Busy(retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
    with HttpClient(LIMITS) as http:
        assert http.get(f"{server.url}/busy/x/").status_code == 200
    assert 0.9 <= gap(server) < 2.5


def test_a_download_waits_as_long_as_the_server_asks(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    server.busy = Busy(retry_after="1")
    server.files["x-1.0.tar.gz"] = b"pretend this is a tar"
    sha = hashlib.sha256(b"pretend this is a tar").hexdigest()
    with HttpClient(LIMITS) as http:
        got = http.download(
            f"{server.url}/busy/x-1.0.tar.gz", tmp_path / "x.tar.gz", {"sha256": sha}
        )
    assert got == sha
    assert 1.0 <= gap(server) < 1.5


def test_a_wait_beyond_the_budget_fails_at_once(server: MisbehavingServer) -> None:
    server.busy = Busy(retry_after="120", times=100)
    url = f"http://user:TOKEN@{server.url.removeprefix('http://')}/busy/x/"
    start = time.monotonic()
    limits = HttpLimits(timeout=0.5, retries=3, budget=2.0)
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.get(url)
    took = elapsed(start)
    assert took < 0.5, took
    assert len(server.requests) == 1
    message = caught.value.message
    assert "TOKEN" not in message and "user" not in message
    assert message.startswith(
        f"cannot fetch {server.url}/busy/x/: HTTP 503 (1 try in 0.0s), and the server asks "
        "to wait 120s before another try (Retry-After), more than the "
    )
    assert message.endswith(
        "s left of this URL's 2s budget; to wait for it, raise --http-budget (to 122 or more)"
    )


def test_a_download_whose_wait_is_beyond_the_budget_fails_at_once(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    server.busy = Busy(status=429, retry_after="60", times=100)
    start = time.monotonic()
    limits = HttpLimits(timeout=0.5, retries=3, budget=2.0)
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.download(f"{server.url}/busy/x.tar.gz", tmp_path / "x.tar.gz", {"sha256": "0"})
    assert elapsed(start) < 0.5
    assert caught.value.message.startswith(
        f"cannot download {server.url}/busy/x.tar.gz: HTTP 429 (1 try in 0.0s), and the "
        "server asks to wait 60s before another try (Retry-After)"
    )
    assert "raise --http-budget (to 62 or more)" in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("retry_after", "shown"),
    [
        ("9" * 400, "more than 30 years"),
        ("86400", "86400s"),
        ("Fri, 31 Dec 9999 23:59:59 GMT", "more than 30 years"),
    ],
)
def test_an_absurd_wait_is_not_budgeted_for(
    server: MisbehavingServer, retry_after: str, shown: str
) -> None:
    server.busy = Busy(retry_after=retry_after, times=100)
    with (
        HttpClient(HttpLimits(timeout=0.5, budget=2.0)) as http,
        pytest.raises(FetchError) as caught,
    ):
        http.get(f"{server.url}/busy/x/")
    assert caught.value.message.endswith(
        f"the server asks to wait {shown} before another try (Retry-After), more than "
        f"bootstrapper waits for any server ({MAX_RETRY_AFTER:g}s); try again later, or use "
        "another index"
    )
    assert len(server.requests) == 1


def test_an_absurd_wait_is_capped_when_the_budget_is_huge(server: MisbehavingServer) -> None:
    server.busy = Busy(retry_after="9" * 400)
    slept: list[float] = []
    with HttpClient(HttpLimits(budget=1e9), sleep=slept.append) as http:
        assert http.get(f"{server.url}/busy/x/").status_code == 200
    assert slept == [MAX_RETRY_AFTER]


@pytest.mark.parametrize(
    "busy",
    [
        Busy(retry_after="soon"),  # not a Retry-After: the usual backoff
        Busy(retry_after=None),
        Busy(status=500, retry_after="120"),  # only 429 and 503 say when to come back
        Busy(retry_after="0"),
    ],
)
def test_otherwise_the_usual_backoff(server: MisbehavingServer, busy: Busy) -> None:
    server.busy = busy
    with HttpClient(LIMITS) as http:
        assert http.get(f"{server.url}/busy/x/").status_code == 200
    assert gap(server) < 0.5


def test_bootstrap_against_a_busy_index(
    server: MisbehavingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.busy = Busy(retry_after="300", times=100)
    index = f"http://user:TOKEN@{server.url.removeprefix('http://')}/busy/simple/"
    start = time.monotonic()
    code = main(
        ["bootstrap", "--index-url", index, "--output-dir", str(tmp_path / "out"),
         "--http-budget", "5", "x"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert elapsed(start) < 3.0
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err and "TOKEN" not in err
    assert f"error: cannot fetch {server.url}/busy/simple/x/: HTTP 503 (1 try in " in err
    assert "asks to wait 300s before another try (Retry-After)" in err
    assert "raise --http-budget (to 302 or more)" in err


def test_the_waits_together_stay_within_the_budget(server: MisbehavingServer) -> None:
    # Tries at 0s, 1s and 2s; the third wait would end past 2.5s.
    server.busy = Busy(retry_after="1", times=100)
    start = time.monotonic()
    limits = HttpLimits(timeout=0.5, retries=10, budget=2.5, backoff=0.1)
    with HttpClient(limits) as http, pytest.raises(FetchError) as caught:
        http.get(f"{server.url}/busy/x/")
    assert 2.0 <= elapsed(start) < 2.5
    assert len(server.requests) == 3
    assert "HTTP 503 (3 tries in 2.0s), and the server asks to wait 1s" in caught.value.message
    assert "raise --http-budget (to 5 or more)" in caught.value.message
