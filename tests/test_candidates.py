"""Unit tests for bootstrapper.candidates: sdist names, release selection and filtering."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from bootstrapper.candidates import Release, allowed, metadata_wheel, parse_sdist_filename, releases
from bootstrapper.index import DistFile, ProjectPage

PY311 = Version("3.11.7")


def dist(
    filename: str,
    *,
    requires_python: str | None = None,
    yanked: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> DistFile:
    return DistFile(
        filename=filename,
        url=f"https://files.example/{filename}",
        hashes={"sha256": "0" * 64},
        requires_python=requires_python,
        yanked=yanked,
        metadata_hashes=metadata,
    )


def page(name: str, *files: DistFile) -> ProjectPage:
    normalized = canonicalize_name(name)
    return ProjectPage(normalized, f"https://index.example/simple/{normalized}/", files)


def release(name: str, version: str, *, yanked: bool = False) -> Release:
    return Release(
        canonicalize_name(name), Version(version), dist(f"{name}-{version}.tar.gz", yanked=yanked)
    )


def versions(items: list[Release]) -> list[str]:
    return [str(r.version) for r in items]


# -- parse_sdist_filename ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "project", "expected"),
    [
        ("requests-2.31.0.tar.gz", "requests", "2.31.0"),
        ("python-dateutil-2.8.2.tar.gz", "python-dateutil", "2.8.2"),
        # PEP 625 normalized spelling of the same project
        ("python_dateutil-2.9.0.post0.tar.gz", "python-dateutil", "2.9.0.post0"),
        ("Django-4.2.tar.gz", "django", "4.2"),
        ("zope.interface-6.0.zip", "zope-interface", "6.0"),
        ("foo-1.0.tgz", "foo", "1.0"),
        ("foo-1.0.tar.bz2", "foo", "1.0"),
        ("foo-1.0.TAR.GZ", "foo", "1.0"),
        ("foo-2.0rc1.tar.gz", "foo", "2.0rc1"),
        ("foo-1!2.0.tar.gz", "foo", "1!2.0"),
        # a different project whose name starts like ours
        ("foo-bar-1.0.tar.gz", "foo", None),
        ("foo-1.0.tar.gz", "foo-bar", None),
        ("other-1.0.tar.gz", "foo", None),
        # not a version
        ("foo-latest.tar.gz", "foo", None),
        ("foo.tar.gz", "foo", None),
        # not an sdist
        ("foo-1.0-py3-none-any.whl", "foo", None),
        ("foo-1.0.exe", "foo", None),
        ("foo-1.0.tar.xz", "foo", None),
        ("foo-1.0.egg", "foo", None),
    ],
)
def test_parse_sdist_filename(filename: str, project: str, expected: str | None) -> None:
    result = parse_sdist_filename(filename, canonicalize_name(project))
    assert result == (None if expected is None else Version(expected))


# -- releases ---------------------------------------------------------------------------


def test_releases_only_sdists_become_releases_newest_first() -> None:
    result = releases(
        page(
            "foo",
            dist("foo-1.0.tar.gz"),
            dist("foo-2.0-py3-none-any.whl"),  # wheel only: nothing to build from
            dist("foo-1.10.tar.gz"),
            dist("foo-1.9.tar.gz"),
            dist("foo-1.0.exe"),
            dist("README.txt"),
        ),
        PY311,
    )
    assert versions(result) == ["1.10", "1.9", "1.0"]
    assert all(r.name == "foo" for r in result)
    assert [r.sdist.filename for r in result] == [
        "foo-1.10.tar.gz",
        "foo-1.9.tar.gz",
        "foo-1.0.tar.gz",
    ]


def test_releases_ignores_files_of_other_projects() -> None:
    result = releases(
        page("foo", dist("foo-bar-3.0.tar.gz"), dist("foo-1.0.tar.gz"), dist("foo_bar-2.0.zip")),
        PY311,
    )
    assert versions(result) == ["1.0"]


def test_releases_attach_upstream_wheels_of_the_same_version() -> None:
    any_wheel = dist("foo-1.0-py3-none-any.whl")
    linux_wheel = dist("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    newer_wheel = dist("foo-2.0-py3-none-any.whl")
    other_project = dist("foo_bar-1.0-py3-none-any.whl")
    broken = dist("foo-notaversion-py3-none-any.whl")
    result = releases(
        page(
            "foo",
            any_wheel,
            dist("foo-1.0.tar.gz"),
            linux_wheel,
            newer_wheel,
            other_project,
            broken,
            dist("foo-2.0.tar.gz"),
            dist("foo-3.0.tar.gz"),
        ),
        PY311,
    )
    by_version = {str(r.version): r for r in result}
    assert set(by_version) == {"3.0", "2.0", "1.0"}
    assert by_version["1.0"].wheels == (any_wheel, linux_wheel)
    assert by_version["2.0"].wheels == (newer_wheel,)
    assert by_version["3.0"].wheels == ()


def test_releases_wheel_with_unnormalized_name_is_attached() -> None:
    wheel = dist("Foo_Bar-1.0-py3-none-any.whl")
    result = releases(page("foo-bar", dist("foo-bar-1.0.tar.gz"), wheel), PY311)
    assert len(result) == 1
    assert result[0].wheels == (wheel,)


@pytest.mark.parametrize(
    ("requires_python", "kept"),
    [
        (None, True),
        ("", True),
        (">=3.8", True),
        (">=3.12", False),
        ("<3", False),
        ("~=3.11", True),
        ("==3.11.*", True),
        ("!=3.11.7", False),
        ("not a specifier", True),  # ignored, as pip does
    ],
)
def test_releases_filters_sdists_by_requires_python(
    requires_python: str | None, kept: bool
) -> None:
    result = releases(page("foo", dist("foo-1.0.tar.gz", requires_python=requires_python)), PY311)
    assert versions(result) == (["1.0"] if kept else [])


def test_releases_requires_python_drops_only_unusable_versions() -> None:
    result = releases(
        page(
            "foo",
            dist("foo-3.0.tar.gz", requires_python=">=3.12"),
            dist("foo-2.0.tar.gz", requires_python=">=3.9"),
            dist("foo-1.0.tar.gz", requires_python=">=2.7"),
        ),
        PY311,
    )
    assert versions(result) == ["2.0", "1.0"]


def test_releases_requires_python_only_applies_to_the_sdist_file_itself() -> None:
    # The zip of 1.0 is usable even though its .tar.gz is not.
    result = releases(
        page(
            "foo",
            dist("foo-1.0.tar.gz", requires_python=">=3.12"),
            dist("foo-1.0.zip"),
        ),
        PY311,
    )
    assert [r.sdist.filename for r in result] == ["foo-1.0.zip"]


@pytest.mark.parametrize(
    "order",
    [
        ("foo-1.0.zip", "foo-1.0.tar.gz", "foo-1.0.tgz"),
        ("foo-1.0.tar.gz", "foo-1.0.zip", "foo-1.0.tgz"),
        ("foo-1.0.tgz", "foo-1.0.zip", "foo-1.0.tar.gz"),
    ],
)
def test_releases_prefer_tar_gz_over_other_formats(order: tuple[str, ...]) -> None:
    result = releases(page("foo", *(dist(name) for name in order)), PY311)
    assert len(result) == 1
    assert result[0].sdist.filename == "foo-1.0.tar.gz"


def test_releases_prefer_zip_over_tgz() -> None:
    result = releases(page("foo", dist("foo-1.0.tgz"), dist("foo-1.0.zip")), PY311)
    assert [r.sdist.filename for r in result] == ["foo-1.0.zip"]


def test_releases_equal_versions_spelled_differently_are_one_release() -> None:
    result = releases(page("foo", dist("foo-1.0.zip"), dist("foo-1.0.0.tar.gz")), PY311)
    assert len(result) == 1
    assert result[0].sdist.filename == "foo-1.0.0.tar.gz"


def test_releases_keep_yanked_sdists_flagged() -> None:
    result = releases(
        page("foo", dist("foo-2.0.tar.gz", yanked=True), dist("foo-1.0.tar.gz")), PY311
    )
    assert [(str(r.version), r.yanked) for r in result] == [("2.0", True), ("1.0", False)]


def test_releases_empty_page() -> None:
    assert releases(page("foo"), PY311) == []


def test_release_str() -> None:
    assert str(release("Foo_Bar", "1.0")) == "foo-bar==1.0"


# -- allowed ----------------------------------------------------------------------------


def _allowed(
    candidates: list[Release],
    specifier: str = "",
    *,
    pins: tuple[str, ...] = (),
    pre: bool = False,
) -> list[str]:
    return versions(
        allowed(
            candidates,
            SpecifierSet(specifier),
            exact_pins=frozenset(Version(p) for p in pins),
            allow_prereleases=pre,
        )
    )


def test_allowed_filters_by_specifier_keeping_order() -> None:
    candidates = [release("foo", v) for v in ("3.0", "2.1", "2.0", "1.0")]
    assert _allowed(candidates, ">=2,<3") == ["2.1", "2.0"]
    assert _allowed(candidates, "") == ["3.0", "2.1", "2.0", "1.0"]
    assert _allowed(candidates, ">5") == []


def test_allowed_yanked_excluded_without_exact_pin() -> None:
    candidates = [release("foo", "2.0", yanked=True), release("foo", "1.0")]
    assert _allowed(candidates) == ["1.0"]
    assert _allowed(candidates, ">=2") == []
    # >= or ~= naming the yanked version is not an exact pin
    assert _allowed(candidates, "~=2.0") == []


def test_allowed_yanked_selected_by_exact_pin() -> None:
    candidates = [release("foo", "2.0", yanked=True), release("foo", "1.0")]
    assert _allowed(candidates, "==2.0", pins=("2.0",)) == ["2.0"]


def test_allowed_exact_pin_to_another_version_does_not_unyank() -> None:
    candidates = [release("foo", "2.0", yanked=True), release("foo", "1.0")]
    assert _allowed(candidates, "", pins=("1.0",)) == ["1.0"]


def test_allowed_prereleases_excluded_by_default() -> None:
    candidates = [release("foo", v) for v in ("2.0b1", "1.1", "1.1rc1", "1.0", "1.0.dev0")]
    assert _allowed(candidates) == ["1.1", "1.0"]


def test_allowed_prereleases_when_asked() -> None:
    candidates = [release("foo", v) for v in ("2.0b1", "1.1", "1.0")]
    assert _allowed(candidates, pre=True) == ["2.0b1", "1.1", "1.0"]


@pytest.mark.parametrize("specifier", [">=2.0b1", "==2.0b1", "~=2.0a1", "<2.0rc1,>=1"])
def test_allowed_prereleases_when_specifier_names_one(specifier: str) -> None:
    candidates = [release("foo", v) for v in ("2.0b1", "2.0a1", "1.1")]
    result = _allowed(candidates, specifier)
    expected = [
        str(c.version) for c in candidates if SpecifierSet(specifier).contains(c.version, True)
    ]
    assert result == expected
    assert any(Version(v).is_prerelease for v in result)


def test_allowed_prereleases_when_nothing_else_matches() -> None:
    candidates = [release("foo", v) for v in ("2.0rc1", "2.0b1", "1.0")]
    assert _allowed(candidates, ">1") == ["2.0rc1", "2.0b1"]
    only_pre = [release("foo", v) for v in ("0.1a2", "0.1a1")]
    assert _allowed(only_pre) == ["0.1a2", "0.1a1"]


def test_allowed_final_release_wins_over_prerelease_fallback() -> None:
    candidates = [release("foo", v) for v in ("2.0rc1", "1.5")]
    assert _allowed(candidates, ">=1") == ["1.5"]


def test_allowed_yanked_prerelease_fallback_needs_pin() -> None:
    candidates = [release("foo", "2.0b1", yanked=True), release("foo", "1.0")]
    assert _allowed(candidates, ">1") == []
    assert _allowed(candidates, "==2.0b1", pins=("2.0b1",)) == ["2.0b1"]


# -- metadata_wheel ---------------------------------------------------------------------

TAGS = [
    Tag("cp311", "cp311", "manylinux_2_17_x86_64"),
    Tag("cp311", "abi3", "manylinux_2_17_x86_64"),
    Tag("py3", "none", "manylinux_2_17_x86_64"),
    Tag("py3", "none", "any"),
]


def with_wheels(*wheels: DistFile) -> Release:
    return Release(NormalizedName("foo"), Version("1.0"), dist("foo-1.0.tar.gz"), wheels)


def test_metadata_wheel_prefers_best_matching_tag() -> None:
    any_wheel = dist("foo-1.0-py3-none-any.whl", metadata={})
    abi3 = dist("foo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", metadata={})
    native = dist("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", metadata={"sha256": "ab"})
    windows = dist("foo-1.0-cp311-cp311-win_amd64.whl", metadata={})
    assert metadata_wheel(with_wheels(windows, any_wheel, abi3, native), TAGS) is native
    assert metadata_wheel(with_wheels(windows, any_wheel, abi3), TAGS) is abi3
    assert metadata_wheel(with_wheels(windows, any_wheel), TAGS) is any_wheel


def test_metadata_wheel_uses_compressed_tag_sets() -> None:
    compressed = dist(
        "foo-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", metadata={}
    )
    any_wheel = dist("foo-1.0-py3-none-any.whl", metadata={})
    assert metadata_wheel(with_wheels(any_wheel, compressed), TAGS) is compressed


def test_metadata_wheel_falls_back_to_any_wheel_with_metadata() -> None:
    windows = dist("foo-1.0-cp311-cp311-win_amd64.whl", metadata={})
    assert metadata_wheel(with_wheels(windows), TAGS) is windows
    assert metadata_wheel(with_wheels(windows), []) is windows


def test_metadata_wheel_ignores_wheels_without_metadata() -> None:
    native_without = dist("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", metadata=None)
    windows_with = dist("foo-1.0-cp311-cp311-win_amd64.whl", metadata={})
    assert metadata_wheel(with_wheels(native_without, windows_with), TAGS) is windows_with
    assert metadata_wheel(with_wheels(native_without), TAGS) is None


def test_metadata_wheel_ignores_yanked_wheels() -> None:
    yanked = DistFile(
        "foo-1.0-py3-none-any.whl", "https://files.example/w", yanked=True, metadata_hashes={}
    )
    assert metadata_wheel(with_wheels(yanked), TAGS) is None


def test_metadata_wheel_none_without_wheels() -> None:
    assert metadata_wheel(with_wheels(), TAGS) is None


def test_metadata_wheel_tie_keeps_first_listed() -> None:
    first = dist("foo-1.0-py3-none-any.whl", metadata={})
    second = dist("foo-1.0-py2.py3-none-any.whl", metadata={})
    assert metadata_wheel(with_wheels(first, second), TAGS) is first


def test_releases_prefer_a_non_yanked_sdist_of_the_same_version() -> None:
    result = releases(page("foo", dist("foo-1.0.tar.gz", yanked=True), dist("foo-1.0.zip")), PY311)
    assert [(r.sdist.filename, r.yanked) for r in result] == [("foo-1.0.zip", False)]
