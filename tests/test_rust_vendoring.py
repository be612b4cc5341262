"""Rust packages build from source offline: crates are vendored (through the user's cargo
registry mirror) before the isolated build, and archived in a vendored sdist."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.isolation import isolation_prefix
from bootstrapper.records import read_record
from bootstrapper.reproducible import source_date_epoch
from bootstrapper.vendoring import (
    cargo_config,
    cargo_reason,
    find_manifests,
    read_marker,
    registry_unreachable,
    vendor_command,
    write_vendored_sdist,
)

from .cargo_registry import (
    CargoRegistry,
    Crate,
    closed_port,
    mirror_config,
    rust_project,
    setuptools_rust_stand_in,
)
from .conftest import Run, pip_install
from .support import FixtureIndex, Project

Bootstrap = Callable[..., Run]

# What cargo 1.95 prints when its registry mirror is down (abridged).
CONNECTION_REFUSED = """\
    Updating `local` index
error: failed to sync

Caused by:
  failed to load lockfile for /src

Caused by:
  download of config.json failed

Caused by:
  failed to download from `http://127.0.0.1:38851/index/config.json`

Caused by:
  [7] Could not connect to server (Failed to connect to 127.0.0.1 port 38851 after 0 ms)
"""
NO_DNS = """\
    Updating crates.io index
warning: spurious network error (3 tries remaining): [6] Could not resolve hostname
error: failed to sync

Caused by:
  failed to download from `https://index.crates.io/config.json`

Caused by:
  [6] Could not resolve hostname (Could not resolve host: index.crates.io)
"""
BAD_MANIFEST = """\
error: failed to parse manifest at `/src/Cargo.toml`

Caused by:
  missing field `name`
