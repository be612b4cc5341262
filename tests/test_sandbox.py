"""The build sandbox: an allow-listed environment with HOME and TMPDIR in the package's
scratch, a build timeout that ends the backend's whole process group, and a publisher
that lists only what it published, each against hostile fixture backends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import isolation
from bootstrapper.cli import main
from bootstrapper.sandbox import allowed, sandbox_environ
from bootstrapper.settings import Settings, SettingsError

from .support import FixtureIndex, Project, wait_until_quiet

SECRET = "wJalrXUtnFEMI-fixture-secret-K7MDENG"
CHOSEN = "chosen-value-3141"


def environ_seen(wheel: Path) -> dict[str, Any]:
    dist = wheel.name.split("-")[0]
    with zipfile.ZipFile(wheel) as zf:
        return dict(json.loads(zf.read(f"{dist}_environ.json")))


@pytest.mark.parametrize(
    ("name", "passes"),
    [
        ("PATH", True),
        ("LC_CTYPE", True),
        ("TZ", True),
        ("CC", True),
        ("CFLAGS", True),
        ("PKG_CONFIG_PATH", True),
        ("CMAKE_GENERATOR", True),
        ("MAKEFLAGS", True),
        ("RUSTUP_HOME", True),
        ("AWS_SECRET_ACCESS_KEY", False),
        ("GITHUB_TOKEN", False),
        ("SSH_AUTH_SOCK", False),
        ("HOME", False),  # replaced, never passed
        ("CARGO_HOME", False),  # replaced by the scratch's
        ("PYTHONPATH", False),
    ],
)
def test_allow_list(name: str, passes: bool) -> None:
    assert allowed(name) is passes


def test_sandbox_environ_replaces_home_and_passes_chosen(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": SECRET, "MINE": "x", "HOME": "/home/u"}
    env = sandbox_environ(base, tmp_path, pass_env=["MINE"])
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["MINE"] == "x"
    assert env["HOME"] == str(tmp_path / "home")
    assert env["TMPDIR"] == env["TMP"] == env["TEMP"] == str(tmp_path / "tmp")
    assert env["CARGO_HOME"] == str(tmp_path / "cargo")


def test_builds_see_only_the_allow_list(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("FIXTURE_CHOSEN", CHOSEN)
    monkeypatch.setenv("FIXTURE_NOT_CHOSEN", "nope")
    monkeypatch.setenv("CFLAGS", "-O1")
    index.add(Project("probe", tool={"record-environ": True}), tmp_path / "sdists")

    run = bootstrap("--pass-env", "FIXTURE_CHOSEN", "probe")

    assert run.code == 0, run.stderr
    seen = environ_seen(run.output / "wheels" / "probe-1.0-py3-none-any.whl")
    assert "AWS_SECRET_ACCESS_KEY" not in seen["keys"]
    assert "FIXTURE_NOT_CHOSEN" not in seen["keys"]
    assert "FIXTURE_CHOSEN" in seen["keys"]
    assert "CFLAGS" in seen["keys"]
    scratch = run.output / ".work" / "scratch" / "probe-1.0"
    assert seen["HOME"] == str(scratch / "home")
    assert seen["TMPDIR"] == str(scratch / "tmp")
    assert seen["home_writable"] and seen["tmp_writable"]
    assert not scratch.exists()  # removed after the build
    record = json.loads(
        (run.output / "wheels" / "probe-1.0-py3-none-any.whl.build.json").read_text()
    )
    assert record["pass_env"] == ["FIXTURE_CHOSEN"]
    # Names only: neither value is written anywhere in the output.
    for path in run.output.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CHOSEN.encode() not in data, path
            assert SECRET.encode() not in data, path


def test_pass_env_rejects_a_malformed_name(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("--pass-env", "NOT-A-NAME", "probe")
    assert run.code == 2
    assert "not an environment variable name" in run.stderr


def _slow(tmp_path: Path) -> tuple[Project, Path]:
    # Kept with --keep-work: the build's home, the one place it can write for the test.
    beat = tmp_path / "out" / ".work" / "scratch" / "slow-1.0" / "home" / "child-beat"
    return Project("slow", tool={"sleep": 60, "spawn-child": "$HOME/child-beat"}), beat


def test_build_timeout_ends_the_backend_and_its_children(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    project, pidfile = _slow(tmp_path)
    index.add(project, tmp_path / "sdists")
    started = time.monotonic()

    run = bootstrap("--keep-work", "--build-timeout", "2", "slow")

    assert time.monotonic() - started < 30
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "slow: the build backend ran longer than the build timeout" in run.stderr
    assert "2 s, set by --build-timeout" in run.stderr
    wait_until_quiet(pidfile)
    log = (run.output / "logs" / "slow-1.0.log").read_text()
    assert "timed out after 2 s" in log


def test_build_timeout_from_the_package_settings_names_its_file(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    project, pidfile = _slow(tmp_path)
    index.add(project, tmp_path / "sdists")
    settings = tmp_path / "overrides" / "settings" / "slow.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text("env:\n  X: '1'\nbuild-timeout: 2\n")

    # The package's setting wins over the run's option.
    run = bootstrap(
        "--keep-work",
        "--overrides-dir",
        str(tmp_path / "overrides"),
        "--build-timeout",
        "600",
        "slow",
    )

    assert run.code == 1, run.stderr
    assert f"2 s, set by {settings}:3" in run.stderr
    wait_until_quiet(pidfile)


def test_build_timeout_setting_is_validated(tmp_path: Path) -> None:
    settings = tmp_path / "settings" / "slow.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(
        "build-timeout: 0\nvariants:\n  big:\n    build-timeout: soon\n  long:\n"
        "    build-timeout: 36000\n"
    )
    with pytest.raises(SettingsError) as caught:
        Settings([tmp_path])
    assert caught.value.problems == [
        f"{settings}:1: build-timeout must be at least 1 (seconds)",
        f"{settings}:4: build-timeout must be a whole number, 0 or more (got 'soon')",
    ]
    settings.write_text("build-timeout: 60\nvariants:\n  long:\n    build-timeout: 36000\n")
    loaded = Settings([tmp_path])
    assert loaded.for_package("slow").build_timeout == 60  # type: ignore[arg-type]
    long = loaded.for_package("slow", "long")  # type: ignore[arg-type]
    assert (long.build_timeout, long.build_timeout_origin) == (36000, f"{settings}:4")


def test_build_timeout_must_be_positive(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("--build-timeout", "0", "probe")
    assert run.code == 2
    assert "must be a positive number of seconds" in run.stderr


def test_root_page_lists_only_published_projects(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("hostile", tool={"publish-into-output": "evil"}), tmp_path / "sdists")

    # Without the read-only view (which refuses the write: see below), as on a machine
    # that has no mount namespaces.
    run = bootstrap("--no-filesystem-isolation", "hostile")

    assert run.code == 0, run.stderr
    assert (run.output / "simple" / "evil" / "index.html").is_file()  # it did write it
    root = (run.output / "simple" / "index.html").read_text()
    assert 'href="hostile/"' in root
    assert "evil" not in root


def test_leftover_children_are_ended_and_build_sequence_takes_the_options(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pidfile = tmp_path / "child-beat"
    index.add(Project("leaver", tool={"spawn-child": str(pidfile)}), tmp_path / "sdists")
    # The fixture's child counts into a file of the test's.
    run = bootstrap("--no-filesystem-isolation", "leaver")
    assert run.code == 0, run.stderr
    # The backend returned but left a child behind: it is ended with the process group.
    wait_until_quiet(pidfile)

    code = main(
        [
            "build-sequence",
            str(run.output / "build-order.json"),
            "--output-dir",
            str(tmp_path / "again"),
            "--build-timeout",
            "600",
            "--pass-env",
            "FIXTURE_CHOSEN",
            "--no-network-isolation",
            "--no-filesystem-isolation",
        ]
    )

    err = capsys.readouterr().err
    assert code == 0, err
    record = json.loads(
        (tmp_path / "again" / "wheels" / "leaver-1.0-py3-none-any.whl.build.json").read_text()
    )
    assert record["pass_env"] == ["FIXTURE_CHOSEN"]
    wait_until_quiet(pidfile)


def test_settings_check_shows_the_build_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings" / "slow.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text("build-timeout: 7200\n")
    code = main(["settings", "check", "slow", "1.0", "--overrides-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["build-timeout"] == f"7200 s ({settings}:1)"


NOT_HERE = ("output", "beside-output", "build-env", "elsewhere")
OWN = ("tree", "tree-relative", "home", "tmp")
needs_view = pytest.mark.skipif(
    isolation.readonly_view_problem() is not None,
    reason=f"no read-only view here: {isolation.readonly_view_problem()}",
)


def writes_seen(wheel: Path) -> dict[str, str]:
    dist = wheel.name.split("-")[0]
    with zipfile.ZipFile(wheel) as zf:
        return dict(json.loads(zf.read(f"{dist}_writes.json")))


def _planted(output: Path, elsewhere: Path) -> list[Path]:
    candidates = [
        output / "planted.html",
        output.parent / "planted-beside.txt",
        elsewhere / "planted.txt",
    ]
    return [path for path in candidates if path.exists()] + list(
        (output / ".work").glob("envs/*/planted.txt")
    )


@pytest.fixture(params=["compiled", "script"])
def view_helper(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Each way to make the view: the helper compiled from fsview.c, and fsview.py (as
    on a machine without a C compiler)."""
    if request.param == "script":
        monkeypatch.setattr(isolation, "FSVIEW_C", tmp_path / "missing.c")
    elif isolation.compiled_view() is None:
        pytest.skip("no C compiler here")
    isolation.readonly_view_problem.cache_clear()
    assert isolation.readonly_view_problem() is None
    compiled = sys.executable not in isolation.readonly_view_command(["true"], [], network=False)
    assert compiled == (request.param == "compiled")
    yield request.param
    isolation.readonly_view_problem.cache_clear()


