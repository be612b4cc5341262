from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrapper.buildenv import find_uv
from bootstrapper.cli import main

from .support import BACKEND_SOURCE, FixtureIndex, Project, backend_package

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--network",
        action="store_true",
        help="also run the end-to-end tests against the real PyPI (on by default when CI=true)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    enabled = config.getoption("--network") or os.environ.get("CI", "").lower() in ("1", "true")
    if enabled:
        return
    skip = pytest.mark.skip(reason="needs PyPI: run with --network (CI=true does)")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    server = FixtureIndex()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Run:
    code: int
    stderr: str
    output: Path


@pytest.fixture
def bootstrap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], index: FixtureIndex
) -> Iterator[object]:
    """Run ``bootstrapper bootstrap`` in-process against the fixture index."""

    def run(*args: str, output: Path | None = None, jobs: int = 2) -> Run:
        out = output or tmp_path / "out"
        code = main(
            [
                "bootstrap",
                "--index-url",
                index.url,
                "--output-dir",
                str(out),
                "--jobs",
                str(jobs),
                *args,
            ]
        )
        captured = capsys.readouterr()
        return Run(code, captured.err, out)

    yield run


def helper_project(version: str = "1.0") -> Project:
    return Project(
        "fixture-helper",
        version,
        tool={"modules": ["fixture_helper"]},
        files={"src/fixture_helper.py": "HELPER = True\n"},
    )


def standard_tree() -> list[Project]:
    """app -> libone, libtwo; libtwo is built by the packaged backend and asks the backend
    for dyn-req at build time."""
    return [
        backend_package(),
        helper_project(),
        Project("app", "1.0", dependencies=["libone>=1,<2", "libtwo"]),
        Project("libone", "1.4", dependencies=["libthree"]),
        Project("libone", "2.0"),
        Project("libthree", "0.5"),
        Project(
            "libtwo",
            "2.0",
            build_requires=["fixture-backend"],
            backend_requires=["dyn-req"],
            tool={"import": ["fixture_helper", "dyn_req"]},
        ),
        Project("dyn-req", "1.0", tool={"modules": ["dyn_req"]}, files={"src/dyn_req.py": ""}),
    ]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


def pip_install(
    output: Path,
    venv: Path,
    *requirements: str,
    index: str = "simple",
    options: Sequence[str] = (),
    prefix: Sequence[str] = (),
    python: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Install from the produced index alone (``output/index``), with pip, into a fresh
    venv (of ``python``); ``prefix`` runs pip inside another command (a network
    namespace)."""
    return pip_from(
        (output / index).as_uri() + "/",
        venv,
        *requirements,
        options=options,
        prefix=prefix,
        python=python,
    )


def pip_from(
    index_url: str,
    venv: Path,
    *requirements: str,
    options: Sequence[str] = (),
    prefix: Sequence[str] = (),
    python: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Install from ``index_url`` alone, with pip, into a fresh venv (of ``python``,
    default this one)."""
    subprocess.run(
        [str(python or sys.executable), "-m", "venv", "--without-pip", str(venv)], check=True
    )
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--isolated",
            "--no-cache-dir",
            *options,
            "--index-url",
            index_url,
            *requirements,
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )


def uv_install(index_url: str, venv: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    uv = find_uv()
    env = clean_env()
    subprocess.run(
        [uv, "venv", "--no-config", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        env=env,
    )
    return subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--no-config",
            "--no-cache",
            "--index-url",
            index_url,
            "--python",
            str(venv / "bin" / "python"),
            *requirements,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def installed(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    )
    import json

    return dict(json.loads(out.stdout))


__all__ = ["BACKEND_SOURCE", "ROOT", "Run"]
