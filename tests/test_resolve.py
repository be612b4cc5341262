"""Unit tests for bootstrapper.resolve with in-memory fakes of its two collaborators."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import BaseReporter

from bootstrapper.candidates import Release
from bootstrapper.errors import (
    BootstrapError,
    InvalidSourceError,
    NoSourceDistributionError,
    ResolutionError,
    UnknownProjectError,
)
from bootstrapper.index import DistFile
from bootstrapper.metadata import CoreMetadata, parse_metadata
from bootstrapper.resolve import Candidate, Resolution, parse_constraints, resolve

ENV: dict[str, str] = {
    **{k: str(v) for k, v in default_environment().items()},
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_system": "Linux",
    "implementation_name": "cpython",
}


@dataclass(frozen=True)
class Pkg:
    """One version of a fake project: its dependencies and index flags."""

    version: str
    requires: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    yanked: bool = False
    requires_python: str | None = None


def pkg(
    version: str,
    *requires: str,
    extras: tuple[str, ...] = (),
    yanked: bool = False,
    requires_python: str | None = None,
) -> Pkg:
    return Pkg(version, requires, extras, yanked, requires_python)


class FakeIndex:
    """Both collaborators of ``resolve``: a ReleaseFinder and a MetadataSource."""

    def __init__(
        self,
        projects: Mapping[str, Sequence[Pkg]],
        *,
        wheel_only: Iterable[str] = (),
        broken_metadata: Iterable[str] = (),
    ) -> None:
        self.projects = {canonicalize_name(n): list(v) for n, v in projects.items()}
        self.wheel_only = {canonicalize_name(n) for n in wheel_only}
        self.broken_metadata = {canonicalize_name(n) for n in broken_metadata}
        self.prefetched: list[NormalizedName] = []
        self.anticipated: list[str] = []
        self.metadata_calls: list[tuple[str, tuple[str, ...]]] = []
        #: Projects whose metadata only a build gives (MetadataSource.ready says no).
        self.needs_build: set[NormalizedName] = set()

    # ReleaseFinder
    def releases(self, name: NormalizedName) -> Sequence[Release]:
        if name in self.wheel_only:
            return []
        if name not in self.projects:
            raise UnknownProjectError(f"{name} is not on the index", package=name)
        found = [
            Release(
                name,
                Version(p.version),
                DistFile(
                    f"{name}-{p.version}.tar.gz",
                    f"https://files.example/{name}-{p.version}.tar.gz",
                    yanked=p.yanked,
                ),
            )
            for p in self.projects[name]
        ]
        return sorted(found, key=lambda r: r.version, reverse=True)

    def has_files(self, name: NormalizedName) -> bool:
        return name in self.wheel_only or bool(self.projects.get(name))

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        self.prefetched.extend(names)

    def anticipate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        self.anticipated.extend(str(r) for r in requirements)

    def ready(self, release: Release) -> bool:
        return release.name not in self.needs_build

    # MetadataSource
    def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        self.metadata_calls.append((str(release), tuple(chain)))
        if release.name in self.broken_metadata:
            raise InvalidSourceError(f"{release}: cannot read its metadata", package=release.name)
        (spec,) = [p for p in self.projects[release.name] if Version(p.version) == release.version]
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {release.name}",
            f"Version: {release.version}",
            *([f"Requires-Python: {spec.requires_python}"] if spec.requires_python else []),
            *(f"Provides-Extra: {e}" for e in spec.extras),
            *(f"Requires-Dist: {r}" for r in spec.requires),
        ]
        return parse_metadata("\n".join(lines).encode() + b"\n", f"{release}/METADATA")


@dataclass
class Run:
    index: FakeIndex
    constraints: dict[NormalizedName, SpecifierSet] = field(default_factory=dict)

    def __call__(
        self,
        *requirements: str,
        allow_prereleases: bool = False,
        environment: Mapping[str, str] | None = None,
        chain: Sequence[str] = (),
    ) -> Resolution:
        return resolve(
            [Requirement(r) for r in requirements],
            self.index,
            self.index,
            constraints=self.constraints,
            environment=ENV if environment is None else environment,
            allow_prereleases=allow_prereleases,
            chain=chain,
        )


def n(name: str) -> NormalizedName:
    return canonicalize_name(name)


def pins(resolution: Resolution) -> dict[str, str]:
    return {name: str(release.version) for name, release in resolution.pins.items()}


def deps(resolution: Resolution, name: str) -> list[str]:
    return [str(r) for r in resolution.dependencies[canonicalize_name(name)]]


# -- basics -----------------------------------------------------------------------------


def test_simple_tree_pins_dependencies_chains_metadata() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "libone>=1,<2", "libtwo")],
            "libone": [pkg("2.0"), pkg("1.4"), pkg("1.3")],
            "libtwo": [pkg("0.9", "Helper_Lib"), pkg("0.8")],
            "helper-lib": [pkg("3.0")],
        }
    )
    result = Run(index)("app")
    assert pins(result) == {"app": "1.0", "libone": "1.4", "libtwo": "0.9", "helper-lib": "3.0"}
    assert deps(result, "app") == ["libone<2,>=1", "libtwo"]
    assert deps(result, "libtwo") == ["Helper_Lib"]
    assert deps(result, "libone") == []
    assert dict(result.chains) == {
        "app": ("app",),
        "libone": ("app", "libone"),
        "libtwo": ("app", "libtwo"),
        "helper-lib": ("app", "libtwo", "helper-lib"),
    }
    assert {n: (m.name, str(m.version)) for n, m in result.metadata.items()} == {
        n: (n, v) for n, v in pins(result).items()
    }
    assert all(result.extras[n] == frozenset() for n in result.pins)
    assert all(release.name == name for name, release in result.pins.items())


def test_metadata_source_gets_the_chain_and_finder_gets_prefetch_hints() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib")], "lib": [pkg("1.0", "leaf")], "leaf": [pkg("1")]})
    Run(index)("app", chain=("outer",))
    # resolvelib may ask for a candidate's dependencies more than once
    assert set(index.metadata_calls) == {
        ("app==1.0", ("outer", "app")),
        ("lib==1.0", ("outer", "app", "lib")),
        ("leaf==1", ("outer", "app", "lib", "leaf")),
    }
    assert {"app", "lib", "leaf"} <= set(index.prefetched)


def first_asked(index: FakeIndex) -> list[str]:
    """Releases in the order their metadata was first asked for."""
    seen: list[str] = []
    for release, _ in index.metadata_calls:
        if release not in seen:
            seen.append(release)
    return seen


@pytest.mark.parametrize("slow", ["aaa-slow", "zzz-slow"])
def test_projects_needing_a_build_for_their_metadata_come_last(slow: str) -> None:
    """While such a build runs, the resolver goes on with the rest of the tree (in the
    order of names, ``aaa-slow`` would have been asked first)."""
    index = FakeIndex(
        {
            "app": [pkg("1.0", slow, "mmm-fast")],
            slow: [pkg("1.0")],
            "mmm-fast": [pkg("1.0", "mmm-dep")],
            "mmm-dep": [pkg("1.0")],
        }
    )
    index.needs_build = {n(slow)}
    result = Run(index)("app")
    assert set(pins(result)) == {"app", slow, "mmm-fast", "mmm-dep"}
    assert first_asked(index) == ["app==1.0", "mmm-fast==1.0", "mmm-dep==1.0", f"{slow}==1.0"]


def test_a_project_whose_metadata_arrives_during_resolution_is_taken_in_turn() -> None:
    """The resolver keeps what a project's requirements decide about its turn, but asks
    again whether its metadata is ready until it is (its build may answer meanwhile)."""

    class BuildAnswers(FakeIndex):
        def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
            if release.name == "mmm-dep":
                self.needs_build.discard(n("aaa-slow"))  # its build answered meanwhile
            return super().metadata(release, chain)

    class Pins(BaseReporter[Requirement, Candidate, str]):
        def __init__(self) -> None:
            self.order: list[str] = []

        def pinning(self, candidate: Candidate) -> None:
            self.order.append(str(candidate))

    index = BuildAnswers(
        {
            "app": [pkg("1.0", "aaa-slow", "mmm-fast", "zzz")],
            "aaa-slow": [pkg("1.0")],
            "mmm-fast": [pkg("1.0", "mmm-dep")],
            "mmm-dep": [pkg("1.0")],
            "zzz": [pkg("1.0")],
        }
    )
    index.needs_build = {n("aaa-slow")}
    reporter = Pins()
    resolve([Requirement("app")], index, index, environment=ENV, reporter=reporter)
    # Waiting at first, it comes before mmm-dep and zzz by name once it is ready.
    assert reporter.order == [
        "app==1.0",
        "mmm-fast==1.0",
        "aaa-slow==1.0",
        "mmm-dep==1.0",
        "zzz==1.0",
    ]


@pytest.mark.parametrize("needs_build", [False, True])
def test_requires_python_known_only_from_metadata_skips_a_release(needs_build: bool) -> None:
    """Checked before the release is pinned when its metadata is cheap; after, through
    its dependencies, when only a build tells (the resolver does not wait for it)."""
    index = FakeIndex(
        {
            "app": [pkg("1.0", "lib")],
            "lib": [pkg("2.0", "newdep", requires_python=">=3.12"), pkg("1.0", "olddep")],
            "newdep": [pkg("1.0")],
            "olddep": [pkg("1.0")],
        }
    )
    if needs_build:
        index.needs_build = {n("lib")}
    result = Run(index)("app")
    assert pins(result) == {"app": "1.0", "lib": "1.0", "olddep": "1.0"}
    assert [str(r) for r in result.dependencies[n("lib")]] == ["olddep"]


def test_requirement_names_are_normalized() -> None:
    index = FakeIndex({"foo-bar": [pkg("1.0", "Zope.Interface")], "zope-interface": [pkg("6")]})
    result = Run(index)("Foo_Bar")
    assert pins(result) == {"foo-bar": "1.0", "zope-interface": "6"}
    assert result.chains[n("zope-interface")] == ("foo-bar", "zope-interface")


def test_shared_dependency_gets_one_version_satisfying_everyone() -> None:
    index = FakeIndex(
        {
            "a": [pkg("1.0", "shared>=1.2")],
            "b": [pkg("1.0", "shared<1.4")],
            "shared": [pkg("1.5"), pkg("1.3"), pkg("1.2"), pkg("1.1")],
        }
    )
    assert pins(Run(index)("a", "b"))["shared"] == "1.3"


# -- joint resolution -------------------------------------------------------------------


def test_backtracks_to_an_older_version_that_installs_together() -> None:
    # Newest of each independently: x 2.0 (needs z>=2), y 1.0 (needs z<2), which do not
    # install together; x 1.0 does not need z, so the joint answer is x 1.0.
    index = FakeIndex(
        {
            "x": [pkg("2.0", "z>=2", "w"), pkg("1.0", "w")],
            "y": [pkg("1.0", "z<2")],
            "z": [pkg("2.0"), pkg("1.0")],
            "w": [pkg("1.0")],
        }
    )
    result = Run(index)("x", "y")
    assert pins(result) == {"x": "1.0", "y": "1.0", "z": "1.0", "w": "1.0"}
    assert deps(result, "x") == ["w"]
    assert deps(result, "y") == ["z<2"]
    for name in result.pins:
        for requirement in result.dependencies[name]:
            child = result.pins[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(child.version)


def test_backtracks_deep_in_the_tree() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "a", "b")],
            "a": [pkg("3.0", "c>=2"), pkg("2.0", "c>=1.5"), pkg("1.0", "c")],
            "b": [pkg("1.0", "d")],
            "d": [pkg("1.0", "c<1.5")],
            "c": [pkg("2.0"), pkg("1.5"), pkg("1.0")],
        }
    )
    result = Run(index)("app")
    assert pins(result) == {"app": "1.0", "a": "1.0", "b": "1.0", "c": "1.0", "d": "1.0"}


def test_chains_follow_the_final_resolution_after_backtracking() -> None:
    index = FakeIndex(
        {
            "x": [pkg("2.0", "z>=2", "w"), pkg("1.0", "w")],
            "y": [pkg("1.0", "z<2")],
            "z": [pkg("2.0"), pkg("1.0")],
            "w": [pkg("1.0")],
        }
    )
    result = Run(index)("x", "y")
    assert result.chains[n("z")] == ("y", "z")


# -- extras -----------------------------------------------------------------------------


def test_extra_pulls_its_dependencies_with_one_version_of_the_project() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "Lib[Fast]", "lib<2")],
            "lib": [
                pkg(
                    "2.0",
                    "base-dep",
                    "speedups; extra == 'fast'",
                    extras=("fast", "docs"),
                ),
                pkg(
                    "1.5",
                    "base-dep",
                    "speedups>=1; extra == 'fast'",
                    "sphinx; extra == 'docs'",
                    "py2only; extra == 'fast' and python_version < '3'",
                    extras=("fast", "docs"),
                ),
            ],
            "base-dep": [pkg("1.0")],
            "speedups": [pkg("1.1")],
            "sphinx": [pkg("7.0")],
            "py2only": [pkg("1.0")],
        }
    )
    result = Run(index)("app")
    assert pins(result) == {"app": "1.0", "lib": "1.5", "base-dep": "1.0", "speedups": "1.1"}
    assert result.extras[n("lib")] == frozenset({"fast"})
    assert result.extras[n("app")] == frozenset()
    assert deps(result, "lib") == ["base-dep", 'speedups>=1; extra == "fast"']
    assert result.chains[n("speedups")] == ("app", "lib", "speedups")


def test_extra_requested_at_top_level() -> None:
    index = FakeIndex(
        {
            "lib": [pkg("1.0", "dep-a; extra == 'a'", "dep-b; extra == 'b'", extras=("a", "b"))],
            "dep-a": [pkg("1.0")],
            "dep-b": [pkg("1.0")],
        }
    )
    assert pins(Run(index)("lib[a]")) == {"lib": "1.0", "dep-a": "1.0"}
    both = Run(index)("lib[a]", "lib[b]")
    assert pins(both) == {"lib": "1.0", "dep-a": "1.0", "dep-b": "1.0"}
    assert both.extras[n("lib")] == frozenset({"a", "b"})


def test_extra_and_plain_requirements_conflict_on_one_project() -> None:
    # lib[fast]>=2 and lib<2 name the same project, which gets one version: no answer.
    index = FakeIndex(
        {
            "lib": [pkg("2.0", "speedups; extra == 'fast'", extras=("fast",)), pkg("1.0")],
            "speedups": [pkg("1.0")],
        }
    )
    with pytest.raises(ResolutionError):
        Run(index)("lib[fast]>=2", "lib<2")


# -- markers ----------------------------------------------------------------------------


def test_dependency_with_false_marker_is_skipped() -> None:
    index = FakeIndex(
        {
            "app": [
                pkg(
                    "1.0",
                    "futures; python_version < '3'",
                    "tomli; python_version < '3.11'",
                    "colorama; sys_platform == 'win32'",
                    "uvloop; sys_platform == 'linux'",
                )
            ],
            "futures": [pkg("3.0")],
            "tomli": [pkg("2.0")],
            "colorama": [pkg("0.4")],
            "uvloop": [pkg("0.19")],
        }
    )
    result = Run(index)("app")
    assert pins(result) == {"app": "1.0", "uvloop": "0.19"}
    assert deps(result, "app") == ['uvloop; sys_platform == "linux"']


def test_markers_use_the_given_environment() -> None:
    index = FakeIndex({"app": [pkg("1.0", "futures; python_version < '3'")], "futures": [pkg("3")]})
    old = {**ENV, "python_version": "2.7", "python_full_version": "2.7.18"}
    assert pins(Run(index)("app", environment=old)) == {"app": "1.0", "futures": "3"}


def test_top_level_requirement_with_false_marker_is_skipped() -> None:
    index = FakeIndex({"app": [pkg("1.0")]})
    result = Run(index)("app", "pywin32; sys_platform == 'win32'")
    assert pins(result) == {"app": "1.0"}


# -- constraints ------------------------------------------------------------------------


def test_constraint_narrows_the_version() -> None:
    index = FakeIndex(
        {"app": [pkg("1.0", "lib>=1")], "lib": [pkg("3.0"), pkg("2.5"), pkg("2.0"), pkg("1.0")]}
    )
    run = Run(index, parse_constraints([Requirement("lib<2.5"), Requirement("Lib!=2.0")]))
    assert pins(run("app")) == {"app": "1.0", "lib": "1.0"}
    assert pins(Run(index, {canonicalize_name("lib"): SpecifierSet("<3")})("app"))["lib"] == "2.5"


def test_constraint_does_not_add_a_project() -> None:
    index = FakeIndex({"app": [pkg("1.0")], "other": [pkg("1.0")]})
    result = Run(index, parse_constraints([Requirement("other==1.0")]))("app")
    assert pins(result) == {"app": "1.0"}


def test_constraint_that_excludes_everything_fails() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib")], "lib": [pkg("1.0")]})
    with pytest.raises(ResolutionError) as info:
        Run(index, parse_constraints([Requirement("lib>5")]))("app")
    assert info.value.package == "lib"


def test_parse_constraints_merges_per_project() -> None:
    merged = parse_constraints([Requirement("Foo>=1"), Requirement("foo<2"), Requirement("bar")])
    assert merged == {"foo": SpecifierSet(">=1,<2"), "bar": SpecifierSet()}


# -- yanked and pre-releases ------------------------------------------------------------


def yanked_index() -> FakeIndex:
    return FakeIndex({"lib": [pkg("2.0", yanked=True), pkg("1.0")]})


def test_yanked_release_ignored() -> None:
    assert pins(Run(yanked_index())("lib")) == {"lib": "1.0"}
    assert pins(Run(yanked_index())("lib>=1")) == {"lib": "1.0"}


def test_yanked_release_selected_by_exact_pin() -> None:
    assert pins(Run(yanked_index())("lib==2.0")) == {"lib": "2.0"}


def test_yanked_release_selected_by_exact_pin_deeper_in_the_tree() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib==2.0")], "lib": [pkg("2.0", yanked=True)]})
    assert pins(Run(index)("app")) == {"app": "1.0", "lib": "2.0"}


def test_only_yanked_release_without_pin_fails() -> None:
    with pytest.raises(ResolutionError) as info:
        Run(yanked_index())("lib>=2")
    assert info.value.package == "lib"


def prerelease_index() -> FakeIndex:
    return FakeIndex({"lib": [pkg("2.0b1"), pkg("1.0"), pkg("1.1rc1")]})


def test_prereleases_ignored_by_default() -> None:
    assert pins(Run(prerelease_index())("lib")) == {"lib": "1.0"}


def test_prereleases_allowed_when_asked() -> None:
    assert pins(Run(prerelease_index())("lib", allow_prereleases=True)) == {"lib": "2.0b1"}


def test_prerelease_when_the_specifier_names_one() -> None:
    assert pins(Run(prerelease_index())("lib>=2.0b1")) == {"lib": "2.0b1"}


def test_prerelease_when_nothing_else_matches() -> None:
    assert pins(Run(prerelease_index())("lib>1.0")) == {"lib": "2.0b1"}
    only_pre = FakeIndex({"app": [pkg("1.0", "new")], "new": [pkg("0.1a2"), pkg("0.1a1")]})
    assert pins(Run(only_pre)("app")) == {"app": "1.0", "new": "0.1a2"}


# -- failures ---------------------------------------------------------------------------


def test_conflict_names_both_requirements_and_who_required_them() -> None:
    index = FakeIndex(
        {
            "app": [pkg("1.0", "libone", "libtwo")],
            "libone": [pkg("1.0", "shared>=2")],
            "libtwo": [pkg("1.0", "shared<2")],
            "shared": [pkg("2.0"), pkg("1.0")],
        }
    )
    with pytest.raises(ResolutionError) as info:
        Run(index)("app")
    error = info.value
    assert error.package == "shared"
    assert "shared" in error.message
    assert error.details is not None
    assert "shared>=2 (required by libone==1.0)" in error.details
    assert "shared<2 (required by libtwo==1.0)" in error.details
    assert error.chain[0] == "app"
    assert error.chain[-1] == "shared"
    rendered = error.render()
    assert "shared>=2" in rendered
    assert "shared<2" in rendered


def test_top_level_conflict_says_so() -> None:
    index = FakeIndex({"lib": [pkg("2.0"), pkg("1.0")]})
    with pytest.raises(ResolutionError) as info:
        Run(index)("lib<1.5", "lib>=2")
    details = info.value.details or ""
    assert "lib<1.5 (required by the top-level requirements)" in details
    assert "lib>=2 (required by the top-level requirements)" in details
    assert info.value.chain == ("lib",)


def test_no_version_matches() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib>=5")], "lib": [pkg("1.0")]})
    with pytest.raises(ResolutionError) as info:
        Run(index)("app")
    assert info.value.package == "lib"
    assert info.value.chain == ("app", "lib")
    assert "lib>=5 (required by app==1.0)" in (info.value.details or "")


def test_project_with_files_but_no_sdist() -> None:
    index = FakeIndex({"app": [pkg("1.0", "wheelonly>=1")]}, wheel_only=["wheelonly"])
    with pytest.raises(NoSourceDistributionError) as info:
        Run(index)("app")
    assert info.value.package == "wheelonly"
    assert info.value.chain == ("app", "wheelonly")
    assert "sdist" in info.value.message


def test_top_level_project_without_sdist() -> None:
    index = FakeIndex({}, wheel_only=["wheelonly"])
    with pytest.raises(NoSourceDistributionError) as info:
        Run(index)("wheelonly", chain=("outer",))
    assert info.value.chain == ("outer", "wheelonly")


def test_unknown_project_propagates_with_chain() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib")], "lib": [pkg("1.0", "missing>=1")]})
    with pytest.raises(UnknownProjectError) as info:
        Run(index)("app")
    assert info.value.package == "missing"
    assert info.value.chain == ("app", "lib", "missing")
    assert "required by: app -> lib -> missing" in info.value.render()


def test_unknown_project_directly_under_app() -> None:
    index = FakeIndex({"app": [pkg("1.0", "missing")]})
    with pytest.raises(UnknownProjectError) as info:
        Run(index)("app")
    assert info.value.chain == ("app", "missing")


def test_unknown_top_level_project() -> None:
    with pytest.raises(UnknownProjectError) as info:
        Run(FakeIndex({}))("missing")
    assert info.value.chain == ("missing",)


def test_metadata_error_gets_the_chain() -> None:
    index = FakeIndex({"app": [pkg("1.0", "lib")], "lib": [pkg("1.0")]}, broken_metadata=["lib"])
    with pytest.raises(InvalidSourceError) as info:
        Run(index)("app")
    assert isinstance(info.value, BootstrapError)
    assert info.value.chain == ("app", "lib")


def test_arbitrary_equality_to_a_non_version_is_a_resolution_error() -> None:
    index = FakeIndex({"lib": [pkg("1.0")]})
    with pytest.raises(ResolutionError):
        Run(index)("lib===foobar")


def test_arbitrary_equality_to_a_version() -> None:
    index = FakeIndex({"lib": [pkg("2.0"), pkg("1.0", yanked=True)]})
    assert pins(Run(index)("lib===1.0")) == {"lib": "1.0"}
