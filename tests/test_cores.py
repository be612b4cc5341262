"""The run's core budget: one build alone gets every core, builds together share them
through a jobserver that real ``make`` joins from inside the read-only view, and the
``exclusive`` / ``cores`` / ``memory`` settings are validated, recorded and honoured by
bootstrap and build-sequence alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from bootstrapper.builder import build_environment, make_plan
from bootstrapper.candidates import Release
from bootstrapper.cli import main
from bootstrapper.cores import CoreBudget, Demand, merge_makeflags, parse_size
from bootstrapper.index import DistFile
from bootstrapper.records import BuildRecord
from bootstrapper.settings import Settings, SettingsError

from .support import FixtureIndex, Project, most_at_once, tokens_free, wait_for

# -- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("8G", 8 << 30),
        ("8g", 8 << 30),
        ("512MiB", 512 << 20),
        ("1.5GB", 3 << 29),
        ("2T", 2 << 40),
        ("100B", 100),
        ("lots", None),
        ("8X", None),
        ("-1G", None),
        ("", None),
    ],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("user", "merged"),
    [
        (None, "OURS"),
        ("", "OURS"),
        ("-k V=1", "-k V=1 OURS"),
        ("k -j8 --jobserver-auth=3,4", "k OURS"),
        ("--jobs=4 --jobserver-fds=5,6 -s", "-s OURS"),
    ],
)
def test_our_job_settings_win_over_the_users_makeflags(user: str | None, merged: str) -> None:
    assert merge_makeflags(user, "OURS") == merged


def test_alone_every_core_together_the_cores_not_promised() -> None:
    with CoreBudget(4, make_joins=True) as budget:
        with budget.lease() as alone:
            assert alone.cores == 4 and alone.alongside == 0
            assert alone.variables["MAX_JOBS"] == "4"
            assert alone.variables["MAKEFLAGS"] == f"-j --jobserver-auth=fifo:{budget.fifo}"
        with budget.lease() as first, budget.lease() as second:
            # Everything is promised already: the least share, never nothing.
            assert (first.cores, second.cores, second.alongside) == (4, 1, 1)
        with budget.lease(Demand(cores=1)) as small, budget.lease() as rest:
            assert (small.cores, rest.cores) == (1, 3)


def test_asking_for_requirements_promises_no_cores_and_takes_no_token() -> None:
    with (
        CoreBudget(2, make_joins=True) as budget,
        budget.lease(light=True) as asking,
        budget.lease() as building,
    ):
        assert (asking.cores, building.cores, building.alongside) == (1, 2, 0)
        assert tokens_free(budget) == 1


def test_asking_never_waits_for_a_token() -> None:
    """Compiles holding every token do not stop resolution's questions."""
    with CoreBudget(1, make_joins=True) as budget, budget.lease():
        assert tokens_free(budget) == 0

        def ask() -> None:
            with budget.lease(light=True):
                pass

        asked = threading.Thread(target=ask, daemon=True)
        asked.start()
        asked.join(10)
        assert not asked.is_alive()


def test_a_cores_hint_waits_until_that_many_are_not_promised() -> None:
    order: list[str] = []
    with CoreBudget(4, make_joins=True) as budget:
        wide = budget.lease()
        wide.__enter__()

        def hinted() -> None:
            with budget.lease(Demand(cores=2)) as grant:
                order.append(f"hinted got {grant.cores}")

        thread = threading.Thread(target=hinted)
        thread.start()
        wait_for(lambda: budget.running() == 1 and thread.is_alive())
        order.append("wide ends")
        wide.__exit__(None, None, None)
        thread.join(30)
    assert order == ["wide ends", "hinted got 2"]


def test_an_old_make_gets_a_fixed_share_and_cargo_the_jobserver() -> None:
    with CoreBudget(3, make_joins=False) as budget, budget.lease(user_makeflags="-k") as grant:
        assert grant.variables["MAKEFLAGS"] == "-k -j3"
        assert grant.variables["CARGO_MAKEFLAGS"] == f"-j --jobserver-auth=fifo:{budget.fifo}"
        assert grant.variables["CMAKE_BUILD_PARALLEL_LEVEL"] == "3"
        config = Path(grant.variables["DIST_EXTRA_CONFIG"]).read_text()
        assert config == "[build_ext]\nparallel = 3\n"


