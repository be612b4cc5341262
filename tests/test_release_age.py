"""--exclude-newer and --min-release-age: files uploaded after the cut-off are left out,
by the PEP 700 upload times of a JSON index; an index without them is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import NormalizedName

from bootstrapper.cli import main
from bootstrapper.errors import ReleaseAgeUnsupportedError
from bootstrapper.index import DistFile, ProjectPage, parse_json_page, parse_upload_time
from bootstrapper.releaseage import ReleaseAge, parse_days, parse_timestamp, uploaded_by

from .support import FixtureIndex, IndexFile, Project, wheel_of

NAME = NormalizedName("foo")
JAN = datetime(2024, 1, 15, tzinfo=UTC)


# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5+00:00", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-04-30T22:00:00-02:00", datetime(2024, 5, 1, 0, tzinfo=UTC)),
        # A date alone: the start of that day, in UTC.
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (" 2024-05-01 ", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-05-01T12:00:00", "has no time zone"),
        ("2024-05-01 12:00", "has no time zone"),
        ("yesterday", "not a timestamp"),
        ("2024-13-01", "not a timestamp"),
        ("", "not a timestamp"),
    ],
)
def test_bad_timestamps_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


@pytest.mark.parametrize(("text", "days"), [("0", 0.0), ("7", 7.0), ("0.5", 0.5)])
def test_days(text: str, days: float) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["-1", "week", "nan", "inf", "1e9"])
def test_bad_days(text: str) -> None:
    with pytest.raises(ValueError):
        parse_days(text)


def test_no_option_no_release_age() -> None:
    assert ReleaseAge.of(JAN, None, None) is None


def test_with_both_options_the_earlier_cutoff_applies() -> None:
    both = ReleaseAge.of(JAN, datetime(2024, 1, 10, tzinfo=UTC), 3)
    assert both is not None and both.uploaded_before == datetime(2024, 1, 10, tzinfo=UTC)
    both = ReleaseAge.of(JAN, datetime(2024, 1, 14, tzinfo=UTC), 3)
    assert both is not None and both.uploaded_before == datetime(2024, 1, 12, tzinfo=UTC)
    assert both.describe() == "--exclude-newer 2024-01-14T00:00:00Z and --min-release-age 3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00.123456Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", None),  # no time zone: not a time we can compare
        ("soon", None),
        (1714564800, None),
        (None, None),
    ],
)
def test_pep_700_upload_time(value: Any, expected: datetime | None) -> None:
    raw = {"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "hashes": {}}
    if value is not None:
        raw["upload-time"] = value
    document = {"meta": {"api-version": "1.1"}, "name": "foo", "files": [raw]}
    page = parse_json_page(NAME, "https://index.example/simple/foo/", json.dumps(document).encode())
    assert page.files[0].upload_time == expected
    assert parse_upload_time(value) == expected


# -- filtering a page -------------------------------------------------------------------


def page(*files: tuple[str, datetime | None]) -> ProjectPage:
    return ProjectPage(
        NAME,
        "https://index.example/simple/foo/",
        tuple(DistFile(name, f"https://files.example/{name}", upload_time=t) for name, t in files),
    )


def test_files_uploaded_after_the_cutoff_are_left_out() -> None:
    age = ReleaseAge(datetime(2024, 3, 1, tzinfo=UTC))
    before = page(
        ("foo-1.0.tar.gz", datetime(2024, 1, 1, tzinfo=UTC)),
        ("foo-1.1.tar.gz", datetime(2024, 3, 1, tzinfo=UTC)),  # at the cut-off: kept
        ("foo-1.2.tar.gz", datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC)),
        ("foo-1.2-py3-none-any.whl", datetime(2024, 6, 1, tzinfo=UTC)),
    )
    kept = uploaded_by(before, age, "https://index.example/simple/")
    assert [f.filename for f in kept.files] == ["foo-1.0.tar.gz", "foo-1.1.tar.gz"]


def test_a_file_without_upload_time_refuses_the_option() -> None:
    age = ReleaseAge(datetime(2024, 3, 1, tzinfo=UTC), min_release_age_days=7)
    mixed = page(("foo-1.0.tar.gz", datetime(2024, 1, 1, tzinfo=UTC)), ("foo-1.1.tar.gz", None))
    with pytest.raises(ReleaseAgeUnsupportedError) as raised:
        uploaded_by(mixed, age, "https://index.example/simple/")
    message = raised.value.message
    assert "--min-release-age 7 needs the upload time of every file" in message
    assert "https://index.example/simple/ gives none for foo-1.1.tar.gz" in message


# -- a bootstrap ------------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dated_tree(index: FixtureIndex, tmp: Path, now: datetime) -> None:
    """app[fast] -> libone (through the extra); libone 1.1 is two days old, 1.0 a year."""
    index.add(
        Project("app", optional={"fast": ["libone"]}),
        tmp,
        upload_time=stamp(now - timedelta(days=400)),
    )
    index.add(Project("libone", "1.0"), tmp, upload_time=stamp(now - timedelta(days=365)))
    index.add(Project("libone", "1.1"), tmp, upload_time=stamp(now - timedelta(days=2)))


def versions(out: Path) -> dict[str, str]:
    graph = json.loads((out / "graph.json").read_text())
    return {node["name"]: node["version"] for node in graph["nodes"]}


def test_min_release_age_leaves_out_recent_releases(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    dated_tree(index, tmp_path / "sdists", datetime.now(UTC))
    run = bootstrap("app[fast]", "--min-release-age", "7")
    assert run.code == 0, run.stderr
    assert versions(run.output) == {"app": "1.0", "libone": "1.0"}
    record = json.loads((run.output / "run.json").read_text())
    assert record["min_release_age_days"] == 7
    assert record["exclude_newer"] is None
    cutoff = parse_timestamp(record["uploaded_before"])
    assert timedelta(days=7) <= datetime.now(UTC) - cutoff < timedelta(days=7, minutes=10)

    # The same tree without the option takes the new release.
    run = bootstrap("app[fast]", output=tmp_path / "now")
    assert run.code == 0, run.stderr
    assert versions(run.output) == {"app": "1.0", "libone": "1.1"}
    assert json.loads((run.output / "run.json").read_text())["uploaded_before"] is None


def test_exclude_newer_takes_the_index_as_it_was(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    now = datetime.now(UTC)
    dated_tree(index, tmp_path / "sdists", now)
    day = (now - timedelta(days=30)).date().isoformat()
    run = bootstrap("app[fast]", "--exclude-newer", day)
    assert run.code == 0, run.stderr
    assert versions(run.output) == {"app": "1.0", "libone": "1.0"}
    record = json.loads((run.output / "run.json").read_text())
    assert record["exclude_newer"] == f"{day}T00:00:00Z" == record["uploaded_before"]

    # Before anything was uploaded, nothing is.
    run = bootstrap("app[fast]", "--exclude-newer", "2000-01-01T00:00:00Z", output=tmp_path / "x")
    assert run.code == 1
    assert "app" in run.stderr and "Traceback" not in run.stderr
    assert not (run.output / "graph.json").exists()


def test_an_index_without_upload_times_refuses_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html_index = FixtureIndex(json_api=False)
    html_index.start()
    try:
        html_index.add(Project("app", dependencies=["libone"]), tmp_path / "sdists")
        html_index.add(Project("libone"), tmp_path / "sdists")
        out = tmp_path / "out"
        boot = ["bootstrap", "--index-url", html_index.url, "--output-dir", str(out)]
        code = main([*boot, "--keep-going", "--exclude-newer", "2024-05-01", "app"])
        err = capsys.readouterr().err
        assert code == 1, err
        assert (
            f"error: --exclude-newer 2024-05-01T00:00:00Z needs the upload time of every file, "
            f"and the index {html_index.url} gives none for app-1.0.tar.gz" in err
        )
        assert "Traceback" not in err
        # Refused before anything was built or written; not a failure of the requirement.
        assert not (out / "wheels").exists() or not list((out / "wheels").iterdir())
        assert not (out / "failures.json").exists()
        assert not (out / "graph.json").exists()

        # find-updates refuses it the same way, once.
        assert main([*boot, "app"]) == 0
        capsys.readouterr()
        code = main(["find-updates", str(out), "--min-release-age", "3"])
        captured = capsys.readouterr()
        assert (code, captured.out) == (1, "")
        assert captured.err.count("needs the upload time of every file") == 1
        assert (
            "--min-release-age 3 needs the upload time of every file, and the index "
            f"{html_index.url} gives none for" in captured.err
        )
    finally:
        html_index.stop()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--exclude-newer", "2024-05-01T12:00", "has no time zone"),
        ("--exclude-newer", "last week", "not a timestamp"),
        ("--min-release-age", "-3", "from 0 to 99999"),
    ],
)
def test_bad_option_values_are_usage_errors(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["bootstrap", "--output-dir", str(tmp_path / "out"), option, value, "app"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"argument {option}:" in err and message in err


def test_a_prebuilt_fallback_keeps_to_the_release_age_too(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """One cut-off for the whole run: with --fallback-prebuilt, a failed build does not
    take a wheel uploaded after it."""
    old = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    broken = Project("broken", pkg_info_version="2.2", tool={"fail": "no compiler"})
    sdist = broken.sdist(tmp_path / "sdists")
    index.add_file("broken", IndexFile(sdist.name, sdist.read_bytes(), upload_time=old))
    index.add_file(
        "broken",
        IndexFile("broken-1.0-py3-none-any.whl", wheel_of(broken), upload_time=new),
    )
    run = bootstrap("--keep-going", "--fallback-prebuilt", "--min-release-age", "7", "broken")
    assert run.code == 1, run.stderr
    assert not list((run.output / "wheels").glob("broken-*.whl"))
    # Without the cut-off, the same wheel stands in.
    run = bootstrap("--keep-going", "--fallback-prebuilt", "broken", output=tmp_path / "any")
    assert list((run.output / "wheels").glob("broken-*.whl"))
