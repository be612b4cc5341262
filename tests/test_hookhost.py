"""The backend host: one process answers a tree's PEP 517 hooks, each hook in a fresh
child forked from it; failures, timeouts and a host that dies are told by name."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import isolation
from bootstrapper.buildenv import BuildEnv
from bootstrapper.buildsystem import BuildSystem
from bootstrapper.errors import BuildError, BuildTimeoutError
from bootstrapper.pep517 import Backend
from bootstrapper.sandbox import TimeLimit

from .support import FixtureIndex, Project

BACKEND = """
import json, os, sys, time

with open(os.path.join(os.environ["PROBE_DIR"], "imports"), "a") as f:
    f.write(f"{os.getpid()}\\n")
STATE = {"touched": False}


def get_requires_for_build_wheel(config_settings=None):
    seen = {
        "pid": os.getpid(),
        "touched": STATE["touched"],
        "leak": os.environ.get("LEAK"),
        "cwd": os.getcwd(),
        "chosen": os.environ.get("CHOSEN"),
        "path": sys.path,
        "config": config_settings,
    }
    STATE["touched"] = True
    os.environ["LEAK"] = "from an earlier hook"
    os.chdir("/")
    with open(os.path.join(os.environ["PROBE_DIR"], "seen"), "a") as f:
        f.write(json.dumps(seen) + "\\n")
    return ["wanted>=1"]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    how = os.environ.get("HOW", "")
    if how == "raise":
        raise RuntimeError("the backend broke here")
    if how == "exit":
        sys.exit(3)
    if how == "sleep":
        time.sleep(60)
    if how == "kill-host":
        import signal
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)
    name = "probe-1.0-py3-none-any.whl"
    open(os.path.join(wheel_directory, name), "wb").close()
    return name
"""


def make_tree(tmp_path: Path, module: str = "probe_backend", body: str = BACKEND) -> Path:
    tree = tmp_path / "tree"
    (tree / "_backend").mkdir(parents=True)
    (tree / "_backend" / f"{module}.py").write_text(textwrap.dedent(body))
    return tree


def host(
    tmp_path: Path,
    tree: Path,
    *,
    backend: str = "probe_backend",
    backend_path: tuple[str, ...] = ("_backend",),
    limit: float = 60,
    config: dict[str, str] | None = None,
) -> Backend:
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    log = (tmp_path / "build.log").open("ab", buffering=0)
    return Backend(
        tree,
        BuildSystem((), backend, backend_path),
        BuildEnv.at(Path(sys.prefix)),
        log,
        package="probe",
        exchange_dir=tmp_path / "exchange",
        extra_environ={"PROBE_DIR": str(probe)},
        config_settings=config,
        base_environ={"PATH": os.environ["PATH"]},
        time_limit=TimeLimit(limit, "the test"),
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; the kernel says when it is one.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def requirements_seen(backend: Backend, tmp_path: Path) -> dict[str, object]:
    """What the probe's get_requires_for_build_wheel saw (it wrote it down)."""
    assert [str(r) for r in backend.requires_for_build_wheel()] == ["wanted>=1"]
    lines = (tmp_path / "probe" / "seen").read_text().splitlines()
    seen: dict[str, object] = json.loads(lines[-1])
    return seen


def test_one_host_answers_every_hook_each_in_a_fresh_child(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    with host(tmp_path, tree) as backend:
        first = requirements_seen(backend, tmp_path)
        host_pid = backend.pid
        backend.use_environ({"PROBE_DIR": str(tmp_path / "probe"), "CHOSEN": "second"})
        second = requirements_seen(backend, tmp_path)
        wheel = backend.build_wheel(tmp_path / "wheels")
        assert backend.pid == host_pid
    assert wheel.name == "probe-1.0-py3-none-any.whl"
    imports = (tmp_path / "probe" / "imports").read_text().split()
    assert imports == [str(host_pid)], "the backend is imported once, by the host"
    # Each hook ran in a process of its own, and nothing one did reached the next.
    assert first["pid"] != second["pid"] != host_pid
    assert (second["touched"], second["leak"], second["cwd"]) == (False, None, str(tree))
    # Variables are the call's: a new grant's reach the next hook.
    assert (first["chosen"], second["chosen"]) == (None, "second")
    assert host_pid is not None and not alive(host_pid)


def test_the_hosts_own_directory_shadows_nothing(tmp_path: Path) -> None:
    """bootstrapper's modules (its http.py, errors.py...) are not importable by a
    backend: the host's directory is not on its sys.path; backend-path is first."""
    tree = make_tree(tmp_path)
    package_dir = str(Path(isolation.__file__).parent)
    with host(tmp_path, tree) as backend:
        seen = requirements_seen(backend, tmp_path)
    path = seen["path"]
    assert isinstance(path, list)
    assert package_dir not in path
    assert path[0] == str(tree / "_backend")


def test_config_settings_reach_the_hook(tmp_path: Path) -> None:
    with host(tmp_path, make_tree(tmp_path), config={"--build-option": "x"}) as backend:
        assert requirements_seen(backend, tmp_path)["config"] == {"--build-option": "x"}


def test_missing_hooks_take_pep_517_defaults(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path, body="def build_wheel(wheel_directory, config_settings=None):\n    return 'x'\n"
    )
    with host(tmp_path, tree) as backend:
        assert backend.requires_for_build_wheel() == []
        assert backend.prepare_metadata(tmp_path / "metadata") is None


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("raise", "probe: the build backend failed in build_wheel (exit status 1)"),
        ("exit", "probe: the build backend failed in build_wheel (exit status 3)"),
        ("kill-host", "probe: the build backend failed in build_wheel (exit status -9)"),
    ],
)
def test_a_failing_hook_is_named(tmp_path: Path, how: str, expected: str) -> None:
    with host(tmp_path, make_tree(tmp_path)) as backend:
        backend.use_environ({"PROBE_DIR": str(tmp_path / "probe"), "HOW": how})
        with pytest.raises(BuildError) as failed:
            backend.build_wheel(tmp_path / "wheels")
    assert str(failed.value.message) == expected
    if how == "raise":
        assert "RuntimeError: the backend broke here" in (tmp_path / "build.log").read_text()


