"""One run per output directory: a second run is refused at once, a dead holder's lock is
gone, read-only commands take no lock, and an unusable output directory is a user error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main
from bootstrapper.outputlock import locked_output_dir, unusable_output_dir

from .conftest import ROOT, clean_env
from .support import FixtureIndex, Project, wait_for

HOLDER = """
import sys, time
from pathlib import Path
from bootstrapper.outputlock import locked_output_dir, unusable_output_dir
with locked_output_dir(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


@contextmanager
def holding(output_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``output_dir``."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(output_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    with holding(tmp_path / "out") as process:
        yield process


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_bootstrap_is_refused_while_another_process_holds_the_dir(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # The index is never asked: the lock comes first.
    code, err = run_cli(
        capsys, "bootstrap", "--index-url", "http://127.0.0.1:9/", "--output-dir", str(out), "x"
    )
    assert code == 1
    assert f"{out} is in use by process {holder.pid}" in err
    assert "Traceback" not in err
    assert not (out / "logs").exists()  # nothing of the holder's was touched


def test_build_and_build_sequence_are_refused_too(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    order = tmp_path / "build-order.json"
    order.write_text("[]\n")
    code, err = run_cli(capsys, "build-sequence", str(order), "--output-dir", str(out))
    assert code == 1 and f"{out} is in use by process {holder.pid}" in err
    code, err = run_cli(
        capsys,
        "build",
        "x",
        "1.0",
        "--sources",
        str(tmp_path),
        "--wheels",
        str(tmp_path),
        "--output-dir",
        str(out),
        "--no-network-isolation",
    )
    assert code == 1 and f"{out} is in use by process {holder.pid}" in err


def test_verify_reads_a_locked_dir(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add(Project("quick", pkg_info_version="2.2"), tmp_path)
    out = tmp_path / "out"
    assert bootstrap("quick", output=out).code == 0
    with holding(out):
        code, err = run_cli(
            capsys, "verify", str(out / "build-order.json"), "--no-network-isolation"
        )
    assert code == 0, err


def test_a_killed_holder_releases_the_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with locked_output_dir(tmp_path / "out"):
        assert (tmp_path / "out" / ".work" / "lock").read_text() == f"{os.getpid()}\n"


def test_a_real_concurrent_bootstrap(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_all([Project("slow", pkg_info_version="2.2", tool={"sleep": 60})], tmp_path)
    out = tmp_path / "out"
    first = subprocess.Popen(
        [sys.executable, "-m", "bootstrapper", "bootstrap", "--index-url", index.url,
         "--output-dir", str(out), "--jobs", "1", "slow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
        cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (out / "logs" / "slow-1.0.log").exists())
        second = bootstrap("slow", output=out)
        assert second.code == 1
        assert f"{out} is in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        first.kill()
        first.wait()
        # Killed mid-build, its backend still sleeping: the directory is free again
        # (the lock is not inherited by the build's processes).
        with locked_output_dir(out):
            pass
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_the_message_for_a_dir_that_cannot_be_written(tmp_path: Path) -> None:
    error = unusable_output_dir(tmp_path, PermissionError(13, "Permission denied"))
    assert error.message == (
        f"cannot use {tmp_path} as the output directory: cannot write in it (Permission "
        "denied); give --output-dir a directory you can write to (or a path where one can "
        "be made)"
    )


@pytest.mark.parametrize("kind", ["file", "file-parent", "read-only"])
def test_an_unusable_output_dir_is_a_usage_error(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "file":
        out = tmp_path / "out"
        out.write_text("")
        expected = f"{out} is a file, not a directory"
    elif kind == "file-parent":
        (tmp_path / "plain").write_text("")
        out = tmp_path / "plain" / "out"
        expected = f"{tmp_path / 'plain'} is a file, not a directory"
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        out = tmp_path / "ro"
        out.mkdir(mode=0o555)
        expected = "cannot write in it"
    code, err = run_cli(
        capsys, "bootstrap", "--index-url", "http://127.0.0.1:9/", "--output-dir", str(out), "x"
    )
    assert code == 2, err
    assert f"cannot use {out} as the output directory: {expected}" in err
    assert "give --output-dir a directory you can write to" in err
    assert "Traceback" not in err
