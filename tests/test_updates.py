"""find-updates and update: newer releases of a finished run, what holds them back, which
top-level requirements they affect; and a run that takes them into the same index."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from bootstrapper.candidates import Release
from bootstrapper.cli import main
from bootstrapper.index import DistFile
from bootstrapper.updates import (
    HeldBack,
    Origin,
    RunGraph,
    RunRequest,
    UpdateReport,
    find_updates,
    project_update,
    render_table,
    version_changes,
)

from .conftest import installed, pip_install
from .support import FixtureIndex, Project


def release(name: str, version: str, *, yanked: bool = False) -> Release:
    sdist = DistFile(f"{name}-{version}.tar.gz", f"https://files.example/{name}-{version}.tar.gz")
    if yanked:
        sdist = DistFile(sdist.filename, sdist.url, yanked=True)
    return Release(canonicalize_name(name), Version(version), sdist)


def releases(name: str, *versions: str, yanked: Sequence[str] = ()) -> list[Release]:
    found = [release(name, v, yanked=v in yanked) for v in versions]
    return sorted(found, key=lambda r: r.version, reverse=True)


def top(*texts: str, origin: Origin = Origin.REQUIREMENT) -> list[HeldBack]:
    return [HeldBack(Requirement(t), origin) for t in texts]


NAME = NormalizedName("lib")


# -- one project ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "versions", "top_level", "expected"),
    [
        # Nothing newer.
        (["1.0"], ["0.9", "1.0"], [], None),
        # Newer, nothing in the way.
        (["1.0"], ["1.0", "1.1", "2.0"], [], ("2.0", "2.0", [])),
        # A requirement caps it: the newest it allows is the update, the rest held back.
        (["1.0"], ["1.0", "1.1", "2.0"], top("lib<2"), ("2.0", "1.1", ["requirement lib<2"])),
        # A constraint pins the current version: no update at all.
        (
            ["1.0"],
            ["1.0", "1.1"],
            top("lib==1.0", origin=Origin.CONSTRAINT),
            ("1.1", None, ["constraint lib==1.0"]),
        ),
        # Only the requirement that excludes the newest is named.
        (
            ["1.0"],
            ["1.0", "1.5", "2.0"],
            [*top("lib>=1"), *top("lib<2", origin=Origin.CONSTRAINT)],
            ("2.0", "1.5", ["constraint lib<2"]),
        ),
        # Yanked and pre-releases are not updates (PEP 592, pre-release rules).
        (["1.0"], ["1.0", "1.1"], [], ("1.1", "1.1", [])),
        (["1.0"], ["1.0", "1.1", "1.2"], [], ("1.1", "1.1", [])),
        (["1.0"], ["1.0", "2.0rc1"], [], None),
        # A requirement that names a pre-release allows newer ones.
        (["2.0rc1"], ["1.0", "2.0rc1", "2.0rc2"], top("lib>=2.0rc1"), ("2.0rc2", "2.0rc2", [])),
        # Two versions in the run (a build environment needed the older): the newer counts.
        (["1.0", "1.4"], ["1.0", "1.4", "1.5"], [], ("1.5", "1.5", [])),
    ],
)
def test_project_update(
    current: list[str],
    versions: list[str],
    top_level: list[HeldBack],
    expected: tuple[str, str | None, list[str]] | None,
) -> None:
    yanked = ["1.2"] if "1.2" in versions else []
    found = project_update(
        NAME,
        [Version(v) for v in current],
        releases("lib", *versions, yanked=yanked),
        top_level,
        allow_prereleases=False,
    )
    if expected is None:
        assert found is None
        return
    assert found is not None
    latest, update, held = expected
    assert str(found.latest) == latest
    assert (str(found.update) if found.update else None) == update
    assert [str(h) for h in found.held_back_by] == held


def test_pre_allows_pre_releases() -> None:
    found = project_update(
        NAME, [Version("1.0")], releases("lib", "1.0", "2.0rc1"), [], allow_prereleases=True
    )
    assert found is not None and found.update == Version("2.0rc1")


# -- a run's graph ----------------------------------------------------------------------


def graph_document() -> dict[str, Any]:
    """app[fast] -> libone (through the extra) -> libthree; app is built with tool,
    which needs helper; libtwo is a root of its own that needs libthree too."""

    def node(name: str, version: str, **extra: str) -> dict[str, Any]:
        return {"name": name, "version": version, "wheel": "w", "sdist": "s", **extra}

    def edge(parent: str | None, child: str, kind: str, requirement: str) -> dict[str, Any]:
        return {"from": parent, "to": child, "kind": kind, "requirement": requirement}

    return {
        "schema": 1,
        "roots": ["app[fast]", "libtwo"],
        "nodes": [
            node("app", "1.0"),
            node("libone", "1.4.post1", source_version="1.4"),
            node("libthree", "0.5"),
            node("libtwo", "2.0"),
            node("tool", "3.0"),
            node("helper", "1.0"),
        ],
        "edges": [
            edge(None, "app==1.0", "toplevel", "app[fast]"),
            edge(None, "libtwo==2.0", "toplevel", "libtwo"),
            edge("app==1.0", "libone==1.4.post1", "install", 'libone<2; extra == "fast"'),
            edge("libone==1.4.post1", "libthree==0.5", "install", "libthree"),
            edge("libtwo==2.0", "libthree==0.5", "install", "libthree<0.6"),
            edge("app==1.0", "tool==3.0", "build-system", "tool>=3"),
            edge("tool==3.0", "helper==1.0", "install", "helper"),
        ],
    }


def test_graph_versions_are_source_versions() -> None:
    graph = RunGraph.from_json(graph_document())
    assert graph.versions()[NormalizedName("libone")] == {Version("1.4")}


def test_each_project_affects_the_roots_it_is_reached_from() -> None:
    graph = RunGraph.from_json(graph_document())
    affects, closures = graph.reached()
    assert affects == {
        "app": ["app[fast]"],
        "libone": ["app[fast]"],
        "libthree": ["app[fast]", "libtwo"],
        "libtwo": ["libtwo"],
        "tool": ["app[fast]"],
        "helper": ["app[fast]"],
    }
    installed = {graph.nodes[label][0] for labels in closures.values() for label in labels}
    assert installed == {"app", "libone", "libthree", "libtwo"}
    assert sorted(closures) == ["app[fast]", "libtwo"]


def test_find_updates_over_a_graph() -> None:
    index = {
        "app": releases("app", "1.0"),
        "libone": releases("libone", "1.4", "1.5", "2.0"),
        "libthree": releases("libthree", "0.5", "0.7"),
        "libtwo": releases("libtwo", "2.0"),
        "tool": releases("tool", "3.0", "3.1"),
    }

    def lookup(name: NormalizedName) -> list[Release]:
        if name not in index:
            from bootstrapper.errors import UnknownProjectError

            raise UnknownProjectError(f"{name} is not on the index", package=name)
        return index[name]

    request = RunRequest(
        [Requirement("app[fast]"), Requirement("libtwo")],
        # Constraints do not apply to build environments: tool is not held back.
        [Requirement("libone!=1.5"), Requirement("tool<3.1")],
    )
    report = find_updates(RunGraph.from_json(graph_document()), request, lookup)
    by_name = {u.name: u for u in report.updates}
    assert sorted(by_name) == ["libone", "libthree", "tool"]

    libone = by_name[NormalizedName("libone")]
    # 2.0 is the newest, which nothing at the top level excludes; app's own requirement
    # does (a hint: a newer app could lift it).
    assert (libone.update, libone.latest) == (Version("2.0"), Version("2.0"))
    assert libone.held_back_by == ()
    assert [str(d) for d in libone.limited_by] == ['app==1.0 requires libone<2; extra == "fast"']

    libthree = by_name[NormalizedName("libthree")]
    assert libthree.affects == ("app[fast]", "libtwo")
    assert [str(d) for d in libthree.limited_by] == ["libtwo==2.0 requires libthree<0.6"]

    tool = by_name[NormalizedName("tool")]
    assert tool.update == Version("3.1") and tool.reach.value == "build"
    assert [p.name for p in report.problems] == ["helper"]
    assert report.problems[0].error == "helper is not on the index"

    table = render_table(report)
    assert table.splitlines()[0].split() == ["PROJECT", "CURRENT", "UPDATE", "LATEST", "AFFECTS"]
    assert "tool      3.0      3.1     3.1     app[fast] (build)" in table
    assert '    2.0 excluded by app==1.0 requires libone<2; extra == "fast"' in table


def small_graph(nodes: list[str], edges: list[tuple[str | None, str, str, str]]) -> RunGraph:
    """A graph.json of ``name==version`` nodes and (from, to, kind, requirement) edges."""
    return RunGraph.from_json(
        {
            "schema": 1,
            "roots": [r for f, _, _, r in edges if f is None],
            "nodes": [
                {"name": n.split("==")[0], "version": n.split("==")[1], "wheel": "w", "sdist": "s"}
                for n in nodes
            ],
            "edges": [{"from": f, "to": t, "kind": k, "requirement": r} for f, t, k, r in edges],
        }
    )


def test_an_older_copy_in_the_install_closure_is_judged_on_its_own() -> None:
    """foo 1.0 is installed (app needs foo<2), foo 2.0 only builds app's tool: the
    install closure's copy has updates (2.0 is the newest no top-level requirement
    excludes; app's own requirement limits it, as a hint), though the build's copy is as
    new as they come."""
    graph = small_graph(
        ["app==1.0", "foo==1.0", "tool==1.0", "foo==2.0"],
        [
            (None, "app==1.0", "toplevel", "app"),
            ("app==1.0", "foo==1.0", "install", "foo<2"),
            ("app==1.0", "tool==1.0", "build-system", "tool"),
            ("tool==1.0", "foo==2.0", "install", "foo>=2"),
        ],
    )
    index = {"app": releases("app", "1.0"), "tool": releases("tool", "1.0")}
    index["foo"] = releases("foo", "1.0", "1.5", "2.0")
    report = find_updates(graph, RunRequest([Requirement("app")]), lambda n: index[n])
    [foo] = report.updates
    assert (foo.name, foo.current, foo.update) == ("foo", (Version("1.0"),), Version("2.0"))
    assert foo.reach.value == "install"
    assert [str(d) for d in foo.limited_by] == ["app==1.0 requires foo<2"]


def test_with_each_every_closure_is_judged_against_its_own_requirement() -> None:
    graph = small_graph(
        ["torch==2.1.0", "torch==2.2.0"],
        [
            (None, "torch==2.1.0", "toplevel", "torch==2.1.*"),
            (None, "torch==2.2.0", "toplevel", "torch>=2.2"),
        ],
    )
    index = {"torch": releases("torch", "2.1.0", "2.1.3", "2.2.0", "2.3.0")}
    request = RunRequest([Requirement("torch==2.1.*"), Requirement("torch>=2.2")], each=True)
    report = find_updates(graph, request, lambda n: index[n])
    found = sorted((u.affects, u.current, u.update) for u in report.updates)
    assert found == [
        (("torch==2.1.*",), (Version("2.1.0"),), Version("2.1.3")),
        (("torch>=2.2",), (Version("2.2.0"),), Version("2.3.0")),
    ]
    # Judged jointly (without --each), neither requirement would allow any of them.
    joint = find_updates(graph, RunRequest(request.requirements), lambda n: index[n])
    assert all(u.update is None for u in joint.updates)


def test_no_updates() -> None:
    assert render_table(UpdateReport()) == "no updates\n"


def test_version_changes() -> None:
    before = RunGraph.from_json(graph_document())
    document = graph_document()
    document["nodes"][1] = {"name": "libone", "version": "1.5", "wheel": "w", "sdist": "s"}
    document["nodes"].pop()  # helper
    document["nodes"].append({"name": "new", "version": "1.0", "wheel": "w", "sdist": "s"})
    changes = version_changes(before, RunGraph.from_json(document))
    assert [(str(n), [str(v) for v in b], [str(v) for v in a]) for n, b, a in changes] == [
        ("helper", ["1.0"], []),
        ("libone", ["1.4"], ["1.5"]),
        ("new", [], ["1.0"]),
    ]


# -- the commands -----------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def graph_versions(out: Path) -> dict[str, str]:
    graph = json.loads((out / "graph.json").read_text())
    return {node["name"]: node["version"] for node in graph["nodes"]}


def test_find_updates_then_update(
    tmp_path: Path,
    index: FixtureIndex,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a project directory, with the default output directory and a constraints
    file, as a user types it: app[fast] reaches libone through its extra; libtwo is
    held back by the constraint; then update takes libone 1.1 and keeps 1.0."""
    sdists = tmp_path / "sdists"
    index.add(Project("app", dependencies=["libtwo"], optional={"fast": ["libone"]}), sdists)
    index.add(Project("libone", "1.0"), sdists)
    index.add(Project("libtwo", "1.0"), sdists)
    work = tmp_path / "project"
    work.mkdir()
    (work / "constraints.txt").write_text("libtwo<2\n")
    monkeypatch.chdir(work)

    run = cli(capsys, "bootstrap", "--index-url", index.url, "-c", "constraints.txt", "app[fast]")
    assert run.code == 0, run.err
    out = work / "bootstrap-output"
    record = json.loads((out / "run.json").read_text())
    assert record["requirements"] == ["app[fast]"]
    assert record["constraints"] == ["libtwo<2"]
    assert record["index_url"] == index.url and record["index_credentials"] is False

    found = cli(capsys, "find-updates", "bootstrap-output")
    assert (found.code, found.out) == (0, "no updates\n"), found.err

    # Upstream moves on.
    index.add(Project("libone", "1.1"), sdists)
    index.add(Project("libtwo", "2.0"), sdists)
    before = {p.name for p in (out / "wheels").glob("*.whl")}

    found = cli(capsys, "find-updates", "bootstrap-output")
    assert found.code == 0, found.err
    lines = found.out.splitlines()
    assert lines[0].split() == ["PROJECT", "CURRENT", "UPDATE", "LATEST", "AFFECTS"]
    assert lines[1].split() == ["libone", "1.0", "1.1", "1.1", "app[fast]"]
    assert lines[2].split() == ["libtwo", "1.0", "-", "2.0", "app[fast]"]
    assert lines[3] == "    2.0 held back by constraint libtwo<2"
    # find-updates only reads.
    assert {p.name for p in (out / "wheels").glob("*.whl")} == before

    found = cli(capsys, "find-updates", "bootstrap-output", "--json")
    assert found.code == 0, found.err
    report = json.loads(found.out)
    assert report["schema"] == 1 and report["index_url"] == index.url
    assert report["problems"] == [] and report["uploaded_before"] is None
    assert report["updates"] == [
        {
            "name": "libone",
            "current": ["1.0"],
            "update": "1.1",
            "latest": "1.1",
            "held_back_by": [],
            "limited_by": [],
            "affects": ["app[fast]"],
            "reach": "install",
        },
        {
            "name": "libtwo",
            "current": ["1.0"],
            "update": None,
            "latest": "2.0",
            "held_back_by": [{"requirement": "libtwo<2", "origin": "constraint"}],
            "limited_by": [],
            "affects": ["app[fast]"],
            "reach": "install",
        },
    ]

    updated = cli(capsys, "update", "bootstrap-output")
    assert updated.code == 0, updated.err
    assert updated.out == "libone: 1.0 -> 1.1\n"
    assert graph_versions(out) == {"app": "1.0", "libone": "1.1", "libtwo": "1.0"}
    order = json.loads((out / "build-order.json").read_text())
    assert {(e["name"], e["version"]) for e in order} == {
        ("app", "1.0"),
        ("libone", "1.1"),
        ("libtwo", "1.0"),
    }
    assert (out / "constraints.txt").read_text() == "app==1.0\nlibone==1.1\nlibtwo==1.0\n"
    # The earlier wheel stays, in the index too.
    assert before < {p.name for p in (out / "wheels").glob("*.whl")}
    page = (out / "simple" / "libone" / "index.html").read_text()
    assert "libone-1.0-py3-none-any.whl" in page and "libone-1.1-py3-none-any.whl" in page

    for pin, expected in (("libone==1.0", "1.0"), ("app[fast]", "1.1")):
        venv = tmp_path / f"venv-{expected}"
        result = pip_install(out, venv, pin)
        assert result.returncode == 0, result.stderr
        assert installed(venv)["libone"] == expected

    again = cli(capsys, "update", "bootstrap-output")
    assert (again.code, again.out) == (0, "no updates\n"), again.err
    found = cli(capsys, "find-updates", "bootstrap-output")
    assert found.out.splitlines()[0].startswith("no updates the run's top-level requirements")
    assert found.out.splitlines()[2].split() == ["libtwo", "1.0", "-", "2.0", "app[fast]"]


