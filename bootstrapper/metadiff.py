"""Where the metadata of a wheel we built differs from the upstream wheel's of the same
version, and which of the differences our own settings made.

Distributions patch metadata, and upstream wheels and sdists disagree: torch's wheels on
PyPI require the nvidia-* packages a CPU build from its sdist does not. A team that
replaces upstream wheels with its own wants to see such differences, and to tell those it
asked for (a package's ``requires:`` setting) from those it did not.

The comparison (:func:`compare`) is pure; :func:`upstream_metadata` reads the upstream
wheel's METADATA from the index (PEP 658, else a few range requests; never the whole
wheel).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from .candidates import most_preferred
from .errors import BootstrapError
from .fsutil import write_text_if_changed
from .index import DistFile, IndexClient
from .metadata import CoreMetadata, parse_metadata, requirement_key
from .remotezip import RangeSource, read_remote_wheel_metadata

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One requirement (or extra) present on one side only."""

    text: str
    #: Made by the package's settings (``requires: {add: ..., remove: ...}``).
    by_settings: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "by_settings": self.by_settings}


@dataclass(frozen=True)
class MetadataDiff:
    name: NormalizedName
    version: Version
    #: The upstream wheel compared with, or None (see ``note``).
    upstream_wheel: str | None
    added: tuple[Change, ...] = ()
    missing: tuple[Change, ...] = ()
    #: (ours, upstream) when they differ.
    requires_python: tuple[str, str] | None = None
    extras_added: tuple[str, ...] = ()
    extras_missing: tuple[str, ...] = ()
    #: Why nothing was compared (no upstream wheel of this version, none readable).
    note: str | None = None
    #: What was compared: our wheel's sha256 and the upstream wheel's (as its index
    #: page gives it); a later run takes this answer again while both are the same.
    ours_sha256: str = ""
    upstream_sha256: str = ""

    @property
    def differs(self) -> bool:
        return bool(
            self.added
            or self.missing
            or self.requires_python
            or self.extras_added
            or self.extras_missing
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.version),
            "upstream_wheel": self.upstream_wheel,
            "differs": self.differs,
            "requirements_added": [c.to_json() for c in self.added],
            "requirements_missing": [c.to_json() for c in self.missing],
            "requires_python": (
                None
                if self.requires_python is None
                else {"ours": self.requires_python[0], "upstream": self.requires_python[1]}
            ),
            "extras_added": list(self.extras_added),
            "extras_missing": list(self.extras_missing),
            "note": self.note,
            "ours_sha256": self.ours_sha256,
            "upstream_sha256": self.upstream_sha256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetadataDiff:
        """Raises KeyError, TypeError or ValueError on what :meth:`to_json` did not write."""

        def changes(items: Any) -> tuple[Change, ...]:
            return tuple(Change(str(c["text"]), bool(c["by_settings"])) for c in items)

        python = data["requires_python"]
        return cls(
            name=canonicalize_name(str(data["name"])),
            version=Version(str(data["version"])),
            upstream_wheel=None if data["upstream_wheel"] is None else str(data["upstream_wheel"]),
            added=changes(data["requirements_added"]),
            missing=changes(data["requirements_missing"]),
            requires_python=(
                None if python is None else (str(python["ours"]), str(python["upstream"]))
            ),
            extras_added=tuple(str(e) for e in data["extras_added"]),
            extras_missing=tuple(str(e) for e in data["extras_missing"]),
            note=None if data["note"] is None else str(data["note"]),
            ours_sha256=str(data.get("ours_sha256", "")),
            upstream_sha256=str(data.get("upstream_sha256", "")),
        )


def settings_requires(plan: Mapping[str, Any]) -> tuple[list[Requirement], set[NormalizedName]]:
    """The ``requires`` edits a build record's plan holds: (added, removed names)."""
    edits = plan.get("settings", {}).get("requires", {}) if isinstance(plan, Mapping) else {}
    added = []
    for text in edits.get("add", []) if isinstance(edits, Mapping) else []:
        try:
            added.append(Requirement(str(text)))
        except InvalidRequirement:
            continue
    removed = {NormalizedName(str(n)) for n in (edits.get("remove", []) or [])}
    return added, removed


def compare(
    ours: CoreMetadata,
    upstream: CoreMetadata,
    upstream_wheel: str,
    *,
    version: Version | None = None,
    settings_added: Sequence[Requirement] = (),
    settings_removed: Iterable[NormalizedName] = (),
) -> MetadataDiff:
    """The differences between our wheel's metadata and the upstream wheel's, each
    requirement marked when the package's settings account for it; ``version`` is the
    source version (our wheel's may carry a rebuild number)."""
    ours_keys = {requirement_key(r): r for r in ours.requires_dist}
    theirs_keys = {requirement_key(r): r for r in upstream.requires_dist}
    added_by_settings = {requirement_key(r) for r in settings_added}
    removed = set(settings_removed)
    added = tuple(
        Change(str(r), by_settings=key in added_by_settings)
        for key, r in sorted(ours_keys.items())
        if key not in theirs_keys
    )
    missing = tuple(
        Change(str(r), by_settings=_name(r) in removed)
        for key, r in sorted(theirs_keys.items())
        if key not in ours_keys
    )
    python = (
        (str(ours.requires_python), str(upstream.requires_python))
        if str(ours.requires_python) != str(upstream.requires_python)
        else None
    )
    return MetadataDiff(
        name=ours.name,
        version=version or ours.version,
        upstream_wheel=upstream_wheel,
        added=added,
        missing=missing,
        requires_python=python,
        extras_added=tuple(sorted(ours.provides_extra - upstream.provides_extra)),
        extras_missing=tuple(sorted(upstream.provides_extra - ours.provides_extra)),
    )


