"""Issue 4: reproduce a whole chain offline.

A bootstrap records the tree once; ``build-sequence`` rebuilds it from the archive alone
(sources, patches, build order) with the network cut, ``build`` rebuilds one package as a
job from a wheel index, ``verify`` proves byte identity, and every wheel carries a build
record that says what went into it.

Most tests read one bootstrap of the fixture tree (the module's ``shared`` fixture) and
copy it before changing anything.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import json
import re
import shutil
import socketserver
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.isolation import isolation_prefix
from bootstrapper.reproducible import ZIP_EPOCH, first_difference, normalize_wheel

from .conftest import installed, pip_install, standard_tree
from .support import FixtureIndex, Project, serve_directory, wait_for

#: tests/support.py stamps every sdist member with this mtime.
SDIST_MTIME = 1_600_000_000
EPOCH_DATE = time.gmtime(SDIST_MTIME)[:6]
TREE = {
    "app": "1.0",
    "libone": "1.4",
    "libthree": "0.5",
    "libtwo": "2.0",
    "dyn-req": "1.0",
    "fixture-backend": "1.0",
    "fixture-helper": "1.0",
    "patched-pkg": "1.0",
}
PATCH_NAME = "01-set-flag.patch"
LIBTWO = "libtwo-2.0-py3-none-any.whl"
PATCHED = "patched_pkg-1.0-py3-none-any.whl"


# -- helpers ---------------------------------------------------------------------------


@functools.cache
def can_isolate() -> bool:
    return isolation_prefix() is not None


def isolation_args() -> list[str]:
    """Isolation stays on (the default) wherever the machine can make a namespace."""
    return [] if can_isolate() else ["--no-network-isolation"]


def require_isolation() -> None:
    if not can_isolate():
        pytest.skip(
            "this machine cannot make a network namespace (unshare --net --map-current-user "
            "is missing or fails), so bootstrapper.isolation.isolation_prefix() is None"
        )


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_main(*args: str | Path) -> Result:
    """The CLI in-process, for module-scoped fixtures (tests use ``Workspace.cli``)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def bootstrap_args(
    index_url: str, out: Path, overrides: Path, patches: Path, jobs: int, *rest: str
) -> list[str | Path]:
    return [
        "bootstrap",
        "--index-url",
        index_url,
        "--output-dir",
        out,
        "--jobs",
        str(jobs),
        "--overrides-dir",
        overrides,
        "--patches-dir",
        patches,
        *rest,
    ]