"""


# -- pure parts ------------------------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"setup.py": ""}, []),
        ({"Cargo.toml": "[package]\n"}, ["Cargo.toml"]),
        ({"src/rust/Cargo.toml": "[package]\n"}, ["src/rust/Cargo.toml"]),
        (  # a workspace vendors for its members; they are not listed again
            {
                "Cargo.toml": "[workspace]\nmembers = ['a', 'b']\n",
                "a/Cargo.toml": "[package]\n",
                "b/Cargo.toml": "[package]\n",
            },
            ["Cargo.toml"],
        ),
        (  # two independent crates: one cargo vendor with -s
            {"rust/one/Cargo.toml": "[package]\n", "rust/two/Cargo.toml": "[package]\n"},
            ["rust/one/Cargo.toml", "rust/two/Cargo.toml"],
        ),
        (  # build output and vendored crates are never searched
            {
                "Cargo.toml": "[package]\n",
                "target/debug/build/x/Cargo.toml": "",
                "vendor/dep/Cargo.toml": "",
            },
            ["Cargo.toml"],
        ),
        (  # numpy: meson's own Rust test cases come with its vendored copy
            {"vendored-meson/meson/test cases/rust/22/Cargo.toml": "[package]\n"},
            [],
        ),
        (  # tests and examples are not what the package builds
            {"Cargo.toml": "[package]\n", "tests/fixture/Cargo.toml": "[package]\n"},
            ["Cargo.toml"],
        ),
        (  # where some crates ship their Cargo.lock, the unlocked ones are not inputs
            {
                "rust/Cargo.toml": "[package]\n",
                "rust/Cargo.lock": "",
                "third_party/tool/Cargo.toml": "[package]\n",
            },
            ["rust/Cargo.toml"],
        ),
    ],
)
def test_find_manifests(tmp_path: Path, files: dict[str, str], expected: list[str]) -> None:
    assert find_manifests(write_tree(tmp_path, files)) == expected


def test_vendor_command_is_one_cargo_vendor_for_every_manifest() -> None:
    assert vendor_command("cargo", ["a/Cargo.toml", "b/Cargo.toml", "c/Cargo.toml"]) == [
        "cargo",
        "vendor",
        "--respect-source-config",
        "--manifest-path",
        "a/Cargo.toml",
        "--sync",
        "b/Cargo.toml",
        "--sync",
        "c/Cargo.toml",
        "vendor",
    ]


@pytest.mark.parametrize(
    ("output", "unreachable", "reason"),
    [
        (
            CONNECTION_REFUSED,
            True,
            "[7] Could not connect to server (Failed to connect to 127.0.0.1 port 38851 after "
            "0 ms)",
        ),
        (NO_DNS, True, "[6] Could not resolve hostname (Could not resolve host: index.crates.io)"),
        (BAD_MANIFEST, False, "missing field `name`"),
        ("error: something odd\n", False, "something odd"),
        ("", False, "no output"),
    ],
)
def test_cargo_failures_are_classified(output: str, unreachable: bool, reason: str) -> None:
    assert registry_unreachable(output) is unreachable
    assert cargo_reason(output) == reason


VENDOR_OUTPUT = (
    '[source.crates-io]\nreplace-with = "vendored-sources"\n\n'
    '[source.vendored-sources]\ndirectory = "vendor"\n'
)


def test_cargo_config_replaces_sources_offline_and_keeps_the_projects_own(
    tmp_path: Path,
) -> None:
    import tomllib

    marker = {"upstream": "x-1.0.tar.gz", "upstream_sha256": "ab" * 32, "manifests": ["C"]}
    plain = tomllib.loads(cargo_config(VENDOR_OUTPUT, None, marker))
    assert plain["source"]["crates-io"]["replace-with"] == "vendored-sources"
    assert plain["net"]["offline"] is True
    own = '[build]\nrustflags = ["-C", "target-cpu=native"]\n\n[net]\ngit-fetch-with-cli = true\n'
    merged = cargo_config(VENDOR_OUTPUT, own, marker)
    parsed = tomllib.loads(merged)
    assert parsed["build"]["rustflags"] == ["-C", "target-cpu=native"]
    assert parsed["source"]["vendored-sources"]["directory"] == "vendor"
    assert "offline" not in parsed["net"]  # CARGO_NET_OFFLINE keeps the build offline

    root = write_tree(tmp_path, {".cargo/config.toml": merged, "vendor/dep/Cargo.toml": ""})
    (root / "vendor/dep/Cargo.toml").write_text('[package]\nname = "dep"\nversion = "0.3.1"\n')
    found = read_marker(root)
    assert found is not None
    assert (found.upstream, found.manifests, found.crates) == (
        "x-1.0.tar.gz",
        ("C",),
        ("dep 0.3.1",),
    )
    # Someone else's configuration, or ours without the crates, is not "vendored".
    (root / ".cargo/config.toml").write_text(own)
    assert read_marker(root) is None


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    return extracted.read() if extracted is not None else b""


def test_vendored_sdist_is_deterministic_and_keeps_the_upstream_members(
    tmp_path: Path,
) -> None:
    sdist = Project("pkg", files={"src/rust/Cargo.toml": "[package]\n"}).sdist(tmp_path / "up")
    with tarfile.open(sdist) as upstream:
        upstream_members = {m.name: (m.mtime, member_bytes(upstream, m)) for m in upstream}
    root = write_tree(
        tmp_path / "tree" / "pkg-1.0",
        {
            "vendor/dep/Cargo.toml": "[package]\n",
            "vendor/dep/src/lib.rs": "",
            "vendor/dep/.cargo-checksum.json": "{}",
            ".cargo/config.toml": "# ours\n",
        },
    )
    epoch = source_date_epoch(sdist)
    first = write_vendored_sdist(sdist, root, tmp_path / "a" / sdist.name, epoch)
    second = write_vendored_sdist(sdist, root, tmp_path / "b" / sdist.name, epoch)
    assert first.path.name == sdist.name
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.path.read_bytes()[4:8] == b"\0\0\0\0"  # no gzip timestamp
    with tarfile.open(first.path) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert set(upstream_members) <= set(names)
        assert {
            "pkg-1.0/vendor/dep/src/lib.rs",
            "pkg-1.0/vendor/dep/.cargo-checksum.json",
            "pkg-1.0/.cargo/config.toml",
        } <= set(names)
        for member in members:
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            if member.name in upstream_members:
                assert (member.mtime, member_bytes(tar, member)) == upstream_members[member.name]
            else:
                assert member.mtime == epoch
    # The same SOURCE_DATE_EPOCH as the upstream archive: rebuilds from it are the same.
    assert source_date_epoch(first.path) == epoch


# -- real builds -----------------------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[CargoRegistry]:
    server = CargoRegistry()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tiny_crate(registry: CargoRegistry) -> Crate:
    return registry.add_crate("tinycrate", "0.1.0", "pub fn answer() -> i32 { 42 }\n")


def use_cargo_home(monkeypatch: pytest.MonkeyPatch, path: Path, config: str | None) -> Path:
    """A fresh CARGO_HOME (never the real ~/.cargo), with the user's ``config.toml``."""
    path.mkdir(parents=True)
    if config is not None:
        (path / "config.toml").write_text(config)
    monkeypatch.setenv("CARGO_HOME", str(path))
    # Fail in milliseconds, not after cargo's retries with backoff.
    monkeypatch.setenv("CARGO_NET_RETRY", "0")
    return path


