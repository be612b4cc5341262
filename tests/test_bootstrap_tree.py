"""The whole pipeline on a fixture tree: real builds, real index, real installs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import installed, pip_install, standard_tree, uv_install
from .support import FixtureIndex, Project, serve_directory


def test_tree_builds_publishes_and_installs(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all(standard_tree(), tmp_path / "sdists")
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    out = run.output

    graph = json.loads((out / "graph.json").read_text())
    assert graph["schema"] == 1 and graph["roots"] == ["app"]
    nodes = {(n["name"], n["version"]) for n in graph["nodes"]}
    assert nodes == {
        ("app", "1.0"),
        ("libone", "1.4"),
        ("libthree", "0.5"),
        ("libtwo", "2.0"),
        ("dyn-req", "1.0"),
        ("fixture-backend", "1.0"),
        ("fixture-helper", "1.0"),
    }
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert (None, "app==1.0", "toplevel") in edges
    assert ("app==1.0", "libone==1.4", "install") in edges
    assert ("libtwo==2.0", "fixture-backend==1.0", "build-system") in edges
    assert ("libtwo==2.0", "dyn-req==1.0", "build-backend") in edges
    assert ("fixture-backend==1.0", "fixture-helper==1.0", "install") in edges
    requirement = next(
        e["requirement"] for e in graph["edges"] if e["to"] == "libone==1.4" and e["from"]
    )
    assert requirement == "libone<2,>=1"

    order = [e["name"] for e in json.loads((out / "build-order.json").read_text())]
    # libtwo's build environment (the backend, its install closure, dyn-req) comes first.
    for tool in ("fixture-backend", "fixture-helper", "dyn-req"):
        assert order.index(tool) < order.index("libtwo")
    assert sorted(order) == sorted(name for name, _ in nodes)

    constraints = (out / "constraints.txt").read_text().splitlines()
    assert constraints == ["app==1.0", "libone==1.4", "libthree==0.5", "libtwo==2.0"]

    for name, version in nodes:
        assert (out / "logs" / f"{name}-{version}.log").is_file()
    assert {p.name for p in (out / "sdists").iterdir()} >= {"app-1.0.tar.gz", "libtwo-2.0.tar.gz"}

    page = (out / "simple" / "libone" / "index.html").read_text()
    assert 'href="../../wheels/libone-1.4-py3-none-any.whl#sha256=' in page
    assert "data-core-metadata=" in page and "data-dist-info-metadata=" in page
    assert (out / "wheels" / "libone-1.4-py3-none-any.whl.metadata").is_file()

    result = pip_install(out, tmp_path / "pip-venv", "app")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path / "pip-venv") == {
        "app": "1.0",
        "libone": "1.4",
        "libthree": "0.5",
        "libtwo": "2.0",
    }
    uv_result = uv_install((out / "simple").as_uri() + "/", tmp_path / "uv-venv", "app")
    assert uv_result.returncode == 0, uv_result.stderr
    assert installed(tmp_path / "uv-venv")["libtwo"] == "2.0"
    for base in serve_directory(out):
        served = uv_install(f"{base}/simple/", tmp_path / "served-venv", "app")
        assert served.returncode == 0, served.stderr


def test_requires_python_in_metadata_alone_is_honoured(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    # No data-requires-python on the index: only the (static) PKG-INFO says it.
    future = Project("lib", "2.0", requires_python=">=4", pkg_info_version="2.2")
    index.add_all([Project("app", dependencies=["lib"]), future, Project("lib", "1.0")], tmp_path)
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    assert "lib==1.0" in (run.output / "constraints.txt").read_text().splitlines()
    assert not list((run.output / ".work" / "built").glob("lib-2.0*"))
