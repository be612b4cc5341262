"""--keep-going and --fallback-prebuilt: build what does not depend on a failure, publish
the closures that succeeded, and say what failed in failures.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bootstrapper.wheelfile import read_wheel_metadata

from .conftest import installed, pip_install, uv_install
from .support import FixtureIndex, IndexFile, Project

FAIL = "compiler exploded: E42"


def tree(*, broken_metadata: str = "2.2") -> list[Project]:
    """good -> shared; bad -> shared, onlybad, mid[fancy]; mid's extra 'fancy' needs broken,
    whose build fails; tooluser's build needs broken-tool, whose build fails.

    ``broken_metadata`` "2.2" gives broken static metadata, so it fails only when built
    for the index; "2.1" makes resolution build it to learn its dependencies."""
    return [
        Project("good", dependencies=["shared"]),
        Project("shared"),
        Project("bad", dependencies=["shared", "onlybad", "mid[fancy]"]),
        Project("onlybad"),
        Project("mid", optional={"fancy": ["broken"]}),
        Project("broken", pkg_info_version=broken_metadata, tool={"fail": FAIL}),
        Project("tooluser", build_requires=["broken-tool"], pkg_info_version="2.2"),
        Project("broken-tool", pkg_info_version="2.2", tool={"fail": "no compiler for tool"}),
    ]


def failures(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "failures.json").read_text())
    return data


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in entries}


def published(out: Path) -> set[str]:
    return {p.name for p in (out / "simple").iterdir() if p.is_dir()}


def graph(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "graph.json").read_text())
    return data


def test_keep_going_publishes_what_succeeded(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    run = bootstrap("--keep-going", "good", "bad", "tooluser")
    out = run.output
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert (
        f"error: 2 packages failed (see {out / 'failures.json'}): broken 1.0 "
        "(the build backend failed in build_wheel (exit status 3)), broken-tool 1.0 (" in run.stderr
    )
    assert "1 blocked by those failures: tooluser 1.0 (by broken-tool==1.0)" in run.stderr
    assert "published 2 of 8 wheels for: good; not published: bad, tooluser" in run.stderr

    report = failures(out)
    entries = by_name(report["failures"])
    assert set(entries) == {"broken", "broken-tool", "tooluser"}
    broken = entries["broken"]
    assert broken["status"] == "failed" and broken["version"] == "1.0"
    assert broken["chain"] == ["bad", "mid", "broken"]
    assert FAIL in broken["details"]
    assert broken["log"] == str(out / "logs" / "broken-1.0.log")
    assert FAIL in Path(broken["log"]).read_text()
    assert broken["fallback"] is None
    tooluser = entries["tooluser"]
    assert tooluser["status"] == "blocked"
    assert tooluser["blocked_by"] == ["broken-tool==1.0"]
    assert tooluser["chain"] == ["tooluser"]
    assert entries["broken-tool"]["chain"] == ["tooluser", "broken-tool"]
    assert report["published"] == ["good"]
    assert report["not_published"] == [
        {"requirement": "bad", "missing": ["broken==1.0"]},
        {"requirement": "tooluser", "missing": ["tooluser==1.0"]},
    ]

    # Only complete closures: what only bad needed stays out, what good shares is in.
    assert published(out) == {"good", "shared"}
    assert (out / "constraints.txt").read_text() == "good==1.0\nshared==1.0\n"
    data = graph(out)
    assert data["roots"] == ["good"]
    assert {n["name"] for n in data["nodes"]} == {"good", "shared"}
    assert all(e["to"] in ("good==1.0", "shared==1.0") for e in data["edges"])
    order = json.loads((out / "build-order.json").read_text())
    assert [e["name"] for e in order] == ["shared", "good"]
    # onlybad and mid were built all the same: a re-run will reuse them.
    built = {p.name.split("-")[0] for p in (out / ".work" / "built").glob("*.whl")}
    assert {"onlybad", "mid", "shared", "good", "bad"} <= built

    result = pip_install(out, tmp_path / "venv-pip", "good")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "venv-pip") == {"good": "1.0", "shared": "1.0"}
    result = uv_install((out / "simple").as_uri() + "/", tmp_path / "venv-uv", "good")
    assert result.returncode == 0, result.stderr
    refused = pip_install(out, tmp_path / "venv-bad", "bad")
    assert refused.returncode != 0

    # Fixed upstream: the same command now succeeds and drops the stale failures.json.
    index.add(Project("broken", pkg_info_version="2.2"), tmp_path / "fixed")
    index.add(Project("broken-tool", pkg_info_version="2.2"), tmp_path / "fixed")
    again = bootstrap("--keep-going", "good", "bad")
    assert again.code == 0, again.stderr
    assert not (out / "failures.json").exists()
    assert "reused onlybad==1.0" in again.stderr
    assert {"good", "shared", "bad", "onlybad", "mid", "broken"} <= published(out)


def test_without_keep_going_the_first_failure_ends_the_run(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    run = bootstrap("good", "bad")
    assert run.code == 1
    assert "Traceback" not in run.stderr
    assert "error: broken: the build backend failed in build_wheel" in run.stderr
    assert "required by: bad -> mid -> broken" in run.stderr
    assert "failures.json" not in run.stderr
    assert not (run.output / "failures.json").exists()
    assert not (run.output / "graph.json").exists()
    assert not (run.output / "simple" / "good").exists()


def test_failure_while_resolving_drops_only_its_requirement(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """broken has no cheap metadata, so resolution must build it: the joint resolution
    fails, and the requirements are then resolved one at a time."""
    index.add_all(tree(broken_metadata="2.1"), tmp_path / "sdists")
    index.add(Project("lost", dependencies=["ghost"]), tmp_path / "sdists")
    run = bootstrap("--keep-going", "bad", "good", "lost")
    out = run.output
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "trying them one at a time" in run.stderr
    assert "not published: bad, lost" in run.stderr
    report = failures(out)
    entries = by_name(report["failures"])
    assert entries["broken"]["status"] == "failed"
    assert entries["broken"]["chain"] == ["bad", "mid", "broken"]
    assert FAIL in Path(entries["broken"]["log"]).read_text()
    assert entries["lost"]["status"] == "unresolved"
    assert entries["lost"]["version"] is None
    assert "ghost is not on the index" in entries["lost"]["error"]
    assert entries["lost"]["chain"] == ["lost", "ghost"]
    assert report["not_published"] == [
        {"requirement": "bad", "missing": ["broken==1.0"]},
        {"requirement": "lost", "missing": []},
    ]
    assert report["published"] == ["good"]
    assert published(out) == {"good", "shared"}
    result = pip_install(out, tmp_path / "venv", "good")
    assert result.returncode == 0, result.stderr


def test_fallback_prebuilt_completes_the_index(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    # Upstream wheels of broken 1.0 and tooluser 1.0, as the index would offer them next
    # to their sdists; broken-tool has none.
    index.add(Project("broken", pkg_info_version="2.2"), tmp_path / "upstream")
    index.add(Project("tooluser", pkg_info_version="2.2"), tmp_path / "upstream")
    upstream = bootstrap("broken", "tooluser", output=tmp_path / "up")
    assert upstream.code == 0, upstream.stderr
    wheel = next((upstream.output / "wheels").glob("broken-1.0-*.whl"))
    index.add_all(tree(), tmp_path / "sdists")  # now the failing sdists
    for upstream_wheel in (wheel, next((upstream.output / "wheels").glob("tooluser-*.whl"))):
        index.add_file(
            upstream_wheel.name.split("-")[0],
            IndexFile(
                upstream_wheel.name,
                upstream_wheel.read_bytes(),
                metadata=read_wheel_metadata(upstream_wheel),
            ),
        )

    run = bootstrap("--keep-going", "--fallback-prebuilt", "good", "bad", "tooluser")
    out = run.output
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "took the index's wheel instead" in run.stderr
    assert "tooluser 1.0 (by broken-tool==1.0; took the index's wheel instead)" in run.stderr
    assert "published 7 of 8 wheels for: good, bad, tooluser" in run.stderr
    assert "not published" not in run.stderr

    entries = by_name(failures(out)["failures"])
    entry = entries["broken"]
    assert entry["status"] == "failed" and entry["fallback"] == "prebuilt"
    # A blocked package falls back too; what blocked it has no wheel and stays failed.
    assert entries["tooluser"]["status"] == "blocked"
    assert entries["tooluser"]["fallback"] == "prebuilt"
    assert entries["broken-tool"]["fallback"] is None
    assert "broken-tool" not in published(out)
    log = Path(entry["log"]).read_text()
    assert FAIL in log and "fallback: the build failed" in log  # the failure is kept
    node = by_name(graph(out)["nodes"])["broken"]
    assert node["fallback"] == "prebuilt"
    assert node["wheel"] == wheel.name
    record = json.loads((out / "wheels" / f"{wheel.name}.build.json").read_text())
    assert record["fallback"] == "prebuilt"
    assert record["sdist_sha256"] == node["wheel_sha256"]
    order = by_name(json.loads((out / "build-order.json").read_text()))
    assert order["broken"]["fallback"] == "prebuilt"
    assert "fallback" not in order["mid"]

    result = pip_install(out, tmp_path / "venv", "good", "bad", "tooluser")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "venv") == {
        "tooluser": "1.0",
        "good": "1.0",
        "shared": "1.0",
        "bad": "1.0",
        "onlybad": "1.0",
        "mid": "1.0",
        "broken": "1.0",
    }


def test_fallback_without_a_wheel_stays_a_failure(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tree(), tmp_path / "sdists")
    run = bootstrap("--keep-going", "--fallback-prebuilt", "good", "bad")
    assert run.code == 1, run.stderr
    entry = by_name(failures(run.output)["failures"])["broken"]
    assert entry["fallback"] is None
    assert "not published: bad" in run.stderr


def test_fallback_prebuilt_needs_keep_going(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("--fallback-prebuilt", "good")
    assert run.code == 2
    assert "--fallback-prebuilt needs --keep-going" in run.stderr
