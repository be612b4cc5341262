"""What both SBOMs share: components of Python distributions, licenses from core
metadata, and one deterministic rendering of a CycloneDX document."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.metadata import parse_email
from packaging.utils import NormalizedName

#: The CycloneDX version written: the newest most consumers read.
SCHEMA_VERSION = SchemaVersion.V1_6
#: The namespace of the serial numbers, which are derived from the documents' contents.
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://bootstrapper.invalid/sbom")
#: The prefix of this tool's property names (CycloneDX's custom-property convention).
PROPERTY_PREFIX = "bootstrapper:"
#: A ``License:`` field longer than this, or of several lines, is a license's text,
#: not its name.
_LICENSE_NAME_MAX = 100


def purl(name: NormalizedName, version: str, filename: str | None = None) -> PackageURL:
    """The package URL of a distribution (``pkg:pypi/name@version``), naming the file
    with the ``file_name`` qualifier when given."""
    return PackageURL(
        type="pypi",
        name=name,
        version=version,
        qualifiers={"file_name": filename} if filename else None,
    )


def sha256(hexdigest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)


def prop(name: str, value: str) -> Property:
    """One of this tool's properties (``bootstrapper:<name>``)."""
    return Property(name=PROPERTY_PREFIX + name, value=value)


def distribution(
    name: NormalizedName,
    version: str,
    filename: str | None,
    digest: str | None,
    *,
    properties: Iterable[Property] = (),
    **fields: Any,
) -> Component:
    """A component for one distribution file (wheel or sdist), its package URL as its
    bom-ref (unique where it names the file)."""
    url = purl(name, version, filename)
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=version,
        purl=url,
        bom_ref=url.to_string(),
        hashes=[sha256(digest)] if digest else None,
        properties=properties,
        **fields,
    )


def licenses(metadata: bytes) -> list[License]:
    """The licenses a core metadata file declares: its ``License-Expression`` (PEP 639),
    else a ``License`` that names one, else its license classifiers; empty when none."""
    raw, _ = parse_email(metadata)
    expression = raw.get("license_expression")
    if expression:
        return [_expression_or_name(expression)]
    text = (raw.get("license") or "").strip()
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) <= _LICENSE_NAME_MAX:
        return [_expression_or_name(text)]
    names = []
    for classifier in raw.get("classifiers", []):
        parts = [p.strip() for p in classifier.split("::")]
        # "License :: OSI Approved" alone says that it is approved, not which one.
        if parts[0] == "License" and len(parts) > 1 and parts[1:] != ["OSI Approved"]:
            names.append(parts[-1])
    return [DisjunctiveLicense(name=n) for n in sorted(set(names))]


def _expression_or_name(text: str) -> License:
    try:
        return LicenseExpression(canonicalize_license_expression(text))
    except InvalidLicenseExpression:
        return DisjunctiveLicense(name=text)


def render(bom: Bom) -> str:
    """``bom`` as CycloneDX JSON whose bytes depend on its contents only: no time stamp,
    a serial number derived from the rest, keys sorted (whatever order the library
    writes them in), components and dependencies in the library's sorted order."""
    bom.metadata.timestamp = None  # type: ignore[assignment]  # left out when None
    bom.serial_number = uuid.UUID(int=0)  # the library would make a random one
    text = make_outputter(bom, OutputFormat.JSON, SCHEMA_VERSION).output_as_string()
    document = json.loads(text)
    document.pop("serialNumber", None)
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    document["serialNumber"] = uuid.uuid5(_SERIAL_NAMESPACE, digest).urn
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