@needs_view
def test_builds_see_the_machine_read_only_in_every_command(
    tmp_path: Path,
    index: FixtureIndex,
    bootstrap: Any,
    capsys: pytest.CaptureFixture[str],
    view_helper: str,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    index.add(Project("writer", tool={"try-writes": str(elsewhere)}), tmp_path / "sdists")

    run = bootstrap("--keep-work", "writer")

    assert run.code == 0, run.stderr
    seen = writes_seen(run.output / "wheels" / "writer-1.0-py3-none-any.whl")
    assert {what: seen[what] for what in NOT_HERE} == dict.fromkeys(
        NOT_HERE, "Read-only file system"
    )
    assert {what: seen[what] for what in OWN} == dict.fromkeys(OWN, "written")
    assert _planted(run.output, elsewhere) == []
    log = (run.output / "logs" / "writer-1.0.log").read_text()
    assert "read-only view of the machine but for" in log

    # The same view when the build order is rebuilt elsewhere.
    again = tmp_path / "again"
    code = main(
        ["build-sequence", str(run.output / "build-order.json"), "--output-dir", str(again)]
    )
    assert code == 0, capsys.readouterr().err
    seen = writes_seen(again / "wheels" / "writer-1.0-py3-none-any.whl")
    assert seen["output"] == seen["elsewhere"] == "Read-only file system"
    assert seen["tree"] == seen["tree-relative"] == "written"
    assert _planted(again, elsewhere) == []


def test_without_filesystem_isolation_builds_write_where_the_user_can(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    index.add(Project("writer", tool={"try-writes": str(elsewhere)}), tmp_path / "sdists")

    run = bootstrap("--no-filesystem-isolation", "--keep-work", "writer")

    assert run.code == 0, run.stderr
    seen = writes_seen(run.output / "wheels" / "writer-1.0-py3-none-any.whl")
    assert set(seen.values()) == {"written"}
    assert len(_planted(run.output, elsewhere)) == 4
    assert "read-only view" not in (run.output / "logs" / "writer-1.0.log").read_text()


def test_a_machine_without_the_view_is_told_once(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As where mount namespaces are refused: the probe's helpers cannot run.
    monkeypatch.setattr(isolation, "FSVIEW", tmp_path / "missing.py")
    monkeypatch.setattr(isolation, "FSVIEW_C", tmp_path / "missing.c")
    isolation.readonly_view_problem.cache_clear()
    try:
        index.add(Project("probe"), tmp_path / "sdists")
        index.add(Project("other"), tmp_path / "sdists")
        run = bootstrap("probe", "other")
    finally:
        isolation.readonly_view_problem.cache_clear()

    assert run.code == 0, run.stderr
    assert run.stderr.count("note: builds can write outside their work directories") == 1


@needs_view
def test_no_process_a_build_started_outlives_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    # Even one that left the backend's process group (setsid): the build has its own PID
    # namespace, which ends with the backend.
    index.add(Project("daemon", tool={"spawn-detached": "$HOME/beat"}), tmp_path / "sdists")

    run = bootstrap("--keep-work", "daemon")

    assert run.code == 0, run.stderr
    beat = run.output / ".work" / "scratch" / "daemon-1.0" / "home" / "beat"
    wait_until_quiet(beat, timeout=2)  # nobody counts any more


def test_the_view_helper_is_compiled_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not any(shutil.which(c) for c in isolation.COMPILERS):
        pytest.skip("no C compiler here")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = isolation.compiled_view()
    assert made is not None and made.parent == tmp_path / "cache" / "bootstrapper"
    before = made.stat()
    assert isolation.compiled_view() == made
    assert made.stat().st_mtime_ns == before.st_mtime_ns  # kept, not compiled again
    # One that another user could have changed is not run: it is made again.
    made.chmod(0o777)
    assert isolation.compiled_view() == made
    assert made.stat().st_mode & 0o777 == 0o755
    # A changed source is another helper.
    changed = tmp_path / "fsview.c"
    changed.write_text(isolation.FSVIEW_C.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(isolation, "FSVIEW_C", changed)
    assert isolation.compiled_view() not in (None, made)


def test_without_a_compiler_or_a_compilable_source_there_is_no_compiled_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(isolation, "COMPILERS", ("no-such-cc",))
    assert isolation.compiled_view() is None
    monkeypatch.setattr(isolation, "COMPILERS", ("cc", "gcc", "clang"))
    broken = tmp_path / "fsview.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(isolation, "FSVIEW_C", broken)
    assert isolation.compiled_view() is None
    assert not list((tmp_path / "cache" / "bootstrapper").glob("fsview-*"))


@needs_view
def test_both_view_helpers_fail_alike_when_the_view_cannot_be_made(tmp_path: Path) -> None:
    compiled = isolation.compiled_view()
    if compiled is None:
        pytest.skip("no C compiler here")
    script = [sys.executable, "-I", "-S", str(isolation.FSVIEW)]
    said = []
    for helper in ([str(compiled)], script):
        cmd = isolation.readonly_view_command(
            ["true"], [tmp_path / "missing"], network=False, helper=helper
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        said.append((done.returncode, done.stderr))
    assert said[0] == said[1]
    assert said[0][0] == 125
    assert said[0][1] == (
        "bootstrapper: cannot make the build's read-only view: [Errno 2] mount "
        f"{tmp_path / 'missing'}: No such file or directory\n"
    )
    # A command that cannot be found: 127, named.
    for helper in ([str(compiled)], script):
        cmd = isolation.readonly_view_command(
            ["no-such-program"], [tmp_path], network=False, helper=helper
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 127
        assert "bootstrapper: cannot run no-such-program:" in done.stderr
    assert os.path.isdir(tmp_path)