@pytest.fixture
def mirrored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: CargoRegistry) -> Path:
    """The user's cargo configuration sends crates.io to the local registry."""
    return use_cargo_home(monkeypatch, tmp_path / "cargo-home", mirror_config(registry.index_url))


def call_answer(output: Path, tmp_path: Path, name: str = "rustext") -> str:
    venv = tmp_path / f"venv-{output.name}"
    installed = pip_install(output, venv, name)
    assert installed.returncode == 0, installed.stderr
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import {name}; print({name}.answer())"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_rust_package_builds_offline_from_vendored_crates(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    registry: CargoRegistry,
    tiny_crate: Crate,
    mirrored: Path,
) -> None:
    upstream = index.add(rust_project(tiny_crate), tmp_path / "dists")
    run = bootstrap("rustext")
    assert run.code == 0, run.stderr
    assert call_answer(run.output, tmp_path) == "42"
    # The crate came through the user's mirror.
    assert "/crates/tinycrate/0.1.0/download" in registry.requests

    archived = run.output / "sdists" / upstream.name
    archived_sha256 = hashlib.sha256(archived.read_bytes()).hexdigest()
    upstream_sha256 = hashlib.sha256(upstream.read_bytes()).hexdigest()
    assert archived_sha256 != upstream_sha256
    with tarfile.open(archived) as tar:
        names = set(tar.getnames())
        config = tar.extractfile("rustext-1.0/.cargo/config.toml")
        assert config is not None
        assert b'replace-with = "vendored-sources"' in config.read()
    assert {"rustext-1.0/vendor/tinycrate/src/lib.rs", "rustext-1.0/pyproject.toml"} <= names
    assert (
        f"{upstream.name}#sha256={archived_sha256}"
        in (run.output / "sdists" / "rustext" / "index.html").read_text()
    )

    [wheel] = (run.output / "wheels").glob("rustext-1.0-*.whl")
    record = read_record(wheel.with_name(wheel.name + ".build.json"))
    assert record is not None
    assert (record.sdist, record.sdist_sha256) == (upstream.name, archived_sha256)
    assert record.upstream_sha256 == upstream_sha256
    assert record.vendored["crates"] == ["tinycrate 0.1.0"]
    assert record.vendored["manifests"] == ["src/rust/Cargo.toml"]
    assert record.environment["CARGO_NET_OFFLINE"] == "true"
    [entry] = json.loads((run.output / "build-order.json").read_text())
    assert (entry["sdist_sha256"], entry["upstream_sha256"]) == (archived_sha256, upstream_sha256)
    log = (run.output / "logs" / "rustext-1.0.log").read_text()
    assert "cargo vendor --respect-source-config --manifest-path src/rust/Cargo.toml" in log
    assert "Compiling tinycrate v0.1.0" in log