def test_a_run_without_a_record(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str], bootstrap: Any
) -> None:
    """A directory made before run.json existed: the index must be given."""
    index.add(Project("app", dependencies=["libone"]), tmp_path / "sdists")
    index.add(Project("libone", "1.0"), tmp_path / "sdists")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    (run.output / "run.json").unlink()
    index.add(Project("libone", "1.1"), tmp_path / "sdists")

    for command in ("find-updates", "update"):
        refused = cli(capsys, command, str(run.output))
        assert refused.code == 2
        assert (
            f"bootstrapper: error: {run.output} has no run.json (it was made by a bootstrapper "
            "that did not keep one), so the index the run used is not known: give it with "
            "--index-url" in refused.err
        )

    found = cli(capsys, "find-updates", str(run.output), "--index-url", index.url)
    assert found.code == 0, found.err
    assert "taking the top-level requirements of graph.json (app), no constraints" in found.err
    assert found.out.splitlines()[1].split() == ["libone", "1.0", "1.1", "1.1", "app"]

    updated = cli(capsys, "update", str(run.output), "--index-url", index.url, "-q")
    assert updated.code == 0, updated.err
    assert graph_versions(run.output)["libone"] == "1.1"
    assert json.loads((run.output / "run.json").read_text())["requirements"] == ["app"]