class Workspace:
    """One test's directories, index and in-process CLI."""

    def __init__(
        self, tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.tmp = tmp_path
        self.index = index
        self.capsys = capsys
        self.overrides = tmp_path / "overrides"
        self.patches = tmp_path / "patches"
        self.empty_patches = tmp_path / "no-patches"
        for directory in (self.overrides, self.patches, self.empty_patches):
            directory.mkdir()

    def cli(self, *args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def settings_args(self, patches: Path | None = None) -> list[str | Path]:
        return ["--overrides-dir", self.overrides, "--patches-dir", patches or self.empty_patches]

    def bootstrap(
        self,
        out: Path,
        *requirements: str,
        index_url: str | None = None,
        patches: Path | None = None,
        jobs: int = 2,
        extra: tuple[str, ...] = (),
    ) -> Result:
        return self.cli(
            *bootstrap_args(
                index_url or self.index.url,
                out,
                self.overrides,
                patches or self.empty_patches,
                jobs,
                *extra,
                *requirements,
            )
        )

    def bootstrap_tree(self, out: Path, **kwargs: Any) -> Result:
        kwargs.setdefault("patches", self.patches)
        run = self.bootstrap(out, "app", "patched-pkg", **kwargs)
        assert run.code == 0, run.err
        return run

    def sequence(self, order: Path, output: Path, *args: str | Path) -> Result:
        return self.cli("build-sequence", order, "--output-dir", output, *args, *isolation_args())


@pytest.fixture
def ws(tmp_path: Path, index: FixtureIndex, capsys: pytest.CaptureFixture[str]) -> Workspace:
    return Workspace(tmp_path, index, capsys)


def patched_project() -> Project:
    return Project(
        "patched-pkg",
        "1.0",
        tool={"modules": ["patched_pkg"]},
        files={"src/patched_pkg.py": "PATCHED = False\n"},
    )


def write_patch(patches: Path) -> Path:
    """A real unified diff that ``patch -p1`` applies to the unpacked source."""
    text = "".join(
        difflib.unified_diff(
            ["PATCHED = False\n"],
            ["PATCHED = True\n"],
            "a/src/patched_pkg.py",
            "b/src/patched_pkg.py",
        )
    )
    path = patches / "patched-pkg" / PATCH_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@dataclass(frozen=True)
class Shared:
    """One bootstrap of the tree, for the tests to read (never to change)."""

    out: Path
    index: FixtureIndex
    patch: Path
    patches: Path
    overrides: Path
    started: str
    finished: str


def utc(offset: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("shared")
    index = FixtureIndex()
    index.start()
    try:
        index.add_all([*standard_tree(), patched_project()], root / "index-files")
        patch = write_patch(root / "patches")
        overrides = root / "overrides"
        overrides.mkdir()
        out = root / "out"
        started = utc(-1)
        run = run_main(
            *bootstrap_args(index.url, out, overrides, root / "patches", 2, "app", "patched-pkg")
        )
        assert run.code == 0, run.err
        yield Shared(out, index, patch, root / "patches", overrides, started, utc(1))
    finally:
        index.stop()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.whl"))


def wheel_differences(expected: Path, actual: Path) -> list[str]:
    """Every way the wheels of ``actual`` differ from ``expected`` (byte comparison)."""
    problems = []
    if wheel_names(expected) != wheel_names(actual):
        problems.append(f"wheel sets differ: {wheel_names(expected)} != {wheel_names(actual)}")
    for name in wheel_names(expected):
        theirs = actual / name
        if theirs.is_file() and (expected / name).read_bytes() != theirs.read_bytes():
            problems.append(f"{name}: {first_difference(expected / name, theirs)}")
    return problems


def build_order(out: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((out / "build-order.json").read_text())
    return entries


def entry_of(out: Path, name: str) -> dict[str, Any]:
    [entry] = [e for e in build_order(out) if e["name"] == name]
    return entry


def record_of(wheel: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(wheel.with_name(wheel.name + ".build.json").read_text())
    return record


def member(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(name)


def copy_tree_without(source: Path, dest: Path, *excluded: str) -> Path:
    shutil.copytree(
        source,
        dest,
        ignore=lambda d, names: [n for n in names if n in excluded and Path(d) == source],
    )
    return dest


def index_projects(simple: Path) -> list[str]:
    """The projects a simple index's root page links."""
    return sorted(re.findall(r'href="([^"/]+)/"', (simple / "index.html").read_text()))


@contextmanager
def tcp_server() -> Iterator[tuple[int, list[str]]]:
    """A live TCP server on 127.0.0.1; yields its port and the connections it accepted."""
    connections: list[str] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connections.append(f"{self.client_address}")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], connections
    finally:
        server.shutdown()
        server.server_close()


def tamper(wheel: Path, name: str) -> None:
    """Rewrite ``wheel`` with one member's content changed (one byte appended)."""
    with zipfile.ZipFile(wheel) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    assert name in [info.filename for info, _ in entries]
    with zipfile.ZipFile(wheel, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data + b"#" if info.filename == name else data)


# -- 1. build-sequence rebuilds the chain offline, byte for byte ------------------------


def test_build_sequence_rebuilds_the_tree_offline_byte_identical(
    ws: Workspace, shared: Shared
) -> None:
    out = shared.out
    assert sorted(e["name"] for e in build_order(out)) == sorted(TREE)
    assert member(out / "wheels" / PATCHED, "patched_pkg.py") == b"PATCHED = True\n"

    fresh = ws.tmp / "fresh"
    requests_before = len(shared.index.requests)
    run = ws.sequence(out / "build-order.json", fresh)
    assert run.code == 0, run.err
    assert f"rebuilt {len(TREE)} wheels, kept 0 already valid" in run.err
    assert wheel_differences(out / "wheels", fresh / "wheels") == []
    assert len(shared.index.requests) == requests_before  # nothing was fetched
    for entry in build_order(out):
        rebuilt = fresh / "wheels" / entry["wheel"]
        assert rebuilt.read_bytes() == (out / "wheels" / entry["wheel"]).read_bytes()
        assert record_of(rebuilt)["sdist_sha256"] == entry["sdist_sha256"]
        assert (fresh / "logs" / f"{entry['name']}-{entry['version']}.log").is_file()
    # The patched wheel was rebuilt with its patch, taken from DIR/patches.
    assert record_of(fresh / "wheels" / PATCHED)["plan"]["patches"] == [
        {"file": PATCH_NAME, "sha256": sha256(shared.patch)}
    ]
    assert index_projects(fresh / "simple") == sorted(TREE)
    pip = pip_install(fresh, ws.tmp / "venv", "app", "patched-pkg")
    assert pip.returncode == 0, pip.stderr
    assert installed(ws.tmp / "venv") == {
        "app": "1.0",
        "libone": "1.4",
        "libthree": "0.5",
        "libtwo": "2.0",
        "patched-pkg": "1.0",
    }

    # The archive travels: DIR minus its wheels (and scratch) is all a rebuild needs.
    archive = copy_tree_without(out, ws.tmp / "elsewhere" / "archive", "wheels", ".work")
    assert not (archive / "wheels").exists() and (archive / "patches").is_dir()
    travelled = ws.tmp / "elsewhere" / "rebuilt"
    run = ws.sequence(archive / "build-order.json", travelled)
    assert run.code == 0, run.err
    assert wheel_differences(out / "wheels", travelled / "wheels") == []

    # Again: every wheel is present and valid, so every wheel is kept untouched ...
    stamps = {p.name: p.stat().st_mtime_ns for p in (travelled / "wheels").glob("*.whl")}
    run = ws.sequence(archive / "build-order.json", travelled)
    assert run.code == 0, run.err
    assert f"rebuilt 0 wheels, kept {len(TREE)} already valid" in run.err
    assert {p.name: p.stat().st_mtime_ns for p in (travelled / "wheels").glob("*.whl")} == stamps

    # ... but a wheel that no longer matches its record is not valid: rebuilt alone.
    tamper(travelled / "wheels" / "libone-1.4-py3-none-any.whl", "libone/__init__.py")
    run = ws.sequence(archive / "build-order.json", travelled)
    assert run.code == 0, run.err
    assert f"rebuilt 1 wheels, kept {len(TREE) - 1} already valid" in run.err
    assert wheel_differences(out / "wheels", travelled / "wheels") == []

    # --force rebuilds every one, to the same bytes.
    run = ws.sequence(archive / "build-order.json", travelled, "--force", "--jobs", "4")
    assert run.code == 0, run.err
    assert f"rebuilt {len(TREE)} wheels, kept 0 already valid" in run.err
    assert wheel_differences(out / "wheels", travelled / "wheels") == []
    assert index_projects(travelled / "simple") == sorted(TREE)

    # Into the bootstrap's own directory (a copy): everything is already there and valid.
    own = copy_tree_without(out, ws.tmp / "own", ".work")
    run = ws.sequence(own / "build-order.json", own)
    assert run.code == 0, run.err
    assert f"rebuilt 0 wheels, kept {len(TREE)} already valid" in run.err
    assert wheel_differences(out / "wheels", own / "wheels") == []


# -- 2. network isolation is real ------------------------------------------------------


def test_a_build_that_opens_a_socket_fails_under_isolation(ws: Workspace) -> None:
    require_isolation()
    with tcp_server() as (port, connections):
        ws.index.add(Project("phones-home", "1.0", tool={"open-socket": port}), ws.tmp / "files")
        out = ws.tmp / "out"
        run = ws.bootstrap(out, "phones-home", extra=("--no-network-isolation",))
        assert run.code == 0, run.err
        wait_for(lambda: len(connections) >= 1, timeout=10)
        after_bootstrap = len(connections)
        wheel = out / "wheels" / "phones_home-1.0-py3-none-any.whl"

        fresh = ws.tmp / "fresh"
        run = ws.cli("build-sequence", out / "build-order.json", "--output-dir", fresh)
        assert run.code == 1, run.err
        log = fresh / "logs" / "phones-home-1.0.log"
        assert "error: phones-home: the build backend failed in build_wheel" in run.err
        assert f"full log: {log}" in run.err
        log_text = log.read_text()
        assert "create_connection" in log_text, log_text
        assert "Network is unreachable" in log_text, log_text
        time.sleep(0.2)
        assert len(connections) == after_bootstrap  # the connection was never made
        assert not list((fresh / "wheels").glob("*.whl"))

        run = ws.cli(
            "build-sequence",
            out / "build-order.json",
            "--output-dir",
            fresh,
            "--no-network-isolation",
        )
        assert run.code == 0, run.err
        wait_for(lambda: len(connections) > after_bootstrap, timeout=10)
        assert (fresh / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()


# -- 3. DIR/sdists is an index of the exact sources ------------------------------------


def test_the_source_archive_is_a_simple_index_that_rebuilds_the_tree(
    ws: Workspace, shared: Shared
) -> None:
    out = shared.out
    sdists = out / "sdists"
    root_url = sdists.as_uri() + "/"
    assert index_projects(sdists) == sorted(TREE)
    for entry in build_order(out):
        page_url = urllib.parse.urljoin(root_url, f"{entry['name']}/")
        page = (sdists / entry["name"] / "index.html").read_text()
        links = re.findall(r'href="([^"]+)"', page)
        assert len(links) == 1, page
        url, _, fragment = links[0].partition("#")
        target = Path(
            urllib.request.url2pathname(
                urllib.parse.urlparse(urllib.parse.urljoin(page_url, url)).path
            )
        )
        assert target == sdists / entry["sdist"]
        assert fragment == f"sha256={entry['sdist_sha256']}" == f"sha256={sha256(target)}"

    # Nothing but the archive: its index and its patches, no HTTP index.
    requests_before = len(shared.index.requests)
    again = ws.tmp / "again"
    ws.bootstrap_tree(again, index_url=root_url, patches=out / "patches")
    assert len(shared.index.requests) == requests_before and not ws.index.requests
    assert wheel_differences(out / "wheels", again / "wheels") == []
    for entry in build_order(again):
        assert entry["source_url"].startswith(root_url), entry["source_url"]
        assert entry["sdist_sha256"] == entry_of(out, entry["name"])["sdist_sha256"]


# -- 4. the build order and the audit trail --------------------------------------------


def test_build_order_and_build_records_say_what_went_into_each_wheel(shared: Shared) -> None:
    out = shared.out
    order = build_order(out)
    assert {e["name"]: e["version"] for e in order} == TREE
    positions = {e["name"]: i for i, e in enumerate(order)}
    for entry in order:
        wheel = out / "wheels" / entry["wheel"]
        assert entry["wheel_sha256"] == sha256(wheel)
        assert entry["sdist_sha256"] == sha256(out / "sdists" / entry["sdist"])
        for env_wheel in entry["build_env"]:
            assert set(env_wheel) >= {"name", "version", "wheel", "sha256"}
            assert env_wheel["sha256"] == sha256(out / "wheels" / env_wheel["wheel"])
            # Every build environment wheel is built before the package that needs it.
            assert positions[env_wheel["name"]] < positions[entry["name"]]
        assert isinstance(entry["plan"]["settings"], dict)
        assert entry["plan"]["settings"]["rebuild-scheme"] == "build-tag"
        expected = [{"file": PATCH_NAME, "sha256": sha256(shared.patch)}]
        assert entry["plan"]["patches"] == (expected if entry["name"] == "patched-pkg" else [])
    libtwo = entry_of(out, "libtwo")
    assert {(w["name"], w["version"]) for w in libtwo["build_env"]} == {
        ("fixture-backend", "1.0"),
        ("fixture-helper", "1.0"),
        ("dyn-req", "1.0"),
    }
    archived = out / "patches" / "patched-pkg" / "1.0" / PATCH_NAME
    assert archived.read_bytes() == shared.patch.read_bytes()
    # A copy, not a link to the user's file: editing that in place later must not
    # change what this build recorded it used.
    assert not archived.samefile(shared.patch)

    for entry in order:
        wheel = out / "wheels" / entry["wheel"]
        record = record_of(wheel)
        assert record["name"] == entry["name"] and record["version"] == entry["version"]
        assert record["wheel"] == wheel.name and record["wheel_sha256"] == sha256(wheel)
        assert record["sdist"] == entry["sdist"]
        assert record["sdist_sha256"] == entry["sdist_sha256"]
        files_url = shared.index.url.removesuffix("simple/") + "files/"
        assert record["source_url"] == files_url + entry["sdist"]
        # The pip freeze of the build environment: name, version, wheel file and sha256.
        assert [
            (w["name"], w["version"], w["filename"], w["sha256"]) for w in record["build_env"]
        ] == [(w["name"], w["version"], w["wheel"], w["sha256"]) for w in entry["build_env"]]
        assert record["plan"] == entry["plan"]
        assert record["rebuild"] == 0
        environment = record["environment"]
        assert environment["SOURCE_DATE_EPOCH"] == str(SDIST_MTIME)
        assert environment["LC_ALL"] == "C.UTF-8" and environment["TZ"] == "UTC"
        assert environment["PYTHONHASHSEED"] == "0"
        tools = record["tool_versions"]
        assert set(tools) >= {"python", "bootstrapper", "uv"}
        assert all(v and v != "unknown" for v in tools.values()), tools
        assert record["python"].startswith(("cpython ", "pypy ")), record["python"]
        assert shared.started <= record["started"] <= record["finished"] <= shared.finished
        assert record["log"] == str(out / "logs" / f"{entry['name']}-{entry['version']}.log")
        assert Path(record["log"]).is_file()
        assert record["build_backend"] == entry["build_backend"]
        # The wheel's own timestamps are the sdist's: SOURCE_DATE_EPOCH reached them.
        with zipfile.ZipFile(wheel) as zf:
            assert {info.date_time for info in zf.infolist()} == {EPOCH_DATE}
    assert record_of(out / "wheels" / LIBTWO)["backend_requires"] == ["dyn-req"]


# -- 5. verify -------------------------------------------------------------------------


def test_verify_reports_identity_and_names_the_first_differing_file(
    ws: Workspace, shared: Shared
) -> None:
    out = copy_tree_without(shared.out, ws.tmp / "out", ".work")
    order = build_order(out)

    run = ws.cli("verify", out / "build-order.json", *isolation_args())
    assert run.code == 0, run.err
    for entry in order:
        assert f"identical  {entry['wheel']}" in run.out
    assert f"{len(order)} of {len(order)} wheels identical" in run.out
    assert "DIFFERS" not in run.out

    # One package, with its build environment taken from the recorded wheels.
    kept = ws.tmp / "kept"
    run = ws.cli(
        "verify", out / "build-order.json", "--only", "libtwo", "--keep", kept, *isolation_args()
    )
    assert run.code == 0, run.err
    assert run.out.splitlines() == [f"identical  {LIBTWO}", "1 of 1 wheels identical"]
    assert (kept / "wheels" / LIBTWO).read_bytes() == (out / "wheels" / LIBTWO).read_bytes()

    tamper(out / "wheels" / "libone-1.4-py3-none-any.whl", "libone/__init__.py")
    run = ws.cli("verify", out / "build-order.json", "--only", "libone", *isolation_args())
    assert run.code == 1, run.err
    assert run.out.splitlines() == [
        "DIFFERS    libone-1.4-py3-none-any.whl: libone/__init__.py: contents differ",
        "0 of 1 wheels identical",
    ]

    run = ws.cli("verify", out / "build-order.json", "--only", "no-such-thing")
    assert run.code == 2 and "no-such-thing" in run.err


# -- 6. build one package as a job -----------------------------------------------------


def test_build_job_takes_build_requirements_only_from_the_wheel_index(
    ws: Workspace, shared: Shared
) -> None:
    out = shared.out
    libtwo = out / "wheels" / LIBTWO
    requests_before = len(shared.index.requests)

    def build(wheels: str | Path, dest: Path, sources: str | Path = out / "sdists") -> Result:
        return ws.cli(
            "build",
            "libtwo",
            "2.0",
            "--sources",
            sources,
            "--wheels",
            wheels,
            "--output-dir",
            dest,
            *ws.settings_args(),
            *isolation_args(),
        )

    job = ws.tmp / "job"
    run = build(out / "wheels", job)
    assert run.code == 0, run.err
    built = job / "wheels" / LIBTWO
    assert run.out.strip() == str(built)
    assert built.read_bytes() == libtwo.read_bytes()
    assert record_of(built)["build_env"] == record_of(libtwo)["build_env"]
    assert record_of(built)["environment"]["SOURCE_DATE_EPOCH"] == str(SDIST_MTIME)
    page = (job / "simple" / "libtwo" / "index.html").read_text()
    assert f"../../wheels/{LIBTWO}#sha256={sha256(libtwo)}" in page

    # A wheel index without dyn-req: a clear failure, no download, nothing published.
    partial = ws.tmp / "partial-wheels"
    partial.mkdir()
    for wheel in (out / "wheels").glob("*.whl"):
        if not wheel.name.startswith("dyn_req-"):
            shutil.copy(wheel, partial / wheel.name)
    failed = ws.tmp / "failed-job"
    run = build(partial, failed)
    assert run.code == 1, run.err
    assert (
        "cannot build libtwo 2.0: a build requirement is missing from the wheel index "
        f"{partial}" in run.err
    )
    assert f"dyn-req is not in the wheel index {partial}" in run.err
    assert "libtwo -> dyn-req" in run.err
    assert f"full log: {failed / 'logs' / 'libtwo-2.0.log'}" in run.err
    assert "Traceback" not in run.err
    assert not list(failed.glob("wheels/*.whl"))
    assert not (failed / "simple" / "libtwo").exists()
    assert not list(failed.glob("sdists/*"))

    # A simple index directory works as well as a directory of wheels ...
    from_simple = ws.tmp / "from-simple"
    run = build(out / "simple", from_simple)
    assert run.code == 0, run.err
    assert (from_simple / "wheels" / LIBTWO).read_bytes() == libtwo.read_bytes()

    # ... and so does a static web server in front of DIR (for the sources too).
    for base in serve_directory(out):
        from_http = ws.tmp / "from-http"
        run = build(f"{base}/simple/", from_http, f"{base}/sdists/")
        assert run.code == 0, run.err
        assert (from_http / "wheels" / LIBTWO).read_bytes() == libtwo.read_bytes()
        served = record_of(from_http / "wheels" / LIBTWO)
        assert served["build_env"] == record_of(libtwo)["build_env"]
    assert len(shared.index.requests) == requests_before  # the source index was never asked


def test_a_build_farm_of_jobs_rebuilds_the_whole_order(ws: Workspace, shared: Shared) -> None:
    """One ``build`` job per package, in build order, each publishing into the shared
    index the next ones take their build requirements from."""
    out = shared.out
    farm = ws.tmp / "farm"
    for entry in build_order(out):
        run = ws.cli(
            "build",
            entry["name"],
            entry["version"],
            "--sources",
            out / "sdists",
            "--wheels",
            farm / "simple",
            "--output-dir",
            farm,
            # The archived patches serve a job as well.
            *ws.settings_args(out / "patches"),
            "-q",
            *isolation_args(),
        )
        assert run.code == 0, (entry["name"], run.err)
        assert run.out.strip() == str(farm / "wheels" / entry["wheel"])
    assert wheel_differences(out / "wheels", farm / "wheels") == []
    assert index_projects(farm / "simple") == sorted(TREE)


# -- an archive that is incomplete or altered --------------------------------------------


def test_an_incomplete_or_altered_archive_fails_clearly(ws: Workspace, shared: Shared) -> None:
    out = shared.out
    archive = copy_tree_without(out, ws.tmp / "archive", "wheels", ".work")
    sdist = archive / "sdists" / entry_of(out, "libthree")["sdist"]
    patch = archive / "patches" / "patched-pkg" / "1.0" / PATCH_NAME

    def sequence(names: list[str], dest: str, *args: str | Path) -> Result:
        """build-sequence of a build order cut down to ``names`` (beside the archive's
        sdists/ and patches/), so that each case builds only what it is about."""
        order = archive / f"{dest}.json"
        order.write_text(json.dumps([entry_of(out, name) for name in names]))
        return ws.sequence(order, ws.tmp / dest, *args)

    sdist.unlink()
    run = sequence(["libthree"], "no-source")
    assert run.code == 1
    assert f"libthree 0.5: its source {sdist.name} is not in {archive / 'sdists'}" in run.err
    # --sources points elsewhere: the archive's own sources are not needed.
    run = sequence(["libthree"], "other-sources", "--sources", out / "sdists")
    assert run.code == 0, run.err
    assert wheel_names(ws.tmp / "other-sources" / "wheels") == ["libthree-0.5-py3-none-any.whl"]

    sdist.write_bytes((out / "sdists" / sdist.name).read_bytes() + b"\0")
    run = sequence(["libthree"], "altered-source")
    assert run.code == 1
    assert f"{sdist} is not the source libthree was built from (sha256 differs)" in run.err

    patch.write_text(patch.read_text().replace("True", "False"))
    run = sequence(["patched-pkg"], "altered-patch")
    assert run.code == 1
    assert f"{patch} is not the patch patched-pkg was built with (sha256 differs)" in run.err
    patch.unlink()
    run = sequence(["patched-pkg"], "no-patch")
    assert run.code == 1
    assert (
        f"patched-pkg 1.0 was built with the patch {PATCH_NAME}, which is not in {patch.parent}"
        in run.err
    )
    run = sequence(["patched-pkg"], "other-patches", "--patches", out / "patches")
    assert run.code == 0, run.err
    assert wheel_differences(out / "wheels", ws.tmp / "other-patches" / "wheels") == [
        f"wheel sets differ: {wheel_names(out / 'wheels')} != {[PATCHED]}"
    ]

    # A build environment neither in the order nor in the output index is named; once
    # its wheels are in the output index, they are used as they are.
    run = sequence(["libtwo"], "no-env")
    assert run.code == 1
    assert re.search(
        r"libtwo 2.0 needs (dyn-req|fixture-backend|fixture-helper) 1.0 to build, which is "
        r"neither in the build order nor in the output index",
        run.err,
    ), run.err
    (ws.tmp / "with-env" / "wheels").mkdir(parents=True)
    for env_wheel in entry_of(out, "libtwo")["build_env"]:
        shutil.copy(out / "wheels" / env_wheel["wheel"], ws.tmp / "with-env" / "wheels")
    run = sequence(["libtwo"], "with-env")
    assert run.code == 0, run.err
    rebuilt = ws.tmp / "with-env" / "wheels" / LIBTWO
    assert rebuilt.read_bytes() == (out / "wheels" / LIBTWO).read_bytes()

    run = ws.cli("build-sequence", ws.tmp / "nothing.json", "--output-dir", ws.tmp / "x")
    assert run.code == 2 and "cannot read" in run.err
    (ws.tmp / "bad.json").write_text('[{"name": "x"}]')
    run = ws.cli("build-sequence", ws.tmp / "bad.json", "--output-dir", ws.tmp / "x")
    assert run.code == 1 and "is not a build order bootstrapper wrote" in run.err
    # A build environment's version that is none: named, not an internal error.
    order = json.loads((out / "build-order.json").read_text())
    order[-1]["build_env"] = [
        {"name": "x", "version": "not a version", "wheel": "x.whl", "sha256": "0" * 64}
    ]
    (ws.tmp / "bad-env.json").write_text(json.dumps(order))
    run = ws.cli("build-sequence", ws.tmp / "bad-env.json", "--output-dir", ws.tmp / "x")
    assert run.code == 1 and "is not a build order bootstrapper wrote" in run.err, run.err
    assert "internal error" not in run.err


# -- settings travel with the build order -----------------------------------------------

TUNED_SETTINGS = """\
env:
  FIXTURE_FLAVOUR: "mint-${version}"
config-settings:
  opt: value
requires:
  remove: [gone]
  add: [libthree]
build-requires:
  add: [dyn-req]
changelog:
  "1.0": [rebuilt with a fix]
"""
TUNED_WHEEL = "tuned-1.0-1-py3-none-any.whl"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A package with every kind of setting, bootstrapped and then rebuilt offline."""
    root = tmp_path_factory.mktemp("tuned")
    settings = root / "overrides" / "settings" / "tuned.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(TUNED_SETTINGS)
    (root / "patches").mkdir()
    project = Project(
        "tuned", "1.0", dependencies=["gone"], tool={"import": ["dyn_req"], "record-env": True}
    )
    index = FixtureIndex()
    index.start()
    try:
        index.add_all([*standard_tree(), project, Project("gone")], root / "index-files")
        out, fresh = root / "out", root / "fresh"
        run = run_main(
            *bootstrap_args(index.url, out, root / "overrides", root / "patches", 2, "tuned")
        )
        assert run.code == 0, run.err
        assert wheel_names(out / "wheels") == [
            "dyn_req-1.0-py3-none-any.whl",
            "libthree-0.5-py3-none-any.whl",
            TUNED_WHEEL,
        ]
        run = run_main(
            "build-sequence", out / "build-order.json", "--output-dir", fresh, *isolation_args()
        )
        assert run.code == 0, run.err
        yield out, fresh
    finally:
        index.stop()


def test_build_sequence_rebuilds_with_the_recorded_settings(tuned: tuple[Path, Path]) -> None:
    out, fresh = tuned
    assert wheel_names(fresh / "wheels") == wheel_names(out / "wheels")  # the build tag too
    original, rebuilt = out / "wheels" / TUNED_WHEEL, fresh / "wheels" / TUNED_WHEEL
    metadata = "tuned-1.0.dist-info/METADATA"
    assert member(rebuilt, metadata) == member(original, metadata)
    assert b"Requires-Dist: libthree" in member(rebuilt, metadata)
    assert b"gone" not in member(rebuilt, metadata)
    seen_then = json.loads(member(original, "tuned_build_env.json"))
    seen_now = json.loads(member(rebuilt, "tuned_build_env.json"))
    # The build runs in its own directories, so only what the settings set is compared.
    for key in ("fixture_environ", "config_settings", "installed"):
        assert seen_now[key] == seen_then[key], key
    assert seen_now["fixture_environ"] == {"FIXTURE_FLAVOUR": "mint-1.0"}
    assert seen_now["config_settings"] == {"opt": "value"}
    assert seen_now["installed"] == ["dyn-req==1.0"]
    record = record_of(rebuilt)
    assert record["rebuild"] == 1
    assert record["environment"]["FIXTURE_FLAVOUR"] == "mint-1.0"
    assert record["environment"]["SOURCE_DATE_EPOCH"] == str(SDIST_MTIME)
    assert wheel_differences(out / "wheels", fresh / "wheels") == [
        f"{TUNED_WHEEL}: tuned_build_env.json: contents differ"
    ]


# -- suspected bugs ------------------------------------------------------------------------


def test_a_rebuilt_wheel_records_the_plan_of_the_build_order(tuned: tuple[Path, Path]) -> None:
    out, fresh = tuned
    original = record_of(out / "wheels" / TUNED_WHEEL)
    rebuilt = record_of(fresh / "wheels" / TUNED_WHEEL)
    assert rebuilt["build_system_requires"] == original["build_system_requires"] == ["dyn-req"]
    assert rebuilt["plan"] == entry_of(out, "tuned")["plan"] == original["plan"]


def test_a_resumed_build_sequence_publishes_the_wheels_it_kept(
    ws: Workspace, shared: Shared
) -> None:
    out = shared.out
    sources = ws.tmp / "sources"
    shutil.copytree(out / "sdists", sources)
    held = (sources / "libtwo-2.0.tar.gz").rename(ws.tmp / "libtwo-2.0.tar.gz")
    fresh = ws.tmp / "fresh"
    # One build at a time, so that nothing else is running when libtwo fails (see
    # test_a_failed_build_sequence_leaves_no_build_running).
    args = ("--sources", sources, "--jobs", "1")
    run = ws.sequence(out / "build-order.json", fresh, *args)
    assert run.code == 1 and "libtwo-2.0.tar.gz is not in" in run.err
    assert len(wheel_names(fresh / "wheels")) == len(TREE) - 1  # all but libtwo
    held.rename(sources / held.name)
    run = ws.sequence(out / "build-order.json", fresh, *args)
    assert run.code == 0, run.err
    assert f"rebuilt 1 wheels, kept {len(TREE) - 1} already valid" in run.err
    assert wheel_differences(out / "wheels", fresh / "wheels") == []
    assert index_projects(fresh / "simple") == sorted(TREE)
    for entry in build_order(out):
        assert (fresh / "wheels" / f"{entry['wheel']}.metadata").is_file(), entry["name"]


def test_a_failed_build_sequence_leaves_no_build_running(ws: Workspace) -> None:
    require_isolation()
    with tcp_server() as (port, _):
        ws.index.add_all(
            [
                Project("phones-home", tool={"open-socket": port}),
                Project("slow", tool={"sleep": 1.5}),
            ],
            ws.tmp / "files",
        )
        out = ws.tmp / "out"
        run = ws.bootstrap(out, "phones-home", "slow", extra=("--no-network-isolation",))
        assert run.code == 0, run.err
        fresh = ws.tmp / "fresh"
        # Both build at once; phones-home fails (no network) while slow is still building.
        run = ws.sequence(out / "build-order.json", fresh, "--jobs", "2")
        assert run.code == 1 and "phones-home" in run.err
        when_it_returned = wheel_names(fresh / "wheels")
        time.sleep(2)  # longer than what is left of slow's build
        assert wheel_names(fresh / "wheels") == when_it_returned


def test_build_sequence_rebuilds_a_wheel_whose_recorded_patch_changed(
    ws: Workspace, shared: Shared
) -> None:
    out, fresh = copy_tree_without(shared.out, ws.tmp / "out", ".work"), ws.tmp / "fresh"
    run = ws.sequence(out / "build-order.json", fresh)
    assert run.code == 0, run.err
    # The patch changes and the bootstrap is run again: only patched-pkg is rebuilt.
    patch = write_patch(ws.patches)
    patch.write_text(patch.read_text().replace("PATCHED = True", "PATCHED = 2"))
    ws.bootstrap_tree(out, index_url=shared.index.url)
    assert member(out / "wheels" / PATCHED, "patched_pkg.py") == b"PATCHED = 2\n"
    assert entry_of(out, "patched-pkg")["plan"]["patches"][0]["sha256"] == sha256(patch)
    run = ws.sequence(out / "build-order.json", fresh)
    assert run.code == 0, run.err
    assert f"rebuilt 1 wheels, kept {len(TREE) - 1} already valid" in run.err
    assert member(fresh / "wheels" / PATCHED, "patched_pkg.py") == b"PATCHED = 2\n"
    assert wheel_differences(out / "wheels", fresh / "wheels") == []


# -- 7. reproducibility ----------------------------------------------------------------

#: A backend that leaves everything variable a wheel tool can: entry order, timestamps,
#: permissions, compression, directory entries. Only the contents are fixed.
NOISY_BACKEND = """
import base64, hashlib, os, random, time, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def _line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    rng = random.Random(os.urandom(16))
    files = {
        "noisy/__init__.py": b"X = 1\\n",
        "noisy/data.txt": b"data\\n",
        "noisy/run.sh": b"#!/bin/sh\\n",
        "noisy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: noisy\\nVersion: 1.0\\n\\n",
        "noisy-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\\nGenerator: noisy\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = [_line(p, d) for p, d in sorted(files.items())] + ["noisy-1.0.dist-info/RECORD,,"]
    files["noisy-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    entries = list(files.items())
    rng.shuffle(entries)
    filename = "noisy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        zf.writestr(zipfile.ZipInfo("noisy/", time.gmtime()[:6]), b"")
        for path, data in entries:
            info = zipfile.ZipInfo(path, time.gmtime(time.time() - rng.randrange(10**8))[:6])
            mode = 0o700 if path.endswith(".sh") else rng.choice([0o600, 0o640, 0o664, 0o666])
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
            zf.writestr(info, data)
    return filename
"""


def noisy_project() -> Project:
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "noisy_backend"\n'
        'backend-path = ["_backend"]\n\n[project]\nname = "noisy"\nversion = "1.0"\n'
        "dependencies = []\n"
    )
    return Project(
        "noisy", "1.0", pyproject=pyproject, files={"_backend/noisy_backend.py": NOISY_BACKEND}
    )


def test_two_bootstraps_of_one_tree_give_byte_identical_wheels(
    ws: Workspace, shared: Shared
) -> None:
    # The shared tree once more, into another directory, one build at a time.
    again = ws.tmp / "again"
    ws.bootstrap_tree(again, index_url=shared.index.url, patches=shared.patches, jobs=1)
    assert wheel_differences(shared.out / "wheels", again / "wheels") == []

    # A backend that varies everything but the contents, twice.
    ws.index.add(noisy_project(), ws.tmp / "index-files")
    first, second = ws.tmp / "first", ws.tmp / "second"
    for out in (first, second):
        run = ws.bootstrap(out, "noisy")
        assert run.code == 0, run.err
    assert wheel_names(first / "wheels") == ["noisy-1.0-py3-none-any.whl"]
    assert wheel_differences(first / "wheels", second / "wheels") == []

    noisy = first / "wheels" / "noisy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(noisy) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [
            "noisy/__init__.py",
            "noisy/data.txt",
            "noisy/run.sh",
            "noisy-1.0.dist-info/METADATA",
            "noisy-1.0.dist-info/WHEEL",
            "noisy-1.0.dist-info/sboms/bootstrapper.cdx.json",  # PEP 770
            "noisy-1.0.dist-info/RECORD",
        ]
        assert {i.date_time for i in infos} == {EPOCH_DATE}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert modes.pop("noisy/run.sh") == 0o100755
        assert set(modes.values()) == {0o100644}
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
        assert zf.testzip() is None


Entry = tuple[str, bytes, int, tuple[int, int, int, int, int, int]]


def write_zip(path: Path, entries: list[Entry], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode, date in entries:
            info = zipfile.ZipInfo(name, date)
            info.external_attr = mode << 16
            info.create_system = 3
            info.compress_type = compression
            zf.writestr(info, data)
    return path


RECORD = (
    b"pkg/a.py,sha256=x,1\npkg/b.py,sha256=y,1\nbin/run,sha256=z,1\npkg-1.0.dist-info/RECORD,,\n"
)
MESSY: list[Entry] = [
    ("pkg-1.0.dist-info/RECORD", RECORD, 0o100600, (2001, 2, 3, 4, 5, 6)),
    ("pkg-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n", 0o100664, (2020, 1, 1, 0, 0, 0)),
    ("pkg/", b"", 0o040755, (2022, 1, 1, 0, 0, 0)),
    ("pkg/b.py", b"B = 2\n", 0o100600, (1999, 12, 31, 23, 59, 58)),
    ("pkg-1.0.dist-info/METADATA", b"Name: pkg\n", 0o100666, (2010, 6, 6, 6, 6, 6)),
    ("bin/run", b"#!/bin/sh\n", 0o100700, (2030, 1, 1, 0, 0, 0)),
    ("pkg/a.py", b"A = 1\n", 0o100644, (1980, 1, 1, 0, 0, 0)),
]


def contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def test_normalize_wheel_fixes_order_timestamps_and_permissions(tmp_path: Path) -> None:
    wheel = write_zip(tmp_path / "pkg-1.0-py3-none-any.whl", MESSY)
    before = contents(wheel)
    normalize_wheel(wheel, SDIST_MTIME)
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        assert zf.testzip() is None
    assert [i.filename for i in infos] == [
        "bin/run",
        "pkg/a.py",
        "pkg/b.py",
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/WHEEL",
        "pkg-1.0.dist-info/RECORD",
    ]
    assert {i.date_time for i in infos} == {EPOCH_DATE}
    assert {i.filename: i.external_attr >> 16 for i in infos} == {
        "bin/run": 0o100755,
        "pkg/a.py": 0o100644,
        "pkg/b.py": 0o100644,
        "pkg-1.0.dist-info/METADATA": 0o100644,
        "pkg-1.0.dist-info/WHEEL": 0o100644,
        "pkg-1.0.dist-info/RECORD": 0o100644,
    }
    assert contents(wheel) == before  # contents, and so RECORD, are unchanged
    assert contents(wheel)["pkg-1.0.dist-info/RECORD"] == RECORD

    # Whatever the input order, times, modes or compression: the same bytes. Idempotent.
    other = write_zip(
        tmp_path / "other.whl",
        [(n, d, m, (2024, 5, 5, 5, 5, 6)) for n, d, m in reversed([e[:3] for e in MESSY])],
        compression=zipfile.ZIP_DEFLATED,
    )
    normalize_wheel(other, SDIST_MTIME)
    assert other.read_bytes() == wheel.read_bytes()
    once = wheel.read_bytes()
    normalize_wheel(wheel, SDIST_MTIME)
    assert wheel.read_bytes() == once

    # An epoch before 1980 (which a zip cannot hold) becomes 1980-01-01.
    early = write_zip(tmp_path / "early.whl", MESSY)
    normalize_wheel(early, 0)
    with zipfile.ZipFile(early) as zf:
        assert {i.date_time for i in zf.infolist()} == {time.gmtime(ZIP_EPOCH)[:6]}


def test_first_difference_names_what_differs(tmp_path: Path) -> None:
    clean: list[Entry] = [
        ("pkg/a.py", b"A = 1\n", 0o100644, (2020, 1, 1, 0, 0, 0)),
        ("pkg/b.py", b"B = 2\n", 0o100644, (2020, 1, 1, 0, 0, 0)),
        ("pkg-1.0.dist-info/RECORD", RECORD, 0o100644, (2020, 1, 1, 0, 0, 0)),
    ]
    base = write_zip(tmp_path / "base.whl", clean)
    same = write_zip(tmp_path / "same.whl", clean)
    assert first_difference(base, same) is None

    changed = write_zip(
        tmp_path / "changed.whl",
        [clean[0], ("pkg/b.py", b"B = 3\n", 0o100644, clean[1][3]), clean[2]],
    )
    assert first_difference(base, changed) == "pkg/b.py: contents differ"
    extra = write_zip(tmp_path / "extra.whl", [*clean, ("pkg/c.py", b"", 0o100644, clean[0][3])])
    assert first_difference(base, extra) == f"pkg/c.py: only in {extra}"
    assert first_difference(extra, base) == f"pkg/c.py: only in {extra}"
    mode = write_zip(
        tmp_path / "mode.whl", [("pkg/a.py", b"A = 1\n", 0o100755, clean[0][3]), *clean[1:]]
    )
    assert first_difference(base, mode) == "pkg/a.py: permissions differ"
    when = write_zip(
        tmp_path / "when.whl", [clean[0], (*clean[1][:3], (2021, 1, 1, 0, 0, 0)), clean[2]]
    )
    assert first_difference(base, when) == "pkg/b.py: timestamps differ"
    order = write_zip(tmp_path / "order.whl", [clean[1], clean[0], clean[2]])
    assert first_difference(base, order) == "the same files in a different order"
    packed = write_zip(tmp_path / "packed.whl", clean, compression=zipfile.ZIP_DEFLATED)
    assert (
        first_difference(base, packed) == "the archives differ outside their files (zip metadata)"
    )
