"""End-to-end against the real PyPI (run with --network; CI=true enables them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrapper.cli import main

from .conftest import installed, pip_install, uv_install

pytestmark = pytest.mark.network


def test_bootstrap_small_real_tree_from_pypi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # idna builds with flit-core, six with the legacy setuptools backend: two real
    # backends, each built from source before what needs it.
    out = tmp_path / "out"
    code = main(["bootstrap", "--output-dir", str(out), "idna", "six"])
    err = capsys.readouterr().err
    assert code == 0, err
    order = [e["name"] for e in json.loads((out / "build-order.json").read_text())]
    assert {"idna", "six", "flit-core", "setuptools"} <= set(order)
    assert order.index("flit-core") < order.index("idna")
    assert order.index("setuptools") < order.index("six")
    graph = json.loads((out / "graph.json").read_text())
    kinds = {(e["from"].split("==")[0] if e["from"] else None, e["kind"]) for e in graph["edges"]}
    assert ("idna", "build-system") in kinds and ("six", "build-system") in kinds

    result = pip_install(out, tmp_path / "venv", "idna", "six")
    assert result.returncode == 0, result.stderr
    assert {"idna", "six"} <= set(installed(tmp_path / "venv"))
    uv_result = uv_install((out / "simple").as_uri() + "/", tmp_path / "uv-venv", "idna", "six")
    assert uv_result.returncode == 0, uv_result.stderr

    again = main(["bootstrap", "--output-dir", str(out), "idna", "six"])
    err = capsys.readouterr().err
    assert again == 0, err
    assert "0 built" in err


def test_requests_tree_rebuilds_offline_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    empty = str(tmp_path / "none")
    code = main(
        [
            "bootstrap",
            "--output-dir",
            str(out),
            "--overrides-dir",
            empty,
            "--patches-dir",
            empty,
            "requests",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rebuilt = tmp_path / "rebuilt"
    # With network isolation (the default): every build runs without network.
    code = main(["build-sequence", str(out / "build-order.json"), "--output-dir", str(rebuilt)])
    assert code == 0, capsys.readouterr().err
    order = json.loads((out / "build-order.json").read_text())
    assert len(order) >= 15
    for entry in order:
        original = (out / "wheels" / entry["wheel"]).read_bytes()
        assert (rebuilt / "wheels" / entry["wheel"]).read_bytes() == original, entry["wheel"]