HOLD_A_BUDGET = """
import sys
from bootstrapper.cores import CoreBudget

with CoreBudget(2, make_joins=True) as budget:
    print(budget.fifo.parent, flush=True)
    sys.stdin.read()
"""


def test_a_killed_runs_jobserver_directory_is_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kill -9`` leaves no chance to clean up; the next run's budget removes the
    directory, and leaves a live run's alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD_A_BUDGET],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    killed, alive = runs
    dirs = [Path(run.stdout.readline().strip()) for run in runs if run.stdout is not None]
    assert all((d / "fifo").exists() and d.parent == tmp_path for d in dirs)
    killed.kill()
    killed.wait()
    other = tmp_path / "bootstrapper-jobserver-of-an-older-version"
    other.mkdir()
    with CoreBudget(2, make_joins=True) as budget:
        ours = budget.fifo.parent
        assert not dirs[0].exists(), "the killed run's directory is gone"
        assert (dirs[1] / "fifo").exists(), "the live run's is kept"
        assert other.exists(), "one with no owner file is not known to be abandoned"
    assert not ours.exists()
    alive.communicate("")
    assert not dirs[1].exists(), "a run that ends removes its own"


def test_each_lease_holds_a_token_and_lost_tokens_come_back() -> None:
    with CoreBudget(3, make_joins=True) as budget:
        with budget.lease():
            assert tokens_free(budget) == 2
            with budget.lease():
                assert tokens_free(budget) == 1
                # A tool killed while it held a token never gives it back...
                fd = os.open(budget.fifo, os.O_RDWR | os.O_NONBLOCK)
                assert os.read(fd, 1) == b"+"
                os.close(fd)
                assert tokens_free(budget) == 0
        # ...once nothing runs, every token is home again.
        assert tokens_free(budget) == 3


def test_an_exclusive_build_waits_for_the_machine_and_holds_off_the_rest() -> None:
    events: list[str] = []
    with CoreBudget(4, make_joins=True) as budget:
        running = budget.lease()
        running.__enter__()

        def exclusive() -> None:
            with budget.lease(Demand(exclusive=True)) as grant:
                events.append(f"exclusive start {grant.cores} {grant.alongside}")
                wait_for(lambda: len(events) > 0)
                events.append("exclusive end")

        def later() -> None:
            with budget.lease():
                events.append("later start")

        first = threading.Thread(target=exclusive)
        first.start()
        wait_for(lambda: budget._exclusive_waiting == 1)
        second = threading.Thread(target=later)
        second.start()
        # Neither may start while the first build runs; "later" not before "exclusive".
        assert events == []
        running.__exit__(None, None, None)
        first.join(30)
        second.join(30)
    assert events == ["exclusive start 4 0", "exclusive end", "later start"]


def test_memory_keeps_two_big_builds_apart() -> None:
    order: list[str] = []
    with CoreBudget(4, memory=10 << 30, make_joins=True) as budget:
        big = budget.lease(Demand(memory=6 << 30))
        big.__enter__()
        with budget.lease(Demand(memory=2 << 30)):
            order.append("small beside the big one")

        def other() -> None:
            with budget.lease(Demand(memory=6 << 30)):
                order.append("second big")

        thread = threading.Thread(target=other)
        thread.start()
        wait_for(lambda: order == ["small beside the big one"])
        order.append("first big ends")
        big.__exit__(None, None, None)
        thread.join(30)
    assert order == ["small beside the big one", "first big ends", "second big"]


# -- settings -----------------------------------------------------------------------------