def test_a_host_that_failed_one_hook_answers_the_next(tmp_path: Path) -> None:
    with host(tmp_path, make_tree(tmp_path)) as backend:
        backend.use_environ({"PROBE_DIR": str(tmp_path / "probe"), "HOW": "raise"})
        with pytest.raises(BuildError):
            backend.build_wheel(tmp_path / "wheels")
        backend.use_environ({"PROBE_DIR": str(tmp_path / "probe")})
        assert backend.build_wheel(tmp_path / "wheels").is_file()


def test_a_backend_that_cannot_be_imported(tmp_path: Path) -> None:
    with (
        host(tmp_path, make_tree(tmp_path), backend="no_such_backend") as backend,
        pytest.raises(BuildError) as failed,
    ):
        backend.build_wheel(tmp_path / "wheels")
    assert failed.value.message == (
        "probe: cannot import the build backend 'no_such_backend' "
        "(No module named 'no_such_backend')"
    )


def test_a_backend_found_outside_its_backend_path_is_refused(tmp_path: Path) -> None:
    with (
        host(tmp_path, make_tree(tmp_path), backend="json") as backend,
        pytest.raises(BuildError) as failed,
    ):
        backend.requires_for_build_wheel()
    assert failed.value.message.startswith("probe: invalid build backend: backend-path is [")
    assert "but 'json' was imported from" in failed.value.message


def test_a_backend_object_path(tmp_path: Path) -> None:
    body = BACKEND + "\nclass Inner:\n    build_wheel = staticmethod(build_wheel)\n"
    with host(tmp_path, make_tree(tmp_path, body=body), backend="probe_backend:Inner") as backend:
        assert backend.requires_for_build_wheel() == []  # Inner has no such hook
        assert backend.build_wheel(tmp_path / "wheels").is_file()


def test_a_hook_past_the_time_limit_is_ended_with_its_host(tmp_path: Path) -> None:
    with host(tmp_path, make_tree(tmp_path), limit=1) as backend:
        backend.use_environ({"PROBE_DIR": str(tmp_path / "probe"), "HOW": "sleep"})
        started = time.monotonic()
        with pytest.raises(BuildTimeoutError):
            backend.build_wheel(tmp_path / "wheels")
        assert backend.pid is None
    # Ended at the limit, not at the hook's 60 s.
    assert time.monotonic() - started < 30


def test_bootstrap_asks_each_package_through_one_process(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """In a run, a package whose backend asks for nothing more has its hooks answered
    by one process; one that asks for more gets a second, in the bigger environment."""
    for project in (
        Project("tool", "1.0"),
        Project("plain", "1.0", dependencies=["needs-tool"]),
        Project("needs-tool", "1.0", backend_requires=["tool"]),
    ):
        index.add(project, tmp_path / "sdists")
    run = bootstrap("--profile", "plain")
    assert run.code == 0, run.stderr
    profile = json.loads((run.output / "logs" / "profile.json").read_text())
    assert profile["counts"]["backend processes"] == 4  # one each, needs-tool two
    for name, starts in (("plain", 1), ("tool", 1), ("needs-tool", 2)):
        log = (run.output / "logs" / f"{name}-1.0.log").read_text()
        assert log.count("HOME and TMPDIR in") == starts, name
        assert log.count("== PEP 517 hook") >= 2, name
