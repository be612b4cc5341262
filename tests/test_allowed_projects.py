"""--allowed-projects: the review gate a team puts in CI. A project the list does not name
is never fetched or built; the run stops naming each one and what pulled it in (with
--keep-going, each fails alone and the rest is published)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.allowlist import parse_allowed_projects, read_allowed_projects
from bootstrapper.cli import main
from bootstrapper.errors import UsageError

from .conftest import installed, pip_install
from .support import FixtureIndex, Project, build_tool


def test_the_list_takes_names_comments_and_blank_lines(tmp_path: Path) -> None:
    allowed = parse_allowed_projects(
        "# reviewed 2026-11\nRequests  # HTTP\n\nzope.interface\nmy_pkg\n", tmp_path / "list"
    )
    assert allowed.names == {"requests", "zope-interface", "my-pkg"}
    assert allowed.allows(allowed_name("My-Pkg"))
    assert not allowed.allows(allowed_name("urllib3"))


def allowed_name(name: str) -> Any:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def test_every_bad_line_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        parse_allowed_projects("good\nnot a name\nrequests>=2\n-dash\n", tmp_path / "list")
    message = raised.value.message
    assert f"{tmp_path / 'list'}:2: 'not a name' is not a project name" in message
    assert f"{tmp_path / 'list'}:3: 'requests>=2' is not a project name" in message
    assert f"{tmp_path / 'list'}:4:" in message
    with pytest.raises(UsageError, match="cannot read the allowed projects file"):
        read_allowed_projects(tmp_path / "missing")


def tree() -> list[Project]:
    """app -> lib, app[extra] -> extra-dep; lib is built with tool (build-system)."""
    return [
        Project("app", dependencies=["lib"], optional={"extra": ["extra-dep"]}),
        Project("lib", build_requires=["tool"], backend="tool_backend", pkg_info_version="2.2"),
        build_tool(),
        Project("extra-dep", pkg_info_version="2.2"),
        Project("other", pkg_info_version="2.2"),
    ]


def bootstrap_here(index: FixtureIndex, *args: str) -> int:
    """As a user types it: in the working directory, default output directory."""
    return main(["bootstrap", "--index-url", index.url, "--jobs", "2", *args])


def test_a_new_dependency_stops_the_run_before_it_is_built(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A release that adds two dependencies (one reached through an extra of a new
    requirement): both are named with their chains, nothing of them is fetched or built,
    and the index of the last good run is left as it was."""
    monkeypatch.chdir(tmp_path)
    index.add_all(tree(), tmp_path / "sdists")
    Path("allowed.txt").write_text("# reviewed\napp\nlib\ntool\nextra-dep\n")
    out = tmp_path / "bootstrap-output"

    assert bootstrap_here(index, "--allowed-projects", "allowed.txt", "app[extra]") == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in (out / "simple").rglob("*.html")}
    assert {"app", "lib", "tool", "extra-dep"} <= {
        p.parent.name for p in (out / "simple").rglob("index.html")
    }

    index.add(
        Project("app", "2.0", dependencies=["lib", "newdep"], optional={"extra": ["newer[x]"]}),
        tmp_path / "sdists",
    )
    index.add(Project("newdep", pkg_info_version="2.2"), tmp_path / "sdists")
    index.add(
        Project("newer", pkg_info_version="2.2", optional={"x": ["extra-dep"]}),
        tmp_path / "sdists",
    )
    code = bootstrap_here(index, "--allowed-projects", "allowed.txt", "app[extra]")
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert (
        "error: 2 projects are not on the list of allowed projects "
        f"({tmp_path / 'allowed.txt'}): newdep, newer" in err
    )
    assert "  newdep: app -> newdep" in err
    assert "  newer: app -> newer" in err
    assert f"review them, then add them to {tmp_path / 'allowed.txt'} to let them in" in err
    # Their static metadata was read from their sdists; nothing of theirs was built,
    # logged or archived.
    for name in ("newdep", "newer"):
        assert not list(out.rglob(f"{name}-*.whl")), name
        assert not (out / "logs" / f"{name}-1.0.log").exists(), name
        assert not list((out / "sdists").rglob(f"{name}-*")), name
    assert {p.name: p.read_bytes() for p in (out / "simple").rglob("*.html")} == before

    # Reviewed and added: the same command goes through.
    with Path("allowed.txt").open("a") as f:
        f.write("newdep\nnewer\n")
    assert bootstrap_here(index, "--allowed-projects", "allowed.txt", "app[extra]") == 0
    result = pip_install(out, tmp_path / "venv", "app[extra]")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "venv") == {
        "app": "2.0",
        "lib": "1.0",
        "newdep": "1.0",
        "newer": "1.0",
        "extra-dep": "1.0",
    }


def test_a_build_requirement_is_reviewed_too(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("app\nlib\nextra-dep\n")
    run = bootstrap("--allowed-projects", str(allowed), "app")
    assert run.code == 1, run.stderr
    assert f"error: tool is not on the list of allowed projects ({allowed})" in run.stderr
    assert "required by: app -> lib -> tool" in run.stderr
    assert not list(run.output.rglob("tool-*.whl"))


def test_with_keep_going_each_refused_project_fails_alone(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("app\nlib\ntool\nother\n")
    run = bootstrap("--keep-going", "--allowed-projects", str(allowed), "app[extra]", "other")
    assert run.code == 1, run.stderr
    report = json.loads((run.output / "failures.json").read_text())
    entries = {e["name"]: e for e in report["failures"]}
    assert set(entries) == {"extra-dep"}
    assert entries["extra-dep"]["chain"] == ["app", "extra-dep"]
    assert "not on the list of allowed projects" in entries["extra-dep"]["error"]
    assert report["published"] == ["other"]
    assert {p.name for p in (run.output / "simple").iterdir() if p.is_dir()} == {"other"}
    # app and its build tool were built all the same (a later run reuses them).
    built = {p.name.split("-")[0] for p in (run.output / ".work" / "built").glob("*.whl")}
    assert {"app", "lib", "tool", "other"} <= built
    assert "extra_dep" not in {
        p.name.split("-")[0] for p in (run.output / ".work" / "built").glob("*.whl")
    }


def test_a_bad_list_is_a_usage_error_before_anything_runs(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("app\nnot valid\n")
    run = bootstrap("--allowed-projects", str(allowed), "app")
    assert run.code == 2
    assert f"{allowed}:2: 'not valid' is not a project name" in run.stderr
    assert not (run.output / "simple").exists()


def test_a_list_saved_with_a_byte_order_mark_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "allowed.txt"
    path.write_text("\ufeffapp\nlib\n", encoding="utf-8")
    assert read_allowed_projects(path).names == {"app", "lib"}
