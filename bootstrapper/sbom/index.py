"""``DIR/sbom.cdx.json``: a CycloneDX document of the whole index.

One component per published wheel (its package URL names the file: two wheels of one
version are two components), with its sha256, its licenses as its core metadata
declares them, and the source archive it was built from as its pedigree ancestor. The
dependencies are graph.json's edges between published wheels. CycloneDX's dependency
graph has no kinds of edge, so the build requirements are marked with properties:

- ``bootstrapper:requires:<kind>`` on the dependent, its value the bom-ref of the
  requirement, for each edge of a build kind (``build-system``, ``build-backend``,
  ``build-sdist``); ``bootstrapper:requires:install`` is added only for a requirement
  that is both. Every other ``dependsOn`` entry is an install requirement.
- ``bootstrapper:build-dependency`` (``true``) on every component a build environment
  held (a build requirement, or one of its install closure); ``bootstrapper:toplevel``
  (the requirement) on each one asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)

from ..credentials import redact_text, redact_url
from ..fsutil import atomic_write_text, sha256_file, write_text_if_changed
from ..graph import DependencyGraph, EdgeKind
from ..records import RECORD_SUFFIX, BuildRecord, records_in

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Pedigree

logger = logging.getLogger(__name__)

INDEX_SBOM = "sbom.cdx.json"
_METADATA_SUFFIX = ".metadata"


@dataclass(frozen=True)
class PublishedWheel:
    """A wheel of the index, with what its component says."""

    filename: str
    name: NormalizedName
    version: str
    sha256: str
    #: Its core metadata (``*.whl.metadata``).
    metadata: bytes
    record: BuildRecord | None = None


def index_sbom(wheels: Sequence[PublishedWheel], graph: DependencyGraph | None) -> str:
    """The CycloneDX JSON document of an index of ``wheels``; ``graph`` (the run's, when
    known) gives the dependencies between them."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency

    from . import _cdx

    by_file = {w.filename: w for w in wheels}
    wheel_of = {}
    #: Per dependent wheel: each wheel it needs, with the kinds of edge to it.
    needs: dict[str, dict[str, set[EdgeKind]]] = {w.filename: {} for w in wheels}
    toplevel: dict[str, set[str]] = {}
    if graph is not None:
        wheel_of = {n.key: n.wheel for n in graph.nodes() if n.wheel in by_file}
        for key, requirement in graph.roots():
            if key in wheel_of:
                toplevel.setdefault(wheel_of[key], set()).add(redact_text(str(requirement)))
        for parent, child, kind, _ in graph.edges():
            if parent in wheel_of and child in wheel_of:
                needs[wheel_of[parent]].setdefault(wheel_of[child], set()).add(kind)
    needed_to_build = _install_closure(
        needs,
        [child for edges in needs.values() for child, kinds in edges.items() if _any_build(kinds)],
    )
    refs = {w.filename: _cdx.purl(w.name, w.version, w.filename).to_string() for w in wheels}

    def properties(wheel: PublishedWheel) -> list[Property]:
        found = [_cdx.prop("toplevel", r) for r in sorted(toplevel.get(wheel.filename, ()))]
        if wheel.filename in needed_to_build:
            found.append(_cdx.prop("build-dependency", "true"))
        for child, kinds in needs[wheel.filename].items():
            if _any_build(kinds):
                found.extend(_cdx.prop(f"requires:{kind}", refs[child]) for kind in kinds)
        if wheel.record is not None and wheel.record.fallback:
            found.append(_cdx.prop("fallback", wheel.record.fallback))
        return found

    components = [
        _cdx.distribution(
            w.name,
            w.version,
            w.filename,
            w.sha256,
            properties=properties(w),
            licenses=_cdx.licenses(w.metadata),
            pedigree=_source(w.record),
        )
        for w in wheels
    ]
    bom = Bom(components=components)
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="bootstrapper", version=_version())
    )
    by_wheel = {w.filename: c for w, c in zip(wheels, components, strict=True)}
    for wheel, component in by_wheel.items():
        bom.dependencies.add(
            Dependency(
                ref=component.bom_ref,
                dependencies=[Dependency(ref=by_wheel[child].bom_ref) for child in needs[wheel]],
            )
        )
    return _cdx.render(bom)


def _install_closure(needs: dict[str, dict[str, set[EdgeKind]]], start: list[str]) -> set[str]:
    """``start`` and everything their install requirements reach: what build
    environments held."""
    found, todo = set(start), list(start)
    while todo:
        for child, kinds in needs[todo.pop()].items():
            if EdgeKind.INSTALL in kinds and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _any_build(kinds: Iterable[EdgeKind]) -> bool:
    return any(kind.is_build for kind in kinds)


