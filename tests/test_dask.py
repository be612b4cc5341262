"""Builds on a real Dask cluster (``--dask``): a scheduler and two workers started as
processes on 127.0.0.1, which see none of the test's files; the same wheels as a local
run, resources honoured, failures reported as build failures, a lost worker survived."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.cli import main

from .conftest import pip_install, standard_tree
from .dask_cluster import Cluster
from .support import FixtureIndex, Project, wait_for, wait_until_quiet


def start_cluster(hidden: Path, workers: dict[str, dict[str, float]]) -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="bootstrapper-dask-"))
    cluster = Cluster(base, hidden=[hidden])
    cluster.start()
    for name, resources in workers.items():
        cluster.add_worker(name, resources)
    cluster.wait_for_workers(len(workers))
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.getbasetemp(), {"w1": {}, "w2": {"gpu": 1}})
    try:
        yield running
    finally:
        running.stop()


def tree() -> list[Project]:
    """The standard tree, plus ``accel`` reached only through an extra (``app2[gpu]``),
    whose settings ask for a GPU worker."""
    return [
        *standard_tree(),
        Project("accel", "1.0"),
        Project("app2", "1.0", dependencies=["app"], optional={"gpu": ["accel"]}),
    ]


def wheels(output: Path) -> dict[str, str]:
    return {
        path.name: json.loads(Path(f"{path}.build.json").read_text())["wheel_sha256"]
        for path in sorted((output / "wheels").glob("*.whl"))
    }


def records(output: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".build.json"): json.loads(path.read_text())
        for path in (output / "wheels").glob("*.whl.build.json")
    }


@pytest.fixture
def workdir(tmp_path: Path, index: FixtureIndex, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory as a user has it: ./overrides with accel's settings."""
    index.add_all(tree(), tmp_path / "sdists")
    settings = tmp_path / "work" / "overrides" / "settings"
    settings.mkdir(parents=True)
    (settings / "accel.yaml").write_text("resources:\n  gpu: 1\n")
    monkeypatch.chdir(tmp_path / "work")
    yield tmp_path / "work"


