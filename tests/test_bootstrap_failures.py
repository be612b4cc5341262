"""Every user-facing failure: exit status 1, one clear message naming the package and the
chain that led to it, no traceback, and what an earlier run produced left intact."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main

from .conftest import ROOT, clean_env, helper_project, standard_tree
from .support import FixtureIndex, IndexFile, Project, backend_package, wait_for


def assert_clean_failure(run: Any, *needles: str) -> None:
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in run.stderr, f"{needle!r} not in:\n{run.stderr}"


def test_unknown_top_level_project(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("no-such-project")
    assert_clean_failure(run, "no-such-project is not on the index", "full log:")


def test_unknown_dependency_names_the_chain(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [Project("app", dependencies=["libtwo"]), Project("libtwo", dependencies=["ghost>=1"])],
        tmp_path,
    )
    run = bootstrap("app")
    assert_clean_failure(run, "ghost is not on the index", "required by: app -> libtwo -> ghost")


def test_conflict_shows_requirements_and_who_asked(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            Project("app", dependencies=["liba", "libb"]),
            Project("liba", dependencies=["shared<2"]),
            Project("libb", dependencies=["shared>=2"]),
            Project("shared", "1.0"),
            Project("shared", "2.0"),
        ],
        tmp_path,
    )
    run = bootstrap("app")
    assert_clean_failure(
        run, "shared", "shared<2 (required by liba==1.0)", "shared>=2 (required by libb==1.0)"
    )


def test_project_without_sdist(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_file("binonly", IndexFile("binonly-1.0-py3-none-any.whl", b"not really a wheel"))
    index.add(Project("app", dependencies=["binonly"]), tmp_path)
    run = bootstrap("app")
    assert_clean_failure(
        run,
        "binonly has no source distribution",
        "app -> binonly",
        # the two settings that solve it, each with an example
        "OVERRIDES/settings/binonly.yaml",
        'source: {url: "https://example.org/binonly-${version}.tar.gz"}',
        "prebuilt: true",
    )


def test_malformed_requirement(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("app>>=1")
    assert_clean_failure(run, "malformed requirement 'app>>=1'")


def test_malformed_requirement_in_dependency_metadata(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("app", tool={"built-dependencies": ["bad ((("]}), tmp_path)
    run = bootstrap("app")
    assert_clean_failure(run, "malformed Requires-Dist 'bad ((('", "app")


def test_usage_errors_exit_2(index: FixtureIndex, bootstrap: Any) -> None:
    assert bootstrap().code == 2
    assert bootstrap("app", "--jobs", "0").code == 2
    assert bootstrap("app", "--no-such-option").code == 2


@pytest.mark.parametrize(
    ("args", "status"), [(["--version"], 0), (["bootstrap", "app", "--jobs", "0"], 2)]
)
def test_python_m_exits_with_the_status_of_main(
    tmp_path: Path, args: list[str], status: int
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bootstrapper", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert run.returncode == status, run.stderr
    assert "Traceback" not in run.stderr


def test_hash_mismatch_publishes_nothing_for_the_package(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(Project("app", dependencies=["libthree"]), tmp_path)
    index.add(Project("libthree", "0.5"), tmp_path, sha256="0" * 64)
    run = bootstrap("app")
    assert_clean_failure(run, "libthree", "do not match the index's sha256", "expected sha256=000")
    assert not (run.output / "simple" / "libthree").exists()
    assert not list((run.output / "sdists").glob("libthree*"))
    assert not list((run.output / ".work" / "downloads").glob("libthree*"))


def test_missing_hash_is_refused(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add(Project("app"), tmp_path, sha256="")
    run = bootstrap("app")
    assert_clean_failure(run, "gives no sha256 for app-1.0.tar.gz")


def _evil_sdist(path: Path, member: str, *, symlink_to: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = b"[build-system]\nrequires = []\n"
        info = tarfile.TarInfo("evil-1.0/pyproject.toml")
        info.size = len(good)
        tar.addfile(info, io.BytesIO(good))
        info = tarfile.TarInfo(member)
        if symlink_to is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = symlink_to
            tar.addfile(info)
        else:
            payload = b"owned\n"
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_malicious_archive_is_refused(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_file(
        "evil", IndexFile("evil-1.0.tar.gz", _evil_sdist(tmp_path, "evil-1.0/../../../escaped.txt"))
    )
    run = bootstrap("evil==1.0")
    assert_clean_failure(run, "evil", "points outside the archive")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_archive_with_outward_symlink_is_refused(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    data = _evil_sdist(tmp_path, "evil-1.0/link", symlink_to="../../../../etc")
    index.add_file("evil", IndexFile("evil-1.0.tar.gz", data))
    run = bootstrap("evil")
    assert_clean_failure(run, "link 'evil-1.0/link' -> '../../../../etc' points outside")


def test_failing_build_shows_log_tail_and_keeps_earlier_results(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(standard_tree(), tmp_path / "sdists")
    first = bootstrap("app")
    assert first.code == 0, first.stderr
    graph_before = (first.output / "graph.json").read_bytes()
    pages_before = {
        p.relative_to(first.output): p.read_bytes()
        for p in (first.output / "simple").rglob("*.html")
    }

    index.add(
        Project("broken", "1.0", dependencies=["libone"], tool={"fail": "compiler exploded: E42"}),
        tmp_path / "sdists",
    )
    index.add(Project("app2", "1.0", dependencies=["broken"]), tmp_path / "sdists")
    run = bootstrap("app2")
    log = run.output / "logs" / "broken-1.0.log"
    assert_clean_failure(
        run,
        "broken",
        "build_wheel",
        "compiler exploded: E42",
        f"full log: {log}",
        "required by: app2 -> broken",
    )
    assert "compiler exploded: E42" in log.read_text()
    # The earlier run's results are untouched.
    assert (run.output / "graph.json").read_bytes() == graph_before
    for relative, content in pages_before.items():
        assert (run.output / relative).read_bytes() == content
    # Nothing of the failed run is published: app2 was built, but its closure is not.
    assert not (run.output / "simple" / "broken").exists()
    assert not (run.output / "simple" / "app2").exists()


def test_build_cycle_is_refused_with_the_cycle(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            backend_package(dependencies=["fixture-helper"]),
            helper_project(),
            Project("hen", build_requires=["fixture-backend", "egg"]),
            Project("egg", build_requires=["fixture-backend", "hen"]),
        ],
        tmp_path,
    )
    run = bootstrap("hen")
    assert_clean_failure(run, "build cycle:", "hen==1.0 -> egg==1.0 -> hen==1.0")


def test_build_cycle_through_a_shared_build_set_is_refused(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """one and two need the same build set, whose resolution must build x (no static
    metadata), which needs two built: two must not wait for one's resolution of the
    set (it would wait for ever), but meet the cycle itself."""
    index.add_all(
        [
            backend_package(dependencies=["fixture-helper"]),
            helper_project(),
            Project("app", dependencies=["one", "two"]),
            Project("one", build_requires=["fixture-backend", "x"]),
            Project("two", build_requires=["fixture-backend", "x"]),
            Project("x", build_requires=["fixture-backend", "two"]),
        ],
        tmp_path,
    )
    run = bootstrap("app")
    assert_clean_failure(run, "build cycle:")
    cycle = run.stderr.split("build cycle: ", 1)[1].splitlines()[0]
    assert "two==1.0" in cycle and "x==1.0" in cycle, cycle


def test_install_cycles_are_fine(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_all(
        [Project("torchy", dependencies=["tritony"]), Project("tritony", dependencies=["torchy"])],
        tmp_path,
    )
    run = bootstrap("torchy")
    assert run.code == 0, run.stderr
    order = [e["name"] for e in json.loads((run.output / "build-order.json").read_text())]
    assert sorted(order) == ["torchy", "tritony"]


def test_no_traceback_from_the_real_console_script(tmp_path: Path, index: FixtureIndex) -> None:
    index.add(Project("app", dependencies=["ghost"]), tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bootstrapper",
            "bootstrap",
            "--index-url",
            index.url,
            "--output-dir",
            str(tmp_path / "out"),
            "app",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: ghost is not on the index" in result.stderr
    assert "required by: app -> ghost" in result.stderr


def test_ctrl_c_stops_at_once_and_the_rerun_continues(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(
        [
            Project("app", dependencies=["quick", "slow"], pkg_info_version="2.2"),
            Project("quick", pkg_info_version="2.2"),
            Project("slow", pkg_info_version="2.2", tool={"sleep": 60}),
        ],
        tmp_path / "sdists",
    )
    out = tmp_path / "out"
    process = subprocess.Popen(
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        start_new_session=True,  # as a shell job: bootstrapper leads its process group
    )
    try:
        wait_for(lambda: "== PEP 517 hook build_wheel" in _read(out / "logs" / "slow-1.0.log"))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "interrupted; run the same command again" in stderr
    assert "Traceback" not in stderr
    assert not (out / "graph.json").exists()
    # The slow build, started before the interrupt, was ended with it.
    wait_for(lambda: not _processes_mentioning(str(out / ".work" / "envs" / "slow-1.0")), 10)

    finished = sorted(p.name.split("-")[0] for p in (out / ".work" / "built").glob("*.whl"))
    assert "slow" not in finished
    index.add(Project("slow", pkg_info_version="2.2"), tmp_path / "sdists")  # now fast
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    for name in finished:
        assert f"reused {name}==1.0" in run.stderr
    assert "built slow==1.0" in run.stderr


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_a_wheel_that_is_not_a_zip(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_all(
        [Project("app", dependencies=["nozip"]), Project("nozip", tool={"not-a-zip": True})],
        tmp_path,
    )
    run = bootstrap("app")
    assert_clean_failure(
        run,
        "error: nozip: the build backend wrote nozip-1.0-py3-none-any.whl, which is not a "
        "wheel: not a readable zip file (File is not a zip file)",
        "required by: app -> nozip",
        "full log:",
    )
    assert "internal error" not in run.stderr


def test_a_decompression_bomb_is_refused(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    # 16 MiB of zeros in a sdist of a few KiB: far over the default ratio.
    index.add(Project("bomb", files={"zeros.txt": "\0" * (16 << 20)}), tmp_path)
    run = bootstrap("bomb")
    assert_clean_failure(
        run,
        "error: bomb-1.0.tar.gz: unpacks to more than 200 times its own ",
        "(--max-unpack-ratio): a decompression bomb",
        "required by: bomb",
    )
    assert not list((run.output / ".work").glob("src/bomb*/**/zeros.txt"))
    assert bootstrap("bomb", "--max-unpack-ratio", "100000").code == 0


def test_unpack_options_are_checked(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("x", "--max-unpack-size", "lots")
    assert run.code == 2
    assert "argument --max-unpack-size: not a size: 'lots'" in run.stderr
    run = bootstrap("x", "--max-unpack-ratio", "0.5")
    assert run.code == 2
    assert "--max-unpack-ratio must be at least 1" in run.stderr


@pytest.mark.parametrize("json_api", [True, False])
def test_network_index_linking_a_local_file_is_refused(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, json_api: bool
) -> None:
    """A page on the network must not make us read (let alone build and publish) a local
    file: the page is refused, naming the project and the link."""
    index.json_api = json_api
    local = Project("libthree", "0.5").sdist(tmp_path / "elsewhere")
    before = local.read_bytes()
    index.add(Project("app", "1.0", dependencies=["libthree"]), tmp_path / "sdists")
    index.add_file("libthree", IndexFile(local.name, before, href=local.as_uri()))
    run = bootstrap("app")
    assert_clean_failure(
        run,
        f"the index page of libthree links '{local.as_uri()}'",
        "may link only http and https files",
        "required by: app -> libthree",
    )
    assert local.read_bytes() == before
    assert not (run.output / "sdists" / local.name).exists()
    assert not list(run.output.rglob(local.name))
    assert not (run.output / "simple" / "libthree").exists()
    assert not list(run.output.glob("wheels/libthree-*"))


def test_file_index_may_link_local_files(tmp_path: Path, index: FixtureIndex) -> None:
    """A ``file:`` index (a directory) linking sdists elsewhere on disk still works."""
    sdists = tmp_path / "elsewhere"
    simple = tmp_path / "simple"
    for project in (Project("app", "1.0", dependencies=["libthree"]), Project("libthree", "0.5")):
        path = project.sdist(sdists)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        page = simple / project.name / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(f'<a href="{path.as_uri()}#sha256={digest}">{path.name}</a>\n')
    out = tmp_path / "out"
    code = main(
        ["bootstrap", "--index-url", simple.as_uri() + "/", "--output-dir", str(out), "app"]
    )
    assert code == 0
    assert (out / "sdists" / "libthree-0.5.tar.gz").is_file()
    assert (out / "simple" / "libthree" / "index.html").is_file()
