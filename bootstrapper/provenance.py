"""Provenance: an in-toto v1 Statement with a SLSA v1 provenance predicate per wheel,
made from its build record alone (``<wheel>.intoto.json`` beside the wheel).

The statement says nothing a re-run could change without changing the wheel's inputs:
no run id, no paths of this machine, only the record's own start and end times, so an
unchanged wheel keeps byte-identical provenance. Resolved dependencies are named by
their path relative to the output directory (``sdists/…``, ``wheels/…``,
``patches/<name>/<version>/…``), which is where ``verify-provenance`` finds them.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .credentials import redact_url
from .fsutil import each_at_once, synced_together, write_text_if_changed
from .records import BuildRecord
from .signing import Signer, envelope
from .sources import PREBUILT_DIR

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: What this provenance's parameters mean (documented in the README, "Provenance").
BUILD_TYPE = "urn:bootstrapper:build-type:wheel:v1"
#: The build platform: bootstrapper's isolated builds (its versions in ``builder.version``).
BUILDER_ID = "urn:bootstrapper:builder:v1"
PROVENANCE_SUFFIX = ".intoto.json"

#: The folders of the output directory a dependency's name starts with.
SOURCES, WHEELS, PATCHES = "sdists", "wheels", "patches"

#: Roles of resolved dependencies (their ``annotations.role``).
ROLE_SOURCE = "source"
ROLE_BUILD_ENV = "build-environment"
ROLE_PATCH = "patch"
#: The wheel the build made, of which the subject is the repaired form (``repair``).
ROLE_REPAIRED_FROM = "repaired-from"


#: The parts of a record's ``repair`` that were asked for (the rest is what was done).
_REPAIR_ASKED = ("requested", "plat", "exclude", "excluded")


def provenance_path(wheel: Path) -> Path:
    """Where the provenance of ``wheel`` is kept: beside it."""
    return wheel.with_name(wheel.name + PROVENANCE_SUFFIX)


def source_name(filename: str) -> str:
    """A source archive's path in the output directory (upstream wheels taken as they
    are live in ``sdists/prebuilt/``)."""
    if filename.endswith(".whl"):
        return f"{SOURCES}/{PREBUILT_DIR}/{filename}"
    return f"{SOURCES}/{filename}"


def patch_name(name: str, version: str, filename: str) -> str:
    """An archived patch's path in the output directory."""
    with suppress(InvalidVersion):
        version = str(Version(version))
    return f"{PATCHES}/{canonicalize_name(name)}/{version}/{filename}"


def _descriptor(name: str, sha256: str, role: str, **annotations: Any) -> dict[str, Any]:
    return {
        "name": name,
        "digest": {"sha256": sha256},
        "annotations": {"role": role, **annotations},
    }


def _public_url(url: str) -> str | None:
    """``url`` without credentials, if it names a place others can fetch from (a
    ``file:`` URL names this machine only, and would change with the directory)."""
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return redact_url(url)


def resolved_dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    """The source archive, every wheel of the build environments and every patch, each
    with its sha256 and its path in the output directory."""
    source = _descriptor(source_name(record.sdist), record.sdist_sha256, ROLE_SOURCE)
    url = _public_url(record.source_url)
    if record.upstream_sha256 and record.upstream_sha256 != record.sdist_sha256:
        # Crates were vendored into the archive: the URL serves the upstream one.
        source["annotations"]["upstream"] = {
            "digest": {"sha256": record.upstream_sha256},
            **({"uri": url} if url else {}),
        }
    elif url:
        source["uri"] = url
    found = [source]
    for wheel in sorted(record.build_env):
        found.append(
            _descriptor(
                f"{WHEELS}/{wheel.filename}",
                wheel.sha256,
                ROLE_BUILD_ENV,
                project=wheel.name,
                version=wheel.version,
            )
        )
    for patch in record.plan.get("patches", []):
        found.append(
            _descriptor(
                patch_name(record.name, record.version, patch["file"]),
                patch["sha256"],
                ROLE_PATCH,
            )
        )
    if record.repaired:
        # Kept beside the repaired wheel (unlisted): what the build itself made.
        found.append(
            _descriptor(
                f"{WHEELS}/{record.repair['from_wheel']}",
                record.repair["from_sha256"],
                ROLE_REPAIRED_FROM,
            )
        )
    return found


def statement(record: BuildRecord) -> dict[str, Any]:
    """The in-toto v1 Statement (SLSA v1 provenance) of the wheel ``record`` describes."""
    external: dict[str, Any] = {
        "package": {"name": record.name, "version": record.version},
        "source": {"name": source_name(record.sdist)},
        # Settings, patches (with sha256), the expanded env and the variant.
        "plan": record.plan,
        "python": record.python,
    }
    url = _public_url(record.source_url)
    if url:
        external["source"]["uri"] = url
    if record.pass_env:
        external["passEnv"] = list(record.pass_env)
    if record.repair:
        # What was asked of the repair (repair: true, and its platform and exclusions) ...
        external["repair"] = {k: v for k, v in record.repair.items() if k in _REPAIR_ASKED}
    internal: dict[str, Any] = {
        "buildBackend": record.build_backend,
        "buildSystemRequires": list(record.build_system_requires),
        "backendRequires": list(record.backend_requires),
        "environment": record.environment,
        "rebuild": record.rebuild,
    }
    # Where the backend was asked for its requirements in other wheels than it built
    # with (its own requirements changed the resolution): they made no part of the
    # wheel, and need not be published, so they are told here, not as dependencies.
    asked_in = sorted(set(record.discovery_env) - set(record.build_env))
    if asked_in:
        internal["discoveryEnvironment"] = [asdict(wheel) for wheel in asked_in]
    if record.fallback:
        internal["fallback"] = record.fallback
    if record.vendored:
        internal["vendored"] = record.vendored
    if record.worker:
        internal["worker"] = record.worker
    if record.repair:
        # ... and what it did: the tool, the platform reached, the libraries grafted.
        internal["repair"] = {k: v for k, v in record.repair.items() if k not in _REPAIR_ASKED}
    metadata = {
        key: value
        for key, value in (("startedOn", record.started), ("finishedOn", record.finished))
        if value
    }
    run_details: dict[str, Any] = {
        "builder": {"id": BUILDER_ID, "version": dict(record.tool_versions)},
    }
    if metadata:
        run_details["metadata"] = metadata
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": record.wheel, "digest": {"sha256": record.wheel_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": resolved_dependencies(record),
            },
            "runDetails": run_details,
        },
    }


def statement_bytes(document: dict[str, Any]) -> bytes:
    """The serialized statement: the same document gives the same bytes."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def provenance_text(record: BuildRecord, signer: Signer | None = None) -> str:
    """The file's content: the statement, or a DSSE envelope of it signed by ``signer``."""
    payload = statement_bytes(statement(record))
    if signer is None:
        return payload.decode()
    return json.dumps(envelope(payload, signer), indent=2, sort_keys=True) + "\n"


def write_provenance(
    published: Iterable[tuple[Path, BuildRecord]], signer: Signer | None = None
) -> int:
    """Write (atomically, and only where the bytes change) the provenance beside each
    published wheel, from its build record; returns how many files were written. A
    record of another file does not describe the wheel: it gets none."""
    described = [(wheel, record) for wheel, record in published if record.wheel == wheel.name]
    with synced_together():
        return sum(
            each_at_once(
                lambda item: write_text_if_changed(
                    provenance_path(item[0]), provenance_text(item[1], signer)
                ),
                described,
            )
        )
