"""The static indexes (DIR/simple and DIR/sdists): what a page lists, and that a
re-publish rewrites exactly the pages whose content changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from bootstrapper.publish import IndexWriter, KnownWheel, SourceIndexWriter
from bootstrapper.wheelfile import read_wheel_metadata

from .support import Project, wheel_of


def n(name: str) -> NormalizedName:
    return canonicalize_name(name)


def state(directory: Path) -> dict[str, tuple[int, int]]:
    """Every page under ``directory``, with what a rewrite changes (inode, mtime)."""
    return {
        str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("index.html"))
    }


def built(tmp: Path, name: str, version: str, *requires: str) -> Path:
    wheel = tmp / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    wheel.write_bytes(wheel_of(Project(name, version), requires=requires))
    return wheel


def publish(writer: IndexWriter, *wheels: Path) -> None:
    writer.publish((w, read_wheel_metadata(w), None) for w in wheels)


def test_republishing_the_same_wheels_rewrites_no_page(tmp_path: Path) -> None:
    out, tmp = tmp_path / "out", tmp_path / "built"
    tmp.mkdir()
    (out / "wheels").mkdir(parents=True)
    writer = IndexWriter(out)
    wheels = [built(tmp, "app", "1.0", "lib"), built(tmp, "lib", "1.0")]
    publish(writer, *wheels)
    pages = {p: (out / "simple" / p).read_bytes() for p in state(out / "simple")}
    before = state(out / "simple")
    assert set(before) == {"index.html", "app/index.html", "lib/index.html"}

    publish(IndexWriter(out), *wheels)
    assert state(out / "simple") == before
    assert {p: (out / "simple" / p).read_bytes() for p in before} == pages


def test_a_new_wheel_rewrites_its_project_page_and_only_it(tmp_path: Path) -> None:
    out, tmp = tmp_path / "out", tmp_path / "built"
    tmp.mkdir()
    (out / "wheels").mkdir(parents=True)
    publish(IndexWriter(out), built(tmp, "app", "1.0", "lib"), built(tmp, "lib", "1.0"))
    before = state(out / "simple")

    newer = built(tmp, "lib", "1.1")
    publish(IndexWriter(out), newer)
    after = state(out / "simple")
    assert after["app/index.html"] == before["app/index.html"]
    assert after["index.html"] == before["index.html"]  # the same projects
    assert after["lib/index.html"] != before["lib/index.html"]
    page = (out / "simple" / "lib" / "index.html").read_text()
    digest = hashlib.sha256(newer.read_bytes()).hexdigest()
    assert f'href="../../wheels/{newer.name}#sha256={digest}"' in page
    assert "lib-1.0-py3-none-any.whl" in page

    publish(IndexWriter(out), built(tmp, "other", "1.0"))
    assert "other/" in (out / "simple" / "index.html").read_text()
    assert state(out / "simple")["lib/index.html"] == after["lib/index.html"]


def test_a_changed_wheel_of_the_same_name_rewrites_its_page(tmp_path: Path) -> None:
    out, tmp = tmp_path / "out", tmp_path / "built"
    tmp.mkdir()
    (out / "wheels").mkdir(parents=True)
    publish(IndexWriter(out), built(tmp, "lib", "1.0"))
    before = (out / "simple" / "lib" / "index.html").read_text()

    again = tmp_path / "rebuilt"
    again.mkdir()
    rebuilt = built(again, "lib", "1.0", "extra-dependency")  # other bytes, other metadata
    publish(IndexWriter(out), rebuilt)
    after = (out / "simple" / "lib" / "index.html").read_text()
    assert after != before
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() in after
    metadata = (out / "wheels" / f"{rebuilt.name}.metadata").read_bytes()
    assert b"Requires-Dist: extra-dependency" in metadata
    assert f"sha256={hashlib.sha256(metadata).hexdigest()}" in after


def archive(directory: Path, filename: str, content: bytes = b"") -> Path:
    path = directory / filename
    path.write_bytes(content or filename.encode())
    return path


def test_source_pages_list_each_projects_archives_even_with_dashed_names(
    tmp_path: Path,
) -> None:
    """Old sdists keep dashes in the name: python-dateutil's archive is not python's."""
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    for filename in (
        "python-1.0.tar.gz",
        "python-dateutil-2.8.2.tar.gz",
        "python_dateutil-2.9.0.tar.gz",
        "zope.interface-6.0.zip",
        "notes.txt",
    ):
        archive(sdists, filename)
    projects = [n("python"), n("python-dateutil"), n("zope-interface")]
    SourceIndexWriter(sdists).update(projects)

    def listed(name: str) -> list[str]:
        page = (sdists / name / "index.html").read_text()
        return [line.split('"')[1].split("#")[0] for line in page.splitlines() if "<a " in line]

    assert listed("python") == ["../python-1.0.tar.gz"]
    assert listed("python-dateutil") == [
        "../python-dateutil-2.8.2.tar.gz",
        "../python_dateutil-2.9.0.tar.gz",
    ]
    assert listed("zope-interface") == ["../zope.interface-6.0.zip"]
    root = (sdists / "index.html").read_text()
    assert all(f'href="{p}/"' in root for p in projects)


def test_source_pages_are_rewritten_only_when_their_archives_change(tmp_path: Path) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    archive(sdists, "app-1.0.tar.gz")
    archive(sdists, "lib-1.0.tar.gz")
    SourceIndexWriter(sdists).update([n("app"), n("lib")])
    before = state(sdists)

    SourceIndexWriter(sdists).update([n("app"), n("lib")])
    assert state(sdists) == before

    changed = archive(sdists, "lib-1.0.tar.gz", b"other bytes")
    SourceIndexWriter(sdists).update([n("app"), n("lib")])
    after = state(sdists)
    assert after["app/index.html"] == before["app/index.html"]
    assert after["index.html"] == before["index.html"]
    assert after["lib/index.html"] != before["lib/index.html"]
    digest = hashlib.sha256(changed.read_bytes()).hexdigest()
    assert f"#sha256={digest}" in (sdists / "lib" / "index.html").read_text()


def test_what_the_caller_knows_of_a_wheel_makes_the_same_page(tmp_path: Path) -> None:
    """The sha256 and Requires-Python a caller passes spare reading them back; the page
    is the one made from the files."""
    out, tmp = tmp_path / "out", tmp_path / "built"
    tmp.mkdir()
    (out / "wheels").mkdir(parents=True)
    metadata = b"Metadata-Version: 2.1\nName: lib\nVersion: 1.0\nRequires-Python: <4,>=3.9\n\n"
    wheel = tmp / "lib-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel_of(Project("lib", "1.0"), metadata=metadata))
    IndexWriter(out).publish([(wheel, metadata, None)])
    from_files = (out / "simple" / "lib" / "index.html").read_bytes()
    assert b'data-requires-python="&lt;4,&gt;=3.9"' in from_files

    (out / "simple" / "lib" / "index.html").unlink()
    known = KnownWheel(hashlib.sha256(wheel.read_bytes()).hexdigest(), "<4,>=3.9")
    IndexWriter(out).publish([(wheel, metadata, None)], {wheel.name: known})
    assert (out / "simple" / "lib" / "index.html").read_bytes() == from_files
