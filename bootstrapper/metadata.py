"""Core metadata (METADATA / PKG-INFO): parse it and compare the parts resolution uses."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import InvalidSourceError


@dataclass(frozen=True)
class CoreMetadata:
    name: NormalizedName
    version: Version
    requires_dist: tuple[Requirement, ...]
    requires_python: SpecifierSet
    provides_extra: frozenset[NormalizedName]
    #: Fields the metadata declares dynamic (PEP 643); meaningful for PKG-INFO only.
    dynamic: frozenset[str]
    metadata_version: str

    def dependency_key(self) -> tuple[frozenset[str], str]:
        """What resolution relies on, normalized, so two sources can be compared."""
        return (
            frozenset(requirement_key(r) for r in self.requires_dist),
            str(self.requires_python),
        )


def requirement_key(requirement: Requirement) -> str:
    """A spelling of ``requirement`` that two metadata writers agree on."""
    extras = ",".join(sorted(canonicalize_name(e) for e in requirement.extras))
    url = f" @ {requirement.url}" if requirement.url else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{canonicalize_name(requirement.name)}[{extras}]{requirement.specifier}{url}{marker}"


def parse_metadata(data: bytes, source: str) -> CoreMetadata:
    """Parse a METADATA/PKG-INFO document; ``source`` names it in errors."""
    message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)

    def one(field: str) -> str | None:
        value = message.get(field)
        return None if value is None else str(value).strip()

    name, version = one("Name"), one("Version")
    if not name or not version:
        raise InvalidSourceError(f"{source}: metadata has no Name or Version")
    try:
        parsed_version = Version(version)
    except InvalidVersion as e:
        raise InvalidSourceError(f"{source}: invalid Version {version!r}") from e
    requirements = []
    for raw in message.get_all("Requires-Dist") or []:
        try:
            requirements.append(Requirement(str(raw).strip()))
        except InvalidRequirement as e:
            raise InvalidSourceError(
                f"{source}: malformed Requires-Dist {str(raw).strip()!r}: {e}",
                package=canonicalize_name(name),
            ) from e
    requires_python = one("Requires-Python") or ""
    try:
        python_spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        python_spec = SpecifierSet()
    return CoreMetadata(
        name=canonicalize_name(name),
        version=parsed_version,
        requires_dist=tuple(requirements),
        requires_python=python_spec,
        provides_extra=frozenset(
            canonicalize_name(str(e).strip()) for e in message.get_all("Provides-Extra") or []
        ),
        dynamic=frozenset(str(d).strip().lower() for d in message.get_all("Dynamic") or []),
        metadata_version=one("Metadata-Version") or "1.0",
    )


def is_static_sdist_metadata(metadata: CoreMetadata) -> bool:
    """Whether a PKG-INFO can be trusted for dependencies (PEP 643: Metadata-Version
    2.2 or later, with Requires-Dist and Requires-Python not dynamic)."""
    try:
        version = Version(metadata.metadata_version)
    except InvalidVersion:
        return False
    return version >= Version("2.2") and not (
        {"requires-dist", "requires-python"} & metadata.dynamic
    )
