"""The Containerfile cannot be built here (no container engine): check it with a
Dockerfile parser instead, for what the image must hold and do."""

from __future__ import annotations

import io
from pathlib import Path

from dockerfile_parse import DockerfileParser

from .conftest import ROOT

CONTAINERFILE = ROOT / "Containerfile"


def parsed() -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(CONTAINERFILE.read_bytes()))


def instructions(kind: str) -> list[str]:
    return [str(i["value"]) for i in parsed().structure if i["instruction"] == kind]


def test_it_parses_into_a_single_python_stage() -> None:
    parser = parsed()
    assert parser.baseimage.startswith("docker.io/library/python:3.11")
    assert [i["instruction"] for i in parser.structure].count("FROM") == 1


def test_it_installs_the_system_build_tools() -> None:
    installed = " ".join(instructions("RUN"))
    for package in (
        "build-essential",
        "cmake",
        "ninja-build",
        "rustc",
        "cargo",
        "patch",
        "git",
        "util-linux",
        "libxml2-dev",
    ):
        assert f" {package}" in installed, package
    assert "rm -rf /var/lib/apt/lists/*" in installed


def test_it_installs_bootstrapper_from_this_checkout_and_runs_it() -> None:
    copied = instructions("COPY")
    for path in ("pyproject.toml", "bootstrapper", "overrides", "patches"):
        assert any(path in c.split()[0:-1] or c.startswith(path) for c in copied), path
        assert (ROOT / path).exists()
    assert any("pip install '.[dask]'" in run for run in instructions("RUN"))
    assert instructions("ENTRYPOINT") == ['["bootstrapper"]']
    assert instructions("USER") == ["builder"]


def test_the_readme_shows_how_to_bootstrap_inside_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "Containerfile" in readme
    assert "bootstrap requests" in readme


def test_paths_it_copies_exist() -> None:
    for value in instructions("COPY"):
        *sources, _ = value.split()
        for source in sources:
            assert (Path(ROOT) / source).exists(), source