def test_find_updates_needs_a_finished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = cli(capsys, "find-updates", str(tmp_path))
    assert refused.code == 2
    assert f"{tmp_path} holds no graph.json" in refused.err


def test_the_record_keeps_no_credentials(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str], bootstrap: Any
) -> None:
    index.auth = ("user", "s3cret-token")
    index.add(Project("app"), tmp_path / "sdists")
    out = tmp_path / "out"
    url = index.url_with_credentials("user", "s3cret-token")
    run = cli(capsys, "bootstrap", "--index-url", url, "--output-dir", str(out), "app")
    assert run.code == 0, run.err
    text = (out / "run.json").read_text()
    assert "s3cret-token" not in text and "user" not in text
    assert json.loads(text)["index_url"] == index.url
    assert json.loads(text)["index_credentials"] is True

    # Without them the index refuses; the note says why, and how to give them.
    found = cli(capsys, "find-updates", str(out))
    assert (found.code, found.out) == (1, "")  # not "no updates": nothing could be read
    assert "carried credentials, which run.json does not keep" in found.err
    assert "error: cannot read the index page of app: HTTP 401" in found.err
    assert "error: the releases of 1 of 1 projects could not be learnt" in found.err
    found = cli(capsys, "find-updates", str(out), "--index-url", url)
    assert (found.code, found.out) == (0, "no updates\n"), found.err


