"""bootstrap --each: each top-level requirement resolved on its own, all published into
one index, with a constraints file per requirement in DIR/constraints/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.outputs import constraints_file_names

from .conftest import installed, pip_install
from .support import FixtureIndex, Project, build_tool


def test_constraints_file_names_are_readable_and_distinct() -> None:
    assert constraints_file_names(
        ["torch==2.1.1", "torch==2.2.*", "torch~=2.2", "App[Extra]>=1; python_version>'3'", ""]
    ) == [
        "torch-2.1.1.txt",
        "torch-2.2.txt",
        "torch-2.2-2.txt",
        "app-extra-1-python-version-3.txt",
        "requirement.txt",
    ]


def tree() -> list[Project]:
    """old-app needs lib 1, new-app needs lib 2: they do not install together. Both
    build with the same tool."""
    tool = {"build_requires": ["tool"], "backend": "tool_backend"}
    return [
        build_tool(),
        Project("lib", "1.0", pkg_info_version="2.2"),
        Project("lib", "2.0", dependencies=["helper"], pkg_info_version="2.2"),
        Project("helper", pkg_info_version="2.2"),
        Project("old-app", dependencies=["lib<2"], **tool),  # type: ignore[arg-type]
        Project("new-app", dependencies=["lib>=2"], **tool),  # type: ignore[arg-type]
    ]


def run_here(index: FixtureIndex, *args: str) -> int:
    """As a user types it: in the working directory, default output directory."""
    return main(["bootstrap", "--index-url", index.url, "--jobs", "2", *args])


def test_requirements_that_do_not_install_together_each_get_their_closure(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    index.add_all(tree(), tmp_path / "sdists")
    out = tmp_path / "bootstrap-output"

    # Jointly they cannot be resolved...
    assert run_here(index, "old-app", "new-app") == 1
    assert "lib" in capsys.readouterr().err

    # ...each on its own they can, into one index; the summary says how to install each.
    assert run_here(index, "--each", "old-app", "new-app") == 0
    lines = capsys.readouterr().err.splitlines()
    url = (out / "simple").as_uri()
    assert lines[-2:] == [
        f"install with: pip install --index-url {url}/ -c {out}/constraints/old-app.txt old-app",
        f"install with: pip install --index-url {url}/ -c {out}/constraints/new-app.txt new-app",
    ]
    constraints = out / "constraints"
    assert sorted(p.name for p in constraints.iterdir()) == [
        "index.json",
        "new-app.txt",
        "old-app.txt",
    ]
    assert (constraints / "old-app.txt").read_text() == "lib==1.0\nold-app==1.0\n"
    assert (constraints / "new-app.txt").read_text() == ("helper==1.0\nlib==2.0\nnew-app==1.0\n")
    assert json.loads((constraints / "index.json").read_text()) == [
        {"requirement": "old-app", "constraints": "old-app.txt"},
        {"requirement": "new-app", "constraints": "new-app.txt"},
    ]
    assert not (out / "constraints.txt").exists()
    wheels = sorted(p.name for p in (out / "wheels").glob("*.whl"))
    assert wheels == [
        "helper-1.0-py3-none-any.whl",
        "lib-1.0-py3-none-any.whl",
        "lib-2.0-py3-none-any.whl",
        "new_app-1.0-py3-none-any.whl",
        "old_app-1.0-py3-none-any.whl",
        "tool-1.0-py3-none-any.whl",
    ]
    graph = json.loads((out / "graph.json").read_text())
    assert graph["roots"] == ["old-app", "new-app"]
    toplevel = {e["to"] for e in graph["edges"] if e["kind"] == "toplevel"}
    assert toplevel == {"old-app==1.0", "new-app==1.0"}
    # The tool both build with was built once.
    assert len(list((out / "logs").glob("tool-*.log"))) == 1

    for app, lib in (("old-app", "1.0"), ("new-app", "2.0")):
        venv = tmp_path / f"venv-{app}"
        result = pip_install(out, venv, app, options=["-c", str(constraints / f"{app}.txt")])
        assert result.returncode == 0, result.stderr
        assert installed(venv)["lib"] == lib

    # A run without --each describes its one closure again.
    assert run_here(index, "old-app") == 0
    assert (out / "constraints.txt").read_text() == "lib==1.0\nold-app==1.0\n"
    assert not constraints.exists()


def test_two_versions_of_one_project(
    tmp_path: Path, index: FixtureIndex, bootstrap: object
) -> None:
    """The issue's example: ``--each 'torch==2.1.1' 'torch==2.2.*'``."""
    index.add_all(tree(), tmp_path / "sdists")
    index.add(Project("lib", "2.2.1", pkg_info_version="2.2"), tmp_path / "sdists")
    run = bootstrap("--each", "lib==1.0", "lib==2.*")  # type: ignore[operator]
    assert run.code == 0, run.stderr
    constraints = run.output / "constraints"
    assert (constraints / "lib-1.0.txt").read_text() == "lib==1.0\n"
    assert (constraints / "lib-2.txt").read_text() == "lib==2.2.1\n"
    for spec, version in (("lib==1.0", "1.0"), ("lib==2.*", "2.2.1")):
        venv = tmp_path / f"venv-{version}"
        result = pip_install(run.output, venv, spec)
        assert result.returncode == 0, result.stderr
        assert installed(venv) == {"lib": version}


def test_with_keep_going_each_closure_fails_or_is_published_alone(
    tmp_path: Path, index: FixtureIndex, bootstrap: object
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    index.add_all(
        [
            Project("bad-app", dependencies=["broken"], pkg_info_version="2.2"),
            Project("broken", pkg_info_version="2.2", tool={"fail": "no compiler"}),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap(  # type: ignore[operator]
        "--each", "--keep-going", "old-app", "bad-app", "new-app", "not-on-index"
    )
    assert run.code == 1, run.stderr
    report = json.loads((run.output / "failures.json").read_text())
    entries = {e["name"]: e for e in report["failures"]}
    assert entries["broken"]["status"] == "failed"
    assert entries["broken"]["chain"] == ["bad-app", "broken"]
    assert "not-on-index" in entries
    assert report["published"] == ["old-app", "new-app"]
    constraints = run.output / "constraints"
    assert sorted(p.name for p in constraints.iterdir()) == [
        "index.json",
        "new-app.txt",
        "old-app.txt",
    ]
    published = {p.name for p in (run.output / "simple").iterdir() if p.is_dir()}
    assert published == {"old-app", "new-app", "lib", "helper", "tool"}
    for app, lib in (("old-app", "1.0"), ("new-app", "2.0")):
        venv = tmp_path / f"venv-{app}"
        result = pip_install(run.output, venv, app, options=["-c", str(constraints / f"{app}.txt")])
        assert result.returncode == 0, result.stderr
        assert installed(venv)["lib"] == lib
