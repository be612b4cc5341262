"""Every path a user gives is taken relative to the directory the command starts in, once:
the default ``./patches``, ``./overrides`` and ``./bootstrap-output``, relative options and
requirement files all work from a project directory, for every command."""

from __future__ import annotations

import argparse
import difflib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.cli.common import absolute_path, location

from .support import FixtureIndex, Project, isolation_args

DEP_WHEEL = "dep_pkg-1.0-1-py3-none-any.whl"  # build tag 1: ./overrides was read


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def dep_module(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read("dep_pkg.py").decode()


def dep_project(version: str) -> Project:
    return Project(
        "dep-pkg",
        version,
        tool={"modules": ["dep_pkg"]},
        files={"src/dep_pkg.py": "PATCHED = False\n"},
    )


@pytest.mark.parametrize("text", ["x", "./x", "a/../b/c", "~/x"])
def test_absolute_path_is_the_path_from_the_working_directory(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = absolute_path(text)
    assert path.is_absolute()
    assert path == tmp_path / text  # not resolved: symlinks and '..' keep their meaning


def test_absolute_path_refuses_an_empty_path() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        absolute_path("")


def test_location_keeps_urls_and_pins_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert location("https://example.org/simple/") == "https://example.org/simple/"
    assert location("file:///srv/wheels") == "file:///srv/wheels"
    assert location("wheels") == str(tmp_path / "wheels")


def test_every_command_works_from_a_project_directory_with_relative_paths(
    tmp_path: Path,
    index: FixtureIndex,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The patched package is a dependency reached only through an extra, its patch and
    settings sit in the default ./patches and ./overrides, and the requirements come from
    a file that includes another by a path relative to itself."""
    index.add_all(
        [
            Project("app", "1.0", optional={"feature": ["dep-pkg"]}),
            dep_project("1.0"),
            dep_project("2.0"),
        ],
        tmp_path / "index-files",
    )
    project = tmp_path / "project"
    write(project / "reqs" / "top.txt", "-r more/feature.txt\n")
    write(project / "reqs" / "more" / "feature.txt", "app[feature]\n")
    write(project / "reqs" / "cons.txt", "dep-pkg<2\n")
    write(project / "overrides" / "settings" / "dep-pkg.yaml", 'changelog:\n  "1.0": [fixed]\n')
    patch_text = "".join(
        difflib.unified_diff(
            ["PATCHED = False\n"], ["PATCHED = True\n"], "a/src/dep_pkg.py", "b/src/dep_pkg.py"
        )
    )
    write(project / "patches" / "dep-pkg" / "1.0" / "01-fix.patch", patch_text)
    monkeypatch.chdir(project)

    # bootstrap: relative -r/-c, default ./patches, ./overrides and ./bootstrap-output
    run = cli(
        capsys,
        "bootstrap",
        "--index-url",
        index.url,
        "--jobs",
        "2",
        "-r",
        "reqs/top.txt",
        "-c",
        "reqs/cons.txt",
        *isolation_args(),
    )
    assert run.code == 0, run.err
    out = project / "bootstrap-output"
    wheel = out / "wheels" / DEP_WHEEL
    assert dep_module(wheel) == "PATCHED = True\n"
    assert (out / "patches" / "dep-pkg" / "1.0" / "01-fix.patch").read_text() == patch_text
    assert f"index: {out / 'simple'}" in run.err
    record = json.loads((out / "wheels" / f"{DEP_WHEEL}.build.json").read_text())
    assert record["plan"]["patches"][0]["file"] == "01-fix.patch"
    assert record["log"] == str(out / "logs" / "dep-pkg-1.0.log")

    # build-sequence: a relative BUILD_ORDER (sources and patches beside it) and output
    run = cli(
        capsys,
        "build-sequence",
        "bootstrap-output/build-order.json",
        "--output-dir",
        "rebuilt",
        *isolation_args(),
    )
    assert run.code == 0, run.err
    rebuilt = project / "rebuilt" / "wheels" / DEP_WHEEL
    assert rebuilt.read_bytes() == wheel.read_bytes()
    assert f"index: {project / 'rebuilt' / 'simple'}" in run.err

    # verify: relative --sources, --patches and --keep
    run = cli(
        capsys,
        "verify",
        "bootstrap-output/build-order.json",
        "--only",
        "dep-pkg",
        "--sources",
        "bootstrap-output/sdists",
        "--patches",
        "bootstrap-output/patches",
        "--keep",
        "kept",
        *isolation_args(),
    )
    assert run.code == 0, run.err + run.out
    assert f"identical  {DEP_WHEEL}" in run.out
    assert dep_module(project / "kept" / "wheels" / DEP_WHEEL) == "PATCHED = True\n"

    # build: relative --sources, --wheels and --output-dir, default ./patches, ./overrides
    run = cli(
        capsys,
        "build",
        "dep-pkg",
        "1.0",
        "--sources",
        "bootstrap-output/sdists",
        "--wheels",
        "bootstrap-output/wheels",
        "--output-dir",
        "job",
        *isolation_args(),
    )
    assert run.code == 0, run.err
    assert run.out.strip() == str(project / "job" / "wheels" / DEP_WHEEL)
    assert dep_module(project / "job" / "wheels" / DEP_WHEEL) == "PATCHED = True\n"

    # settings check: the default directories
    run = cli(capsys, "settings", "check", "dep-pkg", "1.0")
    assert run.code == 0, run.err
    report = json.loads(run.out.split("\n", 1)[1])
    assert [p["file"] for p in report["patches"]] == ["01-fix.patch"]
    settings_file = project / "overrides" / "settings" / "dep-pkg.yaml"
    assert report["settings"]["files"][-1] == str(settings_file)

    # wheel edit: a relative wheel and output directory
    run = cli(
        capsys,
        "wheel",
        "edit",
        f"bootstrap-output/wheels/{DEP_WHEEL}",
        "--post",
        "2",
        "--output-dir",
        "edited",
    )
    assert run.code == 0, run.err
    assert run.out.strip() == str(project / "edited" / "dep_pkg-1.0.post2-1-py3-none-any.whl")


def test_an_empty_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "bootstrap", "--output-dir", "", "app")
    assert run.code == 2
    assert "--output-dir: an empty path" in run.err
    assert "Traceback" not in run.err