def test_find_updates_keeps_the_run_s_release_age(
    tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str], bootstrap: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    def ago(days: int) -> str:
        return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    index.add(Project("app"), tmp_path / "sdists", upload_time=ago(100))
    run = bootstrap("app", "--min-release-age", "7")
    assert run.code == 0, run.stderr
    index.add(Project("app", "1.1"), tmp_path / "sdists", upload_time=ago(2))

    found = cli(capsys, "find-updates", str(run.output))
    assert (found.code, found.out) == (0, "no updates\n"), found.err
    found = cli(capsys, "find-updates", str(run.output), "--min-release-age", "1", "--json")
    assert found.code == 0, found.err
    assert [u["update"] for u in json.loads(found.out)["updates"]] == ["1.1"]

    updated = cli(capsys, "update", str(run.output))
    assert (updated.code, updated.out) == (0, "no updates\n"), updated.err
    updated = cli(capsys, "update", str(run.output), "--min-release-age", "1")
    assert (updated.code, updated.out) == (0, "app: 1.0 -> 1.1\n"), updated.err
    assert json.loads((run.output / "run.json").read_text())["min_release_age_days"] == 1


# -- the run record ---------------------------------------------------------------------


def test_run_record_round_trip(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bootstrapper.releaseage import ReleaseAge
    from bootstrapper.runrecord import RunRecord, read_run_record, write_run_record

    age = ReleaseAge.of(datetime(2024, 5, 8, 6, 30, tzinfo=UTC), None, 7)
    record = RunRecord.of(
        (Requirement("app[fast]>=1"), Requirement("tool @ https://u:tok@host.example/t.tar.gz")),
        (Requirement("libtwo<2"),),
        "https://me:s3cret@index.example/simple/",
        pre=True,
        variant="cuda",
        release_age=age,
    )
    write_run_record(tmp_path, record)
    text = (tmp_path / "run.json").read_text()
    assert "s3cret" not in text and "tok" not in text
    read = read_run_record(tmp_path)
    assert read is not None
    assert [str(r) for r in read.requirements] == [
        "app[fast]>=1",
        "tool @ https://host.example/t.tar.gz",
    ]
    assert (read.index_url, read.index_credentials) == ("https://index.example/simple/", True)
    assert (read.pre, read.variant, read.release_age) == (True, "cuda", age)
    assert json.loads(text)["uploaded_before"] == "2024-05-01T06:30:00Z"


def test_an_unreadable_run_record_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "graph.json").write_text('{"schema": 1, "roots": [], "nodes": [], "edges": []}')
    (tmp_path / "run.json").write_text('{"schema": 1, "requirements": "app"}')
    found = cli(capsys, "find-updates", str(tmp_path))
    assert found.code == 1
    assert f"error: {tmp_path / 'run.json'} is not a run record this bootstrapper can read" in (
        found.err
    )
    assert "Traceback" not in found.err