def _source(record: BuildRecord | None) -> Pedigree | None:
    """The source archive a wheel was built from, as its pedigree."""
    if record is None or not record.sdist:
        return None
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
    from cyclonedx.model.component import Pedigree

    from . import _cdx

    url = redact_url(record.source_url)
    references = (
        [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))]
        if url.startswith(("https://", "http://"))
        else None
    )
    source = _cdx.distribution(
        canonicalize_name(record.name),
        record.version,
        record.sdist,
        record.sdist_sha256,
        external_references=references,
    )
    return Pedigree(ancestors=[source])


def _version() -> str:
    from ..builder import tool_versions

    return tool_versions()["bootstrapper"]


def published_wheels(wheels_dir: Path) -> list[PublishedWheel]:
    """The wheels published in ``wheels_dir`` (those with their ``.metadata`` beside
    them, as the index links them), sorted by file name."""
    if not wheels_dir.is_dir():
        return []
    names = {entry.name for entry in os.scandir(wheels_dir)}
    records = {path.name: record for path, record in records_in([wheels_dir])}
    found = []
    for filename in sorted(names):
        if not filename.endswith(".whl") or filename + _METADATA_SUFFIX not in names:
            continue
        try:
            name, version, _, _ = parse_wheel_filename(filename)
            metadata = (wheels_dir / (filename + _METADATA_SUFFIX)).read_bytes()
        except (InvalidWheelFilename, OSError) as e:
            logger.warning("sbom: leaving out %s: %s", filename, e)
            continue
        record = records.get(filename)
        if record is not None and record.wheel != filename:
            record = None
        digest = record.wheel_sha256 if record is not None else sha256_file(wheels_dir / filename)
        found.append(PublishedWheel(filename, name, str(version), digest, metadata, record))
    return found


def read_graph(path: Path) -> DependencyGraph | None:
    """The graph of a ``graph.json``; None (with a warning) when there is none readable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        graph, _ = DependencyGraph.from_json(document)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("sbom: no dependencies from %s: %s", path, e)
        return None
    return graph


#: What the last ``sbom.cdx.json`` was made from (private): a run whose inputs are the
#: same does not make it again (the CycloneDX library alone takes a tenth of a second to
#: import, on every re-run).
INPUTS_FILE = Path(".work") / "sbom-inputs"


def write_index_sbom(output_dir: Path, graph: DependencyGraph | None) -> bool:
    """Write ``DIR/sbom.cdx.json`` for the wheels published in ``DIR/wheels``, unless it
    holds the same bytes already; returns whether it wrote."""
    wheels_dir = output_dir / "wheels"
    target, inputs = output_dir / INDEX_SBOM, output_dir / INPUTS_FILE
    fingerprint = _fingerprint(wheels_dir, graph)
    try:
        kept = inputs.read_text(encoding="utf-8").split()
        if kept == [fingerprint, sha256_file(target)]:
            return False
    except OSError:
        pass
    wrote = write_text_if_changed(target, index_sbom(published_wheels(wheels_dir), graph))
    atomic_write_text(inputs, f"{fingerprint} {sha256_file(target)}\n")
    return wrote


def _fingerprint(wheels_dir: Path, graph: DependencyGraph | None) -> str:
    """A digest of everything :func:`index_sbom` reads: each published wheel, its
    metadata and its build record (by their sha256, which the hash cache answers without
    reading an unchanged file), and the graph."""
    from .. import __version__

    digest = hashlib.sha256(f"{__version__}\n".encode())
    names = sorted(e.name for e in os.scandir(wheels_dir)) if wheels_dir.is_dir() else []
    present = set(names)
    for name in names:
        if name.endswith(".whl") and name + _METADATA_SUFFIX in present:
            parts = [name]
            for suffix in ("", _METADATA_SUFFIX, RECORD_SUFFIX):
                if name + suffix in present:
                    parts.append(sha256_file(wheels_dir / (name + suffix)))
            digest.update(" ".join(parts).encode() + b"\n")
    if graph is not None:
        # In a stable order: a concurrent run adds edges in any order.
        edges = sorted(f"{u} {v} {kind} {req}" for u, v, kind, req in graph.edges())
        roots = sorted(f"{key} {req}" for key, req in graph.roots())
        nodes = sorted(f"{n.key} {n.wheel}" for n in graph.nodes())
        digest.update(json.dumps([edges, roots, nodes]).encode())
    return digest.hexdigest()
