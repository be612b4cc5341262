"""The static simple index (PEP 503, with PEP 592/658/714 attributes), and beside each
HTML page its PEP 691 JSON form with the PEP 700 fields (``index.json``, see
:mod:`.simple_json`).

Publishing is atomic per file and ordered so that a page never links to a file that is
missing or half written: the wheels, then their metadata and records, then the project
pages, then the root page. Each step's files are written by several threads and synced to
the disk together before they are renamed into place (:func:`.fsutil.synced_together`):
one sync per step, not one per file. (Copies, hard links where possible, are in place at
once: they are never half written.)
"""

from __future__ import annotations

import hashlib
import html
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)

from .candidates import parse_sdist_filename
from .fsutil import (
    atomic_copy,
    copy_unless_identical,
    each_at_once,
    sha256_file,
    synced_together,
    write_if_changed,
    write_text_if_changed,
)
from .metadata import parse_metadata
from .records import RECORD_SUFFIX, read_record
from .simple_json import JSON_PAGE, IndexedFile, first_listed, published_times
from .simple_json import project_page as json_project_page
from .simple_json import root_page as json_root_page

METADATA_SUFFIX = ".metadata"


def _wheel_sha256(wheel: Path) -> str:
    """The wheel's sha256, from its build record when there is one (hashing a large wheel
    on every publish would be slow; a corrupted file then fails the installer's check)."""
    record = read_record(wheel.with_name(wheel.name + RECORD_SUFFIX))
    if record is not None and record.wheel == wheel.name:
        return record.wheel_sha256
    return sha256_file(wheel)


