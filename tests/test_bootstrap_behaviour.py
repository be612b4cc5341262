"""Behaviours of a bootstrap run, each checked on real builds against the fixture index:
build isolation, build sets, cheap-metadata verification, candidate filtering, re-runs,
resumption after a kill, concurrency, progress output and retries."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main

from .conftest import ROOT, clean_env, helper_project, installed, standard_tree, uv_install
from .support import FixtureIndex, IndexFile, Project, backend_package

# -- helpers -------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def graph_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "graph.json").read_text()))


def edges_of(out: Path) -> set[tuple[str | None, str, str]]:
    return {(e["from"], e["to"], e["kind"]) for e in graph_of(out)["edges"]}


def nodes_of(out: Path) -> set[str]:
    return {f"{n['name']}=={n['version']}" for n in graph_of(out)["nodes"]}


def constraints_of(out: Path) -> list[str]:
    return (out / "constraints.txt").read_text().splitlines()


def wheels_of(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("*.whl")} if directory.is_dir() else set()


def built_lines(stderr: str) -> list[str]:
    """The ``name==version`` of every "built ..." progress line."""
    return re.findall(r"^built (\S+) in \d+\.\ds$", stderr, re.MULTILINE)


def reused_lines(stderr: str) -> list[str]:
    return re.findall(r"^reused (\S+) ", stderr, re.MULTILINE)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _links(page: Path) -> list[dict[str, str | None]]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def check_index(out: Path, *, may_be_absent: bool = False) -> set[str]:
    """Assert that every page of ``out/simple`` links only to complete files whose bytes
    match the page's hashes and that no temporary file is left; returns the wheel names.
    With ``may_be_absent``, an index not written yet (no root page) links to nothing."""
    simple = out / "simple"
    leftovers = [
        os.path.join(d, f) for d, _, files in os.walk(simple) for f in files if f.endswith(".tmp")
    ]
    assert leftovers == []
    wheels: set[str] = set()
    if may_be_absent and not (simple / "index.html").exists():
        return wheels
    for project_link in _links(simple / "index.html"):
        href = project_link["href"]
        assert href and href.endswith("/")
        page = simple / href / "index.html"
        assert page.is_file(), f"root page links to {href} without a page"
        for link in _links(page):
            url = link["href"]
            assert url
            target_url, _, fragment = url.partition("#")
            target = (page.parent / target_url).resolve()
            assert target.is_file(), f"{page} links to missing {target}"
            assert fragment == f"sha256={sha256(target)}", f"{target} does not match {page}"
            metadata = target.with_name(target.name + ".metadata")
            assert metadata.is_file()
            assert link["data-core-metadata"] == f"sha256={sha256(metadata)}"
            with zipfile.ZipFile(target) as zf:
                assert zf.testzip() is None
            wheels.add(target.name)
    return wheels


def read_from_wheel(wheel: Path, member: str) -> Any:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(member))


def tiny_tree() -> list[Project]:
    return [Project("app", "1.0", dependencies=["libone"]), Project("libone", "1.0")]


# -- 1. build isolation ----------------------------------------------------------------


def test_user_installer_settings_do_not_reach_builds(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = "http://127.0.0.1:9/"
    find_links = tmp_path / "find-links"
    find_links.mkdir()
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nfind-links = {find_links}\nindex-url = {unreachable}\n")
    xdg = tmp_path / "xdg"
    (xdg / "uv").mkdir(parents=True)
    (xdg / "uv" / "uv.toml").write_text(f'index-url = "{unreachable}"\n')
    (xdg / "pip").mkdir()
    (xdg / "pip" / "pip.conf").write_text(pip_conf.read_text())
    monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))
    monkeypatch.setenv("PIP_INDEX_URL", unreachable)
    monkeypatch.setenv("UV_INDEX_URL", unreachable)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))

    index.add_all(
        [
            backend_package(),
            helper_project(),
            Project("probe", "1.0", build_requires=["fixture-backend"], tool={"record-env": True}),
            Project("bare", "1.0", tool={"record-env": True}),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("probe", "bare")
    assert run.code == 0, run.stderr
    envs = run.output / ".work" / "envs"

    for dist, expected in (
        ("probe", ["fixture-backend==1.0", "fixture-helper==1.0"]),
        ("bare", []),  # in-tree backend with requires = []: an empty environment
    ):
        seen = read_from_wheel(
            run.output / "wheels" / f"{dist}-1.0-py3-none-any.whl", f"{dist}_build_env.json"
        )
        environ = seen["environ"]
        for leaked in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "UV_INDEX_URL"):
            assert leaked not in environ, (dist, environ)
        assert environ["PIP_CONFIG_FILE"] == os.devnull
        assert not any(
            unreachable in value or str(find_links) in value or str(xdg) in value
            for value in environ.values()
        ), environ
        assert seen["installed"] == expected
        site_dirs = [p for p in seen["sys_path"] if Path(p).name == "site-packages"]
        assert site_dirs, seen["sys_path"]
        for site in site_dirs:
            assert Path(site).is_relative_to(envs), f"{dist} saw {site}"


# -- 2. build sets are resolved on their own ---------------------------------------------


def test_build_requirements_resolve_apart_from_the_install_set(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            backend_package(),
            helper_project(),
            Project("tool", "1.0"),
            Project("tool", "2.0"),
            Project("app", "1.0", dependencies=["tool>=2", "user", "user-two"]),
            # asks its (in-tree) backend for tool<2
            Project(
                "user",
                "1.0",
                backend_requires=["tool<2"],
                tool={"import": ["tool"], "record-env": True},
            ),
            # declares tool<2 in [build-system].requires
            Project(
                "user-two",
                "1.0",
                build_requires=["fixture-backend", "tool<2"],
                tool={"import": ["tool", "fixture_helper"], "record-env": True},
            ),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    out = run.output

    assert {"tool-1.0-py3-none-any.whl", "tool-2.0-py3-none-any.whl"} <= wheels_of(out / "wheels")
    assert constraints_of(out) == ["app==1.0", "tool==2.0", "user==1.0", "user-two==1.0"]
    edges = edges_of(out)
    assert ("user==1.0", "tool==1.0", "build-backend") in edges
    assert ("user-two==1.0", "tool==1.0", "build-system") in edges
    assert ("user-two==1.0", "fixture-backend==1.0", "build-system") in edges
    assert ("app==1.0", "tool==2.0", "install") in edges
    assert ("app==1.0", "tool==1.0", "install") not in edges
    assert {"tool==1.0", "tool==2.0"} <= nodes_of(out)

    def build_env(dist: str) -> list[str]:
        wheel = out / "wheels" / f"{dist}-1.0-py3-none-any.whl"
        return list(read_from_wheel(wheel, f"{dist}_build_env.json")["installed"])

    assert build_env("user") == ["tool==1.0"]
    assert build_env("user_two") == ["fixture-backend==1.0", "fixture-helper==1.0", "tool==1.0"]

    order = [(e["name"], e["version"]) for e in json.loads((out / "build-order.json").read_text())]
    assert order.index(("tool", "1.0")) < order.index(("user", "1.0"))
    assert order.index(("tool", "1.0")) < order.index(("user-two", "1.0"))

    result = uv_install((out / "simple").as_uri() + "/", tmp_path / "venv", "app")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "venv")["tool"] == "2.0"


# -- 3. cheap metadata that the built wheel contradicts ------------------------------------


@pytest.mark.parametrize("json_api", [True, False], ids=["json", "html"])
def test_upstream_wheel_metadata_contradicted_by_the_build_is_re_resolved(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, json_api: bool
) -> None:
    index.json_api = json_api
    index.add_all(
        [
            Project("app", "1.0", dependencies=["libone", "libfour"]),
            Project("libone", "1.0", tool={"built-dependencies": ["libthree"]}),
            Project("libthree", "0.5"),
        ],
        tmp_path / "sdists",
    )
    upstream = "libone-1.0-py3-none-any.whl"
    index.add_file(
        "libone",
        IndexFile(
            upstream,
            b"only the metadata of this wheel is ever read",
            metadata=b"Metadata-Version: 2.1\nName: libone\nVersion: 1.0\n\n",
        ),
    )
    # the opposite mismatch: upstream metadata names a dependency the built wheel lacks
    index.add_all([Project("libfour", "1.0"), Project("phantom", "1.0")], tmp_path / "sdists")
    index.add_file(
        "libfour",
        IndexFile(
            "libfour-1.0-py3-none-any.whl",
            b"never read",
            metadata=b"Metadata-Version: 2.1\nName: libfour\nVersion: 1.0\n"
            b"Requires-Dist: phantom\n\n",
        ),
    )
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    out = run.output

    # The PEP 658 metadata was used (and the upstream wheel itself never downloaded)...
    assert f"/files/{upstream}.metadata" in index.requests
    assert f"/files/{upstream}" not in index.requests
    # ...then contradicted by the built wheel, which requires libthree.
    assert "re-resolving" in run.stderr and "libthree" in run.stderr
    assert "resolved with upstream wheel metadata" in run.stderr
    assert constraints_of(out) == ["app==1.0", "libfour==1.0", "libone==1.0", "libthree==0.5"]
    assert ("libone==1.0", "libthree==0.5", "install") in edges_of(out)
    # phantom was only in the contradicted metadata: not part of the result
    assert "phantom==1.0" not in nodes_of(out)
    assert not any(e[1].startswith("phantom") for e in edges_of(out))
    assert check_index(out) == {
        f"{n}-py3-none-any.whl" for n in ("app-1.0", "libfour-1.0", "libone-1.0", "libthree-0.5")
    }


# -- 4. a static PKG-INFO spares a build -------------------------------------------------


def test_static_pkg_info_is_used_without_building(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            # Metadata-Version 2.2 without Dynamic: its Requires-Dist can be trusted.
            Project("lib", "2.0", dependencies=["other<2"], pkg_info_version="2.2"),
            Project("lib", "1.0"),
            Project("other", "1.0"),
            Project("other", "2.0"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("lib", "other>=2")
    assert run.code == 0, run.stderr
    out = run.output

    assert constraints_of(out) == ["lib==1.0", "other==2.0"]
    assert nodes_of(out) == {"lib==1.0", "other==2.0"}
    assert "lib==2.0" not in run.stderr
    for directory in (out / "wheels", out / ".work" / "built"):
        assert not any(name.startswith("lib-2.0") for name in wheels_of(directory))
    assert not (out / "logs" / "lib-2.0.log").exists()
    assert not (out / "sdists" / "lib-2.0.tar.gz").exists()


# -- 5. candidate filtering --------------------------------------------------------------


def test_yanked_release_needs_an_exact_pin(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("lib", "1.0"), tmp_path / "sdists")
    index.add(Project("lib", "2.0"), tmp_path / "sdists", yanked="broken")

    run = bootstrap("lib")
    assert run.code == 0, run.stderr
    assert constraints_of(run.output) == ["lib==1.0"]

    pinned = bootstrap("lib==2.0", output=tmp_path / "pinned")
    assert pinned.code == 0, pinned.stderr
    assert constraints_of(pinned.output) == ["lib==2.0"]
    assert check_index(pinned.output) == {"lib-2.0-py3-none-any.whl"}


def test_requires_python_excludes_releases(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("lib", "1.0"), tmp_path / "sdists")
    index.add(Project("lib", "2.0"), tmp_path / "sdists", requires_python=">=4")
    # the index does not say it, but the release's own metadata does
    index.add(Project("late", "1.0"), tmp_path / "sdists")
    index.add(
        Project("late", "2.0", requires_python=">=4", pkg_info_version="2.2"), tmp_path / "sdists"
    )
    run = bootstrap("lib", "late")
    assert run.code == 0, run.stderr
    assert constraints_of(run.output) == ["late==1.0", "lib==1.0"]
    assert "/files/lib-2.0.tar.gz" not in index.requests
    assert not (run.output / "wheels" / "late-2.0-py3-none-any.whl").exists()


def test_prereleases_only_when_asked_or_alone(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            Project("lib", "1.0"),
            Project("lib", "2.0rc1"),
            Project("beta", "0.1b1"),
            Project("app", "1.0", dependencies=["lib>1"]),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("lib")
    assert run.code == 0, run.stderr
    assert constraints_of(run.output) == ["lib==1.0"]

    pre = bootstrap("--pre", "lib", output=tmp_path / "pre")
    assert pre.code == 0, pre.stderr
    assert constraints_of(pre.output) == ["lib==2.0rc1"]

    alone = bootstrap("beta", output=tmp_path / "alone")
    assert alone.code == 0, alone.stderr
    assert constraints_of(alone.output) == ["beta==0.1b1"]

    # only a pre-release satisfies app's lib>1 (2.0rc1 < 2, so not lib>=2)
    needed = bootstrap("app", output=tmp_path / "needed")
    assert needed.code == 0, needed.stderr
    assert constraints_of(needed.output) == ["app==1.0", "lib==2.0rc1"]


def test_extras_pull_optional_dependencies(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            # "never" is not on the index: its false marker must keep it out
            Project(
                "app",
                "1.0",
                dependencies=["libone", 'never; python_version < "3"'],
                optional={"feature": ["extra-dep>=1"]},
            ),
            Project("libone", "1.0"),
            Project("extra-dep", "1.0"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("app[feature]")
    assert run.code == 0, run.stderr
    assert constraints_of(run.output) == ["app==1.0", "extra-dep==1.0", "libone==1.0"]
    assert ("app==1.0", "extra-dep==1.0", "install") in edges_of(run.output)
    assert graph_of(run.output)["roots"] == ["app[feature]"]

    plain = bootstrap("app", output=tmp_path / "plain")
    assert plain.code == 0, plain.stderr
    assert constraints_of(plain.output) == ["app==1.0", "libone==1.0"]
    assert "extra-dep==1.0" not in nodes_of(plain.output)


def test_constraints_file_narrows_versions(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            Project("app", "1.0", dependencies=["lib"]),
            Project("lib", "1.0"),
            Project("lib", "1.5"),
            Project("lib", "2.0"),
            Project("unrelated", "1.0"),
        ],
        tmp_path / "sdists",
    )
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("lib<2\nunrelated==1.0\n")
    run = bootstrap("-c", str(constraints), "app")
    assert run.code == 0, run.stderr
    # A constraint narrows a version but adds nothing to the closure.
    assert constraints_of(run.output) == ["app==1.0", "lib==1.5"]
    assert "unrelated==1.0" not in nodes_of(run.output)


def test_html_only_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html_index = FixtureIndex(json_api=False)
    html_index.add(Project("app", "1.0", dependencies=["lib"]), tmp_path / "sdists")
    html_index.add(Project("lib", "1.0"), tmp_path / "sdists")
    html_index.add(Project("lib", "2.0"), tmp_path / "sdists", yanked="broken")
    html_index.add(Project("lib", "3.0"), tmp_path / "sdists", requires_python=">=4")
    html_index.start()
    try:
        out = tmp_path / "out"
        code = main(
            [
                "bootstrap",
                "--index-url",
                html_index.url,
                "--output-dir",
                str(out),
                "--jobs",
                "2",
                "app",
            ]
        )
    finally:
        html_index.stop()
    assert code == 0, capsys.readouterr().err
    assert constraints_of(out) == ["app==1.0", "lib==1.0"]
    assert check_index(out) == {"app-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl"}


# -- 6. re-runs ------------------------------------------------------------------------


def test_rerun_reuses_and_rebuilds_only_a_corrupted_wheel(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(standard_tree(), tmp_path / "sdists")
    first = bootstrap("app")
    assert first.code == 0, first.stderr
    out = first.output
    wheels = sorted((out / "wheels").glob("*.whl"))
    assert len(wheels) == 7
    before = {w.name: (sha256(w), w.stat().st_mtime_ns) for w in wheels}
    keys = sorted(built_lines(first.stderr))
    assert len(keys) == 7

    second = bootstrap("app")
    assert second.code == 0, second.stderr
    assert built_lines(second.stderr) == []
    assert sorted(reused_lines(second.stderr)) == keys
    assert "(7 wheels: 0 built, 7 reused)" in second.stderr
    assert {w.name: (sha256(w), w.stat().st_mtime_ns) for w in wheels} == before
    assert check_index(out) == set(before)

    victim = "libone-1.4-py3-none-any.whl"
    for copy in (out / "wheels" / victim, out / ".work" / "built" / victim):
        assert copy.is_file()
        copy.write_bytes(b"corrupted")
    third = bootstrap("app")
    assert third.code == 0, third.stderr
    assert built_lines(third.stderr) == ["libone==1.4"]
    assert sorted(reused_lines(third.stderr)) == sorted(k for k in keys if k != "libone==1.4")
    assert "(7 wheels: 1 built, 6 reused)" in third.stderr
    after = {w.name: (sha256(w), w.stat().st_mtime_ns) for w in wheels}
    for name, state in before.items():
        if name != victim:
            assert after[name] == state, name
    # the fixture backend is deterministic: the rebuild restores the same bytes
    assert after[victim][0] == before[victim][0]
    assert sha256(out / ".work" / "built" / victim) == before[victim][0]
    assert check_index(out) == set(before)

    # a damaged published copy (replaced, not the private copy it is linked to) is
    # restored from the intact private store without a rebuild
    published = out / "wheels" / "app-1.0-py3-none-any.whl"
    published.unlink()
    published.write_bytes(b"damaged")
    fourth = bootstrap("app")
    assert fourth.code == 0, fourth.stderr
    assert built_lines(fourth.stderr) == []
    assert sha256(published) == before[published.name][0]
    assert check_index(out) == set(before)


def test_rerun_rebuilds_a_changed_build_tool_and_what_it_built(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(standard_tree(), tmp_path / "sdists")
    first = bootstrap("app")
    assert first.code == 0, first.stderr
    out = first.output
    old_helper = sha256(out / "wheels" / "fixture_helper-1.0-py3-none-any.whl")

    # the same version re-uploaded with other content (a private index allows it)
    changed = dataclasses.replace(helper_project(), files={"src/fixture_helper.py": "HELPER = 2\n"})
    new_sdist = index.add(changed, tmp_path / "changed")
    second = bootstrap("app")
    assert second.code == 0, second.stderr
    # libtwo is built with fixture-backend, whose install closure has fixture-helper
    assert sorted(built_lines(second.stderr)) == ["fixture-helper==1.0", "libtwo==2.0"]
    assert len(reused_lines(second.stderr)) == 5
    helper_wheel = out / "wheels" / "fixture_helper-1.0-py3-none-any.whl"
    assert sha256(helper_wheel) != old_helper
    with zipfile.ZipFile(helper_wheel) as zf:
        assert zf.read("fixture_helper.py") == b"HELPER = 2\n"
    record = json.loads((out / "wheels" / "libtwo-2.0-py3-none-any.whl.build.json").read_text())
    env = {w["name"]: w["sha256"] for w in record["build_env"]}
    assert env["fixture-helper"] == sha256(helper_wheel)
    node = next(n for n in graph_of(out)["nodes"] if n["name"] == "fixture-helper")
    assert node["sdist_sha256"] == sha256(new_sdist)
    check_index(out)


def test_sdists_dir_holds_the_archive_the_rebuild_used(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """DIR/sdists is refreshed when a same-named sdist changed (regression: archive()
    used to keep the first file it saw)."""
    index.add(Project("lib", "1.0"), tmp_path / "sdists")
    first = bootstrap("lib")
    assert first.code == 0, first.stderr
    new_sdist = index.add(
        Project("lib", "1.0", tool={"modules": []}, files={"x": "y"}), tmp_path / "changed"
    )
    second = bootstrap("lib")
    assert second.code == 0, second.stderr
    assert built_lines(second.stderr) == ["lib==1.0"]
    node = graph_of(second.output)["nodes"][0]
    assert node["sdist_sha256"] == sha256(new_sdist)
    assert sha256(second.output / "sdists" / "lib-1.0.tar.gz") == sha256(new_sdist)


def test_rerun_sweeps_temporary_files_a_killed_run_left(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tiny_tree(), tmp_path / "sdists")
    first = bootstrap("app")
    assert first.code == 0, first.stderr
    out = first.output
    # exactly what fsutil.replacing leaves when the process dies before os.replace
    stale = [
        out / "simple" / "app" / ".index.html.k1ll3d.tmp",
        out / "simple" / ".index.html.k1ll3d.tmp",
        out / "wheels" / ".app-1.0-py3-none-any.whl.k1ll3d.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half written")
    second = bootstrap("app")
    assert second.code == 0, second.stderr
    assert [p for p in stale if p.exists()] == []
    check_index(out)


# -- 7. an interrupted run resumes -------------------------------------------------------


def finished_builds(out: Path) -> set[str]:
    """``name==version`` of every wheel kept with its build record, privately or published."""
    found = set()
    for directory in (out / ".work" / "built", out / "wheels"):
        for record in directory.glob("*.whl.build.json"):
            if record.with_name(record.name.removesuffix(".build.json")).is_file():
                data = json.loads(record.read_text())
                found.add(f"{data['name']}=={data['version']}")
    return found


def test_killed_run_resumes_and_never_publishes_broken_links(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            Project("app", "1.0", dependencies=["fast", "slow"]),
            Project("fast", "1.0"),
            Project("slow", "1.0", tool={"sleep": 2.5}),
        ],
        tmp_path / "sdists",
    )
    out = tmp_path / "out"
    slow_log = out / "logs" / "slow-1.0.log"
    stderr_path = tmp_path / "killed.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bootstrapper",
                "bootstrap",
                "--index-url",
                index.url,
                "--output-dir",
                str(out),
                "--jobs",
                "1",
                "app",
            ],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        # kill once another build has finished and the slow one is inside its build hook
        deadline = time.monotonic() + 60
        while not (
            finished_builds(out) - {"slow==1.0"}
            and slow_log.is_file()
            and b"PEP 517 hook build_wheel" in slow_log.read_bytes()
        ):
            assert proc.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, "the slow build never started"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = finished_builds(out)
    assert finished and "slow==1.0" not in finished, finished
    # whatever the killed run got to publish is consistent: no page links to a missing file
    published = check_index(out, may_be_absent=True)
    assert "slow-1.0-py3-none-any.whl" not in published

    rerun = bootstrap("app", output=out, jobs=1)
    assert rerun.code == 0, rerun.stderr
    assert set(reused_lines(rerun.stderr)) == finished
    assert sorted(built_lines(rerun.stderr)) == sorted(
        {"app==1.0", "fast==1.0", "slow==1.0"} - finished
    )
    assert constraints_of(out) == ["app==1.0", "fast==1.0", "slow==1.0"]
    assert check_index(out) == {f"{n}-1.0-py3-none-any.whl" for n in ("app", "fast", "slow")}


# -- 8. --jobs runs builds concurrently -------------------------------------------------

#: An in-tree backend that wraps the fixture backend with a rendezvous: each build marks
#: its start, waits (bounded) for its peer's start, and notes what it saw. A build that
#: saw its peer start before it finished overlapped with it -- no timing threshold.
RENDEZVOUS_BACKEND = """
import json
import os
import time
import tomllib

