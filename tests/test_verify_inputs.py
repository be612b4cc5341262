"""``verify`` on what it may be given: an empty build order verifies trivially; a missing,
malformed or incomplete one is a clear message with the right exit status (2 for a
command line naming nothing usable, 1 for a build order that cannot be verified)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main


def verify(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["verify", *(str(a) for a in args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    return code, captured.out, captured.err


def test_a_run_whose_requirements_were_all_filtered_out_verifies_trivially(
    bootstrap: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # No project behind it: the marker is false for every interpreter this runs on.
    run = bootstrap('nothing-here; python_version < "3"')
    assert run.code == 0, run.stderr
    assert "bootstrapped 0 packages for install (0 wheels: 0 built, 0 reused)" in run.stderr
    order = run.output / "build-order.json"
    assert json.loads(order.read_text()) == []
    assert (run.output / "sdists" / "index.html").is_file()

    code, out, err = verify(capsys, order)
    assert code == 0, err
    assert out == f"nothing to verify: {order} lists no packages\n"


def write_order(directory: Path, content: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "build-order.json"
    path.write_text(content)
    return path


ENTRY = {
    "name": "x",
    "version": "1.0",
    "wheel": "x-1.0-py3-none-any.whl",
    "wheel_sha256": "0" * 64,
    "sdist": "x-1.0.tar.gz",
    "sdist_sha256": "0" * 64,
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[{", "is not a build order bootstrapper wrote: JSONDecodeError("),
        ("{}", "is not a build order bootstrapper wrote: TypeError('a JSON dict where a list"),
        ("[1]", "is not a build order bootstrapper wrote: TypeError("),
        ('[{"name": "x"}]', "is not a build order bootstrapper wrote: KeyError('version')"),
    ],
)
def test_a_malformed_build_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    order = write_order(tmp_path / "out", content)
    code, out, err = verify(capsys, order)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {order} {expected}")


@pytest.mark.parametrize("given", ["missing/build-order.json", "."])
def test_a_build_order_that_cannot_be_read_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    code, _, err = verify(capsys, tmp_path / given)
    assert code == 2
    assert err.startswith(f"bootstrapper: error: cannot read {(tmp_path / given).absolute()}: ")


def test_a_build_order_without_its_wheels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = write_order(tmp_path / "out", json.dumps([ENTRY]))
    code, out, err = verify(capsys, order)
    assert (code, out) == (1, "")
    assert err == (
        f"error: cannot verify {order}: there is no {tmp_path / 'out' / 'wheels'} with the "
        "wheels to compare the rebuilds with; give the build-order.json of a complete "
        "bootstrap output directory\n"
    )


def test_a_build_order_missing_some_wheels_fails_before_rebuilding_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [{**ENTRY, "name": f"p{i}", "wheel": f"p{i}-1.0-py3-none-any.whl"} for i in range(7)]
    order = write_order(tmp_path / "out", json.dumps(entries))
    (tmp_path / "out" / "wheels").mkdir()
    (tmp_path / "out" / "wheels" / "p0-1.0-py3-none-any.whl").write_bytes(b"")
    code, out, err = verify(capsys, order)
    assert (code, out) == (1, "")
    assert err == (
        f"error: cannot verify {order}: {tmp_path / 'out' / 'wheels'} lacks 6 of the wheels "
        "to compare the rebuilds with (p1-1.0-py3-none-any.whl, p2-1.0-py3-none-any.whl, "
        "p3-1.0-py3-none-any.whl, p4-1.0-py3-none-any.whl, p5-1.0-py3-none-any.whl and 1 "
        "more); give the build-order.json of a complete bootstrap output directory, or "
        "--only the packages it has\n"
    )
    # With --only a package whose wheel is there, it gets as far as its (missing) source.
    code, _, err = verify(capsys, order, "--only", "p0", "--no-network-isolation")
    assert code == 1
    assert "error: p0 1.0: its source x-1.0.tar.gz is not in " in err
