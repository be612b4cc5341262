"""bootstrap --python, several times: one index for several Pythons. Each Python's
install closure is resolved with its own markers and Requires-Python, compiled packages
are built once per Python with that Python, pure ones once; pip on each Python installs
from the index; build-sequence and verify rebuild each wheel with the Python it names."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.errors import UsageError
from bootstrapper.interpreters import Interpreter, current, find
from bootstrapper.records import read_record

from .conftest import installed, pip_install
from .support import FixtureIndex, Project, build_tool


def other_python() -> Interpreter:
    """Another Python than this one that the fixture backend runs under (3.11+: it
    reads TOML with tomllib)."""
    for version in ("3.12", "3.13", "3.14"):
        try:
            found = find(version)
        except UsageError:
            continue
        if found.label != current().label:
            return found
    pytest.skip("no other Python 3.11+ on this machine (PATH, uv, pyenv)")


def tree() -> list[Project]:
    """app (pure, built with a build tool) needs core, which 2.0 needs Python 3.12+,
    and compat below 3.12 only; its extra ``speed`` brings ``fast``, compiled (a wheel
    per Python)."""
    tool = {"build_requires": ["tool"], "backend": "tool_backend"}
    return [
        build_tool(),
        Project("core", "1.0", pkg_info_version="2.2"),
        Project("core", "2.0", requires_python=">=3.12", pkg_info_version="2.2"),
        Project("compat", pkg_info_version="2.2"),
        Project("fast", tool={"per-python": True}, **tool),  # type: ignore[arg-type]
        Project(
            "app",
            dependencies=["core", "compat; python_version < '3.12'"],
            optional={"speed": ["fast"]},
            **tool,  # type: ignore[arg-type]
        ),
    ]


def test_one_index_serves_several_pythons(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = other_python()
    here, there = current().label, other.label
    assert here == "3.11", "the tree's markers are written for a 3.11 run"
    monkeypatch.chdir(tmp_path)
    index.add_all(tree(), tmp_path / "sdists")
    out = tmp_path / "bootstrap-output"
    args = ["bootstrap", "--index-url", index.url, "-j", "2", "--python", here]
    args += ["--python", there, "app[speed]"]

    # As a user types it: versions, from the working directory, default output.
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"for Python {here}, {there}" in err

    wheels = sorted(p.name for p in (out / "wheels").glob("*.whl"))
    tag = {label: f"cp{label.replace('.', '')}" for label in (here, there)}
    assert wheels == sorted(
        [
            "app-1.0-py3-none-any.whl",
            "compat-1.0-py3-none-any.whl",
            "core-1.0-py3-none-any.whl",
            "core-2.0-py3-none-any.whl",
            *(f"fast-1.0-{tag[v]}-{tag[v]}-linux_x86_64.whl" for v in (here, there)),
            "tool-1.0-py3-none-any.whl",
        ]
    )
    # Each compiled wheel was built by its Python, and its record says so.
    for label in (here, there):
        wheel = out / "wheels" / f"fast-1.0-{tag[label]}-{tag[label]}-linux_x86_64.whl"
        with zipfile.ZipFile(wheel) as zf:
            assert zf.read("fast/built_with.txt").decode() == label
        record = read_record(wheel.with_name(wheel.name + ".build.json"))
        assert record is not None and record.python_label == label
        assert (out / "logs" / f"fast-1.0-py{label}.log").is_file()

    # The build order lists every wheel once, each with its Python; pure ones once.
    order = json.loads((out / "build-order.json").read_text())
    listed = [(e["name"], e["version"], e["python"]) for e in order]
    assert sorted(listed) == sorted(
        [
            ("tool", "1.0", here),
            ("app", "1.0", here),
            ("core", "1.0", here),
            ("compat", "1.0", here),
            ("fast", "1.0", here),
            ("core", "2.0", there),
            ("fast", "1.0", there),
        ]
    )
    # every entry comes after what its build environment holds, for its Python
    position = {(e["wheel"]): i for i, e in enumerate(order)}
    for i, entry in enumerate(order):
        for wheel in entry["build_env"]:
            assert position[wheel["wheel"]] < i

    # One constraints file for all: the pins that differ carry a marker.
    constraints = (out / "constraints.txt").read_text().splitlines()
    assert constraints == [
        "app==1.0",
        f'compat==1.0; python_version == "{here}"',
        f'core==1.0; python_version == "{here}"',
        f'core==2.0; python_version == "{there}"',
        "fast==1.0",
    ]
    graph = json.loads((out / "graph.json").read_text())
    fast = next(n for n in graph["nodes"] if n["name"] == "fast")
    assert sorted(w["python"] for w in fast["wheels"]) == [here, there]
    assert json.loads((out / "run.json").read_text())["pythons"] == [here, there]

    # pip on each Python installs the requirement from the index alone, with the
    # constraints, and gets the wheel built for it.
    for python, expected_core in ((current(), "1.0"), (other, "2.0")):
        venv = tmp_path / f"venv-{python.label}"
        done = pip_install(
            out,
            venv,
            "app[speed]",
            options=["-c", str(out / "constraints.txt")],
            python=python.executable,
        )
        assert done.returncode == 0, done.stderr
        got = installed(venv)
        assert got["core"] == expected_core
        assert ("compat" in got) == (python.label == here)
        built_with = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import fast, pathlib; print("
             "(pathlib.Path(fast.__file__).parent / 'built_with.txt').read_text())"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert built_with == python.label

    # A re-run builds nothing.
    before = {p.name: p.read_bytes() for p in (out / "wheels").glob("*.whl")}
    assert main(args) == 0
    assert "0 built, 7 reused" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "wheels").glob("*.whl")} == before

    # build-sequence rebuilds every wheel with its Python, byte for byte; verify agrees.
    rebuilt = tmp_path / "rebuilt"
    assert main(["build-sequence", "bootstrap-output/build-order.json", "--output-dir",
                 "rebuilt", "--no-network-isolation", "-q"]) == 0  # fmt: skip
    assert {p.name: p.read_bytes() for p in (rebuilt / "wheels").glob("*.whl")} == before
    assert main(["verify", "bootstrap-output/build-order.json", "--no-network-isolation"]) == 0
    assert "7 of 7 wheels identical" in capsys.readouterr().out

    # update repeats the run for the same Pythons.
    assert main(["update", "bootstrap-output", "--index-url", index.url]) == 0
    assert f"for Python {here}, {there}" in capsys.readouterr().err


def test_keep_going_publishes_what_each_python_could_build(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fast does not build on the other Python: app[speed] is published for this one
    only, and failures.json says for which Python what failed."""
    other = other_python()
    here, there = current().label, other.label
    monkeypatch.chdir(tmp_path)
    projects = [
        Project("fast", tool={"per-python": True, "fail-on-python": there})
        if p.name == "fast"
        else p
        for p in tree()
    ]
    index.add_all(projects, tmp_path / "sdists")
    out = tmp_path / "bootstrap-output"
    code = main(
        ["bootstrap", "--index-url", index.url, "--keep-going", "--python", here,
         "--python", there, "app[speed]"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert f"for: app[speed] (Python {here}); not published: app[speed] (Python {there})" in err
    failures = json.loads((out / "failures.json").read_text())
    # app is pure: the wheel built for this Python serves the other one too, so only
    # fast failed there.
    assert [(f["name"], f["status"]) for f in failures["failures"]] == [("fast", "failed")]
    assert failures["failures"][0]["error"].startswith(f"(Python {there}) ")
    assert failures["failures"][0]["log"].endswith(f"fast-1.0-py{there}.log")
    assert failures["published"] == [f"app[speed] (Python {here})"]
    assert failures["not_published"] == [
        {"requirement": f"app[speed] (Python {there})", "missing": ["fast==1.0"]}
    ]
    wheels = {p.name for p in (out / "wheels").glob("fast-*.whl")}
    assert wheels == {
        f"fast-1.0-cp{here.replace('.', '')}-cp{here.replace('.', '')}-linux_x86_64.whl"
    }
    done = pip_install(
        out, tmp_path / "venv", "app[speed]", options=["-c", str(out / "constraints.txt")]
    )
    assert done.returncode == 0, done.stderr


def test_an_unknown_python_is_a_usage_error(
    tmp_path: Path, index: FixtureIndex, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["bootstrap", "--index-url", index.url, "--python", "2.9", "app"]) == 2
    assert "--python 2.9: no Python 2.9 found on PATH, by uv or in pyenv" in (
        capsys.readouterr().err
    )
    assert main(["bootstrap", "--index-url", index.url, "--python", "./nope", "app"]) == 2
    assert "--python ./nope: no such file" in capsys.readouterr().err
    assert not (tmp_path / "bootstrap-output").exists()


def test_pins_that_differ_by_python_carry_markers() -> None:
    from packaging.version import Version

    from bootstrapper.outputs import constraints_text
    from bootstrapper.pythons import joined_pins

    one, two = Version("1.0"), Version("2.0")
    pins = joined_pins(
        [
            ("3.11", [("a", one), ("b", one), ("only-old", one)]),
            ("3.12", [("a", one), ("b", two)]),
            ("3.13", [("a", one), ("b", two)]),
        ]
    )
    assert constraints_text(pins).splitlines() == [
        "a==1.0",
        'b==1.0; python_version == "3.11"',
        'b==2.0; python_version == "3.12" or python_version == "3.13"',
        'only-old==1.0; python_version == "3.11"',
    ]


def test_keep_going_with_nothing_published_still_writes_the_failures(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fast builds on no Python: nothing is published, and failures.json says why for
    each Python."""
    other = other_python()
    here, there = current().label, other.label
    monkeypatch.chdir(tmp_path)
    projects = [
        Project("fast", tool={"per-python": True, "fail": "no build at all"})
        if p.name == "fast"
        else p
        for p in tree()
    ]
    index.add_all(projects, tmp_path / "sdists")
    code = main(
        ["bootstrap", "--index-url", index.url, "--keep-going", "--python", here,
         "--python", there, "app[speed]"]
    )  # fmt: skip
    assert code == 1
    assert "not published" in capsys.readouterr().err
    failures = json.loads((tmp_path / "bootstrap-output" / "failures.json").read_text())
    assert [f["error"].split(")")[0] for f in failures["failures"]] == [
        f"(Python {here}",
        f"(Python {there}",
    ]
    assert failures["published"] == []
