"""setuptools' parallel build_ext joined to the run's jobserver: a build that started
beside another (and so got one core of two) takes the second core once the other ends.

Real processes throughout: the run's core budget with its FIFO, the backend host, and
setuptools' own ``build_meta`` in this interpreter. The package's ``build_ext`` sleeps in
place of a compiler and notes when each extension starts and ends."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bootstrapper.buildenv import BuildEnv
from bootstrapper.buildsystem import BuildSystem
from bootstrapper.cores import BuildExtJobs, CoreBudget, Demand, Grant
from bootstrapper.pep517 import Backend
from bootstrapper.sandbox import TimeLimit

from .support import most_at_once, tokens_free, wait_for

pytest.importorskip("setuptools", reason="the test runs setuptools' own backend")

#: Extensions of the probe package, and how long each one's "compile" takes.
EXTENSIONS = 8
COMPILE = 0.4

SETUP = f"""
import json, os, time
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class probe_build_ext(build_ext):
    def build_extension(self, ext):
        start = time.time()
        with open(os.environ["PROBE_FILE"] + ".started", "a") as f:
            f.write(ext.name + "\\n")
        time.sleep({COMPILE})
        with open(os.environ["PROBE_FILE"], "a") as f:
            f.write(json.dumps([ext.name, start, time.time(), self.parallel]) + "\\n")