def _name(requirement: Requirement) -> NormalizedName:
    return canonicalize_name(requirement.name)


def upstream_wheels(files: Iterable[DistFile], version: Version) -> list[DistFile]:
    """The index's wheels of ``version`` (not yanked)."""
    found = []
    for file in files:
        if not file.filename.endswith(".whl") or file.yanked:
            continue
        try:
            _, wheel_version, _, _ = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        if wheel_version == version:
            found.append(file)
    return found


def best_wheel(wheels: Sequence[DistFile], tags: Sequence[Tag]) -> DistFile | None:
    """The wheel that best stands for what we built: the most preferred for this
    interpreter, else any; one whose index serves its metadata (PEP 658) before one of
    the same rank that must be read by ranges."""
    return most_preferred(wheels, tags, then=lambda w: 0 if w.metadata_hashes is not None else 1)


def upstream_metadata(index: IndexClient, ranges: RangeSource, wheel: DistFile) -> CoreMetadata:
    """The METADATA of the upstream ``wheel``: PEP 658 where the index serves it, else by
    range requests; a BootstrapError says why neither worked."""
    if wheel.metadata_hashes is not None:
        data = index.fetch_metadata(wheel)
        return parse_metadata(data, wheel.filename + ".metadata")
    member = read_remote_wheel_metadata(ranges, wheel.url, wheel.filename)
    return parse_metadata(member.data, f"{wheel.filename}/METADATA")


def not_compared(name: NormalizedName, version: Version, note: str) -> MetadataDiff:
    return MetadataDiff(name=name, version=version, upstream_wheel=None, note=note)


def diff_package(
    ours: CoreMetadata,
    version: Version,
    plan: Mapping[str, Any],
    index: IndexClient,
    ranges: RangeSource,
    tags: Sequence[Tag],
    *,
    ours_sha256: str = "",
    known: Mapping[tuple[str, str], MetadataDiff] | None = None,
) -> MetadataDiff:
    """Compare one wheel of ours with the upstream wheel of its source ``version``; an
    answer in ``known`` for the same two wheels (by sha256) is taken as it is."""
    try:
        page = index.project_page(ours.name)
    except BootstrapError as e:
        return not_compared(ours.name, version, f"cannot read its index page: {e.message}")
    wheel = best_wheel(upstream_wheels(page.files, version), tags)
    if wheel is None:
        return not_compared(ours.name, version, "the index has no wheel of this version")
    theirs_sha256 = wheel.hashes.get("sha256", "")
    if ours_sha256 and theirs_sha256 and known is not None:
        earlier = known.get((ours_sha256, theirs_sha256))
        if earlier is not None:
            return earlier
    try:
        theirs = upstream_metadata(index, ranges, wheel)
    except BootstrapError as e:
        return not_compared(
            ours.name, version, f"cannot read the METADATA of {wheel.filename}: {e.message}"
        )
    added, removed = settings_requires(plan)
    diff = compare(
        ours,
        theirs,
        wheel.filename,
        version=version,
        settings_added=added,
        settings_removed=removed,
    )
    return dataclasses.replace(diff, ours_sha256=ours_sha256, upstream_sha256=theirs_sha256)


#: Where a bootstrap keeps the comparison of its wheels with the upstream ones (for the
#: report, and for the next run, which asks the index again only for what changed).
DIFF_FILE = Path("logs") / "metadata-diff.json"


def read_diffs(output_dir: Path) -> list[MetadataDiff]:
    """The comparisons the last run kept; none when there are none (or they are not
    readable: they are only a cache and a view)."""
    try:
        data = json.loads((output_dir / DIFF_FILE).read_text(encoding="utf-8"))
        return [MetadataDiff.from_json(item) for item in data["packages"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_diffs(output_dir: Path, diffs: Sequence[MetadataDiff]) -> None:
    document = {"schema": 1, "packages": [d.to_json() for d in diffs]}
    write_text_if_changed(output_dir / DIFF_FILE, json.dumps(document, indent=1) + "\n")


def diff_run(
    wheels: Sequence[tuple[CoreMetadata, Version, str, Mapping[str, Any]]],
    index: IndexClient,
    ranges: RangeSource,
    tags: Sequence[Tag],
    earlier: Sequence[MetadataDiff] = (),
    *,
    threads: int = 8,
) -> list[MetadataDiff]:
    """Compare each of a run's wheels (metadata, source version, sha256, build plan) with
    its upstream wheel, some at once; what ``earlier`` compared already is not asked
    again."""
    known = {
        (d.ours_sha256, d.upstream_sha256): d
        for d in earlier
        if d.ours_sha256 and d.upstream_sha256 and d.note is None
    }

    def one(item: tuple[CoreMetadata, Version, str, Mapping[str, Any]]) -> MetadataDiff:
        ours, version, sha256, plan = item
        return diff_package(
            ours, version, plan, index, ranges, tags, ours_sha256=sha256, known=known
        )

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="metadiff") as pool:
        return list(pool.map(one, wheels))
