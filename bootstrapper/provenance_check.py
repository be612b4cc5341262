"""``verify-provenance``: that each wheel's provenance is intact and true of the files in
an output directory, with no network.

For each wheel: its provenance exists and parses; it is an in-toto v1 statement of SLSA
v1 provenance whose subject is this wheel's sha256; every resolved dependency (source,
build-environment wheels, patches) is a file of the directory with the recorded sha256;
and, given a public key, the DSSE signature verifies. Every problem of a wheel is
reported, not only the first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import sha256_file
from .provenance import (
    PATCHES,
    PREDICATE_TYPE,
    ROLE_SOURCE,
    SOURCES,
    STATEMENT_TYPE,
    WHEELS,
    provenance_path,
)
from .publish import METADATA_SUFFIX
from .signing import PAYLOAD_TYPE, Verifier, decode_base64, is_envelope, pae

#: How the signature of one wheel's provenance came out.
VERIFIED, NOT_CHECKED, UNSIGNED, BAD = "verified", "not checked", "unsigned", "failed"


@dataclass(frozen=True)
class Locations:
    """Where the dependencies named ``sdists/…``, ``wheels/…`` and ``patches/…`` are (an
    output directory's own folders, unless the sources and patches were elsewhere, as
    for a ``build-sequence`` output)."""

    wheels: Path
    sources: Path
    patches: Path

    @classmethod
    def of(
        cls, output_dir: Path, sources: Path | None = None, patches: Path | None = None
    ) -> Locations:
        return cls(
            output_dir / WHEELS, sources or output_dir / SOURCES, patches or output_dir / PATCHES
        )

    def path(self, name: str) -> Path | None:
        """The file a dependency's name stands for; None for a name outside them."""
        parts = name.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
            return None
        base = {WHEELS: self.wheels, SOURCES: self.sources, PATCHES: self.patches}.get(parts[0])
        return None if base is None else base.joinpath(*parts[1:])


@dataclass(frozen=True)
class Parsed:
    """A provenance file read: the statement, and its envelope's signatures if signed."""

    statement: dict[str, Any]
    #: (keyid, signature) of each signature; empty when the file is a bare statement.
    signatures: tuple[tuple[str, bytes], ...] = ()
    #: The signed bytes (the DSSE PAE of the payload); None when unsigned.
    signed: bytes | None = None


class ProvenanceFormatError(ValueError):
    """A provenance file that is not one."""


