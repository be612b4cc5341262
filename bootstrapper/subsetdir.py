"""A part of a run's output written as an output directory of its own (``graph subset
-o DIR``): ``graph.json``, ``build-order.json`` and ``constraints.txt`` of the part, its
wheels with their index, its source archives and patches. ``build-sequence`` rebuilds it,
``verify`` checks it, ``pip`` installs from it and the ``graph`` commands read it, like
the output of a bootstrap of those requirements alone.

Files are hard links to the originals where the file system allows (copies elsewhere):
the originals are only ever replaced, never changed in place, so a link stays what it
was when the part was written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import BootstrapError, UsageError
from .fsutil import atomic_write_text
from .graph import NodeKey
from .graphquery import GraphFileError, Subset, install_closure
from .outputs import constraints_text, line_per_item
from .provenance import PROVENANCE_SUFFIX
from .publish import METADATA_SUFFIX, IndexWriter, SourceIndexWriter
from .records import RECORD_SUFFIX
from .sources import archived_source


@dataclass(frozen=True)
class WrittenSubset:
    directory: Path
    packages: int
    sources: int
    patches: int


def write_subset(source_dir: Path, dest: Path, part: Subset) -> WrittenSubset:
    """Write ``part`` of the output in ``source_dir`` as the output directory ``dest``,
    which must not exist or be empty; it appears whole or not at all."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} is not empty; give -o a new or empty directory")
    keys = {node.key for node in part.graph.nodes()}
    entries = _order_entries(source_dir / "build-order.json", keys)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            written = _fill(source_dir, partial, part, entries)
            os.rename(partial, dest)  # replaces an empty directory, never a full one
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    except OSError as e:
        raise BootstrapError(
            f"cannot write the part to {dest}: {e.strerror or e}"
            + (f" ({e.filename})" if e.filename else "")
        ) from None
    return WrittenSubset(dest, *written)


def _order_entries(path: Path, keys: set[NodeKey]) -> list[dict[str, Any]]:
    """The entries of ``keys`` in the build order at ``path``, in its order (a build
    order cut to a part is a build order of the part)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GraphFileError(
            f"there is no {path}: a part is written with the build order of the run, "
            "which this output directory lacks"
        ) from None
    except (OSError, ValueError) as e:
        raise GraphFileError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    entries = []
    found = set()
    try:
        for item in raw:
            key = NodeKey(canonicalize_name(item["name"]), Version(item["version"]))
            if key in keys:
                entries.append(_checked(item))
                found.add(key)
    except (TypeError, KeyError, InvalidVersion, ValueError) as e:
        raise GraphFileError(f"{path} is not a build order bootstrapper wrote: {e!r}") from None
    missing = sorted(keys - found)
    if missing:
        raise GraphFileError(
            f"{path} has no entry for {', '.join(str(k) for k in missing)}: it is not the "
            "build order of the run that wrote graph.json beside it"
        )
    return entries


def _checked(item: dict[str, Any]) -> dict[str, Any]:
    """A build-order entry whose file names are names, not paths: copying the part must
    never reach outside either directory, whatever the build order says."""
    wheel, sdist = item["wheel"], item["sdist"]
    patches = [p["file"] for p in item.get("plan", {}).get("patches", [])]
    for name in (wheel, sdist, item["name"], item["version"], *patches):
        if not _plain_name(name):
            raise ValueError(f"{name!r} is not a file name")
    parse_wheel_filename(wheel)  # raises InvalidWheelFilename, a ValueError
    if not isinstance(item["sdist_sha256"], str):
        raise TypeError("sdist_sha256")
    return item


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _fill(
    source: Path, dest: Path, part: Subset, entries: list[dict[str, Any]]
) -> tuple[int, int, int]:
    wheels = []
    sources: dict[str, str] = {}
    patches = 0
    for entry in entries:
        wheel = entry["wheel"]
        for suffix in ("", METADATA_SUFFIX, RECORD_SUFFIX):
            _link(source / "wheels" / f"{wheel}{suffix}", dest / "wheels" / f"{wheel}{suffix}")
        # Its provenance too, signed as it is (a run before provenance existed has none).
        attested = source / "wheels" / f"{wheel}{PROVENANCE_SUFFIX}"
        if attested.is_file():
            _link(attested, dest / "wheels" / attested.name)
        wheels.append(dest / "wheels" / wheel)
        sdist = entry["sdist"]
        _link(archived_source(source / "sdists", sdist), archived_source(dest / "sdists", sdist))
        sources[sdist] = entry["sdist_sha256"]
        for patch in entry.get("plan", {}).get("patches", []):
            where = Path("patches", entry["name"], entry["version"], patch["file"])
            _link(source / where, dest / where)
            patches += 1
    IndexWriter(dest).publish(
        (w, w.with_name(w.name + METADATA_SUFFIX).read_bytes(), w.with_name(w.name + RECORD_SUFFIX))
        for w in wheels
    )
    SourceIndexWriter(dest / "sdists").update(
        [canonicalize_name(e["name"]) for e in entries if not e["sdist"].endswith(".whl")],
        sources,
    )
    atomic_write_text(dest / "graph.json", line_per_item(part.graph.to_json(part.roots)))
    atomic_write_text(dest / "build-order.json", line_per_item(entries))
    atomic_write_text(dest / "constraints.txt", constraints_text(_pins(source, part)))
    return len(entries), len(sources), patches


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except FileNotFoundError:
        if not src.exists():
            raise GraphFileError(
                f"there is no {src}: the output directory is incomplete, so the part "
                "cannot be written"
            ) from None
        raise
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dest)


def _pins(source: Path, part: Subset) -> list[tuple[str, Version]]:
    """``name==version`` of the install closure of the part's top-level requirements.
    A project in it twice (a package in both the install set and a build environment,
    with other pins of a dependency in each) takes the run's own pin."""
    closure = install_closure(part.graph, [key for key, _ in part.graph.roots()])
    nodes = {node.key: node for node in part.graph.nodes()}
    versions: dict[NormalizedName, set[Version]] = {}
    for key in closure:
        node = nodes[key]
        versions.setdefault(key.name, set()).add(Version(node.version or str(key.version)))
    run_pins = _read_pins(source / "constraints.txt")
    pins = []
    for name, found in sorted(versions.items()):
        if len(found) == 1:
            pins.append((str(name), next(iter(found))))
        elif run_pins.get(name) in found:
            pins.append((str(name), run_pins[name]))
    return pins


def _read_pins(path: Path) -> Mapping[NormalizedName, Version]:
    try:
        lines: Iterable[str] = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    pins = {}
    for line in lines:
        name, sep, version = line.strip().partition("==")
        try:
            if sep:
                pins[canonicalize_name(name)] = Version(version)
        except InvalidVersion:
            continue
    return pins