setup(
    name="probe",
    version="1.0",
    ext_modules=[Extension(f"probe_{{i}}", [f"probe_{{i}}.c"]) for i in range({EXTENSIONS})],
    cmdclass={{"build_ext": probe_build_ext}},
)
"""


def make_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "probe-1.0"
    tree.mkdir()
    (tree / "setup.py").write_text(textwrap.dedent(SETUP))
    for i in range(EXTENSIONS):
        (tree / f"probe_{i}.c").write_text("int probe(void) { return 0; }\n")
    return tree


def build(tmp_path: Path, grant: Grant, *, joined: bool = True) -> list[tuple[float, float, int]]:
    """Build the probe's wheel under ``grant``; each extension's (start, end, parallel)."""
    tree = make_tree(tmp_path)
    probe = probe_file(tmp_path)
    log = (tmp_path / "build.log").open("ab", buffering=0)
    backend = Backend(
        tree,
        BuildSystem((), "setuptools.build_meta:__legacy__", ()),
        BuildEnv.at(Path(sys.prefix)),
        log,
        package="probe",
        exchange_dir=tmp_path / "exchange",
        base_environ={"PATH": os.environ["PATH"]},
        time_limit=TimeLimit(120, "the test"),
    )
    environ = {**grant.variables, "PROBE_FILE": str(probe)}
    backend.use_environ(environ, build_ext=grant.build_ext_jobs() if joined else None)
    with backend, log:
        backend.build_wheel(tmp_path / "wheels")
    rows = [json.loads(line) for line in probe.read_text().splitlines()]
    return [(start, end, parallel) for _, start, end, parallel in rows]


def probe_file(tmp_path: Path) -> Path:
    return tmp_path / "probe.jsonl"


def wait_for_extensions(tmp_path: Path, started: int) -> None:
    """Until ``started`` extensions have started building."""
    marks = probe_file(tmp_path).with_name("probe.jsonl.started")
    deadline = time.monotonic() + 60
    while not (marks.exists() and len(marks.read_text().split()) >= started):
        assert time.monotonic() < deadline, "the build never started its extensions"
        time.sleep(0.02)


def test_a_build_that_started_beside_another_takes_its_core_when_it_ends(
    tmp_path: Path,
) -> None:
    with CoreBudget(2, make_joins=True) as budget:
        other = budget.lease()
        other.__enter__()  # a build running already: it holds one token of two
        with budget.lease() as grant:
            assert (grant.cores, grant.alongside) == (1, 1)
            ended: list[float] = []

            def end_the_other() -> None:
                wait_for_extensions(tmp_path, 1)
                time.sleep(2 * COMPILE)
                ended.append(time.time())
                other.__exit__(None, None, None)

            thread = threading.Thread(target=end_the_other, daemon=True)
            thread.start()
            rows = build(tmp_path, grant)
            thread.join()
    log = (tmp_path / "build.log").read_text()
    assert "build_ext builds up to 2 extensions at once, those past its share of 1" in log
    assert len(rows) == EXTENSIONS and {parallel for *_, parallel in rows} == {2}
    before = [(s, e) for s, e, _ in rows if s < ended[0]]
    after = [(s, e) for s, e, _ in rows if s >= ended[0]]
    # One at a time while the other build held the second core, two at once after.
    assert most_at_once(before) == 1
    assert most_at_once(after) == 2


def test_without_joining_the_share_stands_to_the_end(tmp_path: Path) -> None:
    with CoreBudget(2, make_joins=True) as budget, budget.lease(), budget.lease() as grant:
        assert grant.cores == 1
        rows = build(tmp_path, grant, joined=False)
    assert {parallel for *_, parallel in rows} == {1}
    assert most_at_once([(s, e) for s, e, _ in rows]) == 1
    assert "build_ext builds up to" not in (tmp_path / "build.log").read_text()


def test_alone_a_build_runs_its_share_on_the_token_it_holds(tmp_path: Path) -> None:
    """Promised both cores, it takes no second token: a build starting meanwhile gets
    one at once and runs beside it, as builds with a fixed share do."""
    with CoreBudget(2, make_joins=True) as budget, budget.lease() as grant:
        assert grant.cores == 2
        free: list[int] = []

        def look() -> None:
            wait_for_extensions(tmp_path, 2)
            free.append(tokens_free(budget))

        thread = threading.Thread(target=look, daemon=True)
        thread.start()
        rows = build(tmp_path, grant)
        thread.join()
    assert free == [1]
    assert most_at_once([(s, e) for s, e, _ in rows]) == 2
    assert "build_ext builds up to" not in (tmp_path / "build.log").read_text()


def test_a_build_waiting_for_a_token_goes_before_the_jobs_past_a_share(
    tmp_path: Path,
) -> None:
    """When a token comes back, a build waiting for one takes it, not an extension past
    another build's share: a build starting is never held up by them."""
    with CoreBudget(2, make_joins=True) as budget:
        other = budget.lease()
        other.__enter__()
        with budget.lease() as grant:
            assert grant.cores == 1
            times: dict[str, float] = {}

            def a_third_build() -> None:
                with budget.lease():
                    times["leased"] = time.time()
                    time.sleep(3 * COMPILE)
                    times["released"] = time.time()

            def the_other_ends_while_a_third_waits() -> None:
                wait_for_extensions(tmp_path, 1)
                third = threading.Thread(target=a_third_build, daemon=True)
                third.start()
                wait_for(lambda: budget.fifo.with_name("waiting").read_text().strip() == "1")
                times["ended"] = time.time()
                other.__exit__(None, None, None)
                third.join()

            thread = threading.Thread(target=the_other_ends_while_a_third_waits, daemon=True)
            thread.start()
            rows = build(tmp_path, grant)
            thread.join()
    spans = [(s, e) for s, e, _ in rows]
    assert times["leased"] - times["ended"] < COMPILE / 2
    held = [(s, e) for s, e in spans if e > times["leased"] and s < times["released"]]
    after = [(s, e) for s, e in spans if s >= times["released"]]
    # One extension at a time while the third build held the token, two once it ended.
    assert most_at_once(held) == 1
    assert most_at_once(after) == 2


@pytest.mark.parametrize(
    ("demand", "share", "most"),
    [(Demand(), 3, 4), (Demand(cores=2), 2, 2), (Demand(memory=1 << 20), 3, 3)],
)
def test_how_far_build_ext_may_grow(demand: Demand, share: int, most: int) -> None:
    """To the whole budget, unless the package's settings ask cores or memory."""
    with (
        CoreBudget(4, make_joins=True) as budget,
        budget.lease(Demand(cores=1)),
        budget.lease(demand) as grant,
    ):
        waiting = budget.fifo.with_name("waiting")
        assert grant.build_ext_jobs() == BuildExtJobs(str(budget.fifo), share, most, str(waiting))


def test_a_light_call_joins_nothing() -> None:
    with CoreBudget(2, make_joins=True) as budget, budget.lease(light=True) as asking:
        assert asking.build_ext_jobs() is None
