"""Strict patches: GNU patch's per-hunk report is parsed, offsets are accepted and
reported, fuzz only up to what the package's settings allow (none by default)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from bootstrapper.fsutil import sha256_file
from bootstrapper.patches import HunkReport, Patch, PatchError, apply_patches, parse_patch_output

# -- the parser ----------------------------------------------------------------------------

REPORTS = [
    pytest.param("", [], id="nothing"),
    pytest.param("patching file f.txt\n", [], id="every-hunk-exact"),
    pytest.param(
        "checking file f.txt\nHunk #1 succeeded at 20 (offset 3 lines).\n",
        [HunkReport("f.txt", 1, 20, offset=3)],
        id="offset",
    ),
    pytest.param(
        "patching file f.txt\nHunk #2 succeeded at 18 (offset 1 line).\n",
        [HunkReport("f.txt", 2, 18, offset=1)],
        id="offset-one-line",
    ),
    pytest.param(
        "patching file f.txt\nHunk #1 succeeded at 15 (offset -2 lines).\n",
        [HunkReport("f.txt", 1, 15, offset=-2)],
        id="negative-offset",
    ),
    pytest.param(
        "checking file f.txt\nHunk #1 succeeded at 17 with fuzz 2.\n",
        [HunkReport("f.txt", 1, 17, fuzz=2)],
        id="fuzz",
    ),
    pytest.param(
        "checking file f.txt\nHunk #1 succeeded at 19 with fuzz 1 (offset 2 lines).\n",
        [HunkReport("f.txt", 1, 19, offset=2, fuzz=1)],
        id="fuzz-and-offset",
    ),
    pytest.param(
        "checking file f.txt\nHunk #1 FAILED at 17.\n1 out of 2 hunks FAILED\n",
        [HunkReport("f.txt", 1, 17, failed=True)],
        id="failed",
    ),
    pytest.param(
        "checking file f.txt\nHunk #3 ignored at 40.\n",
        [HunkReport("f.txt", 3, 40, failed=True)],
        id="ignored",
    ),
    pytest.param(
        "patching file a.py\nHunk #1 succeeded at 4 (offset 1 line).\n"
        "patching file b.py\nHunk #1 succeeded at 9 with fuzz 1.\n"
        "Hunk #2 FAILED at 30.\n1 out of 2 hunks FAILED -- saving rejects to file b.py.rej\n",
        [
            HunkReport("a.py", 1, 4, offset=1),
            HunkReport("b.py", 1, 9, fuzz=1),
            HunkReport("b.py", 2, 30, failed=True),
        ],
        id="hunks-numbered-per-file",
    ),
    pytest.param(
        "checking file dir with space/a b.txt\nHunk #1 succeeded at 2 (offset 1 line).\n",
        [HunkReport("dir with space/a b.txt", 1, 2, offset=1)],
        id="literal-quoting",
    ),
    pytest.param(
        "patching file new.py (renamed from old.py)\nHunk #1 succeeded at 3 with fuzz 1.\n",
        [HunkReport("new.py", 1, 3, fuzz=1)],
        id="renamed",
    ),
    pytest.param(
        "patching symbolic link link.txt\nHunk #1 succeeded at 5 (offset 4 lines).\n",
        [HunkReport("link.txt", 1, 5, offset=4)],
        id="symbolic-link",
    ),
    pytest.param(
        "checking file f.txt\nReversed (or previously applied) patch detected!  Skipping patch.\n"
        "2 out of 2 hunks ignored\n",
        [],
        id="reversed",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REPORTS)
def test_parse_patch_output(text: str, expected: list[HunkReport]) -> None:
    assert parse_patch_output(text) == expected


# -- applying, with the real patch program --------------------------------------------------

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 21))
#: The patch changes line 10; its context is lines 7-9 and 11-13.
CHANGED = ORIGINAL.replace("line 10\n", "line ten\n")


def make_patch(tmp_path: Path, name: str = "01-fix.patch") -> Patch:
    path = tmp_path / "patches" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            difflib.unified_diff(
                ORIGINAL.splitlines(keepends=True),
                CHANGED.splitlines(keepends=True),
                "a/data.txt",
                "b/data.txt",
            )
        )
    )
    return Patch(path, sha256_file(path))


def source(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "data.txt").write_text(text)
    return root


def test_a_patch_that_applies_exactly_reports_no_hunks(tmp_path: Path) -> None:
    root = source(tmp_path, ORIGINAL)
    patch = make_patch(tmp_path)
    results = apply_patches(root, [patch])
    assert (root / "data.txt").read_text() == CHANGED
    assert [(a.patch, a.hunks) for a in results.applied] == [(patch, ())]
    assert results.applied[0].to_json() == {**patch.to_json(), "hunks": []}
    assert str(patch.path) in results.log


def test_an_offset_is_accepted_and_reported(tmp_path: Path) -> None:
    root = source(tmp_path, "new 1\nnew 2\n" + ORIGINAL)
    patch = make_patch(tmp_path)
    results = apply_patches(root, [patch])
    assert (root / "data.txt").read_text() == "new 1\nnew 2\n" + CHANGED
    assert results.applied[0].hunks == (HunkReport("data.txt", 1, 9, offset=2),)
    assert results.applied[0].to_json()["hunks"] == [
        {"file": "data.txt", "hunk": 1, "line": 9, "offset": 2, "fuzz": 0}
    ]


def test_fuzz_is_refused_by_default_naming_patch_hunk_and_setting(tmp_path: Path) -> None:
    drifted = ORIGINAL.replace("line 7\n", "line seven\n")
    root = source(tmp_path, drifted)
    patch = make_patch(tmp_path)
    with pytest.raises(PatchError) as caught:
        apply_patches(root, [patch], package="foo")
    assert caught.value.message == (
        f"patch {patch.path}: hunk #1 of data.txt applies only with fuzz 1 (at line 7); "
        "refresh the patch, or allow it with 'patch-fuzz: 1' in foo's settings"
    )
    assert (root / "data.txt").read_text() == drifted  # nothing was changed
    assert not list(root.glob("*.rej")) and not list(root.glob("*.orig"))


def test_fuzz_up_to_the_allowed_applies_and_is_reported(tmp_path: Path) -> None:
    drifted = ORIGINAL.replace("line 7\n", "line seven\n")
    root = source(tmp_path, drifted)
    results = apply_patches(root, [make_patch(tmp_path)], fuzz=1)
    assert (root / "data.txt").read_text() == drifted.replace("line 10\n", "line ten\n")
    assert results.applied[0].hunks == (HunkReport("data.txt", 1, 7, fuzz=1),)


def test_more_fuzz_than_allowed_says_how_much_is_needed(tmp_path: Path) -> None:
    root = source(tmp_path, ORIGINAL.replace("line 8\n", "line eight\n"))
    with pytest.raises(PatchError) as caught:
        apply_patches(root, [make_patch(tmp_path)], fuzz=1, package="foo")
    assert (
        "hunk #1 of data.txt applies only with fuzz 2 (at line 7), more than the 1 allowed"
        in caught.value.message
    )
    assert "'patch-fuzz: 2' in foo's settings" in caught.value.message


def test_a_failed_hunk_names_its_file(tmp_path: Path) -> None:
    root = source(tmp_path, ORIGINAL.replace("line 10\n", "changed upstream\n"))
    patch = make_patch(tmp_path)
    with pytest.raises(PatchError) as caught:
        apply_patches(root, [patch], fuzz=3)
    assert caught.value.message == f"patch {patch.path} does not apply"
    assert caught.value.details is not None
    assert "data.txt: Hunk #1 FAILED at 7." in caught.value.details


def test_relative_paths_work_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = source(tmp_path, ORIGINAL)
    make_patch(tmp_path)
    monkeypatch.chdir(tmp_path)
    relative = Path("patches") / "01-fix.patch"
    apply_patches(Path("src"), [Patch(relative, sha256_file(relative))])
    assert (root / "data.txt").read_text() == CHANGED
