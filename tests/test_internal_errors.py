"""A bug is a paragraph, not a traceback: every command turns an exception no layer
expected into one message that names it and the file holding its traceback (exit 1).

These tests make one internal function raise on purpose: what they test is the CLI's
boundary itself, which must hold whatever the bug behind it is.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bootstrapper.cli import bootstrap_command, main, rebuild_commands, tool_commands

from .conftest import ROOT, clean_env

BUG = "boom at https://user:TOKEN@index.example/simple/\nand a second line"
SHOWN = (
    "error: internal error: RuntimeError: boom at https://index.example/simple/ .... This "
    "is a bug in bootstrapper, not a problem with what you asked for; the full traceback is "
    "in {path}. Please report it to bootstrapper's maintainers with that file and the "
    "command you ran.\n"
)


def bug(*args: object, **kwargs: object) -> None:
    raise RuntimeError(BUG)


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary directory, for this test."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def reported_file(err: str) -> Path:
    found = re.search(r"the full traceback is in (\S+)\. Please report it", err)
    assert found, err
    return Path(found.group(1))


def assert_reported(err: str, out: str, where: Path) -> Path:
    """The paragraph on stderr, the traceback in a file under ``where``; no secret."""
    assert "Traceback" not in err + out and "TOKEN" not in err + out
    path = reported_file(err)
    assert err == SHOWN.format(path=path)
    assert path.parent == where
    text = path.read_text()
    assert "Traceback (most recent call last):" in text
    assert "RuntimeError: boom at https://index.example/simple/\nand a second line" in text
    assert "TOKEN" not in text
    return path


# (command line, module, function made to fail, where the traceback goes: "tmp" or a
# directory under tmp_path)
CASES = [
    (["settings", "check"], tool_commands, "settings_layers", "tmp"),
    (["wheel", "edit", "{path}/w-1.0-py3-none-any.whl", "--post", "1"], tool_commands,
     "edit_wheel", "tmp"),
    (["verify", "{path}/out/build-order.json"], rebuild_commands, "read_build_order", "tmp"),
    (["verify", "{path}/out/build-order.json", "--keep", "{path}/kept"], rebuild_commands,
     "read_build_order", "kept/.work"),
    (["build-sequence", "{path}/out/build-order.json", "--output-dir", "{path}/again"],
     rebuild_commands, "read_build_order", "again/.work"),
    (["build", "x", "1.0", "--sources", "{path}", "--wheels", "{path}", "--output-dir",
      "{path}/built", "--no-network-isolation", "--no-filesystem-isolation", "-q"],
     rebuild_commands, "build_one", "built/.work"),
    (["bootstrap", "x", "--output-dir", "{path}/boot"], bootstrap_command, "requirement_set",
     "boot/.work"),
    (["bootstrap", "x", "--output-dir", "{path}/nowhere"], bootstrap_command,
     "requirement_set", "tmp"),  # no output directory yet: not made for a bug report
]  # fmt: skip


@pytest.mark.parametrize(("argv", "module", "function", "where"), CASES)
def test_every_command_reports_a_bug_in_one_paragraph(
    tmp_path: Path,
    tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    module: object,
    function: str,
    where: str,
) -> None:
    for directory in ("out", "kept", "again", "boot"):
        (tmp_path / directory).mkdir()
    (tmp_path / "w-1.0-py3-none-any.whl").write_bytes(b"")
    monkeypatch.setattr(module, function, bug)
    code = main([arg.format(path=tmp_path) for arg in argv])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    path = assert_reported(captured.err, captured.out, tmp if where == "tmp" else tmp_path / where)
    assert path.name.startswith("bootstrapper-internal-error-" if where == "tmp" else "internal-")
    assert "command: bootstrapper " + argv[0] in path.read_text()
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("verbosity", ["-q", "-v"])
def test_a_bug_during_a_bootstrap_goes_to_its_run_log(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    verbosity: str,
) -> None:
    monkeypatch.setattr(bootstrap_command, "Bootstrapper", bug)
    out = tmp_path / "out"
    index = "https://user:TOKEN@index.example/simple/"
    code = main(
        ["bootstrap", "x", "--index-url", index, "--output-dir", str(out), verbosity,
         "--no-network-isolation", "--no-filesystem-isolation"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    # -v shows the log's lines (without their traceback) before the paragraph.
    err = captured.err[captured.err.index("error: internal error") :]
    path = assert_reported(err, captured.out, out / "logs")
    assert "Traceback" not in captured.err and "TOKEN" not in captured.err
    assert path == out / "logs" / "bootstrap.log"


def test_the_traceback_file_is_named_even_when_the_output_dir_cannot_take_it(
    tmp_path: Path, tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".work").write_text("a file where the private directory should be")
    monkeypatch.setattr(rebuild_commands, "read_build_order", bug)
    code = main(["build-sequence", str(out / "build-order.json"), "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert_reported(captured.err, captured.out, tmp)


def test_an_interrupt_is_still_an_interrupt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tool_commands, "settings_layers", interrupted)
    assert main(["settings", "check"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "internal error" not in err


BROKEN_PROCESS = """
import sys
import bootstrapper.cli.tool_commands as commands
def bug(*args):
    raise ValueError("a bug")
commands.settings_layers = bug
sys.argv = ["bootstrapper", "settings", "check"]
import bootstrapper.__main__  # the console entry, as installed
"""


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    env = clean_env()
    env["TMPDIR"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", BROKEN_PROCESS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stderr.startswith("error: internal error: ValueError: a bug. This is a bug in")
    assert len(run.stderr.splitlines()) == 1
    path = reported_file(run.stderr)
    assert path.parent == tmp_path
    assert "ValueError: a bug" in path.read_text()


def test_a_reader_that_goes_away_is_no_bug(tmp_path: Path) -> None:
    # `bootstrapper settings check torch 2.5.1 | true`: the reader is gone before we write.
    process = subprocess.Popen(
        [sys.executable, "-m", "bootstrapper", "settings", "check", "torch", "2.5.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**clean_env(), "TMPDIR": str(tmp_path)},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 1
    assert err == ""
    assert list(tmp_path.iterdir()) == []
