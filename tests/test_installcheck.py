"""The post-publish check: the index must install its top-level requirements alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from bootstrapper.installcheck import InstallCheckError, check_installable

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