def test_bootstrap_and_build_sequence_on_dask_make_the_local_wheels(
    workdir: Path,
    index: FixtureIndex,
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = main(["bootstrap", "--index-url", index.url, "--output-dir", "local", "app2[gpu]"])
    assert local == 0, capsys.readouterr().err
    capsys.readouterr()

    code = main(["bootstrap", "--index-url", index.url, "--dask", cluster.address, "app2[gpu]"])

    err = capsys.readouterr().err
    assert code == 0, err + cluster.logs()
    out = workdir / "bootstrap-output"
    assert wheels(out) == wheels(workdir / "local")  # byte-identical, all of them
    built = records(out)
    assert {r["worker"] for r in built.values()} <= {"w1", "w2"}
    assert all(r["worker"] for r in built.values())
    # accel, reached through an extra, needs a GPU: only w2 has one.
    assert built["accel-1.0-py3-none-any.whl"]["worker"] == "w2"
    assert built["accel-1.0-py3-none-any.whl"]["resources"] == {"gpu": 1}
    assert f"building on the Dask cluster at {cluster.address}: 2 workers (w1, w2)" in err
    assert "built accel==1.0 in" in err and "s on w2" in err
    assert "building on w2 accel==1.0" in err, err
    log = (out / "logs" / "libtwo-2.0.log").read_text()
    assert "== building on the Dask cluster" in log and "== the log of worker" in log
    installed = pip_install(out, workdir / "venv", "app2[gpu]")
    assert installed.returncode == 0, installed.stderr

    # The build order rebuilt on the cluster: the same bytes again, and the resources
    # travel with the build order.
    code = main(
        [
            "build-sequence",
            "bootstrap-output/build-order.json",
            "--output-dir",
            "again",
            "--dask",
            cluster.address,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err + cluster.logs()
    assert wheels(workdir / "again") == wheels(workdir / "local")
    assert records(workdir / "again")["accel-1.0-py3-none-any.whl"]["worker"] == "w2"


def test_a_build_failure_on_a_worker_is_a_build_failure(
    tmp_path: Path, index: FixtureIndex, cluster: Cluster, bootstrap: Any
) -> None:
    index.add(Project("broken", tool={"fail": "missing header foo.h"}), tmp_path / "sdists")

    run = bootstrap("--dask", cluster.address, "broken")

    assert run.code == 1
    assert "Traceback" not in run.stderr
    assert "error: broken: the build backend failed in build_wheel" in run.stderr
    assert "(on Dask worker w" in run.stderr
    assert "missing header foo.h" in run.stderr  # the log's tail
    assert f"full log: {run.output / 'logs' / 'broken-1.0.log'}" in run.stderr
    assert "missing header foo.h" in (run.output / "logs" / "broken-1.0.log").read_text()


def test_resources_no_worker_has_fail_with_a_message(
    tmp_path: Path, index: FixtureIndex, cluster: Cluster, bootstrap: Any
) -> None:
    index.add(Project("huge"), tmp_path / "sdists")
    settings = tmp_path / "overrides" / "settings"
    settings.mkdir(parents=True)
    (settings / "huge.yaml").write_text("resources:\n  memory: 64e12\n")

    run = bootstrap(
        "--overrides-dir", str(tmp_path / "overrides"), "--dask", cluster.address, "huge"
    )

    assert run.code == 1
    assert "huge: no worker of the Dask cluster" in run.stderr
    assert "memory=6.4e+13" in run.stderr


def test_an_unreachable_scheduler_is_a_usage_error(index: FixtureIndex, bootstrap: Any) -> None:
    run = bootstrap("--dask", "tcp://127.0.0.1:9", "app")
    assert run.code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in run.stderr


def test_a_worker_lost_mid_build_has_its_build_run_elsewhere(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    own = start_cluster(tmp_path, {"a": {}, "b": {}})
    try:
        index.add(Project("slow", tool={"sleep": 6}), tmp_path / "sdists")
        result: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: result.update(run=bootstrap("--dask", own.address, "slow"))
        )
        thread.start()

        def building_on() -> str | None:
            for name in ("a", "b"):
                # (Dask makes the worker's own directory inside the one it was given.)
                if list((own.root / f"worker-{name}").glob("**/bootstrapper/work/slow-*")):
                    return name
            return None

        wait_for(lambda: building_on() is not None or not thread.is_alive(), 60)
        first = building_on()
        assert first is not None
        own.kill_worker(first)
        thread.join(120)
        run = result["run"]
        assert run.code == 0, run.stderr + own.logs()
        record = records(run.output)["slow-1.0-py3-none-any.whl"]
        assert record["worker"] == ({"a", "b"} - {first}).pop()
    finally:
        own.stop()


def test_ctrl_c_cancels_the_runs_builds_on_the_cluster(
    tmp_path: Path, index: FixtureIndex, cluster: Cluster
) -> None:
    import signal
    import subprocess
    import sys

    # The backend starts a child in its own process group and sleeps for a minute.
    project = Project("sleepy", tool={"sleep": 60, "spawn-child": "$HOME/child-beat"})
    index.add(project, tmp_path / "sdists")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PIP_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bootstrapper", "bootstrap", "--index-url", index.url,
         "--output-dir", str(tmp_path / "out"), "--dask", cluster.address, "sleepy"],
        stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip

    def pidfile() -> Path | None:
        found = sorted(cluster.root.glob("worker-*/**/scratch/sleepy-1.0/home/child-beat"))
        return found[0] if found and found[0].read_text() else None

    wait_for(lambda: pidfile() is not None or process.poll() is not None, 60)
    found = pidfile()
    assert found is not None, process.communicate()[1]
    first = found.read_text()
    wait_for(lambda: found.read_text() != first, 10)  # counting
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)

    assert process.returncode == 130, err
    assert "interrupted" in err
    # On the worker, the cancelled task ended its backend and everything it started.
    wait_until_quiet(found)


def test_without_dask_nothing_imports_it(tmp_path: Path, index: FixtureIndex) -> None:
    import subprocess
    import sys

    index.add(Project("plain"), tmp_path / "sdists")
    script = (
        "import sys\n"
        "from bootstrapper.cli import main\n"
        f"code = main(['bootstrap', '--index-url', {index.url!r}, '--output-dir', "
        f"{str(tmp_path / 'out')!r}, '-q', 'plain'])\n"
        "names = ('dask', 'distributed', 'bootstrapper.remote', 'bootstrapper.remote_build')\n"
        "print(code, sorted(m for m in sys.modules if m in names or m.startswith(names[:2])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "0 []", done.stderr
