"""Unit tests for bootstrapper.reqfile: requirements and constraints files."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bootstrapper.errors import InvalidRequirementError, UsageError
from bootstrapper.reqfile import RequirementSet, parse_requirement, read_file


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read(path: Path, *, constraints: bool = False) -> RequirementSet:
    into = RequirementSet()
    read_file(path, into, constraints=constraints)
    return into


def texts(requirements: list[Requirement]) -> list[str]:
    return [str(r) for r in requirements]


# -- parse_requirement ------------------------------------------------------------------


def test_parse_requirement_valid() -> None:
    requirement = parse_requirement("Foo[bar]>=1.0; python_version >= '3.8'")
    assert requirement.name == "Foo"
    assert requirement.extras == {"bar"}
    assert str(requirement.specifier) == ">=1.0"


@pytest.mark.parametrize("text", ["foo >=", "foo[bar", "==1.0", "foo bar", ""])
def test_parse_requirement_malformed(text: str) -> None:
    with pytest.raises(InvalidRequirementError) as info:
        parse_requirement(text, "somewhere")
    assert repr(text) in info.value.message
    assert "(somewhere)" in info.value.message
    assert info.value.package == text


def test_parse_requirement_default_location_is_command_line() -> None:
    with pytest.raises(InvalidRequirementError) as info:
        parse_requirement("foo >=")
    assert "(command line)" in info.value.message


# -- read_file --------------------------------------------------------------------------


def test_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "req.txt",
        "# a comment\n"
        "\n"
        "   \n"
        "requests>=2  # trailing comment\n"
        "    # indented comment\n"
        "idna\n"
        "\t\n"
        "urllib3<3 # another\n",
    )
    result = read(path)
    assert texts(result.requirements) == ["requests>=2", "idna", "urllib3<3"]
    assert result.constraints == []


def test_requirement_with_marker(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", 'tomli>=1.1; python_version < "3.11"\n')
    (tomli,) = read(path).requirements
    assert str(tomli) == 'tomli>=1.1; python_version < "3.11"'


def test_continuation_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "req.txt",
        "requests\\\n>=2.0,\\\n<3\nidna \\\n    ; python_version >= '3'\n",
    )
    result = read(path)
    assert texts(result.requirements) == ["requests<3,>=2.0", 'idna; python_version >= "3"']


def test_continuation_at_end_of_file(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", "requests \\\n")
    assert texts(read(path).requirements) == ["requests"]


def test_constraints_mode_puts_everything_in_constraints(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", "foo==1.0\nbar<2\n")
    result = read(path, constraints=True)
    assert result.requirements == []
    assert texts(result.constraints) == ["foo==1.0", "bar<2"]


def test_read_file_appends_to_existing_set(tmp_path: Path) -> None:
    into = RequirementSet(requirements=[Requirement("first")])
    read_file(write(tmp_path / "r.txt", "second\n"), into, constraints=False)
    assert texts(into.requirements) == ["first", "second"]


@pytest.mark.parametrize("spelling", ["-r {}", "--requirement {}", "-r={}", "--requirement={}"])
def test_nested_requirements_relative_to_including_file(tmp_path: Path, spelling: str) -> None:
    write(tmp_path / "sub" / "more" / "base.txt", "base-pkg\n")
    top = write(
        tmp_path / "sub" / "top.txt",
        "first\n" + spelling.format("more/base.txt") + "\nlast\n",
    )
    result = read(top)
    assert texts(result.requirements) == ["first", "base-pkg", "last"]
    assert result.constraints == []


def test_nested_paths_are_relative_to_each_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "a" / "b" / "c.txt", "deepest\n")
    write(tmp_path / "a" / "b.txt", "-r b/c.txt\n")
    top = write(tmp_path / "top.txt", "-r a/b.txt\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert texts(read(top).requirements) == ["deepest"]


@pytest.mark.parametrize("spelling", ["-c {}", "--constraint {}", "-c={}"])
def test_nested_constraints(tmp_path: Path, spelling: str) -> None:
    write(tmp_path / "cons" / "c.txt", "foo<2\n-r more.txt\n")
    write(tmp_path / "cons" / "more.txt", "bar==1.0\n")
    top = write(tmp_path / "req.txt", "foo\n" + spelling.format("cons/c.txt") + "\n")
    result = read(top)
    assert texts(result.requirements) == ["foo"]
    # -r inside a constraints file still reads constraints
    assert texts(result.constraints) == ["foo<2", "bar==1.0"]


def test_same_file_included_twice_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "common.txt", "common\n")
    write(tmp_path / "a.txt", "-r common.txt\n")
    write(tmp_path / "b.txt", "-r common.txt\n")
    top = write(tmp_path / "top.txt", "-r a.txt\n-r b.txt\n")
    assert texts(read(top).requirements) == ["common", "common"]


def test_self_include_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", "foo\n-r req.txt\n")
    with pytest.raises(UsageError) as info:
        read(path)
    assert "includes itself" in info.value.message
    assert "req.txt" in info.value.message


def test_indirect_self_include_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "-r sub/b.txt\n")
    write(tmp_path / "sub" / "b.txt", "-c ../a.txt\n")
    with pytest.raises(UsageError) as info:
        read(tmp_path / "a.txt")
    assert "includes itself" in info.value.message


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        read(tmp_path / "nope.txt")
    assert "cannot read" in info.value.message
    assert "nope.txt" in info.value.message


def test_missing_nested_file_is_a_usage_error(tmp_path: Path) -> None:
    top = write(tmp_path / "req.txt", "-r missing.txt\n")
    with pytest.raises(UsageError) as info:
        read(top)
    assert str(tmp_path / "missing.txt") in info.value.message


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("--index-url https://example.com/simple", "--index-url"),
        ("-e .", "-e"),
        ("--hash=sha256:abcd", "--hash=sha256:abcd"),
        ("-i https://example.com/simple", "-i"),
        ("--pre", "--pre"),
    ],
)
def test_unsupported_option_names_file_and_line(tmp_path: Path, line: str, option: str) -> None:
    path = write(tmp_path / "req.txt", f"# header\n\nfoo\n{line}\nbar\n")
    with pytest.raises(UsageError) as info:
        read(path)
    assert info.value.message.startswith(f"{path}:4: ")
    assert f"unsupported option {option!r}" in info.value.message


def test_line_number_of_a_continued_line_is_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", "foo\n--find-links \\\n  /somewhere\n")
    with pytest.raises(UsageError) as info:
        read(path)
    assert info.value.message.startswith(f"{path}:2: ")


def test_malformed_requirement_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", "good\n\n# c\nbad >=\n")
    with pytest.raises(InvalidRequirementError) as info:
        read(path)
    assert "'bad >='" in info.value.message
    assert f"({path}:4)" in info.value.message


def test_malformed_requirement_in_nested_file_names_that_file(tmp_path: Path) -> None:
    nested = write(tmp_path / "inner" / "r.txt", "ok\nfoo[bar\n")
    top = write(tmp_path / "top.txt", "-r inner/r.txt\n")
    with pytest.raises(InvalidRequirementError) as info:
        read(top)
    assert f"({nested}:2)" in info.value.message


def test_malformed_constraint_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", "foo<<2\n")
    with pytest.raises(InvalidRequirementError):
        read(path, constraints=True)


def test_comment_after_a_tab(tmp_path: Path) -> None:
    path = write(tmp_path / "req.txt", "requests>=2\t# pinned for reasons\n")
    assert texts(read(path).requirements) == ["requests>=2"]


def test_a_direct_url_requirement_is_refused_without_its_credentials(tmp_path: Path) -> None:
    """A bootstrap resolves names against the index: ``name @ URL`` would silently build
    the index's release instead, so it is a usage error (with no credentials in it)."""
    with pytest.raises(UsageError) as raised:
        parse_requirement("app @ https://user:s3cret@example.com/app-1.0.tar.gz")
    message = raised.value.message
    assert "a direct URL requirement is not supported" in message
    assert "OVERRIDES/settings/app.yaml" in message
    assert "s3cret" not in message
    path = write(tmp_path / "req.txt", "lib\nTool @ https://example.com/tool.tar.gz\n")
    with pytest.raises(UsageError, match=r"req\.txt:2"):
        read(path)
    # In a wheel's own metadata (wheel edit --add-requires) a URL is the user's to give.
    assert parse_requirement("x @ https://e.com/x.whl", direct_url=True).url