def parse(text: str) -> Parsed:
    """A provenance file's content: a bare in-toto statement or a DSSE envelope of one."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise ProvenanceFormatError(f"not JSON ({e})") from None
    if not is_envelope(document):
        return Parsed(_statement(document))
    if document["payloadType"] != PAYLOAD_TYPE:
        raise ProvenanceFormatError(
            f"its envelope's payloadType is {document['payloadType']!r}, not {PAYLOAD_TYPE!r}"
        )
    try:
        payload = decode_base64(document["payload"])
        signatures = tuple(
            (str(s.get("keyid") or ""), decode_base64(s["sig"]))
            for s in document.get("signatures") or []
        )
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ProvenanceFormatError(f"its DSSE envelope is malformed ({e})") from None
    try:
        inner = json.loads(payload)
    except ValueError as e:
        raise ProvenanceFormatError(f"its envelope's payload is not JSON ({e})") from None
    return Parsed(_statement(inner), signatures, pae(PAYLOAD_TYPE, payload))


def _statement(document: object) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ProvenanceFormatError("not a JSON object")
    if document.get("_type") != STATEMENT_TYPE:
        raise ProvenanceFormatError(
            f"not an in-toto v1 statement (_type {document.get('_type')!r})"
        )
    if document.get("predicateType") != PREDICATE_TYPE:
        raise ProvenanceFormatError(
            f"not SLSA v1 provenance (predicateType {document.get('predicateType')!r})"
        )
    return document


def signature_problems(
    parsed: Parsed, verifier: Verifier | None, key_name: str
) -> tuple[str, list[str]]:
    """How the signature came out, and what is wrong with it (nothing to check without a
    key; with one, an unsigned file fails)."""
    if parsed.signed is None:
        if verifier is None:
            return UNSIGNED, []
        return BAD, [f"not signed (a signature by {key_name} was asked for)"]
    if verifier is None:
        return NOT_CHECKED, []
    if not parsed.signatures:
        return BAD, ["its DSSE envelope holds no signature"]
    if any(verifier.verifies(sig, parsed.signed) for _, sig in parsed.signatures):
        return VERIFIED, []
    if all(keyid and keyid != verifier.keyid for keyid, _ in parsed.signatures):
        ids = ", ".join(k for k, _ in parsed.signatures)
        return BAD, [
            f"signed by another key (keyid {ids}), not by {key_name} (keyid {verifier.keyid})"
        ]
    return BAD, [
        f"the signature does not verify with {key_name}: the provenance was changed after "
        "it was signed"
    ]


def subject_problems(statement: dict[str, Any], wheel: str, wheel_sha256: str) -> list[str]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        return ["it has no subject"]
    for subject in subjects:
        if isinstance(subject, dict) and subject.get("name") == wheel:
            recorded = (subject.get("digest") or {}).get("sha256")
            if recorded == wheel_sha256:
                return []
            return [
                f"the wheel's sha256 ({wheel_sha256}) is not the one its provenance "
                f"attests ({recorded}): the wheel was changed or replaced"
            ]
    names = ", ".join(str(s.get("name")) for s in subjects if isinstance(s, dict))
    return [f"it is the provenance of {names or 'nothing'}, not of {wheel}"]


def dependencies(statement: dict[str, Any]) -> list[Any]:
    try:
        found = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    except (KeyError, TypeError):
        return []
    return found if isinstance(found, list) else []


def dependency_problems(
    statement: dict[str, Any], locations: Locations, digest_of: Callable[[Path], str]
) -> list[str]:
    """That every resolved dependency is a file of the directory with its sha256."""
    problems = []
    found = dependencies(statement)
    if not any(_role(d) == ROLE_SOURCE for d in found):
        problems.append("it names no source archive among its resolved dependencies")
    for dep in found:
        name = dep.get("name") if isinstance(dep, dict) else None
        recorded = (dep.get("digest") or {}).get("sha256") if isinstance(dep, dict) else None
        if not isinstance(name, str) or not isinstance(recorded, str):
            problems.append(f"a resolved dependency without a name and sha256: {dep!r}")
            continue
        path = locations.path(name)
        if path is None:
            problems.append(f"{name}: not a file of the output directory")
            continue
        role = _role(dep) or "dependency"
        if not path.is_file():
            problems.append(f"{name} ({role}) is missing: no {path}")
            continue
        actual = digest_of(path)
        if actual != recorded:
            problems.append(
                f"{name} ({role}) is not the file the wheel was built with: its sha256 is "
                f"{actual}, the provenance says {recorded}"
            )
    return problems


def _role(dep: object) -> str | None:
    if not isinstance(dep, dict):
        return None
    role = (dep.get("annotations") or {}).get("role")
    return role if isinstance(role, str) else None


@dataclass(frozen=True)
class WheelCheck:
    """The verdict on one wheel's provenance."""

    wheel: str
    provenance: str
    signature: str = UNSIGNED
    keyids: tuple[str, ...] = ()
    dependencies: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "provenance": self.provenance,
            "ok": self.ok,
            "signature": self.signature,
            "keyids": list(self.keyids),
            "dependencies": self.dependencies,
            "problems": list(self.problems),
        }


def check_wheel(
    wheel: Path, locations: Locations, verifier: Verifier | None = None, key_name: str = ""
) -> WheelCheck:
    """Every problem of ``wheel``'s provenance against the files of ``locations``."""
    path = provenance_path(wheel)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return WheelCheck(wheel.name, path.name, problems=(f"no provenance: {path} is missing",))
    except (OSError, UnicodeDecodeError) as e:
        return WheelCheck(wheel.name, path.name, problems=(f"cannot read {path}: {e}",))
    try:
        parsed = parse(text)
    except ProvenanceFormatError as e:
        return WheelCheck(wheel.name, path.name, problems=(f"{path.name} is {e}",))
    signature, problems = signature_problems(parsed, verifier, key_name or "the key")
    problems += subject_problems(parsed.statement, wheel.name, sha256_file(wheel))
    problems += dependency_problems(parsed.statement, locations, sha256_file)
    return WheelCheck(
        wheel.name,
        path.name,
        signature,
        tuple(keyid for keyid, _ in parsed.signatures),
        len(dependencies(parsed.statement)),
        tuple(problems),
    )


def published_wheels(wheels_dir: Path) -> list[Path]:
    """The wheels of an output directory's index (each has the metadata file only
    publishing writes), by file name."""
    if not wheels_dir.is_dir():
        return []
    return sorted(
        p for p in wheels_dir.glob("*.whl") if p.with_name(p.name + METADATA_SUFFIX).is_file()
    )


def check_all(
    wheels: Sequence[Path], locations: Locations, verifier: Verifier | None, key_name: str = ""
) -> list[WheelCheck]:
    return [check_wheel(w, locations, verifier, key_name) for w in wheels]