def _page(title: str, links: Iterable[str]) -> str:
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _write_root_page(directory: Path, title: str, projects: Iterable[NormalizedName]) -> None:
    """The PEP 503 root of ``directory`` and its JSON form: one link per project given.
    Never a listing of the folders found there: a build could have written one."""
    names = sorted(set(projects))
    links = [f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br>' for p in names]
    write_text_if_changed(directory / "index.html", _page(title, links))
    write_text_if_changed(directory / JSON_PAGE, json_root_page(names))


@dataclass(frozen=True)
class KnownWheel:
    """What a caller knows already of a wheel it publishes (from its build record and
    its parsed METADATA), so that its page needs neither read back."""

    sha256: str
    requires_python: str


@dataclass(frozen=True)
class _Listing:
    """What a project page says of a wheel (either form)."""

    sha256: str
    requires_python: str
    metadata_sha256: str


class IndexWriter:
    """Writes ``DIR/wheels`` and ``DIR/simple``; safe to call from several threads."""

    def __init__(self, output_dir: Path) -> None:
        self.wheels_dir = output_dir / "wheels"
        self.simple_dir = output_dir / "simple"
        self._lock = threading.Lock()

    def publish(
        self,
        wheels: Iterable[tuple[Path, bytes, Path | None]],
        known: Mapping[str, KnownWheel] | None = None,
    ) -> list[Path]:
        """Add wheels (each with its core metadata and build record) to the index, then
        rewrite the pages of the projects concerned and the root page. ``known``: what
        the caller knows of some of these wheels, by file name."""
        given = list(wheels)
        known = known or {}

        def add(wheel: Path, metadata: bytes, record: Path | None) -> Path:
            dest = self.wheels_dir / wheel.name
            copy_unless_identical(wheel, dest)
            write_if_changed(dest.with_name(dest.name + METADATA_SUFFIX), metadata)
            if record is not None:
                _copy_small_file(record, dest.with_name(dest.name + RECORD_SUFFIX))
            return dest

        #: What the pages say of the wheels published here, from what is known of them.
        links = {
            wheel.name: _Listing(
                known[wheel.name].sha256,
                known[wheel.name].requires_python,
                hashlib.sha256(metadata).hexdigest(),
            )
            for wheel, metadata, _ in given
            if wheel.name in known
        }
        projects = {parse_wheel_filename(wheel.name)[0] for wheel, _, _ in given}
        with self._lock:
            # Every file a page links to is in place before any page is written.
            with synced_together():
                published = each_at_once(lambda item: add(*item), given)
            # One listing of the directory for every page written (not one per project:
            # publishing a tree of n projects would read n^2 directory entries).
            listed = self._published_wheels()
            with synced_together():
                each_at_once(
                    lambda name: self._write_project_page(
                        name, sorted(listed.get(name, [])), links
                    ),
                    sorted(projects),
                )
            _write_root_page(self.simple_dir, "Simple index", listed)
        return published

    def _published_wheels(self) -> dict[NormalizedName, list[Path]]:
        """The wheels this writer published (each has the metadata file only ``publish``
        writes), by project."""
        names = {entry.name for entry in os.scandir(self.wheels_dir)}
        found: dict[NormalizedName, list[Path]] = {}
        for filename in names:
            if not filename.endswith(".whl") or filename + METADATA_SUFFIX not in names:
                continue
            try:
                name, _, _, _ = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                continue
            found.setdefault(name, []).append(self.wheels_dir / filename)
        return found

    def _write_project_page(
        self, name: NormalizedName, wheels: list[Path], known: Mapping[str, _Listing]
    ) -> None:
        page_dir = self.simple_dir / name
        times = published_times(page_dir / JSON_PAGE)
        links, files = [], []
        for wheel in wheels:
            metadata_file = wheel.with_name(wheel.name + METADATA_SUFFIX)
            listing = known.get(wheel.name)
            if listing is None:
                metadata_bytes = metadata_file.read_bytes()
                metadata = parse_metadata(metadata_bytes, metadata_file.name)
                listing = _Listing(
                    _wheel_sha256(wheel),
                    str(metadata.requires_python),
                    hashlib.sha256(metadata_bytes).hexdigest(),
                )
            links.append(_link(wheel.name, listing))
            _, version, _, _ = parse_wheel_filename(wheel.name)
            files.append(
                IndexedFile(
                    filename=wheel.name,
                    url=f"../../wheels/{wheel.name}",
                    version=version,
                    sha256=listing.sha256,
                    size=wheel.stat().st_size,
                    # The metadata file is written by publishing alone, once per wheel.
                    upload_time=first_listed(times, wheel.name, listing.sha256, metadata_file),
                    requires_python=listing.requires_python or None,
                    metadata_sha256=listing.metadata_sha256,
                )
            )
        write_text_if_changed(page_dir / "index.html", _page(f"Links for {name}", links))
        write_text_if_changed(page_dir / JSON_PAGE, json_project_page(name, files))


def _link(filename: str, listing: _Listing) -> str:
    """A wheel's anchor on its project page (PEP 503, with PEP 592/658/714 attributes)."""
    metadata_hash = f"sha256={listing.metadata_sha256}"
    attrs = [f'href="../../wheels/{html.escape(filename)}#sha256={listing.sha256}"']
    if listing.requires_python:
        attrs.append(f'data-requires-python="{html.escape(listing.requires_python)}"')
    attrs.append(f'data-core-metadata="{metadata_hash}"')
    attrs.append(f'data-dist-info-metadata="{metadata_hash}"')
    return f"<a {' '.join(attrs)}>{html.escape(filename)}</a><br>"


def _copy_small_file(src: Path, dest: Path) -> None:
    """``copy_unless_identical`` for a file small enough to compare byte for byte."""
    try:
        if os.path.samefile(src, dest) or src.read_bytes() == dest.read_bytes():
            return
    except FileNotFoundError:
        pass
    atomic_copy(src, dest)


class SourceIndexWriter:
    """``DIR/sdists`` as a PEP 503 index of the exact sources the builds used, so that the
    directory alone (``--index-url file://DIR/sdists/``, or ``build-sequence``) can
    rebuild the tree elsewhere."""

    def __init__(self, sdists_dir: Path) -> None:
        self.sdists_dir = sdists_dir
        self._lock = threading.Lock()

    def update(
        self, projects: Iterable[NormalizedName], known: Mapping[str, str] | None = None
    ) -> None:
        """Rewrite the pages of ``projects``; ``known`` maps archive file names to their
        sha256 where the caller has it (from build records), sparing a re-hash."""
        with self._lock:
            names = sorted(set(projects))
            # Nothing archived (a run that built nothing): there may be no directory.
            archives = _ArchivesByProject(self.sdists_dir) if names else None
            if archives is not None:
                found = archives
                with synced_together():
                    each_at_once(
                        lambda name: self._write_project_page(name, known or {}, found.of(name)),
                        names,
                    )
            self._write_root_page(archives)

    def _write_project_page(
        self, name: NormalizedName, known: Mapping[str, str], files: list[Path]
    ) -> None:
        page_dir = self.sdists_dir / name
        times = published_times(page_dir / JSON_PAGE)
        links, listed = [], []
        for path in files:
            digest = known.get(path.name) or sha256_file(path)
            links.append(
                f'<a href="../{html.escape(path.name)}#sha256={digest}">'
                f"{html.escape(path.name)}</a><br>"
            )
            version = parse_sdist_filename(path.name, name)
            assert version is not None  # _ArchivesByProject.of gives only these
            listed.append(
                IndexedFile(
                    filename=path.name,
                    url=f"../{path.name}",
                    version=version,
                    sha256=digest,
                    size=path.stat().st_size,
                    # Archiving writes a source once, and never again while it is there.
                    upload_time=first_listed(times, path.name, digest, path),
                )
            )
        write_text_if_changed(page_dir / "index.html", _page(f"Links for {name}", links))
        write_text_if_changed(page_dir / JSON_PAGE, json_project_page(name, listed))

    def _archived_projects(self, archives: _ArchivesByProject | None) -> set[NormalizedName]:
        """The projects with a page here that has one of the archives beside it."""
        if not self.sdists_dir.is_dir():  # nothing archived yet (a run that built nothing)
            return set()
        archives = archives or _ArchivesByProject(self.sdists_dir)
        found = set()
        for page in self.sdists_dir.glob("*/index.html"):
            name = canonicalize_name(page.parent.name)
            if page.parent.name == name and archives.of(name):
                found.add(name)
        return found

    def _write_root_page(self, archives: _ArchivesByProject | None) -> None:
        _write_root_page(self.sdists_dir, "Source archives", self._archived_projects(archives))


class _ArchivesByProject:
    """The source archives in a directory, by the projects whose archives they can be
    (read once: asking each file about each project is quadratic in a tree's size)."""

    def __init__(self, directory: Path) -> None:
        self._by_prefix: dict[str, list[Path]] = {}
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            # An old sdist may keep dashes in its name (python-dateutil-2.8.2.tar.gz):
            # the name is any prefix before a dash; parse_sdist_filename decides.
            stem = path.name
            prefixes = {canonicalize_name(stem[:i]) for i, c in enumerate(stem) if c == "-"}
            for prefix in prefixes:
                self._by_prefix.setdefault(prefix, []).append(path)

    def of(self, name: NormalizedName) -> list[Path]:
        """The archives of ``name``, sorted by file name."""
        return [
            p
            for p in self._by_prefix.get(name, [])
            if parse_sdist_filename(p.name, name) is not None
        ]
