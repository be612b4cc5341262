"""Turn an index page into buildable releases: pure filtering, no I/O."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .index import DistFile, ProjectPage

logger = logging.getLogger(__name__)

#: Sdist suffixes we accept, best first (PEP 625 names only .tar.gz).
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tgz", ".tar.bz2")


@dataclass(frozen=True)
class Release:
    """One version of a project that can be built: its sdist plus the upstream wheels,
    which serve only as a cheap source of metadata.

    For a package whose settings say ``prebuilt: true``, ``sdist`` is instead the
    upstream wheel that will be taken as it is (see :attr:`prebuilt`).
    """

    name: NormalizedName
    version: Version
    sdist: DistFile
    wheels: tuple[DistFile, ...] = ()
    #: The source archive comes from the settings' ``source`` (a URL or git), not from
    #: the index; ``sdist`` then stands for it only by name.
    external_source: bool = False

    @property
    def yanked(self) -> bool:
        return self.sdist.yanked

    @property
    def prebuilt(self) -> bool:
        return self.sdist.is_wheel

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def parse_sdist_filename(filename: str, project: NormalizedName) -> Version | None:
    """The version in an sdist file name of ``project``, or ``None`` if it is not one.

    Old sdists keep un-normalized names with dashes (``python-dateutil-2.8.2.tar.gz``),
    so the split point is found by matching the known project name.
    """
    for suffix in SDIST_SUFFIXES:
        if filename.lower().endswith(suffix):
            stem = filename[: -len(suffix)]
            break
    else:
        return None
    for i, char in enumerate(stem):
        if char == "-" and canonicalize_name(stem[:i]) == project:
            try:
                return Version(stem[i + 1 :])
            except InvalidVersion:
                return None
    return None


def _file_rank(file: DistFile) -> tuple[bool, int]:
    """Among sdists of one version: an unyanked file first (PEP 592 yanks files, not
    releases), then the preferred format."""
    lower = file.filename.lower()
    return file.yanked, next(i for i, s in enumerate(SDIST_SUFFIXES) if lower.endswith(s))


def _python_ok(file: DistFile, python_version: Version) -> bool:
    if not file.requires_python:
        return True
    try:
        return SpecifierSet(file.requires_python).contains(python_version, prereleases=True)
    except InvalidSpecifier:
        logger.debug(
            "ignoring invalid Requires-Python %r of %s", file.requires_python, file.filename
        )
        return True


def releases(page: ProjectPage, python_version: Version) -> list[Release]:
    """Every release of ``page`` that has an sdist usable on ``python_version``, newest first.

    Yanked releases are kept (flagged) because an ``==`` pin may still select them.
    """
    sdists: dict[Version, DistFile] = {}
    wheels: dict[Version, list[DistFile]] = {}
    for file in page.files:
        if file.is_wheel:
            try:
                wheel_name, version, _, _ = parse_wheel_filename(file.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if wheel_name == page.name:
                wheels.setdefault(version, []).append(file)
            continue
        sdist_version = parse_sdist_filename(file.filename, page.name)
        if sdist_version is None or not _python_ok(file, python_version):
            continue
        best = sdists.get(sdist_version)
        if best is None or _file_rank(file) < _file_rank(best):
            sdists[sdist_version] = file
    return [
        Release(page.name, version, sdist, tuple(wheels.get(version, ())))
        for version, sdist in sorted(sdists.items(), reverse=True)
    ]


def _usable_wheels(
    page: ProjectPage, python_version: Version
) -> Iterator[tuple[DistFile, Version, frozenset[Tag]]]:
    """The wheels of ``page``'s own project that allow ``python_version``, with their
    version and tags (files with unparsable names are skipped)."""
    for file in page.files:
        if not file.is_wheel or not _python_ok(file, python_version):
            continue
        try:
            wheel_name, version, _, file_tags = parse_wheel_filename(file.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if wheel_name == page.name:
            yield file, version, file_tags


def external_source_releases(page: ProjectPage, python_version: Version) -> list[Release]:
    """Releases of a project whose source the settings name (``source:``): every version
    the index lists, sdist or not (torch publishes wheels only), newest first."""
    found = {r.version: r for r in releases(page, python_version)}
    wheels: dict[Version, list[DistFile]] = {}
    for file, version, _ in _usable_wheels(page, python_version):
        if version not in found:
            wheels.setdefault(version, []).append(file)
    for version, files in wheels.items():
        stand_in = DistFile(
            f"{page.name.replace('-', '_')}-{version}.tar.gz",
            url="",
            yanked=all(f.yanked for f in files),
        )
        found[version] = Release(page.name, version, stand_in, tuple(files))
    return [
        dataclasses.replace(release, external_source=True)
        for _, release in sorted(found.items(), reverse=True)
    ]


def prebuilt_releases(
    page: ProjectPage, python_version: Version, tags: Sequence[Tag]
) -> list[Release]:
    """Releases of ``page`` offered as a wheel installable on this interpreter (the best
    match for ``tags``), newest first: the escape hatch for what cannot be built here."""
    rank = tag_rank(tags)
    best: dict[Version, tuple[tuple[bool, int], DistFile]] = {}
    for file, version, file_tags in _usable_wheels(page, python_version):
        score = min((rank[t] for t in file_tags if t in rank), default=None)
        if score is None:
            continue
        key = (file.yanked, score)
        if version not in best or key < best[version][0]:
            best[version] = (key, file)
    return [
        Release(page.name, version, file, (file,))
        for version, (_, file) in sorted(best.items(), reverse=True)
    ]


_RANKS: dict[int, tuple[Sequence[Tag], dict[Tag, int]]] = {}


def tag_rank(tags: Sequence[Tag]) -> dict[Tag, int]:
    """Each of ``tags`` (most preferred first) with its place: made once per list of
    tags (an interpreter has about a thousand, and it is asked for every release)."""
    found = _RANKS.get(id(tags))
    if found is None or found[0] is not tags:
        found = _RANKS[id(tags)] = (tags, {tag: i for i, tag in enumerate(tags)})
    return found[1]


def most_preferred(
    wheels: Iterable[DistFile],
    tags: Sequence[Tag],
    *,
    then: Callable[[DistFile], int] = lambda wheel: 0,
) -> DistFile | None:
    """The wheel of ``wheels`` most preferred by this interpreter's ``tags`` (one
    installable nowhere ranks last), ties broken by ``then`` (lower first), then by
    order."""
    rank = tag_rank(tags)
    best: tuple[tuple[int, int], DistFile] | None = None
    for file in wheels:
        _, _, _, file_tags = parse_wheel_filename(file.filename)
        score = (min((rank.get(t, len(rank)) for t in file_tags), default=len(rank)), then(file))
        if best is None or score < best[0]:
            best = (score, file)
    return best[1] if best else None


def metadata_wheel(
    release: Release, tags: Sequence[Tag], *, pep658: bool = True
) -> DistFile | None:
    """The upstream wheel whose metadata best stands for what we will build: the most
    preferred one for this interpreter, else any; with ``pep658``, among those whose
    index serves their metadata (PEP 658) only."""
    return most_preferred(
        (
            f
            for f in release.wheels
            if not f.yanked and (not pep658 or f.metadata_hashes is not None)
        ),
        tags,
    )


def allowed(
    candidates: Iterable[Release],
    specifier: SpecifierSet,
    *,
    exact_pins: frozenset[Version],
    allow_prereleases: bool,
) -> list[Release]:
    """Filter releases by one merged specifier, PEP 592 yanking and pre-release rules.

    A yanked release is chosen only through an exact ``==`` pin to it; pre-releases only
    when asked for (``--pre`` or a specifier naming one) or when nothing else matches.
    """
    usable = [
        c
        for c in candidates
        if specifier.contains(c.version, prereleases=True)
        and (not c.yanked or c.version in exact_pins)
    ]
    if allow_prereleases or specifier.prereleases:
        return usable
    final = [c for c in usable if not c.version.is_prerelease]
    return final or usable
