"""The Dask transport against a real cluster: inputs reach workers by content and are
cached there by sha256; outputs and failures come back as data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.errors import BuildError
from bootstrapper.fsutil import sha256_file
from bootstrapper.remote import DaskCluster
from bootstrapper.single_build import FileRef

from .dask_cluster import Cluster


def copy_unit(spec: Any, inputs: Mapping[str, Path], work: Path) -> Mapping[str, Path]:
    out = work / "out.txt"
    seen = [f"{role}={path.read_text()}@{path}" for role, path in sorted(inputs.items())]
    out.write_text(f"{spec}\n" + "\n".join(seen))
    return {"result": out}


def failing_unit(spec: Any, inputs: Mapping[str, Path], work: Path) -> Mapping[str, Path]:
    (work / "pkg.log").write_text("compiling...\nboom\n")
    raise BuildError("pkg: the build backend failed", package="pkg", details="boom")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bootstrapper-dask-"))
    running = Cluster(base, hidden=[tmp_path_factory.getbasetemp()])
    running.start()
    running.add_worker("w1")
    running.add_worker("w2", {"gpu": 1})
    running.wait_for_workers(2)
    try:
        yield running
    finally:
        running.stop()


def test_inputs_travel_by_content_and_are_cached(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("payload")
    file = FileRef(source, sha256_file(source))
    remote = DaskCluster(cluster.address)
    try:
        outcomes = [
            remote.run(copy_unit, f"spec-{n}", {"in": file}, task=f"t{n}") for n in range(4)
        ]
        gpu = remote.run(copy_unit, "gpu", {"in": file}, task="g", resources={"gpu": 1})
    finally:
        remote.close()
    for n, outcome in enumerate(outcomes):
        _, data = outcome.files["result"]
        lines = data.decode().splitlines()
        assert lines[0] == f"spec-{n}"
        assert lines[1].startswith("in=payload@")
        # in the worker's cache, by sha256, never the coordinator's path
        assert f"/bootstrapper/files/{file.sha256}/input.txt" in lines[1]
        assert str(tmp_path) not in lines[1]
    assert gpu.worker == "w2"


def test_a_failure_comes_back_as_data_with_its_log(cluster: Cluster, tmp_path: Path) -> None:
    remote = DaskCluster(cluster.address)
    try:
        outcome = remote.run(failing_unit, None, {}, task="fails")
    finally:
        remote.close()
    assert outcome.failure is not None
    assert (outcome.failure.message, outcome.failure.kind) == (
        "pkg: the build backend failed",
        "BuildError",
    )
    assert outcome.files["log"] == ("pkg.log", b"compiling...\nboom\n")


def test_resources_no_worker_has_fail_at_once(cluster: Cluster) -> None:
    remote = DaskCluster(cluster.address)
    try:
        remote.check_resources("big", {"gpu": 1})  # w2 has it
        with pytest.raises(BuildError) as caught:
            remote.check_resources("huge", {"memory": 1e15})
    finally:
        remote.close()
    assert "huge: no worker of the Dask cluster" in caught.value.message
    assert "--resources" in caught.value.message


def test_an_unreachable_scheduler_is_a_usage_error() -> None:
    from bootstrapper.errors import UsageError

    with pytest.raises(UsageError) as caught:
        DaskCluster("tcp://127.0.0.1:9", connect_timeout=2)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in caught.value.message
