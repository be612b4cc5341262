"""Resolution never waits for a build when it need not: a long build of one package does
not hold back the discovery, and the builds, of the rest of the tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .support import FixtureIndex, Project
from .test_bootstrap_behaviour import built_lines


def test_a_slow_build_for_metadata_does_not_stall_an_independent_branch(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """app needs aaa-slow, whose dependencies only its (long) build tells, and zzz-fast,
    whose static PKG-INFO names zzz-dep, which must be built to be known. zzz-dep is
    discovered and built while aaa-slow builds; before, the resolver took aaa-slow
    first (by name) and waited for its build before it even saw zzz-dep."""
    index.add_all(
        [
            Project("app", "1.0", dependencies=["aaa-slow", "zzz-fast"], pkg_info_version="2.2"),
            Project("aaa-slow", "1.0", tool={"sleep": 6}),
            Project("zzz-fast", "1.0", dependencies=["zzz-dep"], pkg_info_version="2.2"),
            Project("zzz-dep", "1.0"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("app", jobs=2)
    assert run.code == 0, run.stderr
    built = built_lines(run.stderr)
    assert set(built) == {"app==1.0", "aaa-slow==1.0", "zzz-fast==1.0", "zzz-dep==1.0"}
    # The order in which the builds ended: zzz-dep (seen only through zzz-fast's
    # metadata) while aaa-slow was still building.
    assert built.index("zzz-dep==1.0") < built.index("aaa-slow==1.0"), run.stderr


def test_metadata_prepared_by_the_backend_spares_waiting_for_the_build(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """aaa-slow has no static metadata, but its backend answers
    prepare_metadata_for_build_wheel: its dependency aaa-dep is known, and built, while
    aaa-slow's own (long) build goes on."""
    index.add_all(
        [
            Project("app", "1.0", dependencies=["aaa-slow"], pkg_info_version="2.2"),
            Project(
                "aaa-slow",
                "1.0",
                dependencies=["aaa-dep"],
                tool={"sleep": 6, "prepare-metadata": True},
            ),
            Project("aaa-dep", "1.0"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("app", jobs=2)
    assert run.code == 0, run.stderr
    built = built_lines(run.stderr)
    assert built.index("aaa-dep==1.0") < built.index("aaa-slow==1.0"), run.stderr
    log = (run.output / "logs" / "aaa-slow-1.0.log").read_text()
    assert log.index("prepare_metadata_for_build_wheel") < log.index("hook build_wheel")
    assert "re-resolving" not in run.stderr


def test_without_the_hook_no_build_stands_in_for_it(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """A backend without prepare_metadata_for_build_wheel is asked once, then built once
    (pyproject_hooks' fallback, a whole build for the metadata, is not used)."""
    index.add_all(
        [Project("app", "1.0", dependencies=["lib"], pkg_info_version="2.2"), Project("lib")],
        tmp_path / "sdists",
    )
    run = bootstrap("app")
    assert run.code == 0, run.stderr
    log = (run.output / "logs" / "lib-1.0.log").read_text()
    assert log.count("== PEP 517 hook prepare_metadata_for_build_wheel") == 1
    assert log.count("== PEP 517 hook build_wheel") == 1


def test_a_branch_known_only_by_building_is_followed_while_the_resolver_waits(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """Neither branch has cheap metadata: the resolver waits for aaa-slow's build, while
    link0's build (started ahead) tells that link1 is needed, and link1 is built too."""
    index.add_all(
        [
            Project("app", "1.0", dependencies=["aaa-slow", "link0"], pkg_info_version="2.2"),
            Project("aaa-slow", "1.0", tool={"sleep": 6}),
            Project("link0", "1.0", dependencies=["link1"]),
            Project("link1", "1.0"),
        ],
        tmp_path / "sdists",
    )
    run = bootstrap("app", jobs=2)
    assert run.code == 0, run.stderr
    built = built_lines(run.stderr)
    assert built.index("link1==1.0") < built.index("aaa-slow==1.0"), run.stderr


def test_no_release_the_constraints_exclude_is_built_on_a_guess(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """Speculation builds the release the resolver will likely pick; with ``-c lib<2``
    that is never lib 2.0, reached here through an extra and a dependency."""
    index.add_all(
        [
            Project("app", optional={"all": ["mid"]}),
            Project("mid", dependencies=["lib"]),
            Project("lib", "2.0"),
            Project("lib", "1.0"),
        ],
        tmp_path / "sdists",
    )
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("lib<2\n")
    run = bootstrap("-c", str(constraints), "app[all]")
    assert run.code == 0, run.stderr
    assert "lib==1.0" in built_lines(run.stderr)
    assert not (run.output / "logs" / "lib-2.0.log").exists()
    assert not list((run.output / ".work" / "built").glob("lib-2.0-*.whl"))
