"""Unit tests for bootstrapper.metadata: core metadata parsing and comparison."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from bootstrapper.errors import InvalidSourceError
from bootstrapper.metadata import (
    CoreMetadata,
    is_static_sdist_metadata,
    parse_metadata,
    requirement_key,
)


def metadata_text(
    *headers: str, name: str = "Foo_Bar", version: str = "1.0", mv: str | None = "2.1"
) -> bytes:
    lines = [f"Metadata-Version: {mv}"] if mv is not None else []
    lines += [f"Name: {name}", f"Version: {version}", *headers]
    return ("\n".join(lines) + "\n\nThe long description.\nRequires-Dist: not-a-header\n").encode()


def parse(*headers: str, mv: str | None = "2.1") -> CoreMetadata:
    return parse_metadata(metadata_text(*headers, mv=mv), "METADATA")


# -- parse_metadata ---------------------------------------------------------------------


def test_parse_full_document() -> None:
    md = parse(
        "Summary: something",
        "Requires-Python: >=3.8, <4",
        "Requires-Dist: requests (>=2.0)",
        "Requires-Dist: Typing_Extensions; python_version < '3.10'",
        "Requires-Dist: pytest>=7; extra == 'Test'",
        "Provides-Extra: Test",
        "Provides-Extra: docs_build",
        "Dynamic: Requires-Dist",
    )
    assert md.name == "foo-bar"
    assert md.version == Version("1.0")
    assert [str(r) for r in md.requires_dist] == [
        "requests>=2.0",
        'Typing_Extensions; python_version < "3.10"',
        'pytest>=7; extra == "test"',
    ]
    assert md.requires_python == SpecifierSet(">=3.8,<4")
    assert md.provides_extra == frozenset({"test", "docs-build"})
    assert md.dynamic == frozenset({"requires-dist"})
    assert md.metadata_version == "2.1"


def test_parse_minimal_document_defaults() -> None:
    md = parse_metadata(b"Name: foo\nVersion: 2.0.post1\n", "PKG-INFO")
    assert md.name == "foo"
    assert md.version == Version("2.0.post1")
    assert md.requires_dist == ()
    assert md.requires_python == SpecifierSet()
    assert md.provides_extra == frozenset()
    assert md.dynamic == frozenset()
    assert md.metadata_version == "1.0"


def test_parse_body_is_not_headers() -> None:
    # The "Requires-Dist" line after the blank line is description text.
    md = parse()
    assert md.requires_dist == ()


def test_parse_version_is_normalized() -> None:
    md = parse_metadata(b"Name: foo\nVersion: 1.0.0-RC1\n", "PKG-INFO")
    assert md.version == Version("1.0.0rc1")
    assert str(md.version) == "1.0.0rc1"


def test_parse_invalid_requires_python_is_ignored() -> None:
    md = parse("Requires-Python: >=3.x")
    assert md.requires_python == SpecifierSet()


def test_parse_non_utf8_bytes() -> None:
    md = parse_metadata(b"Name: foo\nVersion: 1.0\nAuthor: Jos\xe9\nRequires-Dist: bar\n", "x")
    assert md.name == "foo"
    assert [str(r) for r in md.requires_dist] == ["bar"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"Version: 1.0\n", "no Name or Version"),
        (b"Name: foo\n", "no Name or Version"),
        (b"Name: \nVersion: 1.0\n", "no Name or Version"),
        (b"", "no Name or Version"),
        (b"Name: foo\nVersion: one\n", "invalid Version 'one'"),
    ],
)
def test_parse_missing_or_invalid_identity(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidSourceError) as info:
        parse_metadata(data, "foo-1.0/PKG-INFO")
    assert "foo-1.0/PKG-INFO" in info.value.message
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "bad",
    ["requests >=", "foo[bar", "foo; python_version <", "==1.0", "foo bar"],
)
def test_parse_malformed_requires_dist(bad: str) -> None:
    with pytest.raises(InvalidSourceError) as info:
        parse("Requires-Dist: ok>=1", f"Requires-Dist: {bad}")
    assert "METADATA" in info.value.message
    assert repr(bad) in info.value.message
    assert info.value.package == "foo-bar"
    assert info.value.__cause__ is not None


# -- is_static_sdist_metadata -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mv", "headers", "static"),
    [
        ("2.2", (), True),
        ("2.3", (), True),
        ("2.4", ("Dynamic: Version", "Dynamic: Summary"), True),
        ("2.10", (), True),  # compared as a version, not as text
        ("2.1", (), False),
        ("1.2", (), False),
        (None, (), False),  # defaults to 1.0
        ("bogus", (), False),
        ("2.2", ("Dynamic: Requires-Dist",), False),
        ("2.2", ("Dynamic: requires-dist",), False),
        ("2.4", ("Dynamic: Requires-Python",), False),
        ("2.2", ("Dynamic: Provides-Extra",), True),
    ],
)
def test_is_static_sdist_metadata(mv: str | None, headers: tuple[str, ...], static: bool) -> None:
    assert is_static_sdist_metadata(parse(*headers, mv=mv)) is static


# -- requirement_key / dependency_key ---------------------------------------------------


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("Foo_Bar (>=1.0)", "foo-bar>=1.0"),
        ("foo.bar>=1.0", "FOO-BAR >= 1.0"),
        ("foo<2,>=1", "foo>=1,<2"),
        ("foo[B_ext,a]", "foo[a,b-ext]"),
        ("foo; python_version<'3.8'", 'foo ; python_version < "3.8"'),
        ("foo>=1; extra == 'Test_X'", 'foo>=1; extra == "test-x"'),
        ("foo @ https://example.com/foo.tar.gz", "Foo @ https://example.com/foo.tar.gz"),
    ],
)
def test_requirement_key_same_requirement_two_spellings(one: str, two: str) -> None:
    assert requirement_key(Requirement(one)) == requirement_key(Requirement(two))


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("foo>=1.0", "foo>=1.1"),
        ("foo", "foo-bar"),
        ("foo[a]", "foo"),
        ("foo", "foo; python_version < '3.8'"),
        ("foo>=1; extra == 'a'", "foo>=1; extra == 'b'"),
        ("foo @ https://example.com/a.tar.gz", "foo @ https://example.com/b.tar.gz"),
    ],
)
def test_requirement_key_different_requirements(one: str, two: str) -> None:
    assert requirement_key(Requirement(one)) != requirement_key(Requirement(two))


def test_requirement_key_spelling() -> None:
    key = requirement_key(Requirement("Foo_Bar[Z,a] (<2, >=1) ; os_name == 'posix'"))
    assert key == 'foo-bar[a,z]<2,>=1; os_name == "posix"'


def test_dependency_key_equal_across_writers() -> None:
    wheel = parse_metadata(
        b"Metadata-Version: 2.1\nName: app\nVersion: 1.0\n"
        b"Requires-Dist: Foo_Bar (>=1.0)\n"
        b"Requires-Dist: baz[Extra]; python_version<'3.11'\n"
        b"Requires-Python: >= 3.8\n",
        "app-1.0.dist-info/METADATA",
    )
    sdist = parse_metadata(
        b"Metadata-Version: 2.2\nName: App\nVersion: 1.0\n"
        b"Requires-Python: >=3.8\n"
        b'Requires-Dist: baz[extra] ; python_version < "3.11"\n'
        b"Requires-Dist: foo-bar>=1.0\n",
        "app-1.0/PKG-INFO",
    )
    assert wheel.dependency_key() == sdist.dependency_key()
    assert wheel != sdist  # the objects differ; only what resolution uses is compared


def test_dependency_key_differs_on_dependencies_or_python() -> None:
    base = parse("Requires-Dist: foo>=1", "Requires-Python: >=3.8")
    other_dep = parse("Requires-Dist: foo>=2", "Requires-Python: >=3.8")
    extra_dep = parse("Requires-Dist: foo>=1", "Requires-Dist: bar", "Requires-Python: >=3.8")
    other_python = parse("Requires-Dist: foo>=1", "Requires-Python: >=3.9")
    keys = [m.dependency_key() for m in (base, other_dep, extra_dep, other_python)]
    assert len(set(keys)) == 4


def test_dependency_key_ignores_order_and_duplicates() -> None:
    one = parse("Requires-Dist: a", "Requires-Dist: b>=1")
    two = parse("Requires-Dist: B >= 1", "Requires-Dist: a", "Requires-Dist: A")
    assert one.dependency_key() == two.dependency_key()