import fixture_backend
from fixture_backend import get_requires_for_build_sdist, get_requires_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("pyproject.toml", "rb") as f:
        cfg = tomllib.load(f)["tool"]["rendezvous"]

    def marker(who, what):
        return os.path.join(cfg["dir"], f"{who}.{what}")

    open(marker(cfg["me"], "started"), "w").close()
    deadline = time.monotonic() + float(cfg["wait"])
    while not os.path.exists(marker(cfg["peer"], "started")) and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = {
        "peer_started": os.path.exists(marker(cfg["peer"], "started")),
        "peer_finished": os.path.exists(marker(cfg["peer"], "finished")),
    }
    with open(marker(cfg["me"], "json"), "w") as f:
        json.dump(seen, f)
    try:
        return fixture_backend.build_wheel(wheel_directory, config_settings, metadata_directory)
    finally:
        open(marker(cfg["me"], "finished"), "w").close()
"""


def rendezvous_pair(names: tuple[str, str], directory: Path, wait: float) -> list[Project]:
    projects = []
    for me, peer in (names, names[::-1]):
        # static PKG-INFO: resolution needs no build, so the two builds are independent
        base = Project(me, "1.0", pkg_info_version="2.2")
        pyproject = base.pyproject_toml().replace(
            'build-backend = "fixture_backend"', 'build-backend = "rendezvous_backend"'
        ) + (
            f"\n[tool.rendezvous]\ndir = {json.dumps(str(directory))}\n"
            f'me = "{me}"\npeer = "{peer}"\nwait = {wait}\n'
        )
        projects.append(
            dataclasses.replace(
                base,
                pyproject=pyproject,
                files={"_backend/rendezvous_backend.py": RENDEZVOUS_BACKEND},
            )
        )
    return projects


def rendezvous_seen(directory: Path, name: str) -> dict[str, bool]:
    return dict(json.loads((directory / f"{name}.json").read_text()))


def test_jobs_builds_independent_packages_concurrently(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    index.add_all(rendezvous_pair(("par-a", "par-b"), meeting, wait=30), tmp_path / "sdists")
    index.add_all(rendezvous_pair(("ser-a", "ser-b"), meeting, wait=1), tmp_path / "sdists")

    # The builds meet in a directory of the test's: outside what the read-only view of
    # the machine lets a build write.
    parallel = bootstrap(
        "--no-filesystem-isolation", "par-a", "par-b", jobs=2, output=tmp_path / "parallel"
    )
    assert parallel.code == 0, parallel.stderr
    # each build waited for and saw the other one start: they overlapped
    assert rendezvous_seen(meeting, "par-a")["peer_started"]
    assert rendezvous_seen(meeting, "par-b")["peer_started"]

    serial = bootstrap(
        "--no-filesystem-isolation", "ser-a", "ser-b", jobs=1, output=tmp_path / "serial"
    )
    assert serial.code == 0, serial.stderr
    seen = sorted(
        (rendezvous_seen(meeting, n) for n in ("ser-a", "ser-b")),
        key=lambda s: s["peer_started"],
    )
    # the first build waited in vain for the other; the second found the first finished
    assert seen == [
        {"peer_started": False, "peer_finished": False},
        {"peer_started": True, "peer_finished": True},
    ]


def test_build_records_time_the_build_not_the_queue(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """With --jobs 1 the records' build intervals do not overlap (regression: 'started'
    was taken before waiting for a job slot)."""
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    # the first build lasts >= 2 s (it waits for its peer in vain), so the records'
    # 1-second resolution cannot hide an overlap
    index.add_all(rendezvous_pair(("one", "two"), meeting, wait=2), tmp_path / "sdists")
    run = bootstrap("--no-filesystem-isolation", "one", "two", jobs=1)
    assert run.code == 0, run.stderr
    records = [
        json.loads((run.output / "wheels" / f"{n}-1.0-py3-none-any.whl.build.json").read_text())
        for n in ("one", "two")
    ]
    first, second = sorted(records, key=lambda r: (r["finished"], r["started"]))
    assert first["started"] <= first["finished"] <= second["started"] <= second["finished"]


# -- 9. progress output ------------------------------------------------------------------


def test_progress_is_line_oriented_off_a_terminal_and_quiet_with_q(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tiny_tree(), tmp_path / "sdists")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    assert sorted(built_lines(run.stderr)) == ["app==1.0", "libone==1.0"]
    assert "\r" not in run.stderr and "\x1b" not in run.stderr
    assert re.search(
        r"^bootstrapped 2 packages for install \(2 wheels: 2 built, 0 reused\) in \d+\.\ds$",
        run.stderr,
        re.MULTILINE,
    ), run.stderr
    last = run.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith(
        f"install with: pip install --index-url {(run.output / 'simple').as_uri()}/ app"
    )

    quiet = bootstrap("-q", "app", output=tmp_path / "quiet")
    assert quiet.code == 0
    assert quiet.stderr == ""
    assert constraints_of(quiet.output) == ["app==1.0", "libone==1.0"]


# -- 10. retries -----------------------------------------------------------------------


def test_transient_index_errors_are_retried(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(tiny_tree(), tmp_path / "sdists")
    index.fail_next["/simple/app/"] = 2
    index.fail_next["/files/libone-1.0.tar.gz"] = 1
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    assert index.fail_next == {"/simple/app/": 0, "/files/libone-1.0.tar.gz": 0}
    assert index.requests.count("/simple/app/") == 3
    assert index.requests.count("/files/libone-1.0.tar.gz") == 2
    assert constraints_of(run.output) == ["app==1.0", "libone==1.0"]
    assert check_index(run.output) == {"app-1.0-py3-none-any.whl", "libone-1.0-py3-none-any.whl"}


def test_a_metadata_build_asked_for_as_the_run_ends_does_not_wait_for_ever(
    tmp_path: Path,
) -> None:
    """A speculative look-up can hand its build to the run's loop just before the loop
    stops: the build never runs, and the thread must give up instead of keeping the
    process alive (a CI run once hung at exit on such a thread)."""
    import asyncio
    import threading

    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from bootstrapper.bootstrap import Bootstrapper, Options
    from bootstrapper.candidates import Release
    from bootstrapper.http import HttpClient
    from bootstrapper.index import DistFile

    with HttpClient() as http:
        bootstrapper = Bootstrapper(Options(output_dir=tmp_path / "out"), http)
        loop = asyncio.new_event_loop()  # accepts work, never runs it: a loop that stopped
        bootstrapper.scheduler._loop = loop
        release = Release(
            canonicalize_name("late"), Version("1.0"), DistFile("late-1.0.tar.gz", "http://x/")
        )
        outcome: list[BaseException] = []

        def ask() -> None:
            try:
                bootstrapper.sets.build_for_metadata(release, ("late",), None)
            except BaseException as e:
                outcome.append(e)

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        time.sleep(0.2)
        assert thread.is_alive()  # waiting while the run goes on
        bootstrapper.scheduler.close()  # what run() does as it returns
        thread.join(timeout=10)
        loop.close()
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    assert "the run is over" in str(outcome[0])