def test_rerun_and_offline_rebuilds_need_no_registry(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    registry: CargoRegistry,
    tiny_crate: Crate,
    mirrored: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index.add(rust_project(tiny_crate), tmp_path / "dists")
    first = bootstrap("rustext")
    assert first.code == 0, first.stderr
    [wheel] = (first.output / "wheels").glob("rustext-1.0-*.whl")
    record_path = wheel.with_name(wheel.name + ".build.json")
    record_before = record_path.read_text()

    # The registry is gone, and the user's mirror points at it: a fresh CARGO_HOME with
    # an empty cache, so only the vendored crates can make the build work.
    registry.stop()
    use_cargo_home(monkeypatch, tmp_path / "cargo-home-2", mirror_config(registry.index_url))
    requests = len(registry.requests)

    again = bootstrap("rustext")
    assert again.code == 0, again.stderr
    assert record_path.read_text() == record_before  # reused, not rebuilt nor re-vendored
    assert len(registry.requests) == requests

    isolated = isolation_prefix() is not None
    rebuilt = tmp_path / "rebuilt"
    code = main(
        [
            "build-sequence",
            str(first.output / "build-order.json"),
            "--output-dir",
            str(rebuilt),
            *([] if isolated else ["--no-network-isolation"]),
        ]
    )
    assert code == 0, capsys.readouterr().err
    log = (rebuilt / "logs" / "rustext-1.0.log").read_text()
    assert "Rust crates vendored already (1 crates, from rustext-1.0.tar.gz)" in log
    assert "cargo vendor" not in log
    assert call_answer(rebuilt, tmp_path) == "42"
    [rewheel] = (rebuilt / "wheels").glob("rustext-1.0-*.whl")
    # Same vendored source, same epoch: the extension rebuilds byte for byte.
    assert rewheel.read_bytes() == wheel.read_bytes()
    record = read_record(rewheel.with_name(rewheel.name + ".build.json"))
    assert record is not None and record.vendored["crates"] == ["tinycrate 0.1.0"]
    assert record.upstream_sha256 == json.loads(record_before)["upstream_sha256"]

    # DIR/sdists is a source index pip itself can build from, cut off the network.
    venv = tmp_path / "venv-pip-sdists"
    from_sources = pip_install(
        first.output,
        venv,
        "rustext",
        index="sdists",
        options=("--no-binary", ":all:"),
        prefix=isolation_prefix() or (),
    )
    assert from_sources.returncode == 0, from_sources.stdout + from_sources.stderr
    answer = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rustext; print(rustext.answer())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert answer.stdout.strip() == "42"

    # One package as a job, from the archive: the same, no cargo knowledge needed.
    job = tmp_path / "job"
    code = main(
        [
            "build",
            "rustext",
            "1.0",
            "--sources",
            str(first.output / "sdists"),
            "--wheels",
            str(first.output / "wheels"),
            "--output-dir",
            str(job),
            *([] if isolated else ["--no-network-isolation"]),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert call_answer(job, tmp_path) == "42"
    assert (job / "sdists" / "rustext-1.0.tar.gz").read_bytes() == (
        first.output / "sdists" / "rustext-1.0.tar.gz"
    ).read_bytes()
    assert len(registry.requests) == requests


@pytest.mark.parametrize("mirror", ["closed port", "no mirror"])
def test_unreachable_registry_names_the_ways_out(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    mirror: str,
) -> None:
    crate = CargoRegistry().add_crate("tinycrate", "0.1.0", "pub fn answer() -> i32 { 42 }\n")
    config = (
        mirror_config(f"sparse+http://127.0.0.1:{closed_port()}/index/")
        if mirror == "closed port"
        else None
    )
    use_cargo_home(monkeypatch, tmp_path / "cargo-home", config)
    index.add(setuptools_rust_stand_in(), tmp_path / "dists")
    index.add(rust_project(crate, declared=True), tmp_path / "dists")
    run = bootstrap("rustext")
    assert run.code == 1
    assert (
        "error: rustext: its Rust crates could not be vendored: no cargo registry could be "
        "reached (cargo: " in run.stderr
    )
    assert 'replace-with = "mirror"' in run.stderr
    assert "set `prebuilt: true` in overrides/settings/rustext.yaml" in run.stderr
    assert "full log:" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (run.output / "simple" / "rustext").exists()


def test_missing_cargo_is_said_plainly(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crate = CargoRegistry().add_crate("tinycrate", "0.1.0", "pub fn answer() -> i32 { 42 }\n")
    use_cargo_home(monkeypatch, tmp_path / "cargo-home", None)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    index.add(setuptools_rust_stand_in(), tmp_path / "dists")
    index.add(rust_project(crate, declared=True), tmp_path / "dists")
    run = bootstrap("rustext")
    assert run.code == 1
    assert "rustext: its Rust crates could not be vendored: cargo is not installed" in run.stderr
    assert "src/rust/Cargo.toml" in run.stderr
    assert "Traceback" not in run.stderr


def test_crates_of_a_package_that_names_no_rust_tool_are_vendored_when_possible_only(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """zstandard ships the Cargo.toml of an optional Rust backend: no registry must not
    stop its (C) build; but if the build does fail, the vendoring failure is told."""
    crate = CargoRegistry().add_crate("tinycrate", "0.1.0", "pub fn answer() -> i32 { 42 }\n")
    use_cargo_home(
        monkeypatch,
        tmp_path / "cargo-home",
        mirror_config(f"sparse+http://127.0.0.1:{closed_port()}/index/"),
    )
    index.add(
        Project("cext", files={"Cargo.toml": '[package]\nname = "opt"\nversion = "0.1.0"\n'}),
        tmp_path / "dists",
    )
    index.add(rust_project(crate), tmp_path / "dists")
    built = bootstrap("cext")
    assert built.code == 0, built.stderr
    log = (built.output / "logs" / "cext-1.0.log").read_text()
    assert "note: cext: its Rust crates could not be vendored" in log
    assert "so its build goes on without vendored crates" in log

    failed = bootstrap("rustext", output=tmp_path / "other")
    assert failed.code == 1
    assert "error: rustext: the build backend failed in build_wheel" in failed.stderr
    assert (
        "note: rustext: its Rust crates could not be vendored: no cargo registry could be "
        "reached" in failed.stderr
    )
    assert "set `prebuilt: true` in overrides/settings/rustext.yaml" in failed.stderr
    # (the log's last lines hold the backend's own traceback: that is its log, quoted)
    assert "last lines of the build log:" in failed.stderr


def test_a_projects_own_vendor_directory_is_left_alone(
    tmp_path: Path,
    bootstrap: Bootstrap,
    index: FixtureIndex,
    tiny_crate: Crate,
    mirrored: Path,
) -> None:
    project = rust_project(tiny_crate)
    project.files["vendor/libfoo/foo.c"] = "int foo(void) { return 1; }\n"
    upstream = index.add(project, tmp_path / "dists")
    run = bootstrap("rustext")
    assert run.code == 0, run.stderr
    assert call_answer(run.output, tmp_path) == "42"
    with tarfile.open(run.output / "sdists" / upstream.name) as tar:
        names = set(tar.getnames())
        config = tar.extractfile("rustext-1.0/.cargo/config.toml")
        assert config is not None and b'directory = "cargo-vendor"' in config.read()
    assert {
        "rustext-1.0/vendor/libfoo/foo.c",
        "rustext-1.0/cargo-vendor/tinycrate/src/lib.rs",
    } <= names
    assert not any(name.startswith("rustext-1.0/vendor/tinycrate") for name in names)
