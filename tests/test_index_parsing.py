"""Unit tests for the pure parsers of bootstrapper.index (PEP 503 HTML, PEP 691 JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from packaging.utils import NormalizedName

from bootstrapper.errors import IndexAccessError
from bootstrapper.index import DistFile, parse_html_page, parse_json_page

NAME = NormalizedName("foo")
PAGE_URL = "https://index.example/simple/foo/"


def html(*anchors: str, head: str = "") -> bytes:
    body = "\n".join(anchors)
    return (
        "<!DOCTYPE html>\n<html><head><meta name='pypi:repository-version' content='1.1'>"
        f"{head}<title>Links for foo</title></head>\n<body><h1>Links for foo</h1>\n"
        f"{body}\n</body></html>\n"
    ).encode()


def json_page(*files: dict[str, Any]) -> bytes:
    return json.dumps(
        {"meta": {"api-version": "1.1"}, "name": "foo", "files": list(files)}
    ).encode()


def only_file_html(anchor: str) -> DistFile:
    page = parse_html_page(NAME, PAGE_URL, html(anchor))
    assert len(page.files) == 1
    return page.files[0]


def only_file_json(**entry: Any) -> DistFile:
    raw = {"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "hashes": {}, **entry}
    page = parse_json_page(NAME, PAGE_URL, json_page(raw))
    assert len(page.files) == 1
    return page.files[0]


# -- HTML -------------------------------------------------------------------------------


def test_html_page_identity_and_order() -> None:
    page = parse_html_page(
        NAME,
        PAGE_URL,
        html(
            '<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>',
            '<a href="foo-1.0-py3-none-any.whl">foo-1.0-py3-none-any.whl</a>',
        ),
    )
    assert page.name == "foo"
    assert page.url == PAGE_URL
    assert [f.filename for f in page.files] == ["foo-1.0.tar.gz", "foo-1.0-py3-none-any.whl"]
    assert [f.is_wheel for f in page.files] == [False, True]


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("foo-1.0.tar.gz", "https://index.example/simple/foo/foo-1.0.tar.gz"),
        ("../../packages/ab/foo-1.0.tar.gz", "https://index.example/packages/ab/foo-1.0.tar.gz"),
        ("/files/foo-1.0.tar.gz", "https://index.example/files/foo-1.0.tar.gz"),
        ("https://cdn.example/f/foo-1.0.tar.gz", "https://cdn.example/f/foo-1.0.tar.gz"),
        ("//cdn.example/f/foo-1.0.tar.gz", "https://cdn.example/f/foo-1.0.tar.gz"),
    ],
)
def test_html_relative_urls_resolved_against_page(href: str, expected: str) -> None:
    file = only_file_html(f'<a href="{href}">foo-1.0.tar.gz</a>')
    assert file.url == expected
    assert file.metadata_url == expected + ".metadata"


def test_html_base_tag_changes_resolution() -> None:
    page = parse_html_page(
        NAME,
        PAGE_URL,
        html(
            '<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>',
            head='<base href="https://mirror.example/dl/">',
        ),
    )
    assert page.files[0].url == "https://mirror.example/dl/foo-1.0.tar.gz"


def test_html_sha256_fragment_becomes_hash_and_is_stripped_from_url() -> None:
    digest = "ab" * 32
    file = only_file_html(f'<a href="../../p/foo-1.0.tar.gz#sha256={digest}">foo-1.0.tar.gz</a>')
    assert file.url == "https://index.example/p/foo-1.0.tar.gz"
    assert dict(file.hashes) == {"sha256": digest}


def test_html_hash_algorithm_name_lowercased() -> None:
    file = only_file_html('<a href="foo-1.0.tar.gz#SHA256=abcd">foo-1.0.tar.gz</a>')
    assert dict(file.hashes) == {"sha256": "abcd"}


def test_html_no_fragment_no_hashes() -> None:
    file = only_file_html('<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>')
    assert dict(file.hashes) == {}
    assert file.requires_python is None
    assert file.yanked is False
    assert file.yanked_reason is None
    assert file.metadata_hashes is None


def test_html_filename_from_url_when_anchor_text_empty() -> None:
    file = only_file_html('<a href="../../p/foo%2B-1.0.tar.gz#sha256=00"></a>')
    assert file.filename == "foo+-1.0.tar.gz"


def test_html_filename_is_anchor_text_stripped() -> None:
    file = only_file_html('<a href="https://cdn.example/x?id=1">\n  foo-1.0.tar.gz  \n</a>')
    assert file.filename == "foo-1.0.tar.gz"


def test_html_anchor_without_href_ignored() -> None:
    page = parse_html_page(
        NAME,
        PAGE_URL,
        html(
            '<a name="top">top</a>', '<a href="">empty</a>', '<a href="foo-1.0.zip">foo-1.0.zip</a>'
        ),
    )
    assert [f.filename for f in page.files] == ["foo-1.0.zip"]


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ('data-requires-python="&gt;=3.8"', ">=3.8"),
        ('data-requires-python="&gt;=3.8,&lt;4"', ">=3.8,<4"),
        ('data-requires-python="&gt;=2.7, !=3.0.*"', ">=2.7, !=3.0.*"),
        ("data-requires-python='>=3.9'", ">=3.9"),
        ('data-requires-python=""', None),
    ],
)
def test_html_requires_python_unescaped(attribute: str, expected: str | None) -> None:
    file = only_file_html(f'<a href="foo-1.0.tar.gz" {attribute}>foo-1.0.tar.gz</a>')
    assert file.requires_python == expected


@pytest.mark.parametrize(
    ("attribute", "yanked", "reason"),
    [
        ("", False, None),
        ("data-yanked", True, None),
        ('data-yanked=""', True, None),
        ('data-yanked="broken build"', True, "broken build"),
        ('data-yanked="use 1.1 &amp; later"', True, "use 1.1 & later"),
    ],
)
def test_html_yanked(attribute: str, yanked: bool, reason: str | None) -> None:
    file = only_file_html(f'<a href="foo-1.0.tar.gz" {attribute}>foo-1.0.tar.gz</a>')
    assert file.yanked is yanked
    assert file.yanked_reason == reason


@pytest.mark.parametrize("attribute", ["data-core-metadata", "data-dist-info-metadata"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('="true"', {}),
        ("", {}),  # bare attribute
        ('="sha256=abcdef"', {"sha256": "abcdef"}),
        ('="SHA256=abcdef"', {"sha256": "abcdef"}),
    ],
)
def test_html_core_metadata(attribute: str, value: str, expected: dict[str, str]) -> None:
    file = only_file_html(
        f'<a href="foo-1.0-py3-none-any.whl" {attribute}{value}>foo-1.0-py3-none-any.whl</a>'
    )
    assert file.metadata_hashes is not None
    assert dict(file.metadata_hashes) == expected


def test_html_core_metadata_preferred_over_dist_info_metadata() -> None:
    file = only_file_html(
        '<a href="foo-1.0-py3-none-any.whl" data-dist-info-metadata="sha256=old"'
        ' data-core-metadata="sha256=new">foo-1.0-py3-none-any.whl</a>'
    )
    assert file.metadata_hashes is not None
    assert dict(file.metadata_hashes) == {"sha256": "new"}


def test_html_all_attributes_together() -> None:
    page = parse_html_page(
        NAME,
        PAGE_URL,
        html(
            '<a href="../../f/foo-1.0-py3-none-any.whl#sha256=11" data-requires-python="&gt;=3.8"'
            ' data-core-metadata="sha256=22" data-yanked="oops">foo-1.0-py3-none-any.whl</a>',
            '<a href="../../f/foo-1.0.tar.gz#sha256=33">foo-1.0.tar.gz</a>',
        ),
    )
    wheel, sdist = page.files
    assert wheel == DistFile(
        filename="foo-1.0-py3-none-any.whl",
        url="https://index.example/f/foo-1.0-py3-none-any.whl",
        requires_python=">=3.8",
        yanked=True,
        yanked_reason="oops",
    )
    assert dict(wheel.hashes) == {"sha256": "11"}
    assert dict(wheel.metadata_hashes or {"missing": ""}) == {"sha256": "22"}
    assert sdist.url == "https://index.example/f/foo-1.0.tar.gz"
    assert dict(sdist.hashes) == {"sha256": "33"}
    assert sdist.metadata_hashes is None


def test_html_empty_page() -> None:
    assert parse_html_page(NAME, PAGE_URL, html()).files == ()


def test_html_invalid_utf8_does_not_raise() -> None:
    page = parse_html_page(NAME, PAGE_URL, b'<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>\xff')
    assert [f.filename for f in page.files] == ["foo-1.0.tar.gz"]


# -- JSON -------------------------------------------------------------------------------


def test_json_basic_file() -> None:
    digest = "cd" * 32
    page = parse_json_page(
        NAME,
        PAGE_URL,
        json_page(
            {
                "filename": "foo-1.0.tar.gz",
                "url": "https://files.example/p/foo-1.0.tar.gz",
                "hashes": {"SHA256": digest},
            }
        ),
    )
    assert page.name == "foo"
    assert page.url == PAGE_URL
    (file,) = page.files
    assert file.filename == "foo-1.0.tar.gz"
    assert file.url == "https://files.example/p/foo-1.0.tar.gz"
    assert dict(file.hashes) == {"sha256": digest}
    assert file.requires_python is None
    assert file.yanked is False
    assert file.yanked_reason is None
    assert file.metadata_hashes is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo-1.0.tar.gz", "https://index.example/simple/foo/foo-1.0.tar.gz"),
        ("../../files/foo-1.0.tar.gz", "https://index.example/files/foo-1.0.tar.gz"),
        ("/files/foo-1.0.tar.gz", "https://index.example/files/foo-1.0.tar.gz"),
        ("https://cdn.example/foo-1.0.tar.gz", "https://cdn.example/foo-1.0.tar.gz"),
    ],
)
def test_json_relative_urls_resolved_against_page(url: str, expected: str) -> None:
    assert only_file_json(url=url).url == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(">=3.8", ">=3.8"), ("", None), (None, None)],
)
def test_json_requires_python(value: str | None, expected: str | None) -> None:
    assert only_file_json(**{"requires-python": value}).requires_python == expected


@pytest.mark.parametrize(
    ("value", "yanked", "reason"),
    [
        (False, False, None),
        (True, True, None),
        ("security issue", True, "security issue"),
    ],
)
def test_json_yanked_bool_or_reason(value: bool | str, yanked: bool, reason: str | None) -> None:
    file = only_file_json(yanked=value)
    assert file.yanked is yanked
    assert file.yanked_reason == reason


@pytest.mark.parametrize("key", ["core-metadata", "dist-info-metadata"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, {}),
        (False, None),
        (None, None),
        ({"sha256": "abc"}, {"sha256": "abc"}),
        ({"SHA256": "abc", "md5": "def"}, {"sha256": "abc", "md5": "def"}),
        ({}, {}),
    ],
)
def test_json_core_metadata(key: str, value: Any, expected: dict[str, str] | None) -> None:
    file = only_file_json(**{key: value})
    assert (None if file.metadata_hashes is None else dict(file.metadata_hashes)) == expected


def test_json_core_metadata_preferred_over_dist_info_metadata() -> None:
    file = only_file_json(
        **{"core-metadata": {"sha256": "new"}, "dist-info-metadata": {"sha256": "old"}}
    )
    assert dict(file.metadata_hashes or {}) == {"sha256": "new"}


def test_json_missing_hashes_is_empty() -> None:
    raw = {"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz"}
    (file,) = parse_json_page(NAME, PAGE_URL, json_page(raw)).files
    assert dict(file.hashes) == {}


def test_json_empty_files() -> None:
    assert parse_json_page(NAME, PAGE_URL, json_page()).files == ()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"<html><body></body></html>",
        b'{"files": [',
        b"\xff\xfe\x00",
        b"[]",
        b'{"meta": {"api-version": "1.0"}, "name": "foo"}',
        b'"files"',
    ],
)
def test_json_malformed_raises_index_access_error(data: bytes) -> None:
    with pytest.raises(IndexAccessError) as info:
        parse_json_page(NAME, PAGE_URL, data)
    assert "foo" in info.value.message
    assert PAGE_URL in info.value.message


@pytest.mark.parametrize(
    "data",
    [
        b'{"files": 3}',
        b'{"files": null}',
        b'{"files": ["foo-1.0.tar.gz"]}',
        b'{"files": [{"url": "foo-1.0.tar.gz"}]}',
        b'{"files": [{"filename": "foo-1.0.tar.gz"}]}',
    ],
)
def test_json_structurally_malformed_raises_index_access_error(data: bytes) -> None:
    with pytest.raises(IndexAccessError):
        parse_json_page(NAME, PAGE_URL, data)


# -- link schemes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page_url", "href", "base"),
    [
        ("https://index.example/simple/foo/", "file:///srv/foo-1.0.tar.gz", ""),
        ("http://index.example/simple/foo/", "file:///srv/foo-1.0.tar.gz", ""),
        ("https://index.example/simple/foo/", "FILE:///srv/foo-1.0.tar.gz", ""),
        ("https://index.example/simple/foo/", "ftp://index.example/foo-1.0.tar.gz", ""),
        ("https://index.example/simple/foo/", "data:,foo-1.0.tar.gz", ""),
        # a relative link made local by the page's own <base>
        ("https://index.example/simple/foo/", "foo-1.0.tar.gz", '<base href="file:///srv/">'),
    ],
)
def test_network_page_may_not_link_other_schemes(page_url: str, href: str, base: str) -> None:
    anchor = f'<a href="{href}#sha256=abc">foo-1.0.tar.gz</a>'
    with pytest.raises(IndexAccessError) as info:
        parse_html_page(NAME, page_url, html(anchor, head=base))
    assert info.value.package == "foo"
    assert "the index page of foo links" in info.value.message
    assert "#sha256" not in info.value.message
    link = href if not base else "file:///srv/foo-1.0.tar.gz"
    assert link.split(":")[1] in info.value.message


def test_network_json_page_may_not_link_files() -> None:
    with pytest.raises(IndexAccessError) as info:
        only_file_json(url="file:///etc/passwd")
    assert "'file:///etc/passwd'" in info.value.message
    assert "may link only http and https files" in info.value.message


def test_refused_link_is_shown_without_credentials() -> None:
    with pytest.raises(IndexAccessError) as info:
        parse_html_page(
            NAME,
            "https://user:TOKEN@index.example/simple/foo/",
            html('<a href="ftp://user:TOKEN@index.example/foo-1.0.tar.gz">foo</a>'),
        )
    assert "TOKEN" not in str(info.value)
    assert "ftp://index.example/foo-1.0.tar.gz" in info.value.message


@pytest.mark.parametrize(
    ("page_url", "href"),
    [
        ("https://index.example/simple/foo/", "http://files.example/foo-1.0.tar.gz"),
        ("http://index.example/simple/foo/", "https://files.example/foo-1.0.tar.gz"),
        ("file:///srv/simple/foo/", "../../files/foo-1.0.tar.gz"),
        ("file:///srv/simple/foo/", "file:///elsewhere/foo-1.0.tar.gz"),
        ("file:///srv/simple/foo/", "https://files.example/foo-1.0.tar.gz"),
    ],
)
def test_allowed_link_schemes(page_url: str, href: str) -> None:
    page = parse_html_page(NAME, page_url, html(f'<a href="{href}">foo-1.0.tar.gz</a>'))
    assert page.files[0].url.endswith("/foo-1.0.tar.gz")
    page = parse_json_page(
        NAME, page_url, json_page({"filename": "foo-1.0.tar.gz", "url": href, "hashes": {}})
    )
    assert page.files[0].url.endswith("/foo-1.0.tar.gz")
