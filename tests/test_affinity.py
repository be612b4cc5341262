"""bootstrapper's own threads on one core, every program it starts on all of them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bootstrapper import affinity
from bootstrapper.cores import usable_cores
from tests.support import FixtureIndex, Project

if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
    pytest.skip("needs affinity masks and at least two CPUs", allow_module_level=True)

T = TypeVar("T")
ASK_MASK = [sys.executable, "-I", "-S", "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]


def mask() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def child_mask() -> list[int]:
    out = subprocess.run(ASK_MASK, capture_output=True, text=True, check=True).stdout
    parsed: list[int] = json.loads(out)
    return parsed


def in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run in a thread started now (so with the starter's mask)."""
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(fn()))
    thread.start()
    thread.join()
    return box[0]


def test_the_block_runs_on_one_cpu_and_every_child_gets_them_all() -> None:
    given = mask()
    with affinity.one_core():
        pinned = mask()
        assert len(pinned) == 1 and pinned[0] in given
        # What the process was given stays what it sizes its builds by.
        assert sorted(affinity.given_cpus()) == given
        assert usable_cores() == len(given)
        # A thread started in the block is pinned too, until it starts a child.
        assert in_thread(mask) == pinned
        assert in_thread(lambda: (mask(), child_mask(), mask())) == (pinned, given, given)

        async def from_the_loop() -> list[int]:
            process = await asyncio.create_subprocess_exec(*ASK_MASK, stdout=subprocess.PIPE)
            out, _ = await process.communicate()
            parsed: list[int] = json.loads(out)
            return parsed

        assert in_thread(lambda: asyncio.run(from_the_loop())) == given
        assert in_thread(lambda: os.system("exit 0") == 0 and mask()) == given
        # The block's own thread, after a fork of its own.
        pid = os.fork()
        if pid == 0:  # the child: says through its exit status whether it has them all
            os._exit(0 if sorted(os.sched_getaffinity(0)) == given else 1)
        assert os.waitpid(pid, 0)[1] == 0
        assert mask() == given
    assert mask() == given


def test_release_gives_every_thread_its_whole_mask_back() -> None:
    given = mask()
    started = threading.Event()
    stop = threading.Event()
    seen: list[list[int]] = []

    def waiter() -> None:
        seen.append(mask())
        started.set()
        stop.wait(10)
        seen.append(mask())

    with affinity.one_core():
        thread = threading.Thread(target=waiter)
        thread.start()
        started.wait(10)
        affinity.release()
        assert mask() == given
        stop.set()
        thread.join()
    assert len(seen[0]) == 1
    assert seen[1] == given


def test_a_block_inside_another_changes_nothing() -> None:
    given = mask()
    with affinity.one_core():
        pinned = mask()
        with affinity.one_core():
            assert mask() == pinned
        assert mask() == pinned
        assert sorted(affinity.given_cpus()) == given
    assert mask() == given


def test_a_bootstraps_backend_has_every_cpu(tmp_path: Path, index: FixtureIndex) -> None:
    """As a user runs it: ``python -m bootstrapper bootstrap`` in a directory, the
    output where it goes by default. The command's own threads start pinned; the
    backend it starts sees every CPU the command was given."""
    index.add(Project("probe", tool={"cores-probe": True}), tmp_path / "sdists")
    work = tmp_path / "work"
    work.mkdir()
    command = [
        *(sys.executable, "-m", "bootstrapper", "bootstrap", "-q"),
        *("--index-url", index.url, "--jobs", "2", "probe"),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (wheel,) = (work / "bootstrap-output" / "wheels").glob("probe-*.whl")
    with zipfile.ZipFile(wheel) as z:
        seen = json.loads(z.read("probe_cores.json"))
    assert seen["cpus"] == mask()
