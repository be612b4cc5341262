"""The ETA of the progress line: durations from earlier runs' build records."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from bootstrapper.eta import (
    Forecast,
    History,
    format_duration,
    history_from,
    read_history,
    record_duration,
    remaining_seconds,
)
from bootstrapper.graph import NodeKey
from bootstrapper.progress import StreamReporter
from bootstrapper.records import BuildRecord

from .conftest import ROOT, clean_env
from .support import FixtureIndex, Project


def key(name: str, version: str = "1.0") -> NodeKey:
    return NodeKey(canonicalize_name(name), Version(version))


def record(name: str, version: str, started: str, finished: str, **extra: object) -> BuildRecord:
    fields: dict[str, object] = {
        "name": name,
        "version": version,
        "wheel": f"{name}-{version}-py3-none-any.whl",
        "wheel_sha256": "0" * 64,
        "sdist": f"{name}-{version}.tar.gz",
        "sdist_sha256": "1" * 64,
        "source_url": "",
        "build_backend": "fixture_backend",
        "build_system_requires": (),
        "backend_requires": (),
        "discovery_env": (),
        "build_env": (),
        "python": "3.11",
        "started": started,
        "finished": finished,
        **extra,
    }
    return BuildRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (44.6, "45s"),
        (59.4, "59s"),
        (60, "1m00s"),
        (185, "3m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7620, "2h07m"),
    ],
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("started", "finished", "seconds"),
    [
        ("2026-01-01T10:00:00Z", "2026-01-01T10:02:30Z", 150.0),
        ("2026-01-01T23:59:50Z", "2026-01-02T00:00:10Z", 20.0),
        ("", "2026-01-01T10:00:00Z", None),  # written before records had times
        ("2026-01-01T10:00:10Z", "2026-01-01T10:00:00Z", None),  # a clock set back
    ],
)
def test_record_duration(started: str, finished: str, seconds: float | None) -> None:
    assert record_duration(record("a", "1.0", started, finished)) == seconds


def test_history_keeps_the_latest_build_of_a_version_and_skips_fallbacks() -> None:
    history = history_from(
        [
            record("a", "1.0", "2026-01-01T10:00:00Z", "2026-01-01T10:01:00Z"),
            record("a", "1.0", "2026-01-02T10:00:00Z", "2026-01-02T10:00:30Z"),
            record("A", "2.0", "2026-01-02T10:00:00Z", "2026-01-02T10:00:10Z"),
            # A fallback's record times a download, not a build.
            record("b", "1.0", "2026-01-01T10:00:00Z", "2026-01-01T10:00:01Z", fallback="prebuilt"),
        ]
    )
    assert history.durations == {key("a", "1.0"): 30.0, key("a", "2.0"): 10.0}


def test_expected_time_by_version_then_name_then_median() -> None:
    history = History.of({key("a", "1.0"): 30.0, key("a", "2.0"): 10.0, key("b"): 100.0})
    assert history.expected(key("a", "1.0")) == 30.0
    # Another version: the latest version's time.
    assert history.expected(key("a", "3.0")) == 10.0
    # Never built here: the median of what is known.
    assert history.expected(key("c")) == 30.0
    assert History.of({}).expected(key("c")) is None


def test_no_history_no_estimate() -> None:
    assert (
        remaining_seconds(History(), 4, waiting=[key("a")], running={}, reused=[], rebuilt=[])
        is None
    )


def test_nothing_left_no_estimate() -> None:
    history = History.of({key("a"): 10.0})
    assert remaining_seconds(history, 4, waiting=[], running={}, reused=[], rebuilt=[]) is None


def test_versions_built_before_wait_for_the_run_to_show_whether_they_are_reused() -> None:
    history = History.of({key("a"): 60.0, key("b"): 60.0, key("c"): 60.0, key("d"): 60.0})
    waiting = [key("c"), key("d")]
    # Nothing decided yet: reused (no time) or rebuilt (a minute each) is anyone's guess.
    assert remaining_seconds(history, 1, waiting=waiting, running={}, reused=[], rebuilt=[]) is None
    # Both decided so far were reused: so will the rest be, most likely.
    assert (
        remaining_seconds(
            history, 1, waiting=waiting, running={}, reused=[key("a"), key("b")], rebuilt=[]
        )
        == 0
    )
    # One of two rebuilt: half of the rest expected to be.
    assert (
        remaining_seconds(
            history, 1, waiting=waiting, running={}, reused=[key("a")], rebuilt=[key("b")]
        )
        == 60.0
    )


def test_new_versions_are_built_and_share_the_slots() -> None:
    history = History.of({key("a", "1.0"): 40.0, key("b", "1.0"): 20.0})
    waiting = [key("a", "2.0"), key("b", "2.0"), key("new")]  # new: the median, 30s
    assert remaining_seconds(history, 3, waiting=waiting, running={}, reused=[], rebuilt=[]) == 40.0
    assert remaining_seconds(history, 1, waiting=waiting, running={}, reused=[], rebuilt=[]) == 90.0


def test_running_builds_count_what_they_have_left() -> None:
    history = History.of({key("a"): 100.0})
    assert (
        remaining_seconds(history, 1, waiting=[], running={key("a"): 30.0}, reused=[], rebuilt=[])
        == 70.0
    )
    # Past its estimate it still takes a little, not nothing.
    late = remaining_seconds(
        history, 1, waiting=[], running={key("a"): 150.0}, reused=[], rebuilt=[]
    )
    assert late is not None and 0 < late <= 15


def test_read_history_reads_each_record_once(tmp_path: Path) -> None:
    built, published = tmp_path / "built", tmp_path / "wheels"
    built.mkdir()
    published.mkdir()
    one = record("a", "1.0", "2026-01-01T10:00:00Z", "2026-01-01T10:00:42Z")
    path = built / f"{one.wheel}.build.json"
    one.write(path)
    os.link(path, published / path.name)
    (published / "broken-1.0-py3-none-any.whl.build.json").write_text("{not json")
    assert read_history([built, published, tmp_path / "missing"]).durations == {key("a"): 42.0}


def status_line(reporter_stream: io.StringIO) -> str:
    return reporter_stream.getvalue().rsplit("\r\x1b[2K", 1)[-1]


def test_the_status_line_shows_the_eta_once_it_can_tell() -> None:
    stream = io.StringIO()
    history = History.of({key("a"): 120.0, key("b"): 60.0})
    reporter = StreamReporter(stream, live=True, forecast=Forecast(history, 1))
    reporter.queued(key("a"))
    reporter.queued(key("b"))
    assert "ETA" not in status_line(stream)  # a and b may yet be reused
    reporter.started(key("a"), "building")
    line = status_line(stream)
    # b is as likely rebuilt as a was: two minutes for a, one for b, on one slot.
    assert re.search(r"ETA (2m5\ds|3m00s)", line), line
    reporter.finished(key("a"), reused=False)
    assert re.search(r"ETA (5\ds|1m00s)", status_line(stream)), status_line(stream)


def test_a_package_only_asked_for_its_requirements_then_reused_is_no_rebuild() -> None:
    """Discovery starts before reuse is known: it tells nothing of whether the rest will
    be rebuilt, so it does not make the estimate count them at their full time."""
    stream = io.StringIO()
    history = History.of({key("a"): 120.0, key("b"): 60.0, key("c"): 60.0})
    reporter = StreamReporter(stream, live=True, forecast=Forecast(history, 1))
    for name in ("a", "b", "c"):
        reporter.queued(key(name))
    reporter.started(key("a"), "discovering build requirements")
    reporter.finished(key("a"), reused=True)
    # a was reused: the rest will likely be too (no ETA of two minutes for b and c).
    line = status_line(stream)
    assert "ETA 2m" not in line and "ETA 1m" not in line, line


def test_no_eta_without_a_forecast_or_history() -> None:
    for forecast in (None, Forecast(History(), 2)):
        stream = io.StringIO()
        reporter = StreamReporter(stream, live=True, forecast=forecast)
        reporter.queued(key("a"))
        reporter.started(key("a"), "building")
        assert "ETA" not in stream.getvalue()


def run_in_terminal(args: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    """``bootstrapper ARGS`` in a pseudo-terminal, as a person runs it: its exit status and
    everything it wrote to the terminal."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bootstrapper", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=cwd,
        env={**clean_env(), "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    code = process.wait(timeout=30)
    return code, output.decode("utf-8", "replace")


def test_a_re_run_in_a_terminal_shows_an_eta_from_the_first(
    tmp_path: Path, index: FixtureIndex
) -> None:
    """The first run has no history and says nothing of the time left; a re-run that
    rebuilds (a setting changed) knows how long each build took and says so, and -q
    says nothing of it."""
    sdists = tmp_path / "sdists"
    index.add(Project("app", dependencies=["lib", "extra-user[fast]"], tool={"sleep": 2}), sdists)
    index.add(Project("lib", tool={"sleep": 2}), sdists)
    index.add(Project("extra-user", optional={"fast": ["speedup"]}, tool={"sleep": 1}), sdists)
    index.add(Project("speedup", tool={"sleep": 2}), sdists)
    work = tmp_path / "work"
    work.mkdir()
    command = ["bootstrap", "--index-url", index.url, "--jobs", "1", "app"]

    code, first = run_in_terminal(command, work)
    assert code == 0, first
    assert "[resolved" in first  # the live status line was drawn
    assert "ETA" not in first

    # A new setting for every package: each is rebuilt, and each took seconds before.
    (work / "overrides").mkdir()
    (work / "overrides" / "settings.yaml").write_text('env:\n  REBUILD: "2"\n')
    code, second = run_in_terminal(command, work)
    assert code == 0, second
    assert not re.search(r"reused \S+==", second), second
    estimates = [int(m) for m in re.findall(r"ETA (\d+)s", second)]
    assert estimates, second
    # Four builds of about two seconds each, on one slot: at first about eight seconds.
    assert 4 <= max(estimates) <= 14, estimates

    code, quiet = run_in_terminal([*command, "-q"], work)
    assert code == 0, quiet
    assert quiet.strip() == ""
