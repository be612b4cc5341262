"""A re-run that would publish the same wheels over an index left as it was skips
publishing; anything changed in the index or in what is published makes it publish."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.stamps import TreeStamp, tree_state

from .conftest import standard_tree
from .support import FixtureIndex, Project
from .test_provenance import make_key, statement_of

SKIPPED = "publications skipped: 1"


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "page.html").write_text("page")
    (root / "top.json").write_text("{}")


def test_a_stamp_holds_only_for_the_same_inputs_over_the_same_tree(tmp_path: Path) -> None:
    root = tmp_path / "index"
    _tree(root)
    stamp = TreeStamp(tmp_path / "stamp", [root, tmp_path / "missing"])
    assert not stamp.holds("inputs")  # never recorded
    stamp.record("inputs")
    assert stamp.holds("inputs")
    assert not stamp.holds("other inputs")

    page = root / "a" / "b" / "page.html"
    before = page.stat()
    page.write_text("PAGE")  # same size, same mtime set back: the ctime still moved
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not stamp.holds("inputs")
    stamp.record("inputs")
    (root / "a" / "new").write_text("")
    assert not stamp.holds("inputs")
    stamp.record("inputs")
    (root / "top.json").unlink()
    assert not stamp.holds("inputs")
    stamp.record("inputs")
    (tmp_path / "missing").mkdir()  # a root that appears is a change too
    (tmp_path / "missing" / "x").write_text("")
    assert not stamp.holds("inputs")


def test_reading_a_tree_is_no_change(tmp_path: Path) -> None:
    root = tmp_path / "index"
    _tree(root)
    state = tree_state([root])
    assert (root / "a" / "b" / "page.html").read_text() == "page"
    assert tree_state([root]) == state


def test_an_unreadable_stamp_is_no_stamp(tmp_path: Path) -> None:
    root = tmp_path / "index"
    _tree(root)
    (tmp_path / "stamp").write_bytes(b"\xff\xfe")
    assert not TreeStamp(tmp_path / "stamp", [root]).holds("inputs")


def test_a_rerun_publishes_nothing_again_but_mends_what_was_changed(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a working directory, with a relative output directory, as users run it."""
    index.add_all(standard_tree(), tmp_path / "sdists")
    monkeypatch.chdir(tmp_path)
    out = Path("out")
    first = bootstrap("--profile", "app", output=out)
    assert first.code == 0, first.stderr
    assert SKIPPED not in first.stderr
    pages = {p: p.read_bytes() for p in out.glob("simple/*/index.*")}
    sources = {p: p.read_bytes() for p in out.glob("sdists/*/index.*")}
    assert len(pages) == 2 * 7 and len(sources) == 2 * 7

    again = bootstrap("--profile", "app", output=out)
    assert again.code == 0, again.stderr
    assert SKIPPED in again.stderr

    # A page removed and another damaged (by hand, or by a tool) are written again.
    (out / "simple" / "libone" / "index.json").unlink()
    (out / "simple" / "app" / "index.html").write_text("damaged")
    (out / "sdists" / "libtwo" / "index.html").unlink()
    mended = bootstrap("--profile", "app", output=out)
    assert mended.code == 0, mended.stderr
    assert SKIPPED not in mended.stderr
    assert {p: p.read_bytes() for p in out.glob("simple/*/index.*")} == pages
    assert {p: p.read_bytes() for p in out.glob("sdists/*/index.*")} == sources
    assert SKIPPED in bootstrap("--profile", "app", output=out).stderr


def test_a_new_wheel_of_a_dependency_or_a_signing_key_publishes_again(
    tmp_path: Path, index: FixtureIndex, bootstrap: Any
) -> None:
    """The settled inputs change: a new release of a dependency reached through an
    extra, then a key to sign provenance with."""
    sdists = tmp_path / "sdists"
    index.add(Project("app", dependencies=["lib[fast]"]), sdists)
    index.add(Project("lib", optional={"fast": ["speedup"]}), sdists)
    index.add(Project("speedup", "1.0"), sdists)
    assert bootstrap("app").code == 0
    assert SKIPPED in bootstrap("--profile", "app").stderr

    index.add(Project("speedup", "1.1"), sdists)
    newer = bootstrap("--profile", "app")
    assert newer.code == 0, newer.stderr
    assert SKIPPED not in newer.stderr
    page = json.loads((newer.output / "simple" / "speedup" / "index.json").read_text())
    assert [f["filename"] for f in page["files"]] == [
        "speedup-1.0-py3-none-any.whl",
        "speedup-1.1-py3-none-any.whl",
    ]

    make_key(tmp_path / "key.pem")
    signed = bootstrap("--profile", "--sign-key", str(tmp_path / "key.pem"), "app")
    assert signed.code == 0, signed.stderr
    assert SKIPPED not in signed.stderr
    # The wheels of this run are signed; speedup 1.0's, of an earlier run, stays as it was.
    for wheel in ("app-1.0", "lib-1.0", "speedup-1.1", "speedup-1.0"):
        provenance = signed.output / "wheels" / f"{wheel}-py3-none-any.whl.intoto.json"
        assert (statement_of(provenance)[1] is None) == (wheel == "speedup-1.0"), wheel
