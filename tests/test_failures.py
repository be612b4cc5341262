"""The pure parts of --keep-going: per-requirement closures, what may be published,
failed versus blocked, and the summary line."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from bootstrapper.candidates import Release
from bootstrapper.errors import BootstrapError
from bootstrapper.failures import (
    FALLBACK_PREBUILT,
    FailureLog,
    Status,
    install_closure,
    make_report,
    plan_publication,
    summary,
)
from bootstrapper.graph import NodeKey
from bootstrapper.index import DistFile
from bootstrapper.metadata import CoreMetadata
from bootstrapper.resolve import Resolution

ENV = {k: str(v) for k, v in default_environment().items()}


def key(name: str) -> NodeKey:
    return NodeKey(canonicalize_name(name), Version("1.0"))


def resolution(requires: dict[str, list[str]]) -> Resolution:
    """One release 1.0 per project, with these Requires-Dist."""
    pins = {}
    metadata = {}
    for raw, reqs in requires.items():
        name = NormalizedName(canonicalize_name(raw))
        pins[name] = Release(name, Version("1.0"), DistFile(f"{name}-1.0.tar.gz", "u"))
        metadata[name] = CoreMetadata(
            name=name,
            version=Version("1.0"),
            requires_dist=tuple(Requirement(r) for r in reqs),
            requires_python=SpecifierSet(),
            provides_extra=frozenset(),
            dynamic=frozenset(),
            metadata_version="2.1",
        )
    return Resolution(pins, {}, {}, metadata)


TREE = resolution(
    {
        "good": ["shared"],
        "bad": ["shared", "mid[fancy]"],
        "plain": ["mid"],
        "shared": [],
        "mid": ["base", 'broken; extra == "fancy"', 'never; python_version < "3"'],
        "base": [],
        "broken": [],
    }
)


@pytest.mark.parametrize(
    ("root", "closure"),
    [
        ("good", {"good", "shared"}),
        ("bad", {"bad", "shared", "mid", "base", "broken"}),
        # Another root asked for mid[fancy]; this one did not, so broken is not its.
        ("plain", {"plain", "mid", "base"}),
        ("mid[fancy]", {"mid", "base", "broken"}),
    ],
)
def test_install_closure_follows_each_roots_own_extras(root: str, closure: set[str]) -> None:
    assert install_closure(Requirement(root), TREE, ENV) == closure


def test_publication_withholds_only_incomplete_closures() -> None:
    roots = [Requirement("good"), Requirement("bad"), Requirement("plain")]
    built = {key(n) for n in ("good", "bad", "plain", "shared", "mid", "base", "tool")}
    # plain's mid needs a build tool; good's shared needs one that failed.
    needs = {key("mid"): {key("tool")}}
    publication = plan_publication(roots, TREE, ENV, built, needs)
    assert [str(r) for r in publication.published] == ["good", "plain"]
    assert publication.withheld == ((Requirement("bad"), (key("broken"),)),)
    assert publication.keys == {key(n) for n in ("good", "shared", "plain", "mid", "base", "tool")}
    assert key("broken") in publication.wanted and key("bad") in publication.wanted

    needs[key("shared")] = {key("failed-tool")}
    publication = plan_publication(roots, TREE, ENV, built, needs)
    assert [str(r) for r in publication.published] == ["plain"]


def test_the_package_an_error_arose_in_failed_the_others_are_blocked() -> None:
    log = FailureLog()
    error = BootstrapError(
        "tool: the build backend failed", chain=("app", "tool"), log_path=Path("/l/tool.log")
    )
    failed = log.package_failed(key("tool"), ("app", "tool"), error)
    blocked = log.package_failed(key("app"), ("app",), error)
    again = log.package_failed(key("other"), ("other",), error)
    assert (failed.status, failed.log, failed.chain) == (
        Status.FAILED,
        Path("/l/tool.log"),
        ("app", "tool"),
    )
    assert (blocked.status, blocked.blocked_by, blocked.log) == (
        Status.BLOCKED,
        ("tool==1.0",),
        None,
    )
    assert again.status is Status.BLOCKED
    # An equal but distinct error is a failure of its own.
    twin = BootstrapError("tool: the build backend failed")
    assert log.package_failed(key("twin"), ("twin",), twin).status is Status.FAILED
    assert log.blockers([key("app")]) == [key("tool"), key("app")]


def test_report_and_summary() -> None:
    log = FailureLog()
    broken = BootstrapError("broken: the build backend failed in build_wheel (exit status 3)")
    log.package_failed(key("broken"), ("bad", "mid", "broken"), broken)
    log.root_failed(Requirement("lost"), BootstrapError("ghost is not on the index"))
    roots = [Requirement("good"), Requirement("bad"), Requirement("lost")]
    built = {key(n) for n in ("good", "bad", "shared", "mid", "base")}
    publication = plan_publication(roots[:2], TREE, ENV, built, {})
    report = make_report(log, roots, publication, published_wheels=2)
    assert not report.ok
    assert [(f.name, f.status) for f in report.failures] == [
        ("broken", Status.FAILED),
        ("lost", Status.UNRESOLVED),
    ]
    assert report.not_published == (("bad", ("broken==1.0",)), ("lost", ()))
    assert summary(report, Path("OUT/failures.json")) == (
        "2 packages failed (see OUT/failures.json): broken 1.0 (the build backend failed in "
        "build_wheel (exit status 3)), lost (ghost is not on the index); "
        "published 2 of 6 wheels for: good; not published: bad, lost"
    )

    log.fell_back(key("broken"), FALLBACK_PREBUILT)
    publication = plan_publication(roots[:2], TREE, ENV, built | {key("broken")}, {})
    report = make_report(log, roots[:2], publication, published_wheels=6)
    assert report.failures[0].fallback == FALLBACK_PREBUILT
    assert summary(report, Path("f.json")) == (
        "1 package failed (see f.json): broken 1.0 (the build backend failed in build_wheel "
        "(exit status 3); took the index's wheel instead); "
        "published 6 of 6 wheels for: good, bad"
    )
