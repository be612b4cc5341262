"""The post-publish check: the index must install its top-level requirements alone."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from bootstrapper import installcheck
from bootstrapper.installcheck import (
    MEMORY_CAP,
    InstallCheckError,
    check_installable,
    fits_in_memory,
    throwaway_parent,
)

from .support import FixtureIndex, Project


def test_a_complete_index_passes_once_then_is_not_rechecked(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path)
    run = bootstrap(
        "app", "--overrides-dir", str(tmp_path / "o"), "--patches-dir", str(tmp_path / "p")
    )
    assert run.code == 0, run.stderr
    stamp = run.output / ".work" / "install-check"
    assert stamp.is_file()  # the run checked it
    simple = run.output / "simple"
    assert not check_installable(
        simple, [Requirement("app")], run.output / "constraints.txt", stamp=stamp
    )  # same index: not repeated
    assert check_installable(simple, [Requirement("app")])  # no stamp: runs, passes


def test_a_missing_dependency_is_named(tmp_path: Path, index: FixtureIndex, bootstrap: Any) -> None:
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path)
    run = bootstrap(
        "app", "--overrides-dir", str(tmp_path / "o"), "--patches-dir", str(tmp_path / "p")
    )
    assert run.code == 0, run.stderr
    broken = tmp_path / "broken"
    shutil.copytree(run.output, broken)
    shutil.rmtree(broken / "simple" / "lib")
    with pytest.raises(InstallCheckError) as raised:
        check_installable(broken / "simple", [Requirement("app")])
    text = raised.value.render()
    assert "the published index does not install app" in text
    assert "lib" in text.split("uv said:", 1)[1]


def test_the_throwaway_environment_goes_to_memory_only_when_it_fits_well(
    tmp_path: Path,
) -> None:
    gib = 1 << 30
    assert fits_in_memory(10 << 20, 12 * gib)  # 40 MiB installed, 3 GiB allowed
    assert not fits_in_memory(1 * gib, 12 * gib)  # 4 GiB installed: over the cap
    assert not fits_in_memory(MEMORY_CAP // 4 + 1, 100 * gib)  # the cap, even with room
    assert not fits_in_memory(10 << 20, 100 << 20)  # a small /dev/shm (a container's)
    assert throwaway_parent(1000, tmp_path) == tmp_path
    assert throwaway_parent(100 * gib, tmp_path) is None
    assert throwaway_parent(1000, tmp_path / "missing") is None
    (tmp_path / "locked").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        assert throwaway_parent(1000, tmp_path / "locked") is None


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_the_check_runs_in_memory_or_on_disk(
    where: str, tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: Any
) -> None:
    index.add_all([Project("app", dependencies=["lib"]), Project("lib")], tmp_path)
    run = bootstrap(
        "app", "--overrides-dir", str(tmp_path / "o"), "--patches-dir", str(tmp_path / "p")
    )
    assert run.code == 0, run.stderr
    memory = tmp_path / "memory"
    memory.mkdir()
    monkeypatch.setattr(installcheck, "MEMORY_DIR", memory)
    made: list[Path] = []
    real = tempfile.TemporaryDirectory

    def recording(*args: Any, **kwargs: Any) -> Any:
        made.append(Path(kwargs.get("dir") or tempfile.gettempdir()))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recording)
    size = 1000 if where == "memory" else MEMORY_CAP
    assert check_installable(run.output / "simple", [Requirement("app")], wheel_bytes=size)
    assert made == ([memory] if where == "memory" else [Path(tempfile.gettempdir())])
    assert list(memory.iterdir()) == []  # the environment is gone
