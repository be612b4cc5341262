"""Issue 9, part 1: one build unit, finished one way, by every command.

``bootstrap``, ``build`` and ``build-sequence`` honour the same settings and plugins,
clean up the same way, and write the same build records; a unit runs in another process
from nothing but its files.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.candidates import Release
from bootstrapper.cli import main
from bootstrapper.index import DistFile
from bootstrapper.isolation import isolation_prefix
from bootstrapper.progress import NullReporter
from bootstrapper.records import BuildRecord
from bootstrapper.sequence import plan_from_record, read_build_order
from bootstrapper.single_build import (
    BuildConfig,
    BuildUnit,
    Destination,
    EnvInput,
    FileRef,
    UnitOutput,
    finish,
    run_unit,
)
from bootstrapper.sources import archived_source
from bootstrapper.store import WheelStore
from bootstrapper.wheelfile import read_wheel_metadata

from .conftest import helper_project
from .support import FixtureIndex, IndexFile, Project, backend_package, serve_directory
from .test_offline_rebuild import isolation_args
from .test_prebuilt_source_plugins import PLUGIN, install_plugin, settings_dirs, upstream_wheel


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sequence(
    capsys: pytest.CaptureFixture[str], out: Path, dest: Path, *extra: str
) -> tuple[int, str, str]:
    return cli(
        capsys, "build-sequence", out / "build-order.json", "--output-dir", dest,
        *extra, *isolation_args(),
    )  # fmt: skip


def build(
    capsys: pytest.CaptureFixture[str],
    name: str,
    version: str,
    sources: str | Path,
    wheels: Path,
    dest: Path,
    *extra: str,
) -> tuple[int, str, str]:
    return cli(
        capsys, "build", name, version, "--sources", sources, "--wheels", wheels,
        "--output-dir", dest, *extra, *isolation_args(),
    )  # fmt: skip


def only_wheel(directory: Path, name: str) -> Path:
    [wheel] = directory.glob(f"{name}-*.whl")
    return wheel


def record_of(wheel: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wheel.with_name(wheel.name + ".build.json").read_text())
    return data


def test_build_and_build_sequence_run_the_plugins(
    tmp_path: Path,
    index: FixtureIndex,
    bootstrap: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    install_plugin(tmp_path, monkeypatch, "lib", PLUGIN, "preparing_plugin")
    index.add_all([Project("lib", "1.0"), Project("libthree", "0.5")], tmp_path / "sdists")
    dirs = settings_dirs(tmp_path, {})
    run = bootstrap("lib", *dirs)
    assert run.code == 0, run.stderr
    original = only_wheel(run.output / "wheels", "lib")
    assert b"Requires-Dist: libthree" in read_wheel_metadata(original)

    code, _, err = sequence(capsys, run.output, tmp_path / "again")
    assert code == 0, err
    assert (tmp_path / "again" / "wheels" / original.name).read_bytes() == original.read_bytes()
    assert "plugin: preparing lib" in (tmp_path / "again" / "logs" / "lib-1.0.log").read_text()

    job = tmp_path / "job"
    code, out, err = build(
        capsys, "lib", "1.0", run.output / "sdists", run.output / "wheels", job, *dirs
    )
    assert code == 0, err
    assert Path(out.strip()).read_bytes() == original.read_bytes()
    assert "plugin: preparing lib" in (job / "logs" / "lib-1.0.log").read_text()


def test_build_takes_the_source_setting_and_build_sequence_rebuilds_from_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The index's sdist is broken; the settings point at a good archive elsewhere.
    index.add(Project("lib", "1.0", tool={"fail": "the index sdist is broken"}), tmp_path / "bad")
    index.add(Project("libthree", "0.5"), tmp_path / "sdists")
    mirror = tmp_path / "mirror"
    Project("lib", "1.0", dependencies=["libthree"]).sdist(mirror)
    good = hashlib.sha256((mirror / "lib-1.0.tar.gz").read_bytes()).hexdigest()
    (tmp_path / "no-wheels").mkdir()
    for base in serve_directory(mirror):
        dirs = settings_dirs(
            tmp_path, {"lib": f'source: {{url: "{base}/lib-${{version}}.tar.gz"}}\n'}
        )
        job = tmp_path / "job"
        code, out, err = build(capsys, "lib", "1.0", index.url, tmp_path / "no-wheels", job, *dirs)
        assert code == 0, err
        built = Path(out.strip())
        assert record_of(built)["sdist_sha256"] == good
        assert (job / "sdists" / "lib-1.0.tar.gz").read_bytes() == (
            mirror / "lib-1.0.tar.gz"
        ).read_bytes()
        run = bootstrap("lib", *dirs)
    assert run.code == 0, run.stderr
    original = only_wheel(run.output / "wheels", "lib")
    assert built.read_bytes() == original.read_bytes()

    # The archive keeps the source the setting named: a rebuild needs nothing else.
    index.stop()
    code, _, err = sequence(capsys, run.output, tmp_path / "again")
    assert code == 0, err
    assert (tmp_path / "again" / "wheels" / original.name).read_bytes() == original.read_bytes()


def test_build_takes_the_upstream_wheel_of_a_prebuilt_package(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = upstream_wheel(tmp_path, index, bootstrap, Project("binonly", "2.0"))
    index.projects.pop("binonly")
    index.add_file(
        "binonly", IndexFile(wheel.name, wheel.read_bytes(), metadata=read_wheel_metadata(wheel))
    )
    dirs = settings_dirs(
        tmp_path, {"binonly": 'prebuilt: true\nchangelog: {"2.0": ["taken as is"]}\n'}
    )
    (tmp_path / "no-wheels").mkdir()
    job = tmp_path / "job"
    code, out, err = build(capsys, "binonly", "2.0", index.url, tmp_path / "no-wheels", job, *dirs)
    assert code == 0, err
    built = Path(out.strip())
    assert built.name == "binonly-2.0-1-py3-none-any.whl"
    assert record_of(built)["sdist"] == wheel.name
    assert record_of(built)["build_backend"] == "(prebuilt upstream wheel)"
    assert (job / "sdists" / "prebuilt" / wheel.name).read_bytes() == wheel.read_bytes()

    # A bootstrap's DIR/sdists serves as the source of the upstream wheel too.
    run = bootstrap("binonly", *dirs)
    assert run.code == 0, run.stderr
    again = tmp_path / "again"
    code, out, err = build(
        capsys, "binonly", "2.0", run.output / "sdists", tmp_path / "no-wheels", again, *dirs
    )
    assert code == 0, err
    assert Path(out.strip()).read_bytes() == built.read_bytes()
    assert built.read_bytes() == (run.output / "wheels" / built.name).read_bytes()


@pytest.fixture
def twice(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> Path:
    """A bootstrap of a package whose backend asks again for a declared requirement."""
    index.add_all(
        [
            backend_package(),
            helper_project(),
            Project("dyn-req", "1.0", tool={"modules": ["dyn_req"]}, files={"src/dyn_req.py": ""}),
            Project(
                "twice",
                "1.0",
                build_requires=["fixture-backend"],
                backend_requires=["fixture-backend", "dyn-req"],
                tool={"import": ["dyn_req"]},
            ),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("twice", *settings_dirs(tmp_path, {}))
    assert run.code == 0, run.stderr
    output: Path = run.output
    return output


def test_every_command_records_what_the_backend_asked_for_alike(
    tmp_path: Path, twice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = record_of(only_wheel(twice / "wheels", "twice"))
    assert original["backend_requires"] == ["fixture-backend", "dyn-req"]
    [entry] = [
        e for e in json.loads((twice / "build-order.json").read_text()) if e["name"] == "twice"
    ]
    assert entry["backend_requires"] == original["backend_requires"]

    code, out, err = build(
        capsys, "twice", "1.0", twice / "sdists", twice / "wheels", tmp_path / "job",
        *settings_dirs(tmp_path, {}),
    )  # fmt: skip
    assert code == 0, err
    assert record_of(Path(out.strip()))["backend_requires"] == original["backend_requires"]

    code, _, err = sequence(capsys, twice, tmp_path / "again")
    assert code == 0, err
    rebuilt = record_of(only_wheel(tmp_path / "again" / "wheels", "twice"))
    assert rebuilt["backend_requires"] == original["backend_requires"]


def test_build_and_build_sequence_keep_the_work_only_when_asked(
    tmp_path: Path, twice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def kept(output: Path) -> bool:
        return (output / ".work" / "src" / "twice-1.0").is_dir()

    for extra, expected in (((), False), (("--keep-work",), True)):
        dest = tmp_path / f"sequence-{expected}"
        code, _, err = sequence(capsys, twice, dest, *extra)
        assert code == 0, err
        assert kept(dest) is expected
        dest = tmp_path / f"job-{expected}"
        code, _, err = build(
            capsys, "twice", "1.0", twice / "sdists", twice / "wheels", dest,
            *settings_dirs(tmp_path, {}), *extra,
        )  # fmt: skip
        assert code == 0, err
        assert kept(dest) is expected


def test_build_keeps_a_valid_wheel_it_built_before(
    tmp_path: Path, twice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("twice", "1.0", twice / "sdists", twice / "wheels", tmp_path / "job")
    code, out, err = build(capsys, *args, *settings_dirs(tmp_path, {}))
    assert code == 0 and err.startswith("built "), err
    code, again, err = build(capsys, *args, *settings_dirs(tmp_path, {}))
    assert code == 0 and err.startswith("kept "), err
    assert again == out


# -- a unit runs elsewhere from its files alone ------------------------------------------


def _run_elsewhere(
    unit_bytes: bytes, config: BuildConfig, files: dict[str, tuple[str, bytes]], place: str
) -> tuple[str, bytes, str, bytes]:
    """In another process, in a directory of its own: lay out the unit's files, run it,
    send back the wheel, its record and its log."""
    here = Path(place)
    unit: BuildUnit = pickle.loads(unit_bytes)
    paths = {}
    for role, (name, data) in files.items():
        path = here / "in" / hashlib.sha256(data).hexdigest() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[role] = path
    output = run_unit(unit.relocated(paths), config.builder(here / "work", here / "logs"))
    wheel = output.wheel
    return wheel.name, wheel.read_bytes(), output.record.to_json(), output.log.read_bytes()


def test_a_unit_runs_in_another_process_from_its_files(tmp_path: Path, twice: Path) -> None:
    [entry] = [e for e in read_build_order(twice / "build-order.json") if e.name == "twice"]
    source = archived_source(twice / "sdists", entry.sdist)
    unit = BuildUnit(
        release=Release(entry.name, entry.version, DistFile(entry.sdist, source.as_uri())),
        plan=plan_from_record(entry, twice / "patches"),
        source=FileRef(source, entry.sdist_sha256),
        build_env=tuple(EnvInput(w, twice / "wheels" / w.filename) for w in entry.build_env),
        plan_json=entry.plan,
    )
    files = {
        role: (ref.path.name, ref.path.read_bytes()) for role, ref in unit.input_files().items()
    }
    config = BuildConfig(tuple(isolation_prefix_or_nothing()))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        name, data, record_json, log = pool.submit(
            _run_elsewhere, pickle.dumps(unit), config, files, str(tmp_path / "elsewhere")
        ).result()
    # Back on this side: the files only, checked and stored by the one finishing step.
    landed = tmp_path / "landed"
    landed.mkdir()
    (landed / name).write_bytes(data)
    (landed / "twice-1.0.log").write_bytes(log)
    output = UnitOutput(landed / name, BuildRecord.from_json(record_json), landed / "twice-1.0.log")
    store = WheelStore(tmp_path / "store", tmp_path / "store")
    built = finish(unit, output, Destination(store, lambda release: None, False, NullReporter()))
    assert built.path.read_bytes() == (twice / "wheels" / entry.wheel).read_bytes()
    assert built.record.build_env == entry.build_env
    assert built.record.sdist_sha256 == entry.sdist_sha256
    # A wheel that changed on the way is refused.
    (landed / name).write_bytes(data + b"x")
    with pytest.raises(Exception, match="does not match the sha256 of its build record"):
        finish(unit, output, Destination(store, lambda release: None, False, NullReporter()))
    shutil.rmtree(tmp_path / "elsewhere", ignore_errors=True)


def isolation_prefix_or_nothing() -> list[str]:
    return list(isolation_prefix() or [])