def write_settings(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "overrides" / "settings" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_settings_errors_name_file_and_line(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        "heavy",
        "env:\n  X: y\nexclusive: 'yes'\ncores: 0\nmemory: lots\n"
        "variants:\n  big:\n    cores: many\n    memory: -3G\n",
    )
    with pytest.raises(SettingsError) as caught:
        Settings([tmp_path / "overrides"])
    assert caught.value.problems == [
        f"{path}:3: exclusive must be true or false",
        f"{path}:4: cores must be at least 1",
        f"{path}:5: memory must be a size above 0, such as 8G or 512M (got 'lots')",
        f"{path}:8: cores must be a whole number, 0 or more (got 'many')",
        f"{path}:9: memory must be a size above 0, such as 8G or 512M (got '-3G')",
    ]


def test_settings_ask_the_budget_but_leave_the_plan_alone(tmp_path: Path) -> None:
    write_settings(tmp_path, "heavy", "exclusive: true\ncores: 3\nmemory: 12G\n")
    layers = [tmp_path / "overrides"]
    release = Release("heavy", Version("1.0"), DistFile("heavy-1.0.tar.gz", "file:///x", {}))  # type: ignore[arg-type]
    plan = make_plan(Settings(layers), [], None, release)
    assert plan.settings.demand() == Demand(exclusive=True, cores=3, memory=12 << 30)
    bare = make_plan(Settings([]), [], None, release)
    # Existing wheels stay reusable: the fingerprint does not see the hints.
    assert plan.fingerprint(release.version) == {
        **bare.fingerprint(release.version),
        "settings": {
            **bare.fingerprint(release.version)["settings"],
            "files": list(plan.settings.files),
        },
    }


def test_settings_env_wins_over_the_computed_share(tmp_path: Path) -> None:
    write_settings(tmp_path, "heavy", "env:\n  MAX_JOBS: '1'\n")
    release = Release("heavy", Version("1.0"), DistFile("heavy-1.0.tar.gz", "file:///x", {}))  # type: ignore[arg-type]
    plan = make_plan(Settings([tmp_path / "overrides"]), [], None, release)
    with CoreBudget(4, make_joins=True) as budget, budget.lease() as grant:
        env = build_environment(plan, 0, cores=grant.variables)
    assert env["MAX_JOBS"] == "1" and env["CMAKE_BUILD_PARALLEL_LEVEL"] == "4"


# -- through real bootstraps --------------------------------------------------------------


def probe(wheel: Path) -> dict[str, Any]:
    dist = wheel.name.split("-")[0]
    with zipfile.ZipFile(wheel) as zf:
        return dict(json.loads(zf.read(f"{dist}_cores.json")))


def record(wheel: Path) -> BuildRecord:
    return BuildRecord.from_json(Path(f"{wheel}.build.json").read_text())


def intervals(seen: dict[str, Any]) -> list[tuple[int, int]]:
    starts: dict[str, int] = {}
    found = []
    for line in seen["make"].splitlines():
        what, target, stamp = line.split()
        if what == "start":
            starts[target] = int(stamp)
        else:
            found.append((starts.pop(target), int(stamp)))
    assert not starts, "a target never ended"
    return found


def test_a_build_alone_gets_every_core_and_make_uses_them(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    index.add(
        Project("solo", tool={"cores-probe": True, "make-targets": 6, "seconds": 0.6}),
        tmp_path / "sdists",
    )
    run = bootstrap("--cores", "3", "solo")
    assert run.code == 0, run.stderr
    wheel = run.output / "wheels" / "solo-1.0-py3-none-any.whl"
    seen = probe(wheel)
    assert seen["variables"]["MAX_JOBS"] == "3"
    assert seen["variables"]["CARGO_BUILD_JOBS"] == "3"
    assert seen["variables"]["NPY_NUM_BUILD_JOBS"] == "3"
    assert seen["dist_extra_config"] == "[build_ext]\nparallel = 3\n"
    assert "--jobserver-auth=fifo:" in seen["variables"]["CARGO_MAKEFLAGS"]
    # Six targets, three tokens: make ran three at once, never more.
    assert most_at_once(intervals(seen)) == 3
    cores = record(wheel).cores
    assert (cores["cores"], cores["machine"], cores["alongside"]) == (3, 3, 0)
    assert cores["jobserver"] is True and "settings" not in cores


def test_two_builds_together_share_the_jobserver(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """Both builds provably run at once (each waits for the other to start); their makes
    together never run more targets than there are cores, from inside the read-only view
    and without network."""
    for name, other in (("left", "right"), ("right", "left")):
        index.add(
            Project(
                name,
                tool={
                    "cores-probe": True,
                    "make-targets": 4,
                    "seconds": 0.4,
                    "rendezvous": [other],
                },
                # Static metadata: resolution needs neither build, so both are scheduled.
                pkg_info_version="2.2",
            ),
            tmp_path / "sdists",
        )
    run = bootstrap("--cores", "2", "left", "right", jobs=2)
    assert run.code == 0, run.stderr
    wheels = [run.output / "wheels" / f"{n}-1.0-py3-none-any.whl" for n in ("left", "right")]
    spans = [span for wheel in wheels for span in intervals(probe(wheel))]
    assert most_at_once(spans) <= 2
    grants = sorted((record(w).cores["alongside"], record(w).cores["cores"]) for w in wheels)
    # The first to start got both cores; the second, started beside it, the least share.
    assert grants == [(0, 2), (1, 1)]
    shares = sorted(probe(w)["variables"]["MAX_JOBS"] for w in wheels)
    assert shares == ["1", "2"]


def exclusive_tree(tmp_path: Path, index: FixtureIndex) -> Path:
    """``app`` -> ``lib[fast]`` -> ``heavy`` (exclusive, MAX_JOBS from its settings), and
    two ordinary builds that would run beside it."""
    slow = {"cores-probe": True, "seconds": 0.5}
    for project in (
        Project("app", dependencies=["lib[fast]", "one", "two"]),
        Project("lib", optional={"fast": ["heavy"]}),
        Project("heavy", tool=slow),
        Project("one", tool=slow),
        Project("two", tool=slow),
    ):
        index.add(project, tmp_path / "sdists")
    write_settings(tmp_path, "heavy", "exclusive: true\nmemory: 1G\nenv:\n  MAX_JOBS: '7'\n")
    return tmp_path / "overrides"


def assert_ran_alone(out: Path, total: int) -> None:
    spans = {
        name: (seen["started"], seen["finished"])
        for name in ("heavy", "one", "two")
        for seen in [probe(out / "wheels" / f"{name}-1.0-py3-none-any.whl")]
    }
    start, end = spans.pop("heavy")
    for name, (other_start, other_end) in spans.items():
        assert other_end < start or end < other_start, f"{name} ran beside heavy"
    heavy = out / "wheels" / "heavy-1.0-py3-none-any.whl"
    variables = probe(heavy)["variables"]
    assert variables["MAX_JOBS"] == "7"  # the settings' env wins
    assert variables["CMAKE_BUILD_PARALLEL_LEVEL"] == str(total)
    cores = record(heavy).cores
    assert (cores["cores"], cores["alongside"]) == (total, 0)
    assert cores["settings"] == {"exclusive": True, "memory": "1G"}


def test_exclusive_through_an_extra_runs_alone_and_build_sequence_too(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    overrides = exclusive_tree(tmp_path, index)
    run = bootstrap("--cores", "2", "--overrides-dir", str(overrides), "app", jobs=3)
    assert run.code == 0, run.stderr
    assert_ran_alone(run.output, 2)
    order = json.loads((run.output / "build-order.json").read_text())
    scheduling = {e["name"]: e.get("scheduling") for e in order}
    assert scheduling["heavy"] == {"exclusive": True, "memory": "1G"}
    assert scheduling["one"] is None

    # The rebuild knows nothing but the build order, and schedules heavy the same way.
    again = tmp_path / "again"
    code = main(
        [
            "build-sequence",
            str(run.output / "build-order.json"),
            "--output-dir",
            str(again),
            "--jobs",
            "3",
            "--cores",
            "2",
        ]
    )
    assert code == 0
    assert_ran_alone(again, 2)


def test_cores_option_must_be_positive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bootstrap", "--cores", "0", "--output-dir", str(tmp_path / "o"), "x"])
    assert code == 2
    assert "--cores must be at least 1" in capsys.readouterr().err
